"""Bounds on what a checkpoint (or a training config) may ask for, checked before anything is built.

A checkpoint's metadata says how big a model to build and how to feed it; a crafted file could ask for a
billion classes, a million frames or a window whose index buffer needs terabytes. Every value is checked
against :data:`LIMITS`; the model is then built on PyTorch's ``meta`` device (shapes only, no memory) and
its parameter shapes are compared with the weights' own shapes in the file's header, so the memory a load
takes is the file's size plus buffers that are bounded here. Change a bound for the whole process with e.g.
``posmlp_video.bounds.LIMITS.max_classes = 50_000``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open

from posmlp_video.errors import CheckpointError


@dataclass
class Limits:
    """What a checkpoint's metadata and weights may ask for (see the README's limits table)."""

    max_meta_bytes: int = 4 << 20  # the JSON metadata in a .safetensors header
    max_cfg_bytes: int = 64 << 10  # the YAML cfg string in an authors' checkpoint
    max_classes: int = 100_000
    max_class_name_chars: int = 256
    max_frames: int = 256  # num_frames, temporal windows
    max_input_size: int = 1024  # input_size, img_size and resize_short, per side
    max_sampling_rate: int = 256
    max_in_chans: int = 16
    max_embed_dim: int = 8192
    max_depth: int = 64  # blocks per stage
    max_window_tokens: int = 4096  # tokens in one gating window (its index buffer is tokens^2 int64)
    max_model_bytes: int = 4 << 30  # parameters + buffers of the built model


LIMITS = Limits()
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CheckpointError(f"{name}={_short(value)} is out of bounds (an integer in {low}..{high})")
    return value


def _ints(value: Any, name: str, low: int, high: int, n: int | None = None) -> list[int]:
    if not isinstance(value, (list, tuple)) or (n is not None and len(value) != n) or len(value) > 8:
        raise CheckpointError(f"{name}={_short(value)} must be a list of {n or 'up to 8'} integers")
    return [_int(v, name, low, high) for v in value]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_kwargs(kwargs: Any, source: str) -> torch.nn.Module:
    """Bound-check PosMLPVideo kwargs, build the model on the ``meta`` device and check its memory.

    Returns the meta-device model (parameter and buffer shapes, no storage). Raises `CheckpointError`
    naming `source` (a file name, or e.g. "model.kwargs").
    """
    try:
        return _check_model_kwargs(kwargs)
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from None


def _check_model_kwargs(kwargs: Any) -> torch.nn.Module:
    from posmlp_video.models import PosMLPVideo
    from posmlp_video.models.gating import PositionalGatingUnit

    lim = LIMITS
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"model_kwargs must be a mapping, got {_short(kwargs)}")
    checks = {
        "num_classes": lambda v: _int(v, "num_classes", 1, lim.max_classes),
        "in_chans": lambda v: _int(v, "in_chans", 1, lim.max_in_chans),
        "num_frames": lambda v: _int(v, "num_frames", 1, lim.max_frames),
        "img_size": lambda v: _int(v, "img_size", 1, lim.max_input_size) if isinstance(v, int)
        else _ints(v, "img_size", 1, lim.max_input_size, 2),
        "embed_dims": lambda v: _ints(v, "embed_dims", 1, lim.max_embed_dim, 4),
        "depths": lambda v: _ints(v, "depths", 0, lim.max_depth, 4),
        "spatial_windows": lambda v: _ints(v, "spatial_windows", 1, lim.max_input_size, 4),
        "gammas": lambda v: _ints(v, "gammas", 1, lim.max_embed_dim, 4),
        "temporal_windows": lambda v: [_int(t, "temporal_windows", 1, lim.max_frames)
                                       for t in (v if isinstance(v, (list, tuple)) else [v])[:8] if t is not None],
    }
    for key, check in checks.items():
        if key in kwargs:
            check(kwargs[key])
    try:
        with torch.device("meta"):
            model = PosMLPVideo(**kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as err:
        raise CheckpointError(f"cannot build the model ({first_line(err)})") from None
    for name, unit in model.named_modules():
        if isinstance(unit, PositionalGatingUnit) and unit.token_bias.numel() > lim.max_window_tokens:
            raise CheckpointError(f"the model has a {'x'.join(map(str, unit.window))} window in {name} "
                                  f"({unit.token_bias.numel()} tokens; at most {lim.max_window_tokens})")
    size = model_bytes(model)
    if size > lim.max_model_bytes:
        raise CheckpointError(f"the model would need {size / 2**30:.1f} GiB (parameters and buffers; "
                              f"at most {lim.max_model_bytes / 2**30:.1f} GiB)")
    return model


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters and buffers (works on ``meta``-device models)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def check_meta(meta: Any, source: str) -> dict[str, Any]:
    """Bound-check the preprocessing metadata and class list of a checkpoint; returns `meta`."""
    try:
        return _check_meta(meta, source)
    except CheckpointError as err:
        text = str(err)
        raise CheckpointError(text if text.startswith(f"{source}: ") else f"{source}: metadata {text}") from None


def _check_meta(meta: Any, source: str) -> dict[str, Any]:
    lim = LIMITS
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: the metadata must be a JSON object, got {_short(meta)}")
    missing = [k for k in ("class_names", "num_frames", "input_size") if k not in meta]
    if missing:
        raise CheckpointError(f"{source}: the metadata lacks {', '.join(missing)}")
    names = meta["class_names"]
    if not isinstance(names, list) or not names:
        raise CheckpointError(f"{source}: the class list is empty or not a list")
    if len(names) > lim.max_classes:
        raise CheckpointError(f"{source}: {len(names)} class names (at most {lim.max_classes})")
    for name in names:
        if not isinstance(name, str) or not name.strip() or len(name) > lim.max_class_name_chars \
                or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise CheckpointError(f"{source}: class name {_short(name)} is not a non-empty printable string of at "
                                  f"most {lim.max_class_name_chars} characters")
    _int(meta["num_frames"], "num_frames", 1, lim.max_frames)
    size = meta["input_size"]
    _int(size, "input_size", 1, lim.max_input_size) if isinstance(size, int) else \
        _ints(size, "input_size", 1, lim.max_input_size, 2)
    if "resize_short" in meta:
        _int(meta["resize_short"], "resize_short", 1, lim.max_input_size)
    if "sampling" in meta and meta["sampling"] not in ("segment", "dense"):
        raise CheckpointError(f"{source}: metadata sampling={_short(meta['sampling'])} must be segment or dense")
    if "sampling_rate" in meta:
        _int(meta["sampling_rate"], "sampling_rate", 1, lim.max_sampling_rate)
    for key in ("mean", "std"):
        if key in meta:
            values = meta[key]
            if not isinstance(values, list) or not 1 <= len(values) <= lim.max_in_chans or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise CheckpointError(f"{source}: metadata {key}={_short(values)} must be a list of finite numbers")
    if "std" in meta and any(v <= 0 for v in meta["std"]):
        raise CheckpointError(f"{source}: metadata std={_short(meta['std'])} must be positive (inputs are divided by it)")
    return meta


def header_shapes(path: str | Path, meta_key: str) -> tuple[dict[str, Any], dict[str, tuple[tuple[int, ...], str]]]:
    """(metadata, {key: (shape, dtype)}) of a .safetensors file, read from its header only."""
    name = Path(path).name
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(meta_key)
            shapes = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{name} is not a readable safetensors file ({first_line(err)})") from None
    if raw is None:
        raise CheckpointError(f"{name} has no posmlp_video metadata: not one of our checkpoints")
    if len(raw) > LIMITS.max_meta_bytes:
        raise CheckpointError(f"{name}: {len(raw):,} bytes of metadata (at most {LIMITS.max_meta_bytes:,})")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{name}: the metadata is not valid JSON ({first_line(err)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}: the metadata must be a JSON object, got {_short(meta)}")
    return meta, shapes


def check_weights_match(model: torch.nn.Module, shapes: dict[str, tuple[tuple[int, ...], str]], source: str) -> None:
    """The file's tensors (from its header) are exactly the model's, shape for shape, floats where floats go."""
    own = model.state_dict()
    missing = [k for k in own if k not in shapes]
    unexpected = [k for k in shapes if k not in own]
    if missing:
        raise CheckpointError(f"{source} lacks weight {missing[0]!r} that its metadata implies ({len(missing)} missing)")
    if unexpected:
        raise CheckpointError(f"{source} has weight {unexpected[0]!r} that its metadata does not build "
                              f"({len(unexpected)} in all)")
    for key, (shape, dtype) in shapes.items():
        if shape != tuple(own[key].shape):
            raise CheckpointError(f"{source}: weight {key!r} has shape {shape} but the metadata builds "
                                  f"{tuple(own[key].shape)}")
        if (dtype in FLOAT_DTYPES) != own[key].is_floating_point():
            raise CheckpointError(f"{source}: weight {key!r} has dtype {dtype}, expected "
                                  f"{'a floating-point type' if own[key].is_floating_point() else 'an integer type'}")


def check_tensor(key: str, value: torch.Tensor, expected: torch.Tensor) -> None:
    """One loaded weight: the expected kind of dtype (floats are not cast from int8/bool) and finite values."""
    if value.is_floating_point() != expected.is_floating_point() or value.dtype == torch.bool:
        raise CheckpointError(f"key {key!r} has dtype {str(value.dtype).removeprefix('torch.')}, expected "
                              f"{'a floating-point type' if expected.is_floating_point() else 'an integer type'}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"key {key!r} holds NaN or infinite values: refused")


def check_storage(key: str, value: torch.Tensor) -> None:
    """Refuse a tensor whose shape claims more elements than its storage holds (stride-0 views of one number)."""
    if value.numel() * value.element_size() > value.untyped_storage().nbytes():
        raise CheckpointError(f"entry {key!r} claims shape {tuple(value.shape)} over {value.untyped_storage().nbytes()} "
                              "bytes of storage: refused")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (no "billion laughs" expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if getattr(self.peek_event(), "anchor", None) is not None:
            raise CheckpointError("the checkpoint's cfg uses YAML anchors/aliases: refused")
        return super().compose_node(parent, index)


def load_cfg_yaml(text: str) -> Any:
    """An authors' checkpoint cfg string parsed as YAML: at most ``LIMITS.max_cfg_bytes``, no aliases."""
    if len(text) > LIMITS.max_cfg_bytes:
        raise CheckpointError(f"the checkpoint's cfg is {len(text):,} characters (at most {LIMITS.max_cfg_bytes:,})")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except (yaml.YAMLError, RecursionError) as err:
        raise CheckpointError(f"the checkpoint's cfg is not valid YAML ({first_line(err)})") from None


def torch_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU with one-line errors ("{name} is not {what} (...)").

    PyTorch's own message (which suggests ``weights_only=False``) and its pickle-protocol warning are never
    shown: a file that needs unpickling arbitrary objects is refused, not retried.
    """
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no file at {path}") from None
    except MemoryError:
        raise CheckpointError(f"{path.name} is not {what} (it does not fit in memory)") from None
    except Exception as err:  # pickle, zip and storage errors all mean: not a loadable checkpoint
        text = str(err)
        found = re.search(r"Unsupported global: (GLOBAL [\w.]+)", text)
        if found:
            reason = f"it holds pickled Python objects: refused ({found.group(1)})"
        elif "WeightsUnpickler error:" in text:
            detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()
            reason = f"unsupported pickle data: {detail[0] if detail else type(err).__name__}"
        else:
            reason = first_line(err)
        raise CheckpointError(f"{path.name} is not {what} ({reason[:160]})") from None
