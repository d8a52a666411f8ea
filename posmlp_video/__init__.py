"""posmlp-video: PosMLP-Video models, training, data pipeline and checkpoints.

``import posmlp_video as pv`` gives the everyday API: ``pv.create_model``, ``pv.load_checkpoint``,
``pv.save_checkpoint``, ``pv.from_official``, ``pv.Predictor``, ``pv.read_video``. Importing the package
registers the model variants with timm; everything else is imported on first use (module ``__getattr__``),
so ``import posmlp_video`` does not pull in the video decoders, checkpoint I/O or the predictor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from posmlp_video.models import BLOCK_TYPES, VARIANTS, PosMLPVideo, create_model

if TYPE_CHECKING:
    from posmlp_video.checkpoint import load_checkpoint, save_checkpoint
    from posmlp_video.convert import from_official
    from posmlp_video.data.decode import read_video
    from posmlp_video.predict import Predictor

__version__ = "0.1.0"

# name -> module it is imported from on first access
_LAZY = {
    "load_checkpoint": "posmlp_video.checkpoint",
    "save_checkpoint": "posmlp_video.checkpoint",
    "from_official": "posmlp_video.convert",
    "Predictor": "posmlp_video.predict",
    "read_video": "posmlp_video.data.decode",
}

__all__ = [
    "BLOCK_TYPES", "VARIANTS", "PosMLPVideo", "Predictor", "__version__", "create_model", "from_official",
    "load_checkpoint", "read_video", "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'posmlp_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
