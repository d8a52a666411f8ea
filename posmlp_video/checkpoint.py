"""Our checkpoint format: one .safetensors file whose header holds the JSON metadata.

The metadata says how to rebuild the model (``model``, ``model_kwargs``) and how to feed it
(``class_names``, ``num_frames``, ``input_size``, ``sampling``, ``sampling_rate``, ``resize_short``,
``mean``, ``std``), so a checkpoint is all an app or a notebook needs. Nothing is unpickled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from posmlp_video.atomic import atomic_path
from posmlp_video.bounds import check_meta, check_model_kwargs, check_weights_match, header_shapes
from posmlp_video.convert import load_official
from posmlp_video.errors import CheckpointError
from posmlp_video.loading import PACKAGE_DIR, load_class_names, load_state_dict_checked
from posmlp_video.models import PosMLPVideo
from posmlp_video.models.gating import AXES, PositionalGatingUnit, resize_position_params, window_from_params

META_KEY = "posmlp_video"
BUNDLED_CHECKPOINT = PACKAGE_DIR / "weights" / "posmlp_video_xs_realmotion.safetensors"
REQUIRED_META = ("class_names", "num_frames", "input_size")
DEFAULT_META = dict(sampling="segment", sampling_rate=1, mean=[0.45] * 3, std=[0.225] * 3)


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


def update_meta(path: str | Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into a checkpoint's metadata (e.g. its ``card`` after an evaluation), weights untouched.

    The file is rewritten atomically; returns the new metadata.
    """
    meta = {**read_meta(path), **changes}
    tensors = load_file(str(path))
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return meta


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
    if path is None:
        path = BUNDLED_CHECKPOINT
        if not path.is_file():
            raise CheckpointError(
                f"the bundled checkpoint {path.name} is missing; train it with "
                "configs/realmotion_xs.yaml (see the README's 'The bundled checkpoint') or pass a checkpoint path"
            )
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.suffix != ".safetensors":
        model, meta = load_official(path, class_names, **overrides)
        return model.to(device), meta
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


# --- command line: ``convert`` --------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="the authors' checkpoint (.pth / .pyth), or one of ours (to attach --labels)")
    parser.add_argument("output", help="where to write our .safetensors checkpoint")
    parser.add_argument(
        "--labels", default=None,
        help="class names: ssv1, ssv2, k400, or a text file with one name per line (default: numbered)",
    )


def run(args: argparse.Namespace) -> int:
    """Load an authors' checkpoint the one way (``load_checkpoint``) and save it in our format."""
    from posmlp_video.card import write_model_card

    names = load_class_names(args.labels) if args.labels else None
    model, meta = load_checkpoint(args.source, class_names=names)
    path = save_checkpoint(model, args.output, meta)
    card = write_model_card(path, meta, model)
    print(f"wrote {path} ({sum(p.numel() for p in model.parameters()):,} parameters, {model.num_classes} classes) "
          f"and {card}")
    return 0
