"""Clips per second of the data pipeline: SynthMotion generation and decode + transform of real files.

    python -m benchmarks.data_loading [--clips 96] [--workers 0 2] [--out outputs/data_loading.json]

Cases: SynthMotion clips (raw, and with the training transform), and a folder of H.264 mp4 files
(10 s, 320x240, 30 fps, written first into a temporary folder) decoded with segment sampling (8 frames)
or dense sampling (8 x 4), through a DataLoader with each worker count. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from posmlp_video.data import ClipSampler, SynthMotion, TrainTransform, VideoFolder, preprocess, write_video

META = {"input_size": [224, 224], "resize_short": 256, "mean": [0.45] * 3, "std": [0.225] * 3}


def _eval_transform(clip: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
    return preprocess(clip, META).tensor, label


def _write_videos(folder: Path, count: int) -> None:
    """``count`` 10-second 320x240 30 fps H.264 files of a panning blurred-noise texture."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (240, 640, 3), np.uint8), (0, 0), 3)
    frames = np.stack([texture[:, i : i + 320] for i in range(0, 300)])
    for i in range(count):
        write_video(folder / "moving" / f"clip{i:03d}.mp4", np.roll(frames, i, axis=2), 30, codec="libx264",
                    pix_fmt="yuv420p", codec_options={"preset": "veryfast", "crf": "23"})


def _rate(dataset: torch.utils.data.Dataset, workers: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=workers)
    start = time.perf_counter()
    count = sum(len(batch["label"]) for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96, help="SynthMotion clips per case (default 96)")
    parser.add_argument("--files", type=int, default=12, help="mp4 files in the decode cases (default 12)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the main process (workers always use 1; default 1)")
    parser.add_argument("--out", type=Path, default=Path("outputs/data_loading.json"), help="JSON results")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    synth_train = TrainTransform((56, 56), [0.45] * 3, [0.225] * 3, flip_pairs=SynthMotion.flip_pairs)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _write_videos(Path(tmp), args.files)
        cases = {
            "SynthMotion 8x64x64 raw": SynthMotion(args.clips, 0, 8, 64),
            "SynthMotion 8x64x64 + train transform 56": SynthMotion(args.clips, 0, 8, 64, transform=synth_train),
            "mp4 320x240 10 s, segment 8, eval 224": VideoFolder(tmp, ClipSampler(8), transform=_eval_transform,
                                                                   short_side=256),
            "mp4 320x240 10 s, dense 8x4, eval 224": VideoFolder(tmp, ClipSampler(8, "dense", rate=4),
                                                                   transform=_eval_transform, short_side=256),
        }
        for name, dataset in cases.items():
            for workers in args.workers:
                rows.append({"case": name, "workers": workers, "clips_per_s": round(_rate(dataset, workers), 1)})
                print(f"{name:<45} workers={workers}  {rows[-1]['clips_per_s']:>8.1f} clips/s", flush=True)
    result = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
