"""Load the authors' PosMLP-Video checkpoints (their SlowFast fork) into our model.

Accepts every layout their tools write: a raw state dict, their training checkpoint
``{'model_state': ..., 'cfg': yaml_string, ...}``, ``{'model': ...}``, ``{'state_dict': ...}``, with or
without DistributedDataParallel's ``module.`` prefix. The architecture comes from their yacs config when
present and is otherwise inferred from tensor shapes; both are cross-checked against the weights.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from posmlp_video.bounds import (
    check_meta,
    check_model_kwargs,
    check_storage,
    first_line,
    load_cfg_yaml,
    torch_load,
)
from posmlp_video.errors import CheckpointError
from posmlp_video.loading import load_state_dict_checked, numbered_class_names
from posmlp_video.models import PosMLPVideo

# SlowFast's default normalisation, used when a cfg does not say.
SLOWFAST_MEAN = (0.45, 0.45, 0.45)
SLOWFAST_STD = (0.225, 0.225, 0.225)

_BLOCK = re.compile(r"^blocks(\d)\.(\d+)\.(t_fc|fc)\.encoder\.(.+)$")
_BRANCH = {"t_fc": "temporal", "fc": "spatial"}
_STEM = {"proj1": "conv1", "norm1": "bn1", "proj2": "conv2", "norm2": "bn2"}


def read_official(source: str | Path | dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Return (state_dict without prefixes, parsed cfg or None) from a path or an already loaded object."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint file at {path}")
        obj = torch_load(path, "a PyTorch checkpoint")
    else:
        obj = source
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a dict of tensors or a training checkpoint, got {type(obj).__name__}")
    cfg = obj.get("cfg")
    for key in ("model_state", "model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    state = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"entry {k!r} is a {type(v).__name__}, not a tensor: not a model state dict")
        check_storage(k, v)
        state[k.removeprefix("module.")] = v
    if isinstance(cfg, str):  # their training checkpoints store the yacs cfg as a YAML string
        cfg = load_cfg_yaml(cfg)
    return state, cfg if isinstance(cfg, dict) else None


def _require(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"missing key {key!r}: not a PosMLP-Video checkpoint (or a truncated one)")
    return state[key]


def infer_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Model kwargs (dims, depths, windows, gammas, frames, classes) read off the tensor shapes."""
    dims, depths, windows, gammas = [], [], [], []
    for i in range(1, 5):
        blocks = {int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and int(m.group(1)) == i}
        if not blocks:
            raise CheckpointError(f"no keys 'blocks{i}.*': not a 4-stage PosMLP-Video checkpoint")
        depths.append(max(blocks) + 1)
        prefix = f"blocks{i}.0.fc.encoder"
        dims.append(_require(state, f"{prefix}.norm.weight").shape[0])
        tokens = _require(state, f"{prefix}.gate_unit.pos.token_proj_n_bias").numel()
        w = math.isqrt(tokens)
        if w * w != tokens:
            raise CheckpointError(f"key {prefix}.gate_unit.pos.token_proj_n_bias: {tokens} tokens is not a square window")
        windows.append(w)
        gammas.append(_require(state, f"{prefix}.gate_unit.pos.window_relative_position_bias_table").shape[1])
    frames = _require(state, "blocks1.0.t_fc.encoder.gate_unit.pos.token_proj_n_bias").numel()
    head = _require(state, "head.weight")
    return dict(
        num_classes=head.shape[0], in_chans=_require(state, "patch_embed1.proj1.weight").shape[1],
        num_frames=frames, embed_dims=dims, depths=depths, spatial_windows=windows, gammas=gammas,
    )


def config_from_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """Model kwargs from the authors' yacs config (only the keys their model reads)."""
    try:
        pm = cfg["POSMLP_VIDEO"]
        if pm.get("SHIFT", False):
            raise CheckpointError("cfg POSMLP_VIDEO.SHIFT=True (shifted windows) is not supported")
        if not all(pm.get("TRANSITIONS", [True] * 4)):
            raise CheckpointError("cfg POSMLP_VIDEO.TRANSITIONS must all be true (every stage downsamples)")
        out = dict(
            num_classes=cfg["MODEL"]["NUM_CLASSES"], in_chans=cfg["DATA"]["INPUT_CHANNEL_NUM"][0],
            num_frames=cfg["DATA"]["NUM_FRAMES"], img_size=cfg["DATA"].get("TRAIN_CROP_SIZE", 224),
            embed_dims=list(pm["EMBED_DIMS"]), depths=list(pm["LAYERS"]), spatial_windows=list(cfg["WIN_SIZE"]),
            gammas=list(cfg["POSGAMMA"]), drop_path_rate=float(pm.get("DROP_DEPTH_RATE", 0.0)),
        )
    except (KeyError, IndexError) as err:
        raise CheckpointError(f"the checkpoint's cfg lacks {err} needed to build the model") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint's cfg has an unusable value ({first_line(err)})") from None
    t_windows = cfg.get("WIN_SIZE_T")
    if t_windows is not None and (not isinstance(t_windows, list) or any(t != out["num_frames"] for t in t_windows)):
        raise CheckpointError(f"cfg WIN_SIZE_T {t_windows} must equal DATA.NUM_FRAMES ({out['num_frames']})")
    return out


def convert_state_dict(
    state: dict[str, torch.Tensor], names: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Rename the authors' keys to ours; index buffers are dropped (we rebuild them).

    `names`, when given, is filled with {our key: their key} so errors can name the key the user knows.
    """
    out = {}
    for k, v in state.items():
        if k.endswith("relative_position_index"):
            continue
        if (m := _BLOCK.match(k)) and 1 <= int(m.group(1)) <= 4:
            stage, block, branch, rest = int(m.group(1)) - 1, m.group(2), _BRANCH[m.group(3)], m.group(4)
            if rest == "gate_unit.pos.token_proj_n_bias":
                rest, v = "gate.token_bias", v.reshape(-1)
            elif rest == "gate_unit.pos.window_relative_position_bias_table":
                rest = "gate.relative_position_bias_table"
            new = f"stages.{stage}.blocks.{block}.{branch}.{rest}"
        elif m := re.match(r"^patch_embed1\.(proj1|norm1|proj2|norm2)\.(.+)$", k):
            new = f"stem.{_STEM[m.group(1)]}.{m.group(2)}"
        elif m := re.match(r"^patch_embed([234])\.(proj|norm)\.(.+)$", k):
            new = f"stages.{int(m.group(1)) - 1}.downsample.{'conv' if m.group(2) == 'proj' else 'norm'}.{m.group(3)}"
        elif k.startswith(("norm.", "head.")):
            new = k
        else:
            raise CheckpointError(f"unexpected key {k!r}: not a PosMLP-Video checkpoint")
        out[new] = v
        if names is not None:
            names[new] = k
    return out


def from_official(source: str | Path | dict[str, Any], **overrides: Any) -> PosMLPVideo:
    """Build our model from an authors' checkpoint (path or loaded object) and load it strictly; eval mode.

    `overrides` change model kwargs that do not alter parameter shapes (e.g. drop_path_rate, block
    names stay 'parallel'); shape-changing overrides fail with the offending key named.
    """
    state, cfg = read_official(source)
    inferred = infer_config(state)
    kwargs = dict(inferred)
    if cfg is not None:
        from_cfg = config_from_cfg(cfg)
        for key, value in inferred.items():
            if from_cfg[key] != value:
                raise CheckpointError(f"cfg says {key}={from_cfg[key]} but the weights have {key}={value}")
        kwargs = from_cfg
    kwargs.update(overrides)
    check_model_kwargs(kwargs, "the checkpoint" if isinstance(source, dict) else Path(source).name)
    model = PosMLPVideo(**kwargs)
    names: dict[str, str] = {}
    load_state_dict_checked(model, convert_state_dict(state, names), names)
    return model.eval()


def load_official(
    source: str | Path | dict[str, Any], class_names: list[str] | None = None, **overrides: Any
) -> tuple[PosMLPVideo, dict[str, Any]]:
    """(model in eval mode, preprocessing meta) of an authors' checkpoint: the one way such files are loaded
    (``load_checkpoint`` and the ``convert`` command both come here). `class_names` names their classes."""
    state, cfg = read_official(source)
    model = from_official({"model_state": state, "cfg": cfg}, **overrides)
    if class_names is not None and len(class_names) != model.num_classes:
        raise CheckpointError(f"{len(class_names)} class names given for a {model.num_classes}-class model")
    name = "the checkpoint" if isinstance(source, dict) else Path(source).name
    return model, check_meta(official_meta(cfg, model, class_names), name)


def official_meta(cfg: dict[str, Any] | None, model: PosMLPVideo, class_names: list[str] | None) -> dict[str, Any]:
    """Preprocessing metadata for an authors' checkpoint (their cfg's values where present)."""
    data = (cfg or {}).get("DATA", {})
    size = model.img_size
    k400 = model.num_classes == 400
    if not isinstance(data, dict):
        raise CheckpointError(f"the checkpoint's cfg DATA is a {type(data).__name__}, not a mapping")
    try:
        return _official_meta(data, model, class_names, size, k400)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's cfg DATA has an unusable value ({first_line(err)})") from None


def _official_meta(data: dict[str, Any], model: PosMLPVideo, class_names: list[str] | None,
                   size: tuple[int, int], k400: bool) -> dict[str, Any]:
    return dict(
        model="posmlp_video_s" if model.config["embed_dims"] == [72, 144, 288, 576] else "posmlp_video",
        model_kwargs=model.config,
        class_names=class_names or numbered_class_names(model.num_classes),
        num_frames=model.num_frames,
        input_size=list(size),
        sampling="dense" if k400 else "segment",
        sampling_rate=int(data.get("SAMPLING_RATE", 8 if k400 else 1)),
        resize_short=int(data.get("TEST_CROP_SIZE", size[0]) * 256 // 224),
        mean=list(data.get("MEAN", SLOWFAST_MEAN)),
        std=list(data.get("STD", SLOWFAST_STD)),
        source="authors' checkpoint",
    )
