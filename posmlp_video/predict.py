"""Classify video files or arrays with a checkpoint: ``python -m posmlp_video predict PATH [PATH ...]``.

``Predictor`` is the Python API (used by the web app): it holds the model and its metadata, samples and
preprocesses a clip exactly as the checkpoint expects, and returns the top-k classes, the frames the model
saw and the time it took.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.data.decode import VideoDecodeError, read_video
from posmlp_video.data.sampling import ClipSampler
from posmlp_video.data.transforms import preprocess
from posmlp_video.errors import PosMLPError


@dataclass(frozen=True)
class Prediction:
    """Top-k ``(label, probability)`` pairs, best first, and what produced them."""

    top: list[tuple[str, float]]
    frames: np.ndarray  # uint8 (T, H, W, 3): the sampled frames after resize and crop, as the model saw them
    input: torch.Tensor  # float (3, T, H, W): the normalised model input made from ``frames``
    model_ms: float  # forward pass only
    total_ms: float  # decode + preprocess + forward


class Predictor:
    """A model and its checkpoint metadata, ready to classify clips (centre clip, centre crop)."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.class_names: list[str] = list(meta["class_names"])
        self.sampler = ClipSampler.from_meta(meta)
        self.device = next(model.parameters()).device  # inputs follow the model (CPU or GPU)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> Predictor:
        """Load one of our checkpoints (default: the bundled SynthMotion model)."""
        from posmlp_video.checkpoint import load_checkpoint

        return cls(*load_checkpoint(path))

    def sample(self, source: str | Path | np.ndarray) -> np.ndarray:
        """The checkpoint's clip of ``source`` (a video/image path, or uint8 ``(T, H, W, 3)`` / ``(H, W, 3)``)
        as uint8 ``(num_frames, H, W, 3)``, before resize and crop."""
        if isinstance(source, np.ndarray):
            clip = _check_array(source)
            return clip[self.sampler(len(clip))[0]]
        return read_video(source, self.sampler, short_side=int(self.meta["resize_short"])).frames[0]

    def predict(self, source: str | Path | np.ndarray, top_k: int = 5) -> Prediction:
        """Classify one clip; raises ``VideoDecodeError`` (a ``PosMLPError``) for unusable input."""
        start = time.perf_counter()
        view = preprocess(self.sample(source), self.meta)
        forward_start = time.perf_counter()
        with torch.inference_mode():
            probabilities = self.model(view.tensor.unsqueeze(0).to(self.device)).softmax(dim=-1)[0].cpu()
        end = time.perf_counter()
        scores, indices = probabilities.topk(min(top_k, len(self.class_names)))
        top = [(self.class_names[i], float(s)) for s, i in zip(scores.tolist(), indices.tolist())]
        return Prediction(top, view.frames, view.tensor, (end - forward_start) * 1e3, (end - start) * 1e3)


def _check_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise VideoDecodeError(f"expected a uint8 array (T, H, W, 3) or (H, W, 3), got {array.dtype} {array.shape}")
    return array


# --------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files, GIFs or images to classify")
    parser.add_argument("--checkpoint", type=Path, help="our .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("--top-k", type=_positive_int, default=5, help="how many classes to show (default 5)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per input per line: {"path", "predictions"} or {"path", "error"}')


def run(args: argparse.Namespace) -> int:
    """Answer every input; exit 1 if any of them failed (the others are still answered)."""
    from posmlp_video.card import card_of, scope_summary

    predictor = Predictor.from_checkpoint(args.checkpoint)
    min_prob = card_of(predictor.meta).get("confidence", {}).get("min_prob")
    # what this checkpoint knows, shown above its first answer so that the answers are read in scope
    header = textwrap.fill(scope_summary(predictor.meta), width=100, initial_indent="model: ",
                           subsequent_indent="       ")
    if min_prob is not None:
        header += (f"\n       a top class below {min_prob:.2f} probability is marked uncertain "
                   "(threshold calibrated on held-out clips)")
    failed = 0
    for path in args.paths:
        try:
            prediction = predictor.predict(path, args.top_k)
        except PosMLPError as err:
            failed += 1
            if args.json:
                print(json.dumps({"path": path, "error": str(err)}), flush=True)
            else:
                print(f"posmlp-video predict: error: {path}: {err}", file=sys.stderr, flush=True)
            continue
        if args.json:
            predictions = [{"label": label, "score": round(score, 6)} for label, score in prediction.top]
            record = {"path": path, "predictions": predictions}
            if min_prob is not None:
                record["uncertain"] = prediction.top[0][1] < min_prob
            print(json.dumps(record), flush=True)
        else:
            if header:
                print(header + "\n")
                header = ""
            unsure = min_prob is not None and prediction.top[0][1] < min_prob
            print(f"{path}  ({prediction.total_ms:.0f} ms){'  uncertain' if unsure else ''}")
            for label, score in prediction.top:
                print(f"  {score:6.3f}  {label}")
            sys.stdout.flush()
    return 1 if failed else 0
