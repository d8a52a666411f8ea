"""Our checkpoint format: one .safetensors file whose header holds the JSON metadata.

The metadata says how to rebuild the model (``model``, ``model_kwargs``) and how to feed it
(``class_names``, ``num_frames``, ``input_size``, ``sampling``, ``sampling_rate``, ``resize_short``,
``mean``, ``std``), so a checkpoint is all an app or a notebook needs. Nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from posmlp_video.atomic import atomic_path
from posmlp_video.bounds import check_meta, check_model_kwargs, check_weights_match, header_shapes
from posmlp_video.errors import CheckpointError
from posmlp_video.models import PosMLPVideo
from posmlp_video.models.gating import AXES, PositionalGatingUnit, resize_position_params, window_from_params

META_KEY = "posmlp_video"
PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_CHECKPOINT = PACKAGE_DIR / "weights" / "posmlp_video_xs_synthmotion.safetensors"
LABEL_FILES = {
    "ssv1": "something_something_v1.txt",
    "ssv2": "something_something_v2.txt",
    "k400": "kinetics_400.txt",
}
REQUIRED_META = ("class_names", "num_frames", "input_size")
DEFAULT_META = dict(sampling="segment", sampling_rate=1, mean=[0.45] * 3, std=[0.225] * 3)


def load_class_names(name_or_path: str | Path) -> list[str]:
    """Class names of a shipped label set ("ssv1", "ssv2", "k400") or from a text file, one per line."""
    key = str(name_or_path).lower()
    path = PACKAGE_DIR / "labels" / LABEL_FILES[key] if key in LABEL_FILES else Path(name_or_path)
    if not path.is_file():
        raise CheckpointError(f"no label set {name_or_path!r}: use ssv1, ssv2, k400 or a text file")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise CheckpointError(f"label file {path} is empty")
    return names


def save_checkpoint(model: PosMLPVideo, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write weights + metadata atomically (temp file, then rename) and return the path.

    `meta` needs ``class_names``, ``num_frames`` and ``input_size``; ``model_kwargs`` is filled in from the
    model, and ``sampling``/``mean``/``std`` get defaults when missing.
    """
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata needs {missing}")
    if len(meta["class_names"]) != model.num_classes:
        raise ValueError(f"{len(meta['class_names'])} class names for a {model.num_classes}-class model")
    meta = {**DEFAULT_META, "resize_short": int(min(meta["input_size"])), **meta}
    meta["model_kwargs"] = dict(model.config)
    meta.setdefault("model", "posmlp_video")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of one of our checkpoints, without loading the weights (checked against `bounds.LIMITS`)."""
    return check_meta(header_shapes(path, META_KEY)[0], Path(path).name)


def resize_state_dict(state: dict[str, torch.Tensor], model: PosMLPVideo) -> dict[str, torch.Tensor]:
    """Adapt relative position tables and token biases in `state` to `model`'s windows (e.g. a new T).

    Every other key passes through unchanged; shapes that still differ are left for the strict load to report.
    """
    state = dict(state)
    for name, module in model.named_modules():
        if not isinstance(module, PositionalGatingUnit):
            continue
        tk, bk = f"{name}.relative_position_bias_table", f"{name}.token_bias"
        if tk not in state or bk not in state:
            continue
        table, bias = state[tk], state[bk]
        if table.shape == module.relative_position_bias_table.shape and bias.shape == module.token_bias.shape:
            continue
        old = window_from_params(table.shape[0], bias.numel(), len(module.window))
        centre = [axis == "t" for axis in AXES[module.kind]]
        state[tk], state[bk] = resize_position_params(table, bias, old, module.window, centre)
    return state


def load_checkpoint(
    path: str | Path | None = None,
    *,
    class_names: list[str] | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> tuple[PosMLPVideo, dict[str, Any]]:
    """Load (model in eval mode, meta) from our .safetensors or an authors' .pth/.pyth checkpoint.

    With no path, the bundled SynthMotion checkpoint. `overrides` change model kwargs, e.g.
    ``num_frames=16`` or ``spatial_windows=[...]``: tables are resized to match. `class_names` names the
    classes of an authors' checkpoint (theirs carry none).
    """
    from posmlp_video.convert import from_official, load_state_dict_checked, official_meta, read_official

    if path is None:
        path = BUNDLED_CHECKPOINT
        if not path.is_file():
            raise CheckpointError(
                f"the bundled checkpoint {path.name} is missing; train it with "
                "'python -m posmlp_video train configs/synthmotion_xs.yaml' or pass a checkpoint path"
            )
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.suffix != ".safetensors":
        state, cfg = read_official(path)
        model = from_official({"model_state": state, "cfg": cfg}, **overrides)
        if class_names is not None and len(class_names) != model.num_classes:
            raise CheckpointError(f"{len(class_names)} class names given for a {model.num_classes}-class model")
        return model.to(device), check_meta(official_meta(cfg, model, class_names), path.name)
    # Everything is checked on the header before a byte of weights is read or a model is built.
    meta, shapes = header_shapes(path, META_KEY)
    check_meta(meta, path.name)
    saved = check_model_kwargs(meta.get("model_kwargs"), path.name)
    check_weights_match(saved, shapes, path.name)
    for names, what in ((meta["class_names"], "its metadata"), (class_names, "given")):
        if names is not None and len(names) != saved.num_classes:
            raise CheckpointError(f"{path.name}: {len(names)} class names {what} for a {saved.num_classes}-class model")
    kwargs = {**meta["model_kwargs"], **overrides}
    if overrides:
        check_model_kwargs(kwargs, "the requested model")
    model = PosMLPVideo(**kwargs)
    load_state_dict_checked(model, resize_state_dict(load_file(str(path)), model))
    if "num_frames" in overrides:
        meta["num_frames"] = overrides["num_frames"]
    meta["model_kwargs"] = model.config
    if class_names is not None:
        meta["class_names"] = list(class_names)
    return model.to(device).eval(), meta
