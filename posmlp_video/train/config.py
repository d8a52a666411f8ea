"""Typed training configuration: dataclasses filled from a YAML file in ``configs/`` plus dotted overrides.

``load_config("configs/synthmotion_xs.yaml", ["train.epochs=4", "output_dir=runs/x"])`` returns a
:class:`Config`. Every key in the file or an override must name a field (a typo is an error, not a silently
ignored setting) and every value is converted to the field's type, so ``optim.lr=4e-4`` is a float.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posmlp_video.errors import PosMLPError


class ConfigError(PosMLPError):
    """A config file or override is malformed, names an unknown key, or has a value of the wrong type."""


@dataclass
class ModelConfig:
    """Which network to build and how to initialise it."""

    name: str = "posmlp_video_xs"  # a registered variant (posmlp_video_xs / _s / _b)
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra constructor kwargs, e.g. block_types
    drop_path_rate: float = 0.0
    # Start from weights: one of our .safetensors checkpoints (head reset when the classes differ), an
    # authors' .pth/.pyth checkpoint, or a num_frames=1 (image) checkpoint inflated to video.
    init: str | None = None
    sync_bn: bool = False  # SyncBatchNorm in the stem when training on several CUDA devices
    grad_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    compile: bool = False  # torch.compile the model


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled and normalised."""

    train: str = "synthmotion"  # "synthmotion", a class-per-folder directory or an annotation file
    val: str = "synthmotion"
    root: str | None = None  # base folder of relative paths in annotation files
    labels: str | None = None  # class names: ssv1 / ssv2 / k400 / a text file (folders name their own)
    train_clips: int = 2048  # SynthMotion only: clips per epoch set
    val_clips: int = 256
    train_seed: int = 0  # SynthMotion only: the sets are drawn from these seeds
    val_seed: int = 1
    fresh_clips: bool = True  # SynthMotion only: new training clips every epoch (same seed, next indices)
    real_fraction: float = 0.0  # SynthMotion only: share of real-pixel clips (photo cut-outs; needs `assets fetch`)
    num_frames: int = 8
    input_size: int = 64
    resize_short: int = 64  # short side before cropping (ignored by SynthMotion, generated at input_size)
    sampling: str = "segment"  # "segment" (TSN-style, SS) or "dense" (every sampling_rate-th frame, K400)
    sampling_rate: int = 1
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    test_clips: int = 1  # temporal views per video at validation / evaluation
    test_crops: int = 1  # spatial views per clip (1 = centre, 3 = left/centre/right)
    num_workers: int = 0


@dataclass
class AugConfig:
    """Training-time augmentation and the loss targets it implies."""

    randaugment_n: int = 0  # RandAugment operations per clip (torchvision); 0 disables it
    randaugment_m: int = 9  # RandAugment magnitude (0..30)
    hflip: bool = False  # mirror half the clips; SynthMotion swaps left/right labels, other sets keep them
    scale: list[float] = field(default_factory=lambda: [0.25, 1.0])  # random resized crop area range
    color_jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.4, 0.05])  # brightness..hue
    mixup: float = 0.0  # Beta(alpha) for mixup; 0 disables it
    cutmix: float = 0.0  # Beta(alpha) for cutmix; 0 disables it
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.0
    random_erasing: float = 0.0  # probability per clip; the same box in every frame


@dataclass
class OptimConfig:
    """AdamW with warmup + cosine, as in the paper."""

    opt: str = "adamw"  # any timm optimizer name
    lr: float = 1e-3  # learning rate at `lr_batch_size` clips per step, scaled linearly to the real one
    lr_batch_size: int = 64
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    clip_grad: float | None = None  # max gradient norm


@dataclass
class TrainConfig:
    """The loop itself."""

    epochs: int = 10
    batch_size: int = 16  # clips per process per forward pass
    accum_steps: int = 1  # forward passes per optimizer step
    amp: str = "none"  # "none", "bf16" (CPU and CUDA) or "fp16" (CUDA, with a GradScaler)
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    # "none" (full fine-tune) or "backbone": train only the classifier (linear probe); the frozen part stays in
    # eval mode, so BatchNorm statistics and every backbone weight are left exactly as loaded
    freeze: str = "none"
    tensorboard: bool = False  # also write TensorBoard scalars (loss and lr per step, metrics per epoch)


@dataclass
class Config:
    """A full training run. ``output_dir`` holds config.yaml, metrics.jsonl, last.pt, best.pt, model.safetensors."""

    output_dir: str = "runs/default"
    export_to: str | None = None  # also copy the exported model.safetensors here (e.g. the bundled checkpoint)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _convert(value: Any, hint: Any, key: str) -> Any:
    """`value` as type `hint` (str/int/float/bool, Optional, list[...], dict), or a ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_convert(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            number = hint(value) if not isinstance(value, str) or hint is float else int(value, 10)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {'an integer' if hint is int else 'a number'}, got {value!r}") from None
        if hint is int and isinstance(value, float) and number != value:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a nested dict, converting and checking every value."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _convert(value, hint, prefix + name)
    return cls(**kwargs)


def apply_override(values: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in the nested dict `values`; the value is read as YAML (``[1, 2]``, ``null``, ``true``)."""
    key, sep, raw = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad override {override!r}: expected key=value, e.g. train.epochs=4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    *parents, leaf = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"bad override {override!r}: {part!r} is not a section")
    node[leaf] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults when `path` is None) and apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no config file at {path}")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    for override in overrides:
        apply_override(values, override)
    return _build(Config, values)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (YAML/JSON-able) of a config."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML; ``load_config`` reads it back to the same Config."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")


def _finite(v: float) -> bool:
    return math.isfinite(v)


# (key, test, what it must be): every value a run reads, checked before any data is generated or model built
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("train.epochs", lambda v: v >= 1, "at least 1"),
    ("train.batch_size", lambda v: v >= 1, "at least 1"),
    ("train.accum_steps", lambda v: v >= 1, "at least 1"),
    ("train.amp", lambda v: v in ("none", "bf16", "fp16"), "none, bf16 or fp16"),
    ("train.ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train.seed", lambda v: 0 <= v < 2**32, "in 0..2^32-1"),
    ("train.device", lambda v: v in ("auto", "cpu", "cuda") or v.startswith("cuda:"), "auto, cpu or cuda[:N]"),
    ("train.freeze", lambda v: v in ("none", "backbone"), "none or backbone"),
    ("data.train_clips", lambda v: v >= 1, "at least 1"),
    ("data.val_clips", lambda v: v >= 1, "at least 1"),
    ("data.num_frames", lambda v: v >= 1, "at least 1"),
    ("data.input_size", lambda v: v >= 1, "at least 1"),
    ("data.resize_short", lambda v: v >= 1, "at least 1"),
    ("data.sampling", lambda v: v in ("segment", "dense"), "segment or dense"),
    ("data.sampling_rate", lambda v: v >= 1, "at least 1"),
    ("data.mean", lambda v: len(v) == 3 and all(map(_finite, v)), "3 finite numbers"),
    ("data.std", lambda v: len(v) == 3 and all(_finite(x) and x > 0 for x in v),
     "3 positive numbers (inputs are divided by them)"),
    ("data.test_clips", lambda v: v >= 1, "at least 1"),
    ("data.test_crops", lambda v: v in (1, 3), "1 or 3"),
    ("data.num_workers", lambda v: v >= 0, "0 or more"),
    ("aug.randaugment_n", lambda v: v >= 0, "0 or more"),
    ("aug.randaugment_m", lambda v: 0 <= v <= 30, "in 0..30"),
    ("aug.scale", lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "two numbers 0 < min <= max <= 1"),
    ("aug.color_jitter", lambda v: len(v) == 4 and all(_finite(x) and x >= 0 for x in v) and v[3] <= 0.5,
     "4 numbers >= 0 (brightness, contrast, saturation, hue <= 0.5)"),
    ("aug.mixup", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("aug.cutmix", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("aug.mixup_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("aug.mixup_switch_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("aug.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("aug.random_erasing", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("optim.lr", lambda v: _finite(v) and v > 0, "a positive number"),
    ("optim.lr_batch_size", lambda v: v >= 1, "at least 1"),
    ("optim.weight_decay", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("optim.warmup_epochs", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("optim.warmup_lr", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("optim.min_lr", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("optim.clip_grad", lambda v: v is None or _finite(v) and v > 0, "null or a positive number"),
    ("model.drop_path_rate", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("output_dir", lambda v: bool(v.strip()), "a folder path"),
]


def check_values(cfg: Config) -> None:
    """Refuse values no run can use (e.g. ``data.std=[0, 0, 0]``, ``data.num_workers=-1``) with one line."""
    for key, test, what in RULES:
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if not test(value):
            raise ConfigError(f"{key} must be {what}, got {value!r}")
