"""Datasets for training and evaluation, built from a :class:`DataConfig` on top of ``posmlp_video.data``.

Every training item is ``(float (3, T, H, W), label)``; every evaluation item is
``(float (V, 3, T, H, W), label)`` with V = clips x crops views whose softmax scores get averaged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data.random_erasing import RandomErasing
from torchvision import tv_tensors
from torchvision.transforms import v2

from posmlp_video.data import ClipSampler, SynthMotion, TrainTransform, VideoFolder, VideoList, eval_views
from posmlp_video.data.realset import SPLITS, RealClips
from posmlp_video.errors import PosMLPError
from posmlp_video.loading import load_class_names
from posmlp_video.train.config import AugConfig, DataConfig
from posmlp_video.views import view_sampler

SYNTHMOTION = "synthmotion"
SYNTHMOTION_REAL = "synthmotion-real"  # SynthMotion with real pixels only (photo cut-outs over photos)


def input_meta(cfg: DataConfig) -> dict[str, Any]:
    """The preprocessing half of our checkpoint metadata: what a model trained with `cfg` expects."""
    return dict(num_frames=cfg.num_frames, input_size=[cfg.input_size, cfg.input_size], sampling=cfg.sampling,
                sampling_rate=cfg.sampling_rate, resize_short=cfg.resize_short, mean=list(cfg.mean),
                std=list(cfg.std))


class ClipTrainTransform:
    """uint8 (T, H, W, 3) clip -> augmented float (3, T, H, W): RandAugment, crop/jitter/flip, random erasing.

    RandAugment (torchvision, on a ``Video``) and random erasing (timm, on the clip viewed as (3*T, H, W))
    draw once per clip, so every frame gets the same operations and the same erased box.
    """

    def __init__(self, data: DataConfig, aug: AugConfig, flip_pairs: Mapping[int, int | None] | None) -> None:
        self.randaugment = (v2.RandAugment(num_ops=aug.randaugment_n, magnitude=aug.randaugment_m)
                            if aug.randaugment_n > 0 else None)
        self.crop_flip = TrainTransform(
            (data.input_size, data.input_size), data.mean, data.std, scale=tuple(aug.scale),
            jitter=tuple(aug.color_jitter), flip_pairs=flip_pairs if aug.hflip else None,
        )
        self.erase = (RandomErasing(aug.random_erasing, mode="pixel", device="cpu")
                      if aug.random_erasing > 0 else None)

    def __call__(self, clip: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
        if self.randaugment is not None:
            video = self.randaugment(tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)))
            clip = video.permute(0, 2, 3, 1).numpy()
        video, label = self.crop_flip(clip, label)
        if self.erase is not None:
            c, t, h, w = video.shape
            video = self.erase(video.reshape(c * t, h, w)).reshape(c, t, h, w)
        return video, label


class EvalViews:
    """uint8 clip -> (crops, 3, T, H, W): short-side resize, centre or three crops, normalise."""

    def __init__(self, meta: Mapping[str, Any], num_crops: int) -> None:
        self.meta, self.num_crops = dict(meta), num_crops

    def __call__(self, clip: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
        return eval_views(clip, self.meta, self.num_crops), label


class SynthMotionClips(torch.utils.data.Dataset):
    """``num_clips`` SynthMotion clips of one seed as (tensor, label).

    With ``fresh=True`` every epoch (see :meth:`set_epoch`) takes the next ``num_clips`` clips of the same
    seed, so training never sees a clip twice; the seed alone still says which clips were used.
    """

    def __init__(self, num_clips: int, seed: int, num_frames: int, size: int, transform: Any,
                 fresh: bool = False, real_fraction: float = 0.0) -> None:
        self.num_clips, self.fresh, self.epoch = num_clips, fresh, 0
        self.source = SynthMotion(num_clips * (1 << 20 if fresh else 1), seed, num_frames, size,
                                  real_fraction=real_fraction)
        self.transform = transform

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.source[index + (self.epoch * self.num_clips if self.fresh else 0)]
        return self.transform(item["video"], item["label"])


class VideoItems(torch.utils.data.Dataset):
    """A ``posmlp_video.data`` video dataset as (tensor, label) pairs (views stacked for evaluation).

    `label_map` renumbers labels (a folder's sorted class names -> a checkpoint's class order).
    """

    def __init__(self, dataset: torch.utils.data.Dataset, views: bool, label_map: list[int] | None = None) -> None:
        self.dataset, self.views, self.label_map = dataset, views, label_map

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[index]
        video, label = item["video"], item["label"]
        if self.views:  # (crops, 3, T, H, W), or (clips, crops, 3, T, H, W) with several clips
            video = video.reshape(-1, *video.shape[-4:])
        return video, label if self.label_map is None else self.label_map[label]


@dataclass
class Datasets:
    """What a run trains and validates on."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    class_names: list[str]


def _video_dataset(source: str, root: str | None, sampler: ClipSampler, transform: Any, short_side: int,
                   class_names: list[str] | None, views: bool) -> tuple[VideoItems, list[str]]:
    """A folder or annotation-file dataset and its class names; folder classes follow `class_names` if given."""
    path = Path(source)
    if path.is_dir():
        dataset = VideoFolder(path, sampler, transform=transform, short_side=short_side)
        if class_names is None:
            return VideoItems(dataset, views), list(dataset.class_names)
        unknown = sorted(set(dataset.class_names) - set(class_names))
        if unknown:
            raise PosMLPError(f"class folder {unknown[0]!r} in {source} is not one of the model's classes")
        label_map = [class_names.index(name) for name in dataset.class_names]
        return VideoItems(dataset, views, label_map), list(class_names)
    if path.is_file():
        if class_names is None:
            raise PosMLPError(f"{source} has numeric labels: name the classes with data.labels / --labels "
                              "(ssv1, ssv2, k400 or a file)")
        dataset = VideoList(path, sampler, root=root, transform=transform, short_side=short_side,
                            class_names=class_names)
        return VideoItems(dataset, views), list(class_names)
    raise PosMLPError(f"no dataset at {source!r}: give 'synthmotion', a class-per-folder directory or an "
                      "annotation file")


def eval_dataset(source: str, meta: Mapping[str, Any], *, num_clips: int, seed: int, test_clips: int = 1,
                 test_crops: int = 1, root: str | None = None, class_names: list[str] | None = None,
                 real_fraction: float = 0.0) -> tuple[torch.utils.data.Dataset, list[str]]:
    """An evaluation set (items (V, 3, T, H, W)) preprocessed as `meta` says, and its class names.

    `source` is "synthmotion" (`num_clips` clips drawn from `seed`, `real_fraction` of them with real
    pixels), "synthmotion-real" (real pixels only), a real footage set ("real", "real-heldout": see
    `posmlp_video.data.realset`), a folder or an annotation file (`test_clips` temporal views per video).
    Folder classes are matched to `class_names` by name.
    """
    views = EvalViews(meta, test_crops)
    num_frames = int(meta["num_frames"])
    if source in (SYNTHMOTION, SYNTHMOTION_REAL):
        size = tuple(int(s) for s in meta["input_size"])
        fraction = 1.0 if source == SYNTHMOTION_REAL else real_fraction
        return (SynthMotionClips(num_clips, seed, num_frames, size, views, real_fraction=fraction),
                list(SynthMotion.class_names))
    if source in SPLITS:
        return RealClips(source, num_frames, views), list(SynthMotion.class_names)
    return _video_dataset(source, root, view_sampler(meta, test_clips), views, int(meta["resize_short"]), class_names, views=True)


def build_datasets(data: DataConfig, aug: AugConfig) -> Datasets:
    """Training and validation sets from the config; SynthMotion's are generated from their seeds."""
    if data.val in SPLITS:
        raise PosMLPError(f"data.val={data.val}: real footage is evaluation only (choosing epochs on it would tune "
                          "on it); validate on synthmotion")
    if data.train == SYNTHMOTION and data.train_seed == data.val_seed:
        raise PosMLPError("data.train_seed and data.val_seed must differ: validation clips would be training clips")
    class_names = load_class_names(data.labels) if data.labels else None
    if data.train == SYNTHMOTION:
        transform = ClipTrainTransform(data, aug, SynthMotion.flip_pairs)
        train = SynthMotionClips(data.train_clips, data.train_seed, data.num_frames, data.input_size, transform,
                                 fresh=data.fresh_clips, real_fraction=data.real_fraction)
        train_names = list(SynthMotion.class_names)
    else:
        transform = ClipTrainTransform(data, aug, {})  # mirror without changing labels (when aug.hflip)
        sampler = ClipSampler(data.num_frames, data.sampling, data.sampling_rate, train=True)
        train, train_names = _video_dataset(data.train, data.root, sampler, transform, data.resize_short,
                                            class_names, views=False)
    val, val_names = eval_dataset(data.val, input_meta(data), num_clips=data.val_clips, seed=data.val_seed,
                                  test_clips=data.test_clips, test_crops=data.test_crops, root=data.root,
                                  class_names=train_names if data.val != SYNTHMOTION else None,
                                  real_fraction=data.real_fraction)
    if val_names != train_names:
        raise PosMLPError(f"training and validation classes differ ({len(train_names)} vs {len(val_names)} classes)")
    return Datasets(train, val, train_names)
