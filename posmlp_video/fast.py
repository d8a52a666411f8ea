"""Inference fast path: fused CPU kernels, bf16, torch.compile and int8 dynamic quantisation.

``optimize_for_inference(model)`` returns an eval-only copy of a `PosMLPVideo` that computes the same
function with fewer memory passes:

- the stem's BatchNorms are folded into their convolutions;
- branches that read the same input (the two of a parallel block) share one LayerNorm, whose affine is
  folded into one concatenated fc1, and fc1 runs with its bias and GELU fused into the matrix product
  (oneDNN's ``mkldnn._linear_pointwise`` on CPU);
- each fc2 adds its result straight into the residual (a fused ``add`` epilogue), so the branch sum and
  the residual sum cost no extra pass;
- the gating units keep their cached expanded mixing matrices (eval mode, no autograd).

In float32 this is the faithful path (relative logit error ~1e-7 against the model). ``dtype=torch.bfloat16``
stores weights and activations in bf16 (AVX512-BF16 / AMX on CPU, tensor cores on GPU); ``quantize=True``
replaces every linear layer by PyTorch's int8 dynamic quantised one (CPU, float32 only); ``compile=True``
wraps the result in `torch.compile`. The parameters stay the model's own (same values, frozen), so a copy
made from a checkpointed model needs no conversion step.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from posmlp_video.models.posmlp import GatedBranch, PosMLPBlock, PosMLPVideo

__all__ = ["FusedBranches", "InferenceModel", "optimize_for_inference"]


def _linear(x: torch.Tensor, layer: nn.Module, gelu: bool = False, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``layer(x)``, then GELU or ``+ residual``, on 2-D ``x``; fused into the product by oneDNN on CPU."""
    fused = (
        type(layer) is nn.Linear and x.device.type == "cpu" and torch.backends.mkldnn.is_available()
        and x.dtype in (torch.float32, torch.bfloat16) and not torch.compiler.is_compiling()
    )
    if fused and residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, layer.weight, layer.bias, "add")
    if fused:
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    y = layer(x)
    y = F.gelu(y) if gelu else y
    return y if residual is None else residual + y


class FusedBranches(nn.Module):
    """``x + sum_i fc2_i(gate_i(gelu(fc1_i(norm_i(x)))))`` for `GatedBranch`es that share their input.

    The LayerNorms differ only in their affine, which is folded into the concatenated fc1: one
    normalisation and one matrix product serve all branches.
    """

    def __init__(self, branches: Sequence[GatedBranch]) -> None:
        super().__init__()
        norms = [b.norm for b in branches]
        self.dim, self.eps = branches[0].fc2.out_features, norms[0].eps
        if any(n.eps != self.eps for n in norms):
            raise ValueError("branches with different LayerNorm eps cannot share a normalisation")
        with torch.no_grad():
            weight = torch.cat([b.fc1.weight * b.norm.weight for b in branches])
            bias = torch.cat([b.fc1.bias + b.fc1.weight @ b.norm.bias for b in branches])
        self.fc1 = nn.Linear(self.dim, weight.shape[0]).to(weight.device, weight.dtype)
        self.fc1.weight.data.copy_(weight)
        self.fc1.bias.data.copy_(bias)
        self.gates = nn.ModuleList(b.gate for b in branches)
        self.fc2 = nn.ModuleList(b.fc2 for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, C = x.shape, self.dim
        x = x.reshape(-1, C)
        y = _linear(F.layer_norm(x, (C,), eps=self.eps), self.fc1, gelu=True).view(*shape[:-1], -1)
        for i, (gate, fc2) in enumerate(zip(self.gates, self.fc2)):
            x = _linear(gate(y[..., 2 * C * i: 2 * C * (i + 1)]).view(-1, C), fc2, residual=x)
        return x.view(shape)


def _fuse_block(block: PosMLPBlock) -> nn.Sequential:
    """The block as a sequence of residual steps; a parallel block is one step with two branches."""
    if block.block_type == "parallel":
        steps = [[block.spatial, block.temporal]]
    elif block.block_type == "sequential":
        steps = [[block.temporal], [block.spatial]]
    else:
        steps = [[getattr(block, block.block_type)]]
    return nn.Sequential(*[FusedBranches(branches) for branches in steps])


class InferenceModel(nn.Module):
    """Runs `model` without autograd in `dtype`; takes and returns float32 like the original model."""

    def __init__(self, model: PosMLPVideo, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x.to(self.dtype)).float()


def optimize_for_inference(
    model: PosMLPVideo, dtype: torch.dtype = torch.float32, compile: bool = False, quantize: bool = False
) -> nn.Module:
    """An eval-only, frozen copy of `model` that maps (B, 3, T, H, W) float32 clips to float32 logits.

    The copy (an `InferenceModel`; the fused PosMLPVideo is its ``.model``) always runs without autograd.

    Args:
        model: a PosMLPVideo (left untouched).
        dtype: torch.float32 (faithful: same logits to ~1e-7) or torch.bfloat16.
        compile: wrap the result in ``torch.compile`` (the first call compiles, for minutes on 2 cores).
        quantize: int8 dynamic quantisation of the linear layers (CPU, float32 only).
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    if quantize and dtype != torch.float32:
        raise ValueError("int8 dynamic quantisation takes float32 activations: use dtype=torch.float32")
    model = copy.deepcopy(model).eval().requires_grad_(False)
    stem = model.stem
    stem.conv1, stem.bn1 = fuse_conv_bn_eval(stem.conv1, stem.bn1), nn.Identity()
    stem.conv2, stem.bn2 = fuse_conv_bn_eval(stem.conv2, stem.bn2), nn.Identity()
    for stage in model.stages:
        stage.blocks = nn.ModuleList(_fuse_block(block) for block in stage.blocks)
    model = model.to(dtype).requires_grad_(False)
    if quantize:
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            model = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    fast = InferenceModel(model, dtype)
    return torch.compile(fast) if compile else fast
