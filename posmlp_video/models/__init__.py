"""The PosMLP-Video model family (importing this registers the variants with timm)."""

from posmlp_video.models.gating import (
    PositionalGatingUnit,
    relative_position_index,
    resize_position_params,
)
from posmlp_video.models.posmlp import BLOCK_TYPES, VARIANTS, PosMLPBlock, PosMLPVideo, create_model

__all__ = [
    "BLOCK_TYPES",
    "VARIANTS",
    "PosMLPBlock",
    "PosMLPVideo",
    "PositionalGatingUnit",
    "create_model",
    "relative_position_index",
    "resize_position_params",
]
