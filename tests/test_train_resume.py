"""Kill -9 a training run mid-epoch, re-run the same command: it resumes, logs every epoch exactly once, and ends
with the same weights as a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["data.num_frames=4", "data.input_size=32", "data.resize_short=32", "data.train_clips=36", "data.val_clips=12",
        "optim.warmup_epochs=1", "train.batch_size=6", "train.epochs=4"]


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "posmlp_video", "train", "configs/synthmotion_xs.yaml", *TINY, f"output_dir={out}"]


def _epochs_logged(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.endswith("}")]


def _start_and_kill(out: Path, after_epochs: int, delay: float) -> None:
    """Start the run, SIGKILL it `delay` s after `after_epochs` epochs are logged (i.e. inside the next epoch)."""
    proc = subprocess.Popen(_command(out), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(_epochs_logged(out)) < after_epochs:
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "training too slow"
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path):
    out = tmp_path / "killed"
    _start_and_kill(out, after_epochs=1, delay=0.3)
    logged = _epochs_logged(out)
    assert 1 <= len(logged) <= 2 and logged == list(range(1, len(logged) + 1))
    _start_and_kill(out, after_epochs=len(logged) + 1, delay=0.0)  # killed again, right after a checkpoint
    done = subprocess.run(_command(out), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stdout
    assert _epochs_logged(out) == [1, 2, 3, 4]  # every epoch exactly once
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    # the interrupted run ends exactly where an uninterrupted one does (model, RNG and data order restored)
    straight = tmp_path / "straight"
    done = subprocess.run(_command(straight), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(straight / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[json.loads(line)["train_loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
              for d in (out, straight)]
    assert losses[0] == losses[1]
