"""Turn uint8 clips ``(T, H, W, 3)`` into the normalised float ``(3, T, H, W)`` tensors the model sees.

Eval: short-side resize + centre crop (or three crops along the long side), with the checkpoint's
``resize_short``, ``input_size``, ``mean`` and ``std``. Train: random resized crop and colour jitter drawn
once per clip (torchvision ``v2`` on a ``Video``), then a label-aware horizontal flip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from posmlp_video.data.decode import check_frame_size

FlipPairs = Mapping[int, "int | None"]


@dataclass(frozen=True)
class Preprocessed:
    """The model input ``(3, T, H, W)`` float and the uint8 frames ``(T, H, W, 3)`` it was made from."""

    tensor: torch.Tensor
    frames: np.ndarray


def resize_to_cover(clip: np.ndarray, short_side: int, crop: Sequence[int] = (0, 0)) -> np.ndarray:
    """Resize every frame so the short side is ``short_side`` and the frame still covers ``crop`` (H, W).

    The output is bounded like a decoded frame (``check_frame_size``): an absurd aspect ratio or size is
    refused with a one-line ``VideoDecodeError`` before anything is allocated.
    """
    _check_clip(clip)
    h, w = clip.shape[1:3]
    scale = max(short_side / min(h, w), crop[0] / h, crop[1] / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    check_frame_size(*size)
    if size == (w, h):
        return clip
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, size, interpolation=interpolation) for frame in clip])


def crop_views(clip: np.ndarray, size: Sequence[int], num_crops: int = 1) -> list[np.ndarray]:
    """Centre crop (``num_crops=1``) or three crops spread along the long side (start, centre, end)."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    _check_clip(clip)
    ch, cw = size
    h, w = clip.shape[1:3]
    if h < ch or w < cw:
        raise ValueError(f"clip {h}x{w} is smaller than the crop {ch}x{cw}")
    top, left = (h - ch) // 2, (w - cw) // 2
    if num_crops == 1:
        return [clip[:, top:top + ch, left:left + cw]]
    if w >= h:
        return [clip[:, top:top + ch, x:x + cw] for x in (0, left, w - cw)]
    return [clip[:, y:y + ch, left:left + cw] for y in (0, top, h - ch)]


def normalize(frames: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(3, T, H, W)`` in 0..1 minus ``mean`` over ``std`` (per RGB channel)."""
    video = torch.as_tensor(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    return video.sub_(mean_t).div_(std_t)


def preprocess(clip: np.ndarray, meta: Mapping[str, Any]) -> Preprocessed:
    """Eval preprocessing of one clip for a checkpoint: resize short side, centre crop, normalise."""
    return eval_crops(clip, meta, 1)[0]


def eval_views(clip: np.ndarray, meta: Mapping[str, Any], num_crops: int = 3) -> torch.Tensor:
    """``num_crops`` (1 or 3) spatial views of one clip as ``(num_crops, 3, T, H, W)``, for multi-view testing."""
    return torch.stack([view.tensor for view in eval_crops(clip, meta, num_crops)])


def eval_crops(clip: np.ndarray, meta: Mapping[str, Any], num_crops: int = 1) -> list[Preprocessed]:
    """The ``num_crops`` (1 or 3) spatial views of one clip, each with the uint8 crop it was made from."""
    size = tuple(int(s) for s in meta["input_size"])
    resized = resize_to_cover(clip, int(meta["resize_short"]), size)
    views = [np.ascontiguousarray(view) for view in crop_views(resized, size, num_crops)]
    return [Preprocessed(normalize(view, meta["mean"], meta["std"]), view) for view in views]


class TrainTransform:
    """Training augmentation of a uint8 clip and its label -> ``(float (3, T, H, W), label)``.

    Random resized crop (``scale`` of the area, ``ratio`` aspect) and colour jitter use one draw for the
    whole clip. With ``flip_pairs`` set, the clip is mirrored with probability 0.5: a class mapped to
    another class swaps its label (moving left <-> moving right), a class mapped to ``None`` is never
    mirrored, and unlisted classes are mirrored with their label unchanged. Randomness comes from torch's
    generator, so ``torch.manual_seed`` (and DataLoader worker seeding) makes it reproducible.
    """

    def __init__(self, size: Sequence[int], mean: Sequence[float], std: Sequence[float], *,
                 scale: tuple[float, float] = (0.25, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.05),
                 flip_pairs: FlipPairs | None = None) -> None:
        self.crop_jitter = v2.Compose([
            v2.RandomResizedCrop(tuple(size), scale=scale, ratio=ratio, antialias=True),
            v2.ColorJitter(*jitter),
        ])
        self.mean, self.std = tuple(mean), tuple(std)
        self.flip_pairs = None if flip_pairs is None else dict(flip_pairs)
        if self.flip_pairs is not None:
            for a, b in self.flip_pairs.items():
                if b is not None and self.flip_pairs.get(b) != a:
                    raise ValueError(f"flip_pairs must be symmetric: {a} -> {b} but {b} -> {self.flip_pairs.get(b)}")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], **kwargs: Any) -> TrainTransform:
        """Crop size, mean and std from checkpoint metadata; other options as keyword arguments."""
        return cls(meta["input_size"], meta["mean"], meta["std"], **kwargs)

    def __call__(self, clip: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
        _check_clip(clip)
        video = tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2))
        video = self.crop_jitter(video)  # (T, 3, H, W) uint8
        label, flip = self.flip_label(label)
        if flip:
            video = video.flip(-1)
        return normalize(video.permute(0, 2, 3, 1), self.mean, self.std), label

    def flip_label(self, label: int) -> tuple[int, bool]:
        """Decide a flip for this clip: ``(label after the flip, whether to mirror)``."""
        if self.flip_pairs is None:
            return label, False
        if label in self.flip_pairs and self.flip_pairs[label] is None:
            return label, False
        if torch.rand(()) >= 0.5:
            return label, False
        return self.flip_pairs.get(label, label), True


def _check_clip(clip: np.ndarray) -> None:
    if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a uint8 clip (T, H, W, 3), got {getattr(clip, 'dtype', type(clip))} "
                         f"{getattr(clip, 'shape', '')}")
