"""`keep_freed_memory`: after it, a loop that allocates and frees the same large tensors stops faulting in fresh
pages (counted by the kernel: minor page faults), while without it every round faults them in again."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from posmlp_video.allocator import keep_freed_memory
    assert keep_freed_memory()
faults = []
for _ in range(4):  # one step's worth of large activations: allocated, used, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(16 << 20); b = a * 2; c = torch.nn.functional.gelu(b); del a, b; c.sum(); del c
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[-1])
"""
PAGES = 3 * (64 << 20) // 4096  # three 64 MiB tensors per round, in 4 KiB pages


def _last_round_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_activations_are_reused_without_page_faults() -> None:
    assert _last_round_faults("plain") > PAGES // 2  # glibc unmaps them: the same pages are faulted in again
    assert _last_round_faults("keep") < PAGES // 100
