"""Multi-view testing, the one implementation ``eval``, ``predict``, ``features`` and ``timeline`` share.

A video is scored on ``clips`` temporal views (the checkpoint's sampler asked for several clips) times
``crops`` spatial views (centre crop, or three crops along the long side), in clip-major order, and its
class probabilities are the mean of the views' softmax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.data.decode import VideoDecodeError, read_video
from posmlp_video.data.sampling import ClipSampler
from posmlp_video.data.transforms import eval_crops
from posmlp_video.errors import PosMLPError


@dataclass(frozen=True)
class Views:
    """``tensor``: float ``(clips * crops, 3, T, H, W)`` model inputs; ``frames``: uint8 ``(T, H, W, 3)`` of
    the middle view (centre clip and centre crop when their counts are odd), as the model saw them."""

    tensor: torch.Tensor
    frames: np.ndarray


def check_views(clips: int, crops: int) -> None:
    """One-line errors for view counts eval and predict do not support."""
    if clips < 1:
        raise PosMLPError(f"clips must be at least 1, got {clips}")
    if crops not in (1, 3):
        raise PosMLPError(f"crops must be 1 or 3, got {crops}")


def view_sampler(meta: Mapping[str, Any], clips: int = 1) -> ClipSampler:
    """The checkpoint's test sampler taking ``clips`` evenly spread clips."""
    return ClipSampler.from_meta(meta, num_clips=clips)


def clip_views(clips: np.ndarray, meta: Mapping[str, Any], crops: int = 1) -> Views:
    """uint8 ``(clips, T, H, W, 3)`` sampled clips -> the model's views, preprocessed as ``meta`` says."""
    views = [view for clip in clips for view in eval_crops(clip, meta, crops)]
    middle = views[(len(clips) // 2) * crops + crops // 2]
    return Views(torch.stack([view.tensor for view in views]), middle.frames)


def sample_clips(source: str | Path | np.ndarray, meta: Mapping[str, Any], clips: int = 1) -> np.ndarray:
    """``clips`` test clips of a video/image path or a uint8 ``(T, H, W, 3)`` / ``(H, W, 3)`` array, as uint8
    ``(clips, T, H, W, 3)`` before resize and crop."""
    return sample_clips_timed(source, meta, clips)[0]


def sample_clips_timed(source: str | Path | np.ndarray, meta: Mapping[str, Any],
                       clips: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """`sample_clips` and the time of every sampled frame, ``(clips, T)`` seconds from the first frame (on the
    decoder's constant-rate timeline), or None for an array or a file without timestamps."""
    sampler = view_sampler(meta, clips)
    if isinstance(source, np.ndarray):
        array = check_array(source)
        return array[sampler(len(array))], None
    video = read_video(source, sampler, short_side=int(meta["resize_short"]))
    return video.frames, video.indices / video.info.fps if video.info.fps > 0 else None


def load_views(source: str | Path | np.ndarray, meta: Mapping[str, Any], clips: int = 1, crops: int = 1) -> Views:
    """Decode, sample and preprocess ``source`` into its ``clips x crops`` views."""
    return clip_views(sample_clips(source, meta, clips), meta, crops)


def mean_softmax(logits: torch.Tensor, num_views: int) -> torch.Tensor:
    """``(B * num_views, C)`` logits, views of one video adjacent -> ``(B, C)`` mean softmax (float32)."""
    return logits.float().softmax(-1).view(-1, num_views, logits.shape[-1]).mean(1)


def check_array(array: np.ndarray) -> np.ndarray:
    """A uint8 ``(T, H, W, 3)`` clip (an ``(H, W, 3)`` image becomes one frame), or a one-line error."""
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise VideoDecodeError(f"expected a uint8 array (T, H, W, 3) or (H, W, 3), got {array.dtype} {array.shape}")
    return array
