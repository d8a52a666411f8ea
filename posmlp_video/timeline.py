"""Actions over time in a long video: ``python -m posmlp_video timeline video.mp4 --window 2s --stride 0.5s``.

The model slides over the whole video: window ``k`` covers ``[k * stride, k * stride + window)`` seconds and is
sampled inside that span exactly as the checkpoint samples a clip (then preprocessed as ``eval`` does, with
``--crops`` spatial views). The file is decoded once, front to back (``FrameStream``); only the frames of the
windows still open are kept, so memory stays bounded for an hour-long file. Outputs: per-window class
probabilities (CSV and/or JSON), a plot of the top classes over time, and the segments (runs of windows with
the same top class) printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.errors import PosMLPError


@dataclass(frozen=True)
class Segment:
    """A run of windows with the same top class; times are seconds (boundaries halfway between window centres)."""

    start: float
    end: float
    label: str
    score: float  # mean probability of ``label`` over the run's windows


@dataclass(frozen=True, eq=False)
class Timeline:
    """Per-window class probabilities of one video.

    Immutable (the arrays are read-only views, the class names a tuple), so what is derived from it (centres,
    segments, class ranking) is computed once, on first use, and the app keeps the object itself between
    cursor moves.
    """

    starts: np.ndarray  # (N,) window start, seconds
    ends: np.ndarray  # (N,) window end, seconds
    probabilities: np.ndarray  # (N, num_classes) float32
    class_names: tuple[str, ...]
    duration: float  # seconds

    def __post_init__(self) -> None:
        for name in ("starts", "ends", "probabilities"):
            view = np.asarray(getattr(self, name)).view()
            view.flags.writeable = False
            object.__setattr__(self, name, view)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @cached_property
    def centres(self) -> np.ndarray:
        centres = (self.starts + self.ends) / 2
        centres.flags.writeable = False
        return centres

    @cached_property
    def _ranking(self) -> np.ndarray:
        """Every class, by its highest probability anywhere in the video, best first."""
        return np.argsort(-self.probabilities.max(0), kind="stable")

    def top_classes(self, k: int = 5) -> list[int]:
        """The ``k`` classes with the highest probability anywhere in the video, best first."""
        return self._ranking[:k].tolist()

    @cached_property
    def _segments(self) -> tuple[Segment, ...]:
        if not len(self.starts):
            return ()
        labels = self.probabilities.argmax(1)
        cuts = [0, *(np.flatnonzero(np.diff(labels)) + 1).tolist(), len(labels)]
        centres = self.centres
        out = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            start = 0.0 if a == 0 else float(centres[a - 1] + centres[a]) / 2
            end = self.duration if b == len(labels) else float(centres[b - 1] + centres[b]) / 2
            label = int(labels[a])
            out.append(Segment(start, end, self.class_names[label], float(self.probabilities[a:b, label].mean())))
        return tuple(out)

    def segments(self) -> list[Segment]:
        """Runs of consecutive windows with the same top class, from 0 to the end of the video."""
        return list(self._segments)

    def at(self, time: float) -> tuple[int, Segment | None]:
        """The window whose centre is nearest ``time`` (seconds) and the segment holding ``time``."""
        window = int(np.abs(self.centres - time).argmin())
        segment = next((s for s in self._segments if s.start <= time < s.end), None)
        return window, segment

    def window_top(self, window: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of one window, best first, as (name, probability)."""
        row = self.probabilities[window]
        return [(self.class_names[c], float(row[c])) for c in np.argsort(-row, kind="stable")[:k]]

    def write_csv(self, path: str | Path) -> None:
        """One row per window: start, end, then every class's probability."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["start", "end", *self.class_names])
            for start, end, row in zip(self.starts, self.ends, self.probabilities):
                writer.writerow([f"{start:.3f}", f"{end:.3f}", *(f"{p:.6f}" for p in row)])

    def to_json(self) -> dict[str, Any]:
        return {"duration": round(self.duration, 3), "class_names": list(self.class_names),
                "windows": [{"start": round(float(s), 3), "end": round(float(e), 3),
                             "probabilities": [round(float(p), 6) for p in row]}
                            for s, e, row in zip(self.starts, self.ends, self.probabilities)],
                "segments": [vars(s) for s in self._segments]}

    def figure(self, k: int = 5) -> Any:
        """A matplotlib figure: the ``k`` top classes' probabilities over time, segments shaded below."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 3.6))
        top = self.top_classes(k)
        for c in top:
            ax.plot(self.centres, self.probabilities[:, c], marker=".", label=self.class_names[c])
        colours = {self.class_names[c]: f"C{i}" for i, c in enumerate(top)}
        for s in self._segments:
            ax.axvspan(s.start, s.end, ymin=0, ymax=0.04, color=colours.get(s.label, "grey"))
        ax.set_xlim(0, self.duration)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("time (s, window centres)")
        ax.set_ylabel("probability")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        fig.tight_layout()
        return fig

    def plot(self, path: str | Path, k: int = 5) -> None:
        import matplotlib.pyplot as plt

        fig = self.figure(k)
        fig.savefig(path, dpi=100)
        plt.close(fig)


def parse_seconds(text: str) -> float:
    """'2s', '500ms', '1.5' (seconds) -> seconds; argparse type."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration like 2s or 500ms, got {text!r}")
    return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)


def window_indices(num_frames: int, fps: float, window: float, stride: float,
                   meta: dict[str, Any]) -> tuple[np.ndarray, int, np.ndarray]:
    """(window start frames (N,), window length in frames, sampled timeline indices (N, T)) on a
    ``num_frames`` timeline at ``fps``; a video shorter than a window is one window."""
    from posmlp_video.views import view_sampler

    span = max(1, min(round(window * fps), num_frames))
    step = max(1, round(stride * fps))
    starts = np.arange(0, num_frames - span + 1, step)
    return starts, span, starts[:, None] + view_sampler(meta)(span)[0][None, :]


def compute_timeline(model: torch.nn.Module, meta: dict[str, Any], path: str | Path, window: float = 2.0,
                     stride: float = 0.5, crops: int = 1, batch_size: int = 8, progress: bool = False,
                     lock: AbstractContextManager | None = None) -> Timeline:
    """Slide ``model`` over the video at ``path`` (decoded once, streaming) and return its timeline.

    ``lock`` (the app's per-model lock) is held around each forward pass only, not while decoding.
    """
    from tqdm import tqdm

    from posmlp_video.data.decode import FrameStream
    from posmlp_video.views import check_views, clip_views, mean_softmax

    check_views(1, crops)
    stream = FrameStream(path, short_side=int(meta["resize_short"]))
    info = stream.info
    if info.fps <= 0:
        raise PosMLPError("the video has no frame rate (no timestamps): a timeline needs one")
    starts, span, indices = window_indices(info.timeline_frames, info.fps, window, stride, meta)
    device = next(model.parameters()).device
    probabilities: list[np.ndarray] = []
    bar = tqdm(total=len(starts), desc="timeline", unit="window", disable=not progress or None)

    def run(batch: list[torch.Tensor]) -> None:
        with lock or nullcontext(), torch.inference_mode():
            logits = model(torch.cat(batch).to(device))
        probabilities.append(mean_softmax(logits, crops).cpu().numpy())
        bar.update(len(batch))

    batch: list[torch.Tensor] = []
    for clip in _window_clips(stream.frames(indices.ravel()), indices):
        batch.append(clip_views(clip[None], meta, crops).tensor)
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    bar.close()
    duration = info.timeline_frames / info.fps
    return Timeline(starts / info.fps, (starts + span) / info.fps, np.concatenate(probabilities),
                    tuple(meta["class_names"]), duration)


def _window_clips(frames: Iterator[tuple[int, np.ndarray]], indices: np.ndarray) -> Iterator[np.ndarray]:
    """Each window's uint8 (T, H, W, 3) clip as soon as its last frame has arrived; frames no open window
    needs are dropped (windows start in order, so that is every frame before the next window's first)."""
    kept: dict[int, np.ndarray] = {}
    window = 0
    for index, frame in frames:
        kept[index] = frame
        while window < len(indices) and indices[window].max() <= index:
            yield np.stack([kept[int(i)] for i in indices[window]])
            window += 1
            if window < len(indices):
                first = int(indices[window].min())
                for old in [i for i in kept if i < first]:
                    del kept[old]


# --- command line ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="the video file")
    parser.add_argument("--checkpoint", type=Path, help="our .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("--window", type=parse_seconds, default=2.0, help="window length, e.g. 2s (default 2s)")
    parser.add_argument("--stride", type=parse_seconds, default=0.5, help="step between windows (default 0.5s)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="spatial views per window")
    parser.add_argument("--csv", type=Path, help="write per-window probabilities (start, end, one column per class)")
    parser.add_argument("--json", type=Path, help="write windows, probabilities and segments as JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG of the top classes over time")
    parser.add_argument("--top-k", type=int, default=5, help="classes drawn in the plot (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")


def run(args: argparse.Namespace) -> int:
    from posmlp_video.checkpoint import load_checkpoint

    if args.top_k < 1 or args.batch_size < 1:
        raise PosMLPError("--top-k and --batch-size must be at least 1")
    model, meta = load_checkpoint(args.checkpoint)
    timeline = compute_timeline(model, meta, args.video, args.window, args.stride, args.crops, args.batch_size,
                                progress=True)
    if args.csv:
        timeline.write_csv(args.csv)
    if args.json:
        args.json.write_text(json.dumps(timeline.to_json()), encoding="utf-8")
    if args.plot:
        timeline.plot(args.plot, args.top_k)
    print(f"{args.video}: {timeline.duration:.1f} s, {len(timeline.starts)} windows of {args.window:g} s "
          f"every {args.stride:g} s")
    for s in timeline.segments():
        print(f"  {s.start:7.2f} - {s.end:7.2f} s  {s.score:5.3f}  {s.label}")
    written = [str(p) for p in (args.csv, args.json, args.plot) if p]
    if written:
        print("wrote " + ", ".join(written), file=sys.stderr)
    return 0
