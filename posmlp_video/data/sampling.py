"""Which frames of a video become a clip: segment (TSN) and dense sampling.

Samplers work on frame indices of a constant-rate timeline; the decoder maps those to real frames using
timestamps, so variable-frame-rate files are sampled evenly in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SamplingMode = Literal["segment", "dense"]


def segment_indices(num_available: int, num_frames: int, *, num_clips: int = 1, train: bool = False,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN / Something-Something sampling: split the video into ``num_frames`` equal segments, take one
    frame per segment. Test clips take evenly spaced offsets inside each segment (one clip: the centre),
    training takes a random offset per segment. A video shorter than ``num_frames`` repeats frames in
    order (each frame held), which keeps the temporal order that Something-Something depends on.

    Returns ``(num_clips, num_frames)`` int64 indices into ``range(num_available)``.
    """
    _check_counts(num_available, num_frames, num_clips)
    if train:
        offsets = _rng(rng).random((num_clips, num_frames))
    else:
        offsets = np.broadcast_to(((np.arange(num_clips) + 0.5) / num_clips)[:, None], (num_clips, num_frames))
    positions = (np.arange(num_frames)[None, :] + offsets) * (num_available / num_frames)
    return np.minimum(np.floor(positions).astype(np.int64), num_available - 1)


def dense_indices(num_available: int, num_frames: int, rate: int, *, num_clips: int = 1, train: bool = False,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Kinetics-style sampling: ``num_frames`` frames ``rate`` apart from a start point. Training picks a
    random start, test spreads ``num_clips`` starts evenly over the video (one clip: centred). A video
    shorter than the clip span loops from its start (indices wrap around), as in mmaction's ``loop``.

    Returns ``(num_clips, num_frames)`` int64 indices into ``range(num_available)``.
    """
    _check_counts(num_available, num_frames, num_clips)
    if rate < 1:
        raise ValueError(f"sampling rate must be >= 1, got {rate}")
    span = (num_frames - 1) * rate + 1
    room = max(num_available - span, 0)
    if train:
        starts = _rng(rng).integers(0, room + 1, size=num_clips)
    elif num_clips == 1:
        starts = np.array([room // 2])
    else:
        starts = np.round(np.linspace(0, room, num_clips)).astype(np.int64)
    indices = starts[:, None] + rate * np.arange(num_frames)[None, :]
    return (indices % num_available).astype(np.int64)


@dataclass(frozen=True)
class ClipSampler:
    """Callable ``num_available -> (num_clips, num_frames)`` indices; what the decoders take.

    ``mode`` is ``"segment"`` or ``"dense"``; ``rate`` is the dense frame stride (ignored by segment
    sampling, as in the checkpoint metadata). Training draws from ``rng`` (a fresh unseeded one if None).
    """

    num_frames: int
    mode: SamplingMode = "segment"
    rate: int = 1
    num_clips: int = 1
    train: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("segment", "dense"):
            raise ValueError(f"sampling mode must be 'segment' or 'dense', got {self.mode!r}")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], *, num_clips: int = 1, train: bool = False) -> ClipSampler:
        """The sampler a checkpoint was trained/evaluated with (``num_frames``, ``sampling``, ``sampling_rate``)."""
        return cls(int(meta["num_frames"]), meta["sampling"], int(meta.get("sampling_rate", 1)), num_clips, train)

    def __call__(self, num_available: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.mode == "segment":
            return segment_indices(num_available, self.num_frames, num_clips=self.num_clips, train=self.train,
                                   rng=rng)
        return dense_indices(num_available, self.num_frames, self.rate, num_clips=self.num_clips,
                             train=self.train, rng=rng)


def _check_counts(num_available: int, num_frames: int, num_clips: int) -> None:
    if num_available < 1:
        raise ValueError(f"need at least one frame to sample from, got {num_available}")
    if num_frames < 1 or num_clips < 1:
        raise ValueError(f"num_frames and num_clips must be >= 1, got {num_frames} and {num_clips}")


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()
