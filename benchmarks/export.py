"""onnxruntime on the CPU against our PyTorch paths, in one process on the same clip (issue 16).

    python -m benchmarks.export                  # posmlp_video_s, 16 x 224 x 224, random weights
    python -m benchmarks.export --model posmlp_video_xs --frames 8 --size 32 --rounds 20
    python -m benchmarks.export --threads 1     # one thread each: steadier on a shared machine

Exports the model to ONNX with `posmlp_video.export.export_onnx` (opset 18, dynamic batch), then times batch-1
inference of the plain model (eager fp32), the fast path (`optimize_for_inference`, fp32) and an onnxruntime
CPU session with as many intra-op threads as torch uses, in interleaved rounds after two warm-up calls each
(median and min of the rounds). Also prints each path's relative logit error against eager fp32. Results
go to ``benchmarks/results/export_<model>_<threads>threads.json`` with the load average at start and end: on a shared
machine the ratios measured in the same run matter more than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posmlp_video.export import export_onnx, onnx_runner
from posmlp_video.fast import optimize_for_inference
from posmlp_video.models import create_model

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="posmlp_video_s")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch and onnxruntime intra-op threads (default: torch's)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    threads = args.threads
    torch.set_num_threads(threads)
    model = create_model(args.model, num_frames=args.frames, img_size=args.size).eval()
    meta = dict(num_frames=args.frames, input_size=[args.size, args.size])
    x = torch.randn(1, 3, args.frames, args.size, args.size)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_onnx(model, meta, Path(folder) / "model.onnx")
        export_s = time.perf_counter() - start
        onnx_mb = path.stat().st_size / 2**20
        ort_run = onnx_runner(path, threads=threads)
        fast = optimize_for_inference(model)
        paths = {
            "eager fp32": lambda: model(x),
            "fast fp32 (optimize_for_inference)": lambda: fast(x),
            "onnxruntime fp32 (CPU)": lambda: torch.from_numpy(ort_run(x.numpy())),
        }
        with torch.no_grad():
            reference = model(x)
            outputs = {name: call() for name, call in paths.items()}
            for call in paths.values():
                call()  # second warm-up call
            times: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(args.rounds):
                for name, call in paths.items():
                    t0 = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - t0)
    rows = []
    for name in paths:
        err = float((outputs[name] - reference).abs().max() / reference.abs().max())
        rows.append(dict(path=name, median_ms=1e3 * statistics.median(times[name]), min_ms=1e3 * min(times[name]),
                         rel_err=err, times_s=times[name]))
    eager = rows[0]["median_ms"]
    print(f"{args.model}, 1 x 3 x {args.frames} x {args.size} x {args.size}, float32, {threads} threads, "
          f"{args.rounds} rounds; ONNX export {export_s:.0f} s, {onnx_mb:.0f} MiB")
    print("| path | median ms | min ms | vs eager | rel. logit error |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['path']} | {r['median_ms']:.0f} | {r['min_ms']:.0f} | {eager / r['median_ms']:.2f}x | "
              f"{r['rel_err']:.1e} |")
    load_end = os.getloadavg()
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f} ({os.cpu_count()} CPUs)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"export_{args.model}_{threads}threads.json"
    out.write_text(json.dumps(dict(
        model=args.model, input=[1, 3, args.frames, args.size, args.size], threads=threads, rounds=args.rounds,
        export_s=export_s, onnx_mib=onnx_mb, rows=rows, machine=platform.processor() or platform.machine(),
        cpus=os.cpu_count(), torch=torch.__version__, onnxruntime=_ort_version(), load_start=load_start,
        load_end=load_end, numpy=np.__version__,
    ), indent=1))
    print(f"wrote {out}")


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
