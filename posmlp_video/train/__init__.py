"""Training: typed configs, the DDP-ready loop, resumable checkpoints. Entry point: ``python -m posmlp_video train``."""
