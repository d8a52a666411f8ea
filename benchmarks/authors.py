"""Load the authors' PosMLP-Video model from their source file, for side-by-side benchmarks.

The file (``../shared/reference/authors/posmlp.py``: their SlowFast ``posmlp.py``, Apache-2.0) is read at run
time from the path given and never copied into the project. It needs ``einops``. Its one SlowFast import
(``from .build import MODEL_REGISTRY``) is replaced by a registry whose ``register()`` is an identity decorator,
and the source is executed into a fresh module, as its README describes.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

REGISTRY_IMPORT = "from .build import MODEL_REGISTRY"


def load_module(path: str | Path) -> types.ModuleType:
    """The authors' ``posmlp.py`` as a module (their ``PosMLP_Video`` class and helpers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no authors' source at {path}")
    source = path.read_text()
    if REGISTRY_IMPORT not in source:
        raise ValueError(f"{path} has no line {REGISTRY_IMPORT!r}: not the authors' posmlp.py")
    stub = "class _Registry:\n    def register(self):\n        return lambda cls: cls\nMODEL_REGISTRY = _Registry()"
    module = types.ModuleType("authors_posmlp")
    module.__file__ = str(path)
    exec(compile(source.replace(REGISTRY_IMPORT, stub), str(path), "exec"), module.__dict__)
    return module


def _cfg(config: dict[str, Any]) -> types.SimpleNamespace:
    ns = types.SimpleNamespace
    return ns(
        WIN_SIZE=list(config["spatial_windows"]), WIN_SIZE_T=[config["num_frames"]] * 4, POSGAMMA=list(config["gammas"]),
        POSMLP_VIDEO=ns(LAYERS=list(config["depths"]), TRANSITIONS=[True] * 4, EMBED_DIMS=list(config["embed_dims"]),
                        PATCH_SIZE=4, DROP_DEPTH_RATE=0.0, PRETRAIN_PATH="", SHIFT=False),
        MODEL=ns(NUM_CLASSES=config["num_classes"], ARCH="posmlp", MODEL_NAME="PosMLP_Video"),
        DATA=ns(NUM_FRAMES=config["num_frames"], TRAIN_CROP_SIZE=config["img_size"][0],
                TEST_CROP_SIZE=config["img_size"][0], INPUT_CHANNEL_NUM=[config["in_chans"]]),
    )


class AuthorsModel(nn.Module):
    """The authors' model with a plain ``(B, 3, T, H, W) -> logits`` call (theirs takes a list of pathways)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net([x])


def build_authors_model(path: str | Path, config: dict[str, Any]) -> AuthorsModel:
    """The authors' model for one of our configs (``model.config``; parallel blocks, whole-clip temporal windows)."""
    if set(config["block_types"]) != {"parallel"} or any(t is not None for t in config["temporal_windows"]):
        raise ValueError("the authors' model has parallel blocks with a whole-clip temporal window only")
    return AuthorsModel(load_module(path).PosMLP_Video(_cfg(config)))
