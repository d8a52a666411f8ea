"""posmlp-video: PosMLP-Video models, training, data pipeline and checkpoints."""

from posmlp_video.models import BLOCK_TYPES, VARIANTS, PosMLPVideo, create_model

__version__ = "0.1.0"
__all__ = ["BLOCK_TYPES", "VARIANTS", "PosMLPVideo", "create_model", "__version__"]
