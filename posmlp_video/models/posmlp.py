"""PosMLP-Video: an MLP-like video backbone whose token mixing is learned relative position encoding.

Faithful to the authors' released model (their SlowFast ``posmlp.py``, "parallel" blocks) and extended
with sequential and joint spatio-temporal blocks, any input size and frame count, and the timm model API.
Activations between blocks are channels-last ``(B, T, H, W, C)``; the public feature API is ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn
from torch.utils.checkpoint import checkpoint

from posmlp_video.models.gating import PositionalGatingUnit, mix_channel_major

BLOCK_TYPES = ("parallel", "sequential", "joint", "spatial", "temporal")
# How each block type updates the residual stream: a sequence of steps, each the names of the branches whose
# outputs are summed into one residual update (all branches of a step read the step's input). Read by the
# block's forward (either layout), the inference fast path, analysis.biases and analysis.complexity.
STEPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "parallel": (("temporal", "spatial"),),  # the authors': x + dp(S(x) + T(x))
    "sequential": (("temporal",), ("spatial",)),
    "joint": (("joint",),),
    "spatial": (("spatial",),),
    "temporal": (("temporal",),),
}
LAYOUTS = ("channel_major", "channels_last")
FOLDED = ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias")  # a step's weights in the channel-major layout


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 4, 1)


def _to_channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 4, 1, 2, 3)


def _framewise(conv: nn.Conv3d, frames: torch.Tensor) -> torch.Tensor:
    """A (1, kh, kw) `conv` applied to (B * T, C, H, W) frames as the 2-D convolution it is.

    Same result as the Conv3d on (B, C, T, H, W); oneDNN's 2-D kernels on channels-last frames run it about
    twice as fast as its 3-D ones, most of it in backward (`benchmarks/convolutions.py`), and return channels-last
    frames, which are the blocks' (B, T, H, W, C) layout with no copy.
    """
    return F.conv2d(frames, conv.weight.squeeze(2), conv.bias, conv.stride[1:], conv.padding[1:])


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, C) channels-last activations as (B * T, C, H, W) frames in channels-last memory (a view)."""
    return x.flatten(0, 1).permute(0, 3, 1, 2)


def _clip(frames: torch.Tensor, T: int) -> torch.Tensor:
    """(B * T, C, H, W) channels-last frames as (B, T, H, W, C) activations (a view)."""
    return frames.permute(0, 2, 3, 1).unflatten(0, (-1, T))


class Stem(nn.Module):
    """Two (1,3,3) stride-(1,2,2) convolutions with BatchNorm: spatial /4, frames untouched."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_chans, dim // 2, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.bn1 = nn.BatchNorm3d(dim // 2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv3d(dim // 2, dim, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.bn2 = nn.BatchNorm3d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> (B, T, H/4, W/4, dim), stored channels-last.

        The clip is copied once into channels-last frames; from there every step (framewise convolutions, the
        BatchNorms on a (B, C, T, H, W) view, GELU) keeps that memory order, which is the blocks' layout. The
        final ``contiguous`` costs nothing then, and guards the blocks against a backend that returns another
        order (a strided view would make every LayerNorm of the first stage copy it).
        """
        T = x.shape[2]
        frames = _frames(_to_channels_last(x).contiguous())

        def norm(bn: nn.Module, frames: torch.Tensor) -> torch.Tensor:  # BatchNorm3d sees (B, C, T, H, W)
            return _frames(_to_channels_last(bn(_to_channels_first(_clip(frames, T)))))

        frames = self.act(norm(self.bn1, _framewise(self.conv1, frames)))
        return _clip(norm(self.bn2, _framewise(self.conv2, frames)), T).contiguous()


class Downsample(nn.Module):
    """(1,3,3) stride-(1,2,2) convolution between stages, then LayerNorm; channels-last in and out."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_dim, out_dim, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(_clip(_framewise(self.conv, _frames(x)), x.shape[1]))


class GatedBranch(nn.Module):
    """LayerNorm -> Linear C->2C -> GELU -> positional gating unit -> Linear C->C (the paper's PosMLP layer)."""

    def __init__(self, dim: int, gate: PositionalGatingUnit, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.gate = gate
        self.fc2 = nn.Linear(dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.gate(self.act(self.fc1(self.norm(x))))))

    def channel_major_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """fc1 with the LayerNorm's affine folded in and its rows in the gate's channel order (u then v), and
        fc2's weight with its columns in that order: the same branch on normalised, channel-major activations.

        Differentiable, so training reaches the original parameters (checkpoint keys do not change).
        """
        order = self.gate.channel_order
        rows = torch.cat([order, order + self.gate.dim])  # index_select: its backward is an index_add_
        fc1_weight = (self.fc1.weight * self.norm.weight).index_select(0, rows)
        fc1_bias = (self.fc1.bias + self.fc1.weight @ self.norm.bias).index_select(0, rows)
        return fc1_weight, fc1_bias, self.fc2.weight.index_select(1, order)


def _same(values: Sequence[Any], what: str) -> Any:
    if any(v != values[0] for v in values[1:]):
        raise ValueError(f"branches of one residual step must share their {what}")
    return values[0]


def step_weights(branches: Sequence[GatedBranch]) -> tuple[torch.Tensor, ...]:
    """``(fc1_weight, fc1_bias, fc2_weight, fc2_bias)`` of a step's branches for `channel_major_step`: the
    branches' `GatedBranch.channel_major_weights` concatenated (fc1 rows, fc2 columns), fc2's biases summed."""
    parts = [b.channel_major_weights() for b in branches]
    return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts], 1),
            sum(b.fc2.bias for b in branches))


def channel_major_step(x: torch.Tensor, branches: Sequence[GatedBranch], drop_path: nn.Module,
                       weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """``x + drop_path(sum of the branches(x))`` with one normalisation, one fc1 that writes channel-major,
    the gates' copy-free mixing (`mix_channel_major`) and fc2 reading that layout as a transposed operand.

    `weights` is ``(fc1_weight, fc1_bias, fc2_weight, fc2_bias)`` of all branches concatenated (fc2's bias
    summed), computed here from the branches unless given (the inference fast path folds them once).
    """
    norm = branches[0].norm
    eps, shape = _same([b.norm.eps for b in branches], "LayerNorm eps"), norm.normalized_shape
    act = branches[0].act
    _same([(type(b.act), getattr(b.act, "approximate", None)) for b in branches], "activation")
    fc1_weight, fc1_bias, fc2_weight, fc2_bias = weights or step_weights(branches)
    *thw, C = x.shape
    tokens = x.reshape(-1, C)
    y = act(torch.addmm(fc1_bias[:, None], fc1_weight, F.layer_norm(tokens, shape, eps=eps).t()))
    g = mix_channel_major([b.gate for b in branches], y, thw)  # (branches * C, tokens)
    split = drop_path.training and not isinstance(drop_path, nn.Identity) or any(
        b.drop.training and b.drop.p > 0 for b in branches)
    if not split:
        return torch.addmm(tokens, g.t(), fc2_weight.t()).add_(fc2_bias).view(x.shape)
    update = sum(b.drop(torch.addmm(b.fc2.bias, g[C * i: C * (i + 1)].t(), fc2_weight[:, C * i: C * (i + 1)].t()))
                 for i, b in enumerate(branches))
    return x + drop_path(update.view(x.shape))


class PosMLPBlock(nn.Module):
    """One block; `block_type` says how temporal (T), spatial (S) and joint (ST) branches combine.

    parallel (the authors'): x + dp(S(x) + T(x)); sequential: x + dp(T(x)), then + dp(S(.));
    joint: x + dp(ST(x)); spatial / temporal: a single branch (ablations).
    """

    def __init__(
        self,
        dim: int,
        block_type: str,
        temporal_window: int,
        spatial_window: int,
        gamma: int,
        adapt_temporal: bool,
        drop_path: float = 0.0,
        drop: float = 0.0,
        table_init: str = "zeros",
    ) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        self.block_type = block_type
        self.layout = "channel_major"
        self.folded = False

        def branch(kind: str, window: tuple[int, ...]) -> GatedBranch:
            gate = PositionalGatingUnit(dim, kind, window, gamma, adapt_temporal, table_init)
            return GatedBranch(dim, gate, drop)

        if block_type in ("parallel", "sequential", "temporal"):
            self.temporal = branch("temporal", (temporal_window,))
        if block_type in ("parallel", "sequential", "spatial"):
            self.spatial = branch("spatial", (spatial_window, spatial_window))
        if block_type == "joint":
            self.joint = branch("spatiotemporal", (temporal_window, spatial_window, spatial_window))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @property
    def steps(self) -> tuple[tuple[str, ...], ...]:
        """The residual steps (`STEPS`): per step, the names of the branches summed into it."""
        return STEPS[self.block_type]

    def branches(self, step: Sequence[str]) -> list[GatedBranch]:
        return [getattr(self, name) for name in step]

    def fold_weights(self) -> None:
        """Freeze each step's channel-major weights (`channel_major_step`) as buffers: for inference only, as
        later parameter updates do not reach them."""
        with torch.no_grad():
            for i, step in enumerate(self.steps):
                for name, t in zip(FOLDED, step_weights(self.branches(step))):
                    self.register_buffer(f"step{i}_{name}", t.contiguous(), persistent=False)
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each step in turn; channel-major unless the layout is channels-last or torch.compile traces it."""
        channels_last = self.layout == "channels_last" or torch.compiler.is_compiling()
        for i, step in enumerate(self.steps):
            branches = self.branches(step)
            if channels_last:
                x = x + self.drop_path(sum(b(x) for b in branches))
            else:
                weights = None
                if self.folded:
                    weights = [getattr(self, f"step{i}_{name}") for name in FOLDED]
                x = channel_major_step(x, branches, self.drop_path, weights)
        return x


class PosMLPStage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: Sequence[PosMLPBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def _per_stage(value: Any, name: str, n: int = 4) -> tuple:
    if isinstance(value, (str, int, float)) or value is None:
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"{name} needs one value per stage ({n}), got {value}")
    return value


class PosMLPVideo(nn.Module):
    """PosMLP-Video backbone and classifier.

    Args:
        num_classes: classifier outputs (0 for no head).
        num_frames: frames the model is built for; a temporal window equal to it adapts to other clip
            lengths (cropped or interpolated table), a smaller one tiles the clip.
        img_size: nominal input size (for default configs and FLOP counts; any size runs).
        embed_dims, depths, spatial_windows, gammas: per-stage widths, block counts, spatial window side
            and channel groups (both units of a stage use the same gamma, as in the authors' models).
        temporal_windows: per-stage temporal window (default: num_frames, the authors' choice).
        block_types: one of BLOCK_TYPES, or one per stage.
        drop_rate: dropout after each branch and before the head; drop_path_rate: stochastic depth,
            rising linearly from 0 over all blocks.
        table_init: "zeros" (the authors' effective init) or "trunc_normal".
    """

    def __init__(
        self,
        num_classes: int = 174,
        in_chans: int = 3,
        num_frames: int = 16,
        img_size: int | Sequence[int] = 224,
        embed_dims: Sequence[int] = (72, 144, 288, 576),
        depths: Sequence[int] = (3, 4, 9, 3),
        spatial_windows: Sequence[int] = (14, 14, 14, 7),
        gammas: Sequence[int] = (8, 16, 32, 64),
        temporal_windows: Sequence[int] | int | None = None,
        block_types: Sequence[str] | str = "parallel",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        table_init: str = "zeros",
    ) -> None:
        super().__init__()
        img_size = tuple(img_size) if isinstance(img_size, (tuple, list)) else (img_size, img_size)
        temporal_windows = _per_stage(temporal_windows, "temporal_windows")
        temporal_windows = tuple(num_frames if t is None else t for t in temporal_windows)
        block_types = _per_stage(block_types, "block_types")
        for name, value in (("embed_dims", embed_dims), ("depths", depths), ("spatial_windows", spatial_windows),
                            ("gammas", gammas)):
            _per_stage(value, name)
        self.config = dict(
            num_classes=num_classes, in_chans=in_chans, num_frames=num_frames, img_size=list(img_size),
            embed_dims=list(embed_dims), depths=list(depths), spatial_windows=list(spatial_windows),
            gammas=list(gammas), block_types=list(block_types),
            # None = the whole clip (adapts to the frame count), so a num_frames override carries over
            temporal_windows=[None if t == num_frames else t for t in temporal_windows],
            drop_rate=drop_rate, drop_path_rate=drop_path_rate, table_init=table_init,
        )
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.img_size = img_size
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.grad_checkpointing = False

        self.stem = Stem(in_chans, embed_dims[0])
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # plain numbers, also on "meta"
        stages, self.feature_info, reduction, k = [], [], 4, 0
        for i in range(4):
            downsample = Downsample(embed_dims[i - 1], embed_dims[i]) if i else nn.Identity()
            reduction *= 2 if i else 1
            blocks = [
                PosMLPBlock(
                    embed_dims[i], block_types[i], temporal_windows[i], spatial_windows[i], gammas[i],
                    adapt_temporal=temporal_windows[i] == num_frames, drop_path=dpr[k + j], drop=drop_rate,
                    table_init=table_init,
                )
                for j in range(depths[i])
            ]
            k += depths[i]
            stages.append(PosMLPStage(downsample, blocks))
            self.feature_info.append(dict(num_chs=embed_dims[i], reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(embed_dims[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # --- timm model API -------------------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Relative position tables and token biases (kept out of weight decay, like norms and biases)."""
        return {n for n, _ in self.named_parameters() if n.endswith(("relative_position_bias_table", "token_bias"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def set_layout(self, layout: str) -> None:
        """The blocks' activation layout: "channel_major" (default, faster in training and inference) or
        "channels_last" (each branch module applied in turn: the reference definition, per-module hooks)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        for stage in self.stages:
            for block in stage.blocks:
                block.layout = layout

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError("PosMLP-Video pools by averaging all tokens (global_pool='avg')")
        self.num_classes = self.config["num_classes"] = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self._init_weights(self.head)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.config["in_chans"]:
            raise ValueError(f"expected a (B, {self.config['in_chans']}, T, H, W) clip batch, got {tuple(x.shape)}")

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCTHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs (after each stage's last block) as (B, C, T, H, W), timm-style.

        `norm` applies the final LayerNorm to the last stage's intermediate, as timm does.
        """
        if output_fmt not in ("NCTHW", "NTHWC", "NCHW", "NHWC"):  # timm's generic names accepted too
            raise ValueError("output_fmt must be 'NCTHW' (channels first) or 'NTHWC' (channels last)")
        channels_first = output_fmt in ("NCTHW", "NCHW")
        self._check_input(x)
        take, max_index = feature_take_indices(len(self.stages), indices)
        intermediates = []
        x = self.stem(x)
        stages = self.stages if not stop_early else self.stages[: max_index + 1]
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                y = self.norm(x) if norm and i == len(self.stages) - 1 else x
                intermediates.append(_to_channels_first(y) if channels_first else y)
        if intermediates_only:
            return intermediates
        return _to_channels_first(x), intermediates

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> last stage output (B, C, T, H/32, W/32), before the final norm."""
        self._check_input(x)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return _to_channels_first(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """LayerNorm every token, average all T*H*W tokens, classify."""
        x = self.norm(_to_channels_last(x)).mean(dim=(1, 2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --- registered variants ------------------------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    # The authors' released SSV1_MLP_S16 configuration.
    "posmlp_video_s": dict(
        num_classes=174, num_frames=16, img_size=224, embed_dims=(72, 144, 288, 576), depths=(3, 4, 9, 3),
        spatial_windows=(14, 14, 14, 7), gammas=(8, 16, 32, 64),
    ),
    # Our scale-up (the paper's B configuration table is not public): wider and deeper than S.
    "posmlp_video_b": dict(
        num_classes=174, num_frames=16, img_size=224, embed_dims=(96, 192, 384, 768), depths=(4, 6, 15, 4),
        spatial_windows=(14, 14, 14, 7), gammas=(8, 16, 32, 64),
    ),
    # Small enough to train on SynthMotion (8 x 64 x 64 clips) on 2 CPU cores: the bundled checkpoint.
    "posmlp_video_xs": dict(
        num_classes=12, num_frames=8, img_size=64, embed_dims=(32, 64, 128, 256), depths=(1, 1, 3, 1),
        spatial_windows=(8, 8, 4, 2), gammas=(4, 8, 16, 32),
    ),
}


def _cfg(name: str) -> dict[str, Any]:
    v = VARIANTS[name]
    return dict(
        num_classes=v["num_classes"], input_size=(3, v["img_size"], v["img_size"]),
        mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), first_conv="stem.conv1", classifier="head",
        license="apache-2.0", notes=(f"{v['num_frames']} frames",),
    )


default_cfgs = generate_default_cfgs({name: _cfg(name) for name in VARIANTS})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> PosMLPVideo:
    args = {**VARIANTS[variant], **kwargs}
    return build_model_with_cfg(
        PosMLPVideo, variant, pretrained,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"), **args,
    )


@register_model
def posmlp_video_s(pretrained: bool = False, **kwargs: Any) -> PosMLPVideo:
    """PosMLP-Video S16: the authors' released configuration (13.5 M parameters with 174 classes)."""
    return _create("posmlp_video_s", pretrained, **kwargs)


@register_model
def posmlp_video_b(pretrained: bool = False, **kwargs: Any) -> PosMLPVideo:
    """PosMLP-Video B: our scale-up of S (dims 96..768, depths 4/6/15/4); not a paper configuration."""
    return _create("posmlp_video_b", pretrained, **kwargs)


@register_model
def posmlp_video_xs(pretrained: bool = False, **kwargs: Any) -> PosMLPVideo:
    """PosMLP-Video XS: a CPU-trainable model for SynthMotion (used by the bundled checkpoint)."""
    return _create("posmlp_video_xs", pretrained, **kwargs)


def create_model(name: str, **kwargs: Any) -> PosMLPVideo:
    """Build a registered variant by name without going through timm's pretrained machinery."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(VARIANTS)}")
    return PosMLPVideo(**{**VARIANTS[name], **kwargs})


__all__ = ["BLOCK_TYPES", "LAYOUTS", "STEPS", "PosMLPVideo", "PosMLPBlock", "GatedBranch", "VARIANTS",
           "channel_major_step", "create_model"]
