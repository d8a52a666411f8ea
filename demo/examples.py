"""Example clips for the Classify and Attributions tabs: one SynthMotion clip per class, rendered at start."""

from __future__ import annotations

from pathlib import Path

from posmlp_video.data import write_examples
from posmlp_video.data.synthmotion import CLASS_NAMES

EXAMPLE_CLASSES = tuple(CLASS_NAMES)  # the examples are shown only for checkpoints that know these classes


def render_examples(folder: Path) -> list[Path]:
    """Write one H.264 example per SynthMotion class into `folder` (about a second, no downloads)."""
    return write_examples(folder, seed=7, per_class=1, num_frames=16, size=128, fps=8.0)


def example_class(path: Path) -> str:
    """The true class of an example clip (its file name starts with the class index, ``NN_...``)."""
    return CLASS_NAMES[int(Path(path).name[:2])]
