"""The positional gating unit: token mixing by learned relative position encoding (LRPE) in windows.

One module serves the paper's temporal unit (PoTGU, 1-D windows over frames), spatial unit (PoSGU, 2-D
windows over h x w) and our joint unit (PoSTGU, 3-D windows over t x h x w). Inside a window of N tokens
the mixing is ``u'[m, c] = sum_n table[idx(m, n), c mod gamma] * u[n, c] + token_bias[m]``: the weight
between two tokens depends only on their offset (query - key) and on the channel group, so a window of
N tokens costs a table of prod(2 w_i - 1) x gamma numbers instead of N x N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

AXES = {"temporal": "t", "spatial": "hw", "spatiotemporal": "thw"}


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """(N, N) index of each (query, key) pair into a table of prod(2 w_i - 1) offsets.

    Tokens are numbered row-major over the window (first axis slowest); the offset is query - key, and the
    first axis is the most significant digit, so for a 3-D window the index is dt-major, then dh, then dw.
    """
    coords = torch.stack(torch.meshgrid([torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # (D, N, N)
    index = torch.zeros(rel.shape[1:], dtype=torch.long)
    for d, w in enumerate(window):
        index = index * (2 * w - 1) + rel[d] + w - 1
    return index


def _interpolate(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linearly resample the trailing len(size) dims of a (channels, *dims) tensor, corners aligned."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    out = F.interpolate(x[None].float(), size=tuple(size), mode=mode, align_corners=True)[0]
    return out.to(x.dtype)


def resize_position_params(
    table: torch.Tensor,
    token_bias: torch.Tensor,
    old_window: Sequence[int],
    new_window: Sequence[int],
    centre: Sequence[bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapt a unit's (table, token_bias) from one window to another, axis by axis.

    An axis that shrinks keeps the central offsets of the table, and the central (``centre[d]``) or leading
    token biases; an axis that grows is linearly interpolated (corners aligned, so offset 0 stays offset 0).
    ``table`` is (prod(2w-1), gamma), ``token_bias`` is (prod(w),).
    """
    old, new = tuple(old_window), tuple(new_window)
    if old == new:
        return table, token_bias
    centre = tuple(centre) if centre is not None else (True,) * len(old)
    gamma = table.shape[-1]
    t = table.t().reshape(gamma, *[2 * w - 1 for w in old])
    b = token_bias.reshape(1, *old)
    crop_t, crop_b = [slice(None)], [slice(None)]
    for w0, w1, c in zip(old, new, centre):
        if w1 < w0:
            crop_t.append(slice(w0 - w1, w0 + w1 - 1))
            start = (w0 - w1) // 2 if c else 0
            crop_b.append(slice(start, start + w1))
        else:
            crop_t.append(slice(None))
            crop_b.append(slice(None))
    t = _interpolate(t[tuple(crop_t)], [2 * w - 1 for w in new])
    b = _interpolate(b[tuple(crop_b)], new)
    return t.reshape(gamma, -1).t().contiguous(), b.reshape(-1).contiguous()


def window_from_params(table_len: int, num_tokens: int, ndim: int) -> tuple[int, ...]:
    """Recover a window shape from a table length and token count (square spatial windows)."""
    if ndim == 1:
        return (num_tokens,)
    if ndim == 2:
        w = math.isqrt(num_tokens)
        return (w, w)
    for t in range(1, num_tokens + 1):
        if num_tokens % t == 0:
            w = math.isqrt(num_tokens // t)
            if t * w * w == num_tokens and (2 * t - 1) * (2 * w - 1) ** 2 == table_len:
                return (t, w, w)
    raise ValueError(f"no t x w x w window has {num_tokens} tokens and {table_len} offsets")


def _pad_partition(x: torch.Tensor, window: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, T, H, W, C) -> (B * windows, wt * wh * ww, C), zero-padding T, H, W up to multiples."""
    B, T, H, W, C = x.shape
    wt, wh, ww = window
    pt, ph, pw = -T % wt, -H % wh, -W % ww
    if pt or ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph, 0, pt))
    Tp, Hp, Wp = T + pt, H + ph, W + pw
    x = x.view(B, Tp // wt, wt, Hp // wh, wh, Wp // ww, ww, C).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, wt * wh * ww, C), (B, Tp, Hp, Wp)


def _unpartition(x: torch.Tensor, window: tuple[int, int, int], padded: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `_pad_partition` (padding kept; the caller crops)."""
    B, Tp, Hp, Wp = padded
    wt, wh, ww = window
    C = x.shape[-1]
    x = x.view(B, Tp // wt, Hp // wh, Wp // ww, wt, wh, ww, C).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(B, Tp, Hp, Wp, C)


class PositionalGatingUnit(nn.Module):
    """Split the channels into u and v, mix u over window tokens with LRPE, return mix(u) * v.

    Args:
        dim: channels of u (the input has 2 * dim).
        kind: "temporal" (windows over frames), "spatial" (h x w) or "spatiotemporal" (t x h x w).
        window: the window along the mixed axes, e.g. (16,), (14, 14) or (4, 7, 7).
        gamma: number of channel groups with their own table; channel c uses group c mod gamma.
        adapt_temporal: the temporal window spans the whole clip the model was built for, so a clip
            with another frame count uses a cropped (fewer frames) or interpolated (more frames) table
            instead of tiling windows.
        table_init: "zeros" (the authors' effective init) or "trunc_normal" (std 0.02).

    Spatial maps that the window does not divide are zero-padded and the padded tokens are masked out
    of the mixing, so they contribute nothing to real tokens; a map smaller than the window uses the
    window's leading part, which is the same computation without the padding.
    """

    def __init__(
        self,
        dim: int,
        kind: str,
        window: Sequence[int],
        gamma: int,
        adapt_temporal: bool = False,
        table_init: str = "zeros",
    ) -> None:
        super().__init__()
        if kind not in AXES:
            raise ValueError(f"kind must be one of {sorted(AXES)}, got {kind!r}")
        window = tuple(int(w) for w in window)
        if len(window) != len(AXES[kind]):
            raise ValueError(f"a {kind} unit needs a {len(AXES[kind])}-D window, got {window}")
        if dim % gamma:
            raise ValueError(f"channels ({dim}) must be divisible by gamma ({gamma})")
        self.dim, self.kind, self.window, self.gamma = dim, kind, window, gamma
        self.adapt_temporal = adapt_temporal
        self.relative_position_bias_table = nn.Parameter(torch.zeros(math.prod(2 * w - 1 for w in window), gamma))
        self.token_bias = nn.Parameter(torch.zeros(math.prod(window)))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.reset_parameters(table_init)

    def reset_parameters(self, table_init: str = "zeros") -> None:
        if table_init == "zeros":
            nn.init.zeros_(self.relative_position_bias_table)
        elif table_init == "trunc_normal":
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            raise ValueError(f"table_init must be 'zeros' or 'trunc_normal', got {table_init!r}")
        nn.init.zeros_(self.token_bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind}, window={self.window}, gamma={self.gamma}"

    def runtime_window(self, T: int, H: int, W: int) -> tuple[int, ...]:
        """The window (over the mixed axes) used for a (T, H, W) input."""
        sizes = dict(t=T, h=H, w=W)
        out = []
        for axis, w in zip(AXES[self.kind], self.window):
            if axis == "t" and self.adapt_temporal:
                out.append(T)
            else:
                out.append(min(w, sizes[axis]))
        return tuple(out)

    def mixing_weights(self, window: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The expanded (gamma, N, N) mixing matrices and (N,) token biases applied for `window`."""
        window = self.window if window is None else tuple(window)
        table, bias = self.relative_position_bias_table, self.token_bias
        if window == self.window:
            index = self.relative_position_index
        else:
            centre = [axis == "t" for axis in AXES[self.kind]]
            table, bias = resize_position_params(table, bias, self.window, window, centre)
            index = relative_position_index(window).to(table.device)
        n = math.prod(window)
        weights = table[index.reshape(-1)].reshape(n, n, self.gamma).permute(2, 0, 1)
        return weights, bias

    def mix(self, u: torch.Tensor, window: Sequence[int] | None = None) -> torch.Tensor:
        """Mix (B, N, C) window tokens: out[b, m, c] = sum_n W[c mod gamma, m, n] u[b, n, c] + bias[m]."""
        weights, bias = self.mixing_weights(window)
        B, N, C = u.shape
        out = torch.einsum("smn,bnvs->bmvs", weights.to(u.dtype), u.reshape(B, N, C // self.gamma, self.gamma))
        return (out + bias.to(u.dtype)[:, None, None]).reshape(B, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 2 * dim) -> (B, T, H, W, dim)."""
        u, v = x.chunk(2, dim=-1)
        B, T, H, W, C = u.shape
        window = self.runtime_window(T, H, W)
        sizes = dict(zip(AXES[self.kind], window))
        win3 = (sizes.get("t", 1), sizes.get("h", 1), sizes.get("w", 1))
        tokens, padded = _pad_partition(u, win3)
        if padded[1:] != (T, H, W):
            valid = torch.zeros(1, *padded[1:], 1, dtype=u.dtype, device=u.device)
            valid[:, :T, :H, :W] = 1
            mask, _ = _pad_partition(valid, win3)  # (windows per clip, N, 1)
            tokens = (tokens.view(B, -1, *tokens.shape[1:]) * mask).flatten(0, 1)
        out = _unpartition(self.mix(tokens, window), win3, padded)
        if padded[1:] != (T, H, W):
            out = out[:, :T, :H, :W]
        return out * v
