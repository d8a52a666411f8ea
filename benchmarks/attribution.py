"""Time attribution methods on one SynthMotion clip and print a table (issue 6 goal: IG, 32 steps, <= 30 s
on 2 CPU cores with the bundled model).

    python -m benchmarks.attribution                      # the bundled checkpoint, 2 threads
    python -m benchmarks.attribution --checkpoint my.safetensors --threads 4
    python -m benchmarks.attribution --untrained          # same architecture, random weights (no checkpoint)

Timings do not depend on the weights, only on the architecture and input; completeness does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from analysis import attribute
from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.data import SynthMotion

RUNS = [
    ("integrated_gradients", dict(steps=8, internal_batch_size=8)),
    ("integrated_gradients", dict(steps=16, internal_batch_size=8)),
    ("integrated_gradients", dict(steps=32, internal_batch_size=4)),
    ("integrated_gradients", dict(steps=32, internal_batch_size=8)),
    ("integrated_gradients", dict(steps=32, internal_batch_size=16)),
    ("integrated_gradients", dict(steps=32, internal_batch_size=8, noise_tunnel=4)),
    ("saliency", {}),
    ("grad_cam", dict(stage=-1)),
    ("frame_occlusion", {}),
    ("occlusion", dict(patch=(2, 16, 16))),
]


def model_and_meta(args: argparse.Namespace):
    if not args.untrained:
        return load_checkpoint(args.checkpoint), "bundled" if args.checkpoint is None else str(args.checkpoint)
    import timm

    import posmlp_video  # noqa: F401

    model = timm.create_model("posmlp_video_xs", table_init="trunc_normal").eval()
    meta = dict(num_frames=8, input_size=[64, 64], resize_short=64, mean=[0.45] * 3, std=[0.225] * 3)
    return (model, meta), "posmlp_video_xs, untrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint path (default: the bundled one)")
    parser.add_argument("--untrained", action="store_true", help="time a randomly initialised posmlp_video_xs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row; the median is reported")
    parser.add_argument("--only-ig32", action="store_true", help="time only IG with 32 steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (model, meta), source = model_and_meta(args)
    clip = SynthMotion(1, seed=5, num_frames=int(meta["num_frames"]), size=tuple(meta["input_size"]))[0]["video"]
    attribute(model, clip, "saliency", meta=meta)  # warm-up
    runs = [r for r in RUNS if r[1].get("steps") == 32 and "noise_tunnel" not in r[1]] if args.only_ig32 else RUNS
    print(f"model: {source}; clip {clip.shape}; {torch.get_num_threads()} threads; median of {args.repeats}\n")
    print("| method | options | seconds | abs(delta) / abs(logit change) |")
    print("|---|---|---:|---:|")
    for method, options in runs:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = attribute(model, clip, method, meta=meta, **options)
            times.append(time.perf_counter() - start)
        rel = "" if result.relative_delta is None else f"{result.relative_delta:.2%}"
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        print(f"| {method} | {opts} | {statistics.median(times):.2f} | {rel} |", flush=True)


if __name__ == "__main__":
    main()
