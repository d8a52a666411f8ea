"""Inference fast path for PosMLP-Video, in float32 or bf16: weight folding plus a choice of layout.

``optimize_for_inference(model)`` returns an eval-only copy of a `PosMLPVideo` that computes the same function:

- the stem's BatchNorms are folded into their convolutions;
- every block's residual steps run in the channel-major layout (`posmlp_video.models.posmlp.channel_major_step`,
  the same code that trains the model), with each step's weights folded once (`PosMLPBlock.fold_weights`:
  LayerNorm affine into one concatenated fc1, rows in the gates' channel order) instead of at every call;
- the gating units' expanded mixing matrices are cached (eval mode, no autograd) and their mixing runs in place;
- on CPU a batch runs one clip at a time (`InferenceModel`).

In float32 this is the faithful path (relative logit error ~2e-7 against the model). ``dtype=torch.bfloat16``
stores weights and activations in bf16 (AVX512-BF16 / AMX on CPU; on a CPU without AVX-512 bf16 falls back to slow
paths, ~20x slower than float32, and `optimize_for_inference` warns). Measured and left out on CPU (single-thread
CPU time, S16 16 x 224 x 224): ``torch.compile`` of this path (1.06 s bf16 against 0.44 s uncompiled; with
weight freezing 1.10 s) and PyTorch's int8 dynamic quantisation (``torch.ao``, deprecated: at these shapes no
faster than oneDNN float32, ~2% error per layer). ``torch.compile`` of the plain model is in the benchmark.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from posmlp_video.models.posmlp import PosMLPVideo

__all__ = ["InferenceModel", "cpu_has_fast_bf16", "optimize_for_inference"]

# Measured on a 2-core AMD EPYC without bf16 instructions (benchmarks/results/models_authors_quick.json):
# S16 inference 34.9 s in bf16 against 1.5 s in float32; a training step 85 s against 5.2 s.
BF16_EMULATED = ("this CPU lacks the AVX-512 that oneDNN's bf16 kernels need: bf16 runs on slow fallback paths "
                 "here, about 15-25x slower than float32; use float32")


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512; fastest with AVX512-BF16 / AMX). Without them
    (e.g. AVX2-only CPUs) PyTorch's bf16 falls back to slow paths."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class InferenceModel(nn.Module):
    """Runs `model` without autograd in `dtype`; takes and returns float32 like the original model.

    On CPU a batch runs one clip at a time: a clip's activations stay in cache, while a batch's do not
    (S16, 16 x 224 x 224 on 2 cores: 0.58 s per clip as one batch of 4, 0.46 s one by one, 0.44 s at batch 1).
    """

    def __init__(self, model: PosMLPVideo, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = x.to(self.dtype)
            if x.device.type == "cpu" and x.shape[0] > 1:
                return torch.cat([self.model(clip).float() for clip in x.split(1)])
            return self.model(x).float()


def optimize_for_inference(model: PosMLPVideo, dtype: torch.dtype = torch.float32) -> InferenceModel:
    """An eval-only, frozen copy of `model` that maps (B, 3, T, H, W) float32 clips to float32 logits.

    The copy (an `InferenceModel`; the fused PosMLPVideo is its ``.model``) always runs without autograd.

    Args:
        model: a PosMLPVideo (left untouched).
        dtype: torch.float32 (faithful: same logits to ~1e-7) or torch.bfloat16.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    if dtype == torch.bfloat16 and next(model.parameters()).device.type == "cpu" and not cpu_has_fast_bf16():
        warnings.warn(BF16_EMULATED, stacklevel=2)
    model = copy.deepcopy(model).eval().requires_grad_(False)
    stem = model.stem
    stem.conv1, stem.bn1 = fuse_conv_bn_eval(stem.conv1, stem.bn1), nn.Identity()
    stem.conv2, stem.bn2 = fuse_conv_bn_eval(stem.conv2, stem.bn2), nn.Identity()
    model.set_layout("channel_major")
    for stage in model.stages:
        for block in stage.blocks:
            block.fold_weights()
    model = model.to(dtype).requires_grad_(False)
    return InferenceModel(model, dtype)
