"""The positional gating unit: token mixing by learned relative position encoding (LRPE) in windows.

One module serves the paper's temporal unit (PoTGU, 1-D windows over frames), spatial unit (PoSGU, 2-D
windows over h x w) and our joint unit (PoSTGU, 3-D windows over t x h x w). Inside a window of N tokens
the mixing is ``u'[m, c] = sum_n table[idx(m, n), c mod gamma] * u[n, c] + token_bias[m]``: the weight
between two tokens depends only on their offset (query - key) and on the channel group, so a window of
N tokens costs a table of prod(2 w_i - 1) x gamma numbers instead of N x N.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

AXES = {"temporal": "t", "spatial": "hw", "spatiotemporal": "thw"}


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """(N, N) index of each (query, key) pair into a table of prod(2 w_i - 1) offsets.

    Tokens are numbered row-major over the window (first axis slowest); the offset is query - key, and the
    first axis is the most significant digit (axis i counts in base 2 w_i - 1), so for a 3-D window the index
    is dt-major, then dh, then dw. Being linear in the offsets, the index is a difference of two per-token codes
    plus a constant: one (N, N) subtraction for any number of axes.
    """
    radix = [2 * w - 1 for w in window]
    place = [math.prod(radix[d + 1:]) for d in range(len(window))]  # the value of one step along axis d
    coords = torch.stack(torch.meshgrid([torch.arange(w) for w in window], indexing="ij")).flatten(1)  # (D, N)
    code = sum(c * p for c, p in zip(coords, place))
    return code[:, None] - code[None, :] + sum((w - 1) * p for w, p in zip(window, place))


_SHARED_INDICES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def shared_index(window: tuple[int, ...], device: torch.device | str | None = None) -> torch.Tensor:
    """`relative_position_index(window)` on `device` (default: the default device, e.g. ``meta`` when a model is
    only sized), one read-only tensor shared by every unit that uses that window and device while any of them
    is alive (a joint 16 x 14 x 14 window's is 79 MB; a joint stage has one per block)."""
    device = torch.empty(0).device if device is None else torch.device(device)
    key = (window, device)
    index = _SHARED_INDICES.get(key)
    if index is None:
        # built on the CPU (or meta) and moved; outside inference_mode, as it may be saved for backward
        with torch.inference_mode(False), torch.device("meta" if device.type == "meta" else "cpu"):
            index = _SHARED_INDICES[key] = relative_position_index(window).to(device)
    return index


def _interpolate(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linearly resample the trailing len(size) dims of a (channels, *dims) tensor, corners aligned."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    wide = x if x.dtype in (torch.float32, torch.float64) else x.float()  # float64 stays exact (gradcheck)
    out = F.interpolate(wide[None], size=tuple(size), mode=mode, align_corners=True)[0]
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


def _group_major(x: torch.Tensor, window: tuple[int, int, int], gamma: int) -> torch.Tensor:
    """View (B, T, H, W, C), T/H/W multiples of the window, as (gamma, wt, wh, ww, B, nt, nh, nw, C / gamma).

    Channel c = v * gamma + s goes to group s, so ``.reshape(gamma, N, -1)`` of this view gives every group's
    window tokens as the rows of one matrix: the layout a single batched matmul needs (one copy).
    """
    B, T, H, W, C = x.shape
    wt, wh, ww = window
    x = x.view(B, T // wt, wt, H // wh, wh, W // ww, ww, C // gamma, gamma)
    return x.permute(8, 2, 4, 6, 0, 1, 3, 5, 7)


def _channels_last(x: torch.Tensor, window: tuple[int, int, int], padded: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `_group_major` for a (gamma, N, K) result: a (B, nt, wt, nh, wh, nw, ww, C/gamma, gamma) view."""
    B, Tp, Hp, Wp = padded
    wt, wh, ww = window
    gamma = x.shape[0]
    x = x.view(gamma, wt, wh, ww, B, Tp // wt, Hp // wh, Wp // ww, -1)
    return x.permute(4, 5, 1, 6, 2, 7, 3, 8, 0)


def group_order(dim: int, gamma: int) -> torch.Tensor:
    """The channel-major, group-ordered row order: row s * V + v holds channel v * gamma + s (V = dim / gamma).

    With each group's channels together, the rows of one group are one (V, B, T, H, W) block: a temporal window
    or a window covering the map is a strided matrix of it, so the mixing needs no copy.
    """
    j = torch.arange(dim)
    return (j % (dim // gamma)) * gamma + j // (dim // gamma)


def _window3(kind: str, window: Sequence[int]) -> tuple[int, int, int]:
    sizes = dict(zip(AXES[kind], window))
    return sizes.get("t", 1), sizes.get("h", 1), sizes.get("w", 1)


class _Kernel:
    """Token mixing of channel-major maps ``(gamma, V * B, T, H, W)`` (T, H, W multiples of the window).

    Two layouts, both copy-free where the window allows: "columns" (a temporal window over a map of more than
    one token: each window is an (N, H * W) matrix mixed from the left) and "rows" (each window one row of N
    tokens mixed from the right: a view when a window is contiguous in memory, such as a window covering the
    map, else one partition copy). ``forward`` writes ``(W u + b) * v`` into ``out`` and returns the mixed
    tokens when backward needs them; ``backward`` writes du and dv and returns the gradients of W and b.
    """

    def __init__(self, shape: Sequence[int], window: tuple[int, int, int]) -> None:
        self.gamma, self.rows_per_group, T, H, W = shape
        self.window, (wt, wh, ww) = window, window
        self.N = wt * wh * ww
        self.columns = wh == ww == 1 and H * W > 1
        self.split = (shape[0], shape[1], T // wt, wt, H // wh, wh, W // ww, ww)
        self.contiguous = (ww == W and (wh == H or wt == 1)) or wt == wh == 1

    def cols(self, x: torch.Tensor) -> torch.Tensor:
        """(gamma * R, N, H * W) view: every temporal window's frames as rows."""
        return x.reshape(-1, self.N, x.shape[-2] * x.shape[-1])

    def win(self, x: torch.Tensor) -> torch.Tensor:
        """(gamma, VB, nt, nh, nw, wt, wh, ww) view: window index, then the tokens of the window."""
        return x.view(self.split).permute(0, 1, 2, 4, 6, 3, 5, 7)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """(gamma, R, N): one row per window; a view when windows are contiguous, else a copy."""
        return self.win(x).reshape(self.gamma, -1, self.N)

    def expanded(self, weights: torch.Tensor, R: int) -> torch.Tensor:
        return weights[:, None].expand(self.gamma, R, self.N, self.N).reshape(-1, self.N, self.N)

    def forward(self, u: torch.Tensor, v: torch.Tensor, out: torch.Tensor, weights: torch.Tensor,
                bias: torch.Tensor, keep: bool) -> torch.Tensor | None:
        N = self.N
        if self.columns:
            cu, cv, co = self.cols(u), self.cols(v), self.cols(out)
            w = self.expanded(weights, cu.shape[0] // self.gamma)
            if not keep:
                torch.baddbmm(bias.view(1, N, 1), w, cu, out=co).mul_(cv)
                return None
            mixed = torch.baddbmm(bias.view(1, N, 1), w, cu)
            torch.mul(mixed, cv, out=co)
            return mixed
        if self.contiguous and not keep:
            torch.baddbmm(bias.view(1, 1, N), self.rows(u), weights.transpose(1, 2), out=self.rows(out))
            self.rows(out).mul_(self.rows(v))
            return None
        mixed = torch.baddbmm(bias.view(1, 1, N), self.rows(u), weights.transpose(1, 2))
        torch.mul(mixed.view(self.split[:2] + self.split[2::2] + self.split[3::2]), self.win(v), out=self.win(out))
        return mixed

    def backward(self, dg: torch.Tensor, u: torch.Tensor, v: torch.Tensor, mixed: torch.Tensor,
                 weights: torch.Tensor, du: torch.Tensor, dv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.columns:
            cg, cu = self.cols(dg), self.cols(u)
            R = cu.shape[0] // self.gamma
            dm = cg * self.cols(v)
            torch.mul(cg, mixed, out=self.cols(dv))
            torch.bmm(self.expanded(weights.transpose(1, 2), R), dm, out=self.cols(du))
            dw = torch.bmm(dm, cu.transpose(1, 2)).view(self.gamma, R, self.N, self.N).sum(1)
            return dw, dm.sum((0, 2))
        shape = self.split[:2] + self.split[2::2] + self.split[3::2]
        if self.contiguous:
            dm = self.rows(dg) * self.rows(v)
            torch.mul(self.rows(dg), mixed, out=self.rows(dv))
            torch.bmm(dm, weights, out=self.rows(du))
        else:
            dm = dg.new_empty(mixed.shape)
            torch.mul(self.win(dg), self.win(v), out=dm.view(shape))
            torch.mul(self.win(dg), mixed.view(shape), out=self.win(dv))
            self.win(du).copy_(torch.bmm(dm, weights).view(shape))
        dw = torch.bmm(dm.transpose(1, 2), self.rows(u))
        return dw, dm.sum((0, 1))


class _ChannelMajorMix(torch.autograd.Function):
    """Every gating unit of a residual step on its channel-major slice of ``y`` (see `mix_channel_major`).

    Backward is the transposed batched matmuls in the same layouts (no layout copies beyond the forward's);
    it saves u, v (views of ``y``) and the mixed tokens, as autograd does for the channels-last unit.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, thw: tuple[int, ...], gates: Sequence[PositionalGatingUnit], keep: bool,
                *params: torch.Tensor) -> torch.Tensor:
        C = y.shape[0] // (2 * len(gates))
        g = y.new_empty(len(gates) * C, y.shape[1])
        saved, ctx.plans = [], []
        with torch.autocast(y.device.type, enabled=False):
            for i, gate in enumerate(gates):
                weights, bias = params[2 * i].to(y.dtype), params[2 * i + 1].to(y.dtype)
                u, v, out = y[2 * C * i: 2 * C * i + C], y[2 * C * i + C: 2 * C * (i + 1)], g[C * i: C * (i + 1)]
                plan = _Plan(gate, C, thw)
                mixed = plan.forward(u, v, out, weights, bias, keep)
                ctx.plans.append(plan)
                saved.append(mixed)
        if keep:
            ctx.save_for_backward(y, *params, *saved)
        return g

    @staticmethod
    def backward(ctx, dg: torch.Tensor):
        y, *rest = ctx.saved_tensors
        n = len(ctx.plans)
        params, saved = rest[: 2 * n], rest[2 * n:]
        dg = dg.contiguous()
        C = y.shape[0] // (2 * n)
        dy = torch.empty_like(y)
        grads = []
        with torch.autocast(y.device.type, enabled=False):
            for i, plan in enumerate(ctx.plans):
                weights = params[2 * i].to(y.dtype)
                rows = slice(2 * C * i, 2 * C * i + C), slice(2 * C * i + C, 2 * C * (i + 1))
                dw, db = plan.backward(dg[C * i: C * (i + 1)].to(y.dtype), y[rows[0]], y[rows[1]], saved[i],
                                       weights, dy[rows[0]], dy[rows[1]])
                grads += [dw.to(params[2 * i].dtype), db.to(params[2 * i + 1].dtype)]
        return (dy, None, None, None, *grads)


class _Plan:
    """One gating unit's mixing of a channel-major (C, B*T*H*W) slice: padding (zero tokens) and a `_Kernel`."""

    def __init__(self, gate: PositionalGatingUnit, C: int, thw: Sequence[int]) -> None:
        B, T, H, W = thw
        self.window = gate.runtime_window(T, H, W)
        win3 = _window3(gate.kind, self.window)
        self.size = (T, H, W)
        self.pad = [-n % w for n, w in zip(self.size, win3)]
        self.shape = (gate.gamma, C // gate.gamma * B, T, H, W)
        padded = self.shape[:2] + tuple(n + p for n, p in zip(self.size, self.pad))
        self.kernel = _Kernel(padded, win3)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(self.shape)
        return F.pad(x, (0, self.pad[2], 0, self.pad[1], 0, self.pad[0])) if any(self.pad) else x

    def _out(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(buffer to write, final view): a padded temporary when the map is padded."""
        x = x.view(self.shape)
        if not any(self.pad):
            return x, x
        return x.new_empty(self.kernel.split[:2] + tuple(n + p for n, p in zip(self.size, self.pad))), x

    def _crop(self, buffer: torch.Tensor, target: torch.Tensor) -> None:
        if buffer is not target:
            T, H, W = self.size
            target.copy_(buffer[..., :T, :H, :W])

    def forward(self, u, v, out, weights, bias, keep):
        buffer, target = self._out(out)
        mixed = self.kernel.forward(self._in(u), self._in(v), buffer, weights, bias, keep)
        self._crop(buffer, target)
        return mixed

    def backward(self, dg, u, v, mixed, weights, du, dv):
        (du_buf, du_t), (dv_buf, dv_t) = self._out(du), self._out(dv)
        grads = self.kernel.backward(self._in(dg), self._in(u), self._in(v), mixed, weights, du_buf, dv_buf)
        self._crop(du_buf, du_t)
        self._crop(dv_buf, dv_t)
        return grads


def mix_channel_major(gates: Sequence[PositionalGatingUnit], y: torch.Tensor, thw: Sequence[int]) -> torch.Tensor:
    """Gating units on channel-major activations: ``y`` is (len(gates) * 2C, B*T*H*W), per unit its u rows then
    its v rows, each in the unit's `group_order`; returns (len(gates) * C, B*T*H*W), per unit (W u + b) * v in
    the same order. Differentiable (input, tables and token biases); the counterpart of ``forward``'s
    channels-last layout."""
    B, T, H, W = (int(n) for n in thw)
    params = []
    for gate in gates:
        params += gate.mixing_weights(gate.runtime_window(T, H, W))
    # without autograd (inference) nothing is saved and the mixing runs in place where the layout allows
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in (y, *params))
    return _ChannelMajorMix.apply(y, (B, T, H, W), tuple(gates), keep, *params)


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

    Maps that the window does not divide are padded with zero u tokens (after the projection), so the
    padding contributes nothing to real tokens; a map smaller than the window uses the window's leading
    part, which is the same computation without the padding.
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
        self.register_buffer("relative_position_index", shared_index(window), persistent=False)
        # the channel-major row order (`group_order`): the layout `mix_channel_major` takes
        self.register_buffer("channel_order", group_order(dim, gamma), persistent=False)
        self._cache: dict[tuple[int, ...], tuple] = {}  # window -> (table, version, bias, version, expanded)
        self._indices: dict[tuple, torch.Tensor] = {}  # (window, device) -> index of a window other than ours
        self.reset_parameters(table_init)

    def reset_parameters(self, table_init: str = "zeros") -> None:
        if table_init == "zeros":
            nn.init.zeros_(self.relative_position_bias_table)
        elif table_init == "trunc_normal":
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            raise ValueError(f"table_init must be 'zeros' or 'trunc_normal', got {table_init!r}")
        nn.init.zeros_(self.token_bias)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> PositionalGatingUnit:
        """After ``.to()``, ``.cuda()`` or ``to_empty()``, the two buffers (functions of the window and the
        channels only) are rebuilt on the new device: the index shared per window and device instead of copied
        per unit, and neither left uninitialised by ``to_empty`` (they are not in the state dict)."""
        super()._apply(fn, recurse)
        device = self.relative_position_index.device
        self.relative_position_index = shared_index(self.window, device)
        self.channel_order = group_order(self.dim, self.gamma).to(device)
        return self

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
        """The expanded (gamma, N, N) mixing matrices and (N,) token biases applied for `window`.

        In eval mode without autograd the expansion is cached per window and refreshed whenever the table
        or token bias changes (a new tensor, or an in-place update such as ``load_state_dict``). Under
        torch.compile it is recomputed in the graph (and constant-folded when the graph freezes weights).
        """
        window = self.window if window is None else tuple(window)
        table, bias = self.relative_position_bias_table, self.token_bias
        # inference tensors (made under torch.inference_mode) have no version counter to validate a cache by
        use_cache = not (self.training or torch.is_grad_enabled() or torch.compiler.is_compiling()
                         or table.is_inference() or bias.is_inference())
        if use_cache and window in self._cache:
            t, tv, b, bv, expanded = self._cache[window]
            if (t.data_ptr(), tv, b.data_ptr(), bv) == (table.data_ptr(), table._version, bias.data_ptr(), bias._version):
                return expanded
        index = self._index(window)
        if window != self.window:
            centre = [axis == "t" for axis in AXES[self.kind]]
            table, bias = resize_position_params(table, bias, self.window, window, centre)
        # (gamma, N, N), contiguous for bmm; the table's gradient is the expanded one summed through the index
        # (index_select's backward is an index_add_)
        n = index.shape[0]
        expanded = table.t().contiguous().index_select(1, index.view(-1)).view(-1, n, n), bias
        if use_cache:  # the aliases keep the storage alive, so its address identifies it
            p, b = self.relative_position_bias_table, self.token_bias
            self._cache[window] = (p.detach(), p._version, b.detach(), b._version, expanded)
        return expanded

    def _index(self, window: tuple[int, ...]) -> torch.Tensor:
        """The (N, N) index for `window`; built once per window and device (it depends on nothing else)."""
        if window == self.window:
            return self.relative_position_index
        key = (window, self.relative_position_index.device)
        if key not in self._indices:
            self._indices[key] = shared_index(*key)
        return self._indices[key]

    def _mix_groups(self, tokens: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
        """(gamma, N, K) tokens of each channel group -> mixed, one batched matmul with the bias fused."""
        weights, bias = self.mixing_weights(window)
        return torch.baddbmm(bias.to(tokens.dtype)[None, :, None], weights.to(tokens.dtype), tokens)

    def mix(self, u: torch.Tensor, window: Sequence[int] | None = None) -> torch.Tensor:
        """Mix (B, N, C) window tokens: out[b, m, c] = sum_n W[c mod gamma, m, n] u[b, n, c] + bias[m]."""
        window = self.window if window is None else tuple(window)
        B, N, C = u.shape
        tokens = u.reshape(B, N, C // self.gamma, self.gamma).permute(3, 1, 0, 2).reshape(self.gamma, N, -1)
        out = self._mix_groups(tokens, window).view(self.gamma, N, B, -1)
        return out.permute(2, 1, 3, 0).reshape(B, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 2 * dim) -> (B, T, H, W, dim).

        The u half is copied once into group-major window order, mixed by one batched matmul, and read back
        through a strided view by the product with v, which writes the channels-last result.
        """
        u, v = x.chunk(2, dim=-1)
        B, T, H, W, C = u.shape
        window = self.runtime_window(T, H, W)
        win3 = _window3(self.kind, window)
        pad = [-n % w for n, w in zip((T, H, W), win3)]
        if any(pad):  # zero tokens: the padding adds nothing to the mixing of real tokens
            u = F.pad(u, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        padded = (B, *u.shape[1:4])
        tokens = _group_major(u, win3, self.gamma).reshape(self.gamma, math.prod(window), -1)
        out = _channels_last(self._mix_groups(tokens, window), win3, padded)
        if any(pad):
            return v * out.reshape(*padded, C)[:, :T, :H, :W]
        return (v.view(out.shape) * out).view(B, T, H, W, C)
