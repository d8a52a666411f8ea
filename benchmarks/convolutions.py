"""The (1, 3, 3) convolutions of S16 (stem and downsampling), forward + backward: as 3-D convolutions on
(B, C, T, H, W) against `posmlp_video.models.posmlp._framewise` (the 2-D convolution over channels-last frames
that the model runs), same weights and inputs, interleaved rounds, median. Why the model runs them frame-wise.

    python -m benchmarks.convolutions            # S16 at 16 x 224 x 224, batch 1; about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from posmlp_video.models import create_model
from posmlp_video.models.posmlp import _clip, _frames, _framewise

RESULTS = Path(__file__).parent / "results"


def _cases(model: torch.nn.Module, frames: int, size: int) -> list[tuple[str, torch.nn.Conv3d, tuple[int, ...], bool]]:
    """(name, conv, channels-last input shape (B, T, H, W, C), whether the input needs a gradient)."""
    stem, dims = model.stem, model.config["embed_dims"]
    cases = [("stem.conv1", stem.conv1, (1, frames, size, size, stem.conv1.in_channels), False),
             ("stem.conv2", stem.conv2, (1, frames, size // 2, size // 2, stem.conv2.in_channels), True)]
    for i in range(1, 4):
        side = size // 4 // 2 ** (i - 1)
        cases.append((f"stages.{i}.downsample", model.stages[i].downsample.conv, (1, frames, side, side, dims[i - 1]),
                      True))
    return cases


def _step(fn, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x).sum().backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = create_model("posmlp_video_s")
    load = os.getloadavg()[0]
    rows = []
    for name, conv, shape, grad in _cases(model, args.frames, args.size):
        x = torch.randn(shape, requires_grad=grad)
        T = shape[1]
        ways = {  # both return (B, T, H', W', C') from channels-last (B, T, H, W, C) activations
            "conv3d": lambda x, conv=conv: F.conv3d(x.permute(0, 4, 1, 2, 3), conv.weight, conv.bias, conv.stride,
                                                     conv.padding).permute(0, 2, 3, 4, 1),
            "framewise conv2d": lambda x, conv=conv, T=T: _clip(_framewise(conv, _frames(x)), T),
        }
        a, b = (f(x) for f in ways.values())
        err = ((a - b).norm() / a.norm()).item()
        times: dict[str, list[float]] = {k: [] for k in ways}
        for f in ways.values():
            _step(f, x)  # warm-up
        for _ in range(args.rounds):
            for k, f in ways.items():
                times[k].append(_step(f, x))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(dict(conv=name, input=list(shape), rel_err=err, times=times, median=med))
    load_end = os.getloadavg()[0]
    print(f"S16 (1,3,3) convolutions, forward + backward, {args.frames} x {args.size} x {args.size}, batch 1, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds; "
          f"load average {load:.1f} -> {load_end:.1f}")
    print(f"| {'convolution':22} | {'conv3d (ms)':>11} | {'framewise (ms)':>14} | {'speed-up':>8} | {'rel. err':>8} |")
    print(f"|{'-' * 24}|{'-' * 12}:|{'-' * 15}:|{'-' * 9}:|{'-' * 9}:|")
    for r in rows + [dict(conv="total", median={k: sum(r["median"][k] for r in rows) for k in rows[0]["median"]},
                          rel_err=max(r["rel_err"] for r in rows))]:
        a, b = r["median"]["conv3d"], r["median"]["framewise conv2d"]
        print(f"| {r['conv']:22} | {a * 1e3:11.1f} | {b * 1e3:14.1f} | {a / b:7.2f}x | {r['rel_err']:8.1e} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "convolutions.json"
    out.write_text(json.dumps(dict(rows=rows, load=[load, load_end], threads=torch.get_num_threads(),
                                   torch=torch.__version__), indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
