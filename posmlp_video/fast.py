"""Inference fast path: fused, layout-aware kernels for PosMLP-Video, in float32 or bf16.

``optimize_for_inference(model)`` returns an eval-only copy of a `PosMLPVideo` that computes the same
function with fewer memory passes:

- the stem's BatchNorms are folded into their convolutions;
- branches that read the same input (the two of a parallel block) share one LayerNorm, whose affine is
  folded into one concatenated fc1;
- fc1 writes its output channel-major with each gating group's channels together, the layout in which
  temporal mixing and whole-map spatial mixing are batched matmuls over strided rows (no copy) and tiled
  spatial windows need one copy with contiguous rows; the channels-last model instead needs a strided
  gather per gating unit;
- each fc2 reads that layout as a transposed operand and adds straight into the residual, its bias carried
  by a row of ones, so the branch sum and the residual sum cost no extra pass;
- the gating units' expanded mixing matrices are cached (eval mode, no autograd).

In float32 this is the faithful path (relative logit error ~2e-7 against the model). ``dtype=torch.bfloat16``
stores weights and activations in bf16 (AVX512-BF16 / AMX on CPU). Measured and left out on CPU (single-thread
CPU time, S16 16 x 224 x 224): ``torch.compile`` of this path (1.06 s bf16 against 0.44 s uncompiled; with
weight freezing 1.10 s) and PyTorch's int8 dynamic quantisation (``torch.ao``, deprecated: at these shapes no
faster than oneDNN float32, ~2% error per layer). ``torch.compile`` of the plain model is in the benchmark.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from posmlp_video.models.gating import PositionalGatingUnit
from posmlp_video.models.posmlp import GatedBranch, PosMLPBlock, PosMLPVideo

__all__ = ["FusedBranches", "InferenceModel", "optimize_for_inference"]


def _grouped(dim: int, gamma: int) -> torch.Tensor:
    """Channel order that stores each group's channels together: position s * V + v holds channel v * gamma + s."""
    j = torch.arange(dim)
    return (j % (dim // gamma)) * gamma + j // (dim // gamma)


def _gate_channel_major(gate: PositionalGatingUnit, u: torch.Tensor, v: torch.Tensor, thw: tuple[int, ...],
                        out: torch.Tensor) -> None:
    """``gate`` on channel-major, group-ordered u and v (C, B*T*H*W each, rows s * V + v); writes into `out`.

    In this layout a temporal window or a spatial window covering the map is a plain strided matrix, so the
    mixing is one batched matmul with no copy; tiled spatial windows need one partition copy whose rows
    are contiguous. Other windows (padded maps, joint windows) go through the gate itself.
    """
    B, T, H, W = thw
    gamma, C = gate.gamma, u.shape[0]
    window = gate.runtime_window(T, H, W)
    weights, bias = (t.to(u.dtype) for t in gate.mixing_weights(window))
    N = math.prod(window)
    if gate.kind == "temporal" and T % N == 0:  # rows (s, v, b, t-window), N frames, H * W columns
        R = C // gamma * B * (T // N)
        expanded = weights[:, None].expand(gamma, R, N, N).reshape(gamma * R, N, N)
        mixed = torch.baddbmm(bias.view(1, N, 1), expanded, u.view(gamma * R, N, H * W), out=out.view(gamma * R, N, -1))
        mixed.mul_(v.view_as(mixed))
    elif gate.kind == "spatial" and window == (H, W):  # rows (s, v, b, t), N = H * W tokens
        mixed = torch.baddbmm(bias.view(1, 1, N), u.view(gamma, -1, N), weights.transpose(1, 2),
                              out=out.view(gamma, -1, N))
        mixed.mul_(v.view_as(mixed))
    elif gate.kind == "spatial" and H % window[0] == 0 and W % window[1] == 0:
        (wh, ww), nh, nw = window, H // window[0], W // window[1]

        def windows(x: torch.Tensor) -> torch.Tensor:  # (gamma, rows, nh, nw, wh, ww) view
            return x.view(gamma, -1, nh, wh, nw, ww).transpose(3, 4)

        tokens = windows(u).reshape(gamma, -1, N)
        mixed = torch.baddbmm(bias.view(1, 1, N), tokens, weights.transpose(1, 2))
        torch.mul(mixed.view(windows(u).shape), windows(v), out=windows(out))
    else:
        M = B * T * H * W
        x = torch.stack([u, v]).view(2, gamma, C // gamma, B, T, H, W).permute(3, 4, 5, 6, 0, 2, 1)
        y = gate(x.reshape(B, T, H, W, 2 * C))  # the gate's own channel order: c = v * gamma + s
        out.view(gamma, C // gamma, M).copy_(y.view(M, C // gamma, gamma).permute(2, 1, 0))


class FusedBranches(nn.Module):
    """``x + sum_i fc2_i(gate_i(gelu(fc1_i(norm_i(x)))))`` for `GatedBranch`es that share their input.

    The LayerNorms differ only in their affine, which is folded into one concatenated fc1, computed
    channel-major (one row per channel, channels of a gating group together) so that every token mixing
    is a batched matmul over strided rows; each fc2 reads that layout back as a transposed operand and
    adds into the residual, with its bias carried by an extra row of ones.
    """

    def __init__(self, branches: Sequence[GatedBranch]) -> None:
        super().__init__()
        self.dim, self.eps = branches[0].fc2.out_features, branches[0].norm.eps
        if any(b.norm.eps != self.eps for b in branches):
            raise ValueError("branches with different LayerNorm eps cannot share a normalisation")
        C, fc1_w, fc1_b, fc2 = self.dim, [], [], []
        with torch.no_grad():
            for b in branches:
                order = _grouped(C, b.gate.gamma).to(b.fc1.weight.device)
                rows = torch.cat([order, order + C])  # u and v halves share the order
                fc1_w.append((b.fc1.weight * b.norm.weight)[rows])
                fc1_b.append((b.fc1.bias + b.fc1.weight @ b.norm.bias)[rows])
                fc2.append(torch.cat([b.fc2.weight[:, order], b.fc2.bias[:, None]], 1).t().contiguous())
        self.register_buffer("fc1_weight", torch.cat(fc1_w))
        self.register_buffer("fc1_bias", torch.cat(fc1_b)[:, None])
        self.register_buffer("fc2_weight", torch.stack(fc2))  # (branches, C + 1, C): transposed, bias last
        self.gates = nn.ModuleList(b.gate for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *thw, C = x.shape
        x = x.reshape(-1, C)
        y = torch.addmm(self.fc1_bias, self.fc1_weight, F.layer_norm(x, (C,), eps=self.eps).t())
        y = torch.ops.aten.gelu_(y)  # (branches * 2C, tokens), in place
        for i, gate in enumerate(self.gates):
            g = y.new_empty(C + 1, x.shape[0])
            g[C] = 1  # carries fc2's bias
            _gate_channel_major(gate, y[2 * C * i: 2 * C * i + C], y[2 * C * i + C: 2 * C * (i + 1)], thw, g[:C])
            x = torch.addmm(x, g.t(), self.fc2_weight[i]) if i == 0 else x.addmm_(g.t(), self.fc2_weight[i])
        return x.view(*thw, C)


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
    model = copy.deepcopy(model).eval().requires_grad_(False)
    stem = model.stem
    stem.conv1, stem.bn1 = fuse_conv_bn_eval(stem.conv1, stem.bn1), nn.Identity()
    stem.conv2, stem.bn2 = fuse_conv_bn_eval(stem.conv2, stem.bn2), nn.Identity()
    for stage in model.stages:
        stage.blocks = nn.ModuleList(_fuse_block(block) for block in stage.blocks)
    model = model.to(dtype).requires_grad_(False)
    return InferenceModel(model, dtype)
