"""How well does the bundled model label timeline windows that see part of a motion (issue 16's timeline test)?

    python -m benchmarks.timeline_motions            # 10 clips per class, 8 videos per class; ~5 min on 2 cores

Two measurements, on SynthMotion flat-shape clips at 64 x 64, 8 fps, as uint8 arrays (no encoding):

1. top-1 on windows of 32-frame (4 s) motions: the first half (frames 0-15), the middle and the second half, each
   sampled as ``timeline`` samples a 2 s window; the whole clip; and an 8-frame clip as training renders them.
2. timeline segments: 12 s videos of three 4 s motions (the class measured in the middle, two other random
   classes around it), 2 s windows every 0.5 s, segments from ``Timeline.segments``; how often the middle class's
   segment lies within one window (and half a window) of its true start and end.

Results go to ``benchmarks/results/timeline_motions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.data.synthmotion import CLASS_NAMES, NUM_CLASSES, render_clip
from posmlp_video.timeline import Timeline, window_indices
from posmlp_video.views import clip_views, view_sampler

RESULTS = Path(__file__).resolve().parent / "results"
FPS, WINDOW, STRIDE, SIZE = 8, 2.0, 0.5, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10, help="clips per class for the window accuracies")
    parser.add_argument("--videos", type=int, default=8, help="three-motion videos per class for the segments")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, meta = load_checkpoint()
    window = view_sampler(meta)(16)[0]  # a 2 s window's 16 frames sampled as the checkpoint samples a clip

    def top1(frames: np.ndarray) -> int:
        with torch.inference_mode():
            return int(model(clip_views(frames[None], meta).tensor).argmax())

    views = {"first half": lambda c: c[window], "middle half": lambda c: c[8 + window],
             "second half": lambda c: c[16 + window], "whole 4 s": lambda c: c[view_sampler(meta)(32)[0]]}
    correct = {name: np.zeros(NUM_CLASSES, int) for name in [*views, "8-frame render (training)"]}
    for label in range(NUM_CLASSES):
        for seed in range(args.clips):
            clip = render_clip(np.random.default_rng([77, label, seed]), label, 32, SIZE, SIZE)[0]
            for name, view in views.items():
                correct[name][label] += top1(view(clip)) == label
            short = render_clip(np.random.default_rng([78, label, seed]), label, 8, SIZE, SIZE)[0]
            correct["8-frame render (training)"][label] += top1(short) == label
    print(f"top-1 % per window ({args.clips} clips per class)")
    for name, hits in correct.items():
        print(f"  {name:26s} {100 * hits.mean() / args.clips:5.1f}  per class: "
              + " ".join(f"{100 * h / args.clips:.0f}" for h in hits))

    errors = np.zeros((NUM_CLASSES, args.videos))
    for label in range(NUM_CLASSES):
        for seed in range(args.videos):
            rng = np.random.default_rng([99, label, seed])
            others = rng.choice([c for c in range(NUM_CLASSES) if c != label], 2, replace=False)
            classes = [int(others[0]), label, int(others[1])]
            video = np.concatenate([render_clip(np.random.default_rng([98, label, seed, k, 0]), c, 32, SIZE, SIZE)[0]
                                    for k, c in enumerate(classes)])
            errors[label, seed] = _segment_error(_timeline(model, meta, video), label, 4.0, 8.0)
    print(f"middle motion's segment within one window ({WINDOW:g} s) / half a window of the truth "
          f"({args.videos} videos per class)")
    for label in range(NUM_CLASSES):
        e = errors[label]
        print(f"  {CLASS_NAMES[label]:38s} {int((e <= WINDOW).sum())}/{args.videos}  {int((e <= WINDOW / 2).sum())}/"
              f"{args.videos}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "timeline_motions.json"
    out.write_text(json.dumps(dict(
        window_top1={name: (100 * hits / args.clips).tolist() for name, hits in correct.items()},
        segment_error_s={CLASS_NAMES[c]: errors[c].tolist() for c in range(NUM_CLASSES)},
        class_names=list(CLASS_NAMES), clips_per_class=args.clips, videos_per_class=args.videos,
        window_s=WINDOW, stride_s=STRIDE, fps=FPS, load_end=os.getloadavg(),
    ), indent=1))
    print(f"wrote {out}")


def _timeline(model: torch.nn.Module, meta: dict, video: np.ndarray) -> Timeline:
    """``compute_timeline``'s windows on an in-memory video (no encoding, so only the model is measured)."""
    starts, span, indices = window_indices(len(video), FPS, WINDOW, STRIDE, meta)
    with torch.inference_mode():
        logits = model(torch.cat([clip_views(video[i][None], meta).tensor for i in indices]))
    return Timeline(starts / FPS, (starts + span) / FPS, logits.softmax(-1).numpy(), list(CLASS_NAMES),
                    len(video) / FPS)


def _segment_error(timeline: Timeline, label: int, start: float, end: float) -> float:
    """Seconds between the truth and the closest segment of ``label`` (its worse end); inf when none."""
    found = [max(abs(s.start - start), abs(s.end - end)) for s in timeline.segments() if s.label == CLASS_NAMES[label]]
    return min(found, default=float("inf"))


if __name__ == "__main__":
    main()
