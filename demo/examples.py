"""Example clips for the Classify and Attributions tabs: one SynthMotion clip per class, rendered at start."""

from __future__ import annotations

from pathlib import Path

from posmlp_video.data import write_examples


def render_examples(folder: Path) -> list[Path]:
    """Write one H.264 example per SynthMotion class into `folder` (about a second, no downloads)."""
    return write_examples(folder, seed=7, per_class=1, num_frames=16, size=128, fps=8.0)
