"""The positional gating unit against hand-computed expectations."""

from __future__ import annotations

import pytest
import torch

from posmlp_video.models.gating import (
    PositionalGatingUnit,
    relative_position_index,
    resize_position_params,
    window_from_params,
)


def test_index_1d_is_offset_plus_window_minus_one():
    # authors' temporal index for T=4 (from their buffer): rows m, columns n, value m - n + 3
    assert relative_position_index((4,)).tolist() == [[3, 2, 1, 0], [4, 3, 2, 1], [5, 4, 3, 2], [6, 5, 4, 3]]


def test_index_2d_hand_computed():
    # 2x2 window, tokens (0,0),(0,1),(1,0),(1,1); idx = (dr + 1) * 3 + (dc + 1)
    expected = [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    assert relative_position_index((2, 2)).tolist() == expected


def test_index_3d_is_dt_major():
    t, h, w = 2, 3, 2
    index = relative_position_index((t, h, w))
    coords = [(a, b, c) for a in range(t) for b in range(h) for c in range(w)]
    for m, q in enumerate(coords):
        for n, k in enumerate(coords):
            dt, dh, dw = q[0] - k[0], q[1] - k[1], q[2] - k[2]
            assert index[m, n] == ((dt + t - 1) * (2 * h - 1) + dh + h - 1) * (2 * w - 1) + dw + w - 1


def test_units_with_one_window_share_one_index_usable_in_training():
    """A joint model holds one (N, N) index per window (79 MB at 16 x 14 x 14), not one per unit; built under
    inference_mode it still is a normal tensor, so another unit's table gradient can flow through it."""
    with torch.inference_mode():
        a = PositionalGatingUnit(8, "spatiotemporal", (2, 3, 3), 4)
    b = PositionalGatingUnit(16, "spatiotemporal", (2, 3, 3), 8)
    c = PositionalGatingUnit(8, "spatiotemporal", (2, 3, 2), 4)
    assert a.relative_position_index is b.relative_position_index
    assert c.relative_position_index is not a.relative_position_index  # another window, its own index
    assert not a.relative_position_index.is_inference()
    b.mixing_weights()[0].sum().backward()  # through the index built inside inference_mode for a
    assert b.relative_position_bias_table.grad.sum() == 8 * 18**2  # each group column: one per (query, key)
    assert "relative_position_index" not in b.state_dict()


def naive_mix(unit: PositionalGatingUnit, u: torch.Tensor, window) -> torch.Tensor:
    """Direct loops over the definition u'[m,c] = sum_n table[idx(m,n), c % gamma] u[n,c] + b[m]."""
    table, bias = unit.relative_position_bias_table, unit.token_bias
    index = relative_position_index(window)
    B, N, C = u.shape
    out = torch.empty_like(u)
    for c in range(C):
        w = table[index, c % unit.gamma]  # (N, N)
        out[:, :, c] = u[:, :, c] @ w.T + bias
    return out


@pytest.mark.parametrize("kind,window", [("temporal", (5,)), ("spatial", (3, 4)), ("spatiotemporal", (2, 3, 3))])
def test_mix_matches_the_definition(kind, window):
    unit = PositionalGatingUnit(12, kind, window, gamma=4, table_init="trunc_normal")
    torch.nn.init.normal_(unit.token_bias)
    u = torch.randn(3, unit.relative_position_index.shape[0], 12, dtype=torch.float64)
    unit = unit.double()
    torch.testing.assert_close(unit.mix(u), naive_mix(unit, u, window))


def _gate_input(T, H, W, C):
    return torch.randn(2, T, H, W, 2 * C, dtype=torch.float64)


def test_spatial_padding_contributes_nothing():
    """A 10x10 map with 4x4 windows: every window, full or cut by the border, mixes only its real tokens."""
    unit = PositionalGatingUnit(8, "spatial", (4, 4), gamma=2, table_init="trunc_normal").double()
    torch.nn.init.normal_(unit.token_bias)
    x = _gate_input(3, 10, 10, 8)
    out = unit(x)
    for r0 in range(0, 10, 4):
        for c0 in range(0, 10, 4):
            part = x[:, :, r0:r0 + 4, c0:c0 + 4]
            h, w = part.shape[2:4]
            u, v = part.chunk(2, -1)
            tokens = u.reshape(-1, h * w, 8)
            # real tokens sit at the top-left of their window: rows/cols 0..h-1, 0..w-1 of the 4x4 grid
            keep = torch.tensor([r * 4 + c for r in range(h) for c in range(w)])
            weights, bias = unit.mixing_weights()
            W = weights[:, keep][:, :, keep]
            mixed = torch.einsum("smn,bnvs->bmvs", W, tokens.reshape(-1, h * w, 4, 2)).reshape(tokens.shape)
            expected = (mixed + bias[keep][:, None]).reshape(u.shape) * v
            torch.testing.assert_close(out[:, :, r0:r0 + 4, c0:c0 + 4], expected)


def test_padding_invariance_real_tokens_ignore_padded_neighbours():
    """Outputs at real tokens equal those of the same sub-map run on its own (no padding needed there)."""
    unit = PositionalGatingUnit(8, "spatiotemporal", (2, 4, 4), gamma=4, table_init="trunc_normal").double()
    x = _gate_input(3, 6, 7, 8)  # T=3 (pad 1), H=6 (pad 2), W=7 (pad 1)
    out = unit(x)
    torch.testing.assert_close(out[:, 2:3, 4:6, 4:7], unit(x[:, 2:3, 4:6, 4:7]))
    torch.testing.assert_close(out[:, 0:2, 0:4, 0:4], unit(x[:, 0:2, 0:4, 0:4]))


def test_temporal_fewer_frames_use_the_central_table():
    unit = PositionalGatingUnit(4, "temporal", (8,), gamma=2, adapt_temporal=True, table_init="trunc_normal")
    torch.nn.init.normal_(unit.token_bias)
    weights, bias = unit.mixing_weights((4,))
    table = unit.relative_position_bias_table
    for m in range(4):
        for n in range(4):
            torch.testing.assert_close(weights[:, m, n], table[m - n + 7])  # offset 0 stays at row 7
    torch.testing.assert_close(bias, unit.token_bias[2:6])
    # and the forward pass on a 4-frame clip uses exactly these
    x = torch.randn(1, 4, 2, 3, 8)
    u, v = x.chunk(2, -1)
    tokens = u.permute(0, 2, 3, 1, 4).reshape(-1, 4, 4)
    mixed = torch.einsum("smn,bnvs->bmvs", weights, tokens.reshape(-1, 4, 2, 2)).reshape(tokens.shape) + bias[:, None]
    expected = mixed.reshape(1, 2, 3, 4, 4).permute(0, 3, 1, 2, 4) * v
    torch.testing.assert_close(unit(x), expected)


def test_temporal_more_frames_interpolate_table_and_token_bias():
    unit = PositionalGatingUnit(4, "temporal", (4,), gamma=2, adapt_temporal=True, table_init="trunc_normal")
    torch.nn.init.normal_(unit.token_bias)
    table, bias = resize_position_params(unit.relative_position_bias_table, unit.token_bias, (4,), (7,))
    old_t, old_b = unit.relative_position_bias_table.detach(), unit.token_bias.detach()
    assert table.shape == (13, 2) and bias.shape == (7,)
    # corners aligned: offsets -3..3 (7 rows) map onto -6..6 (13 rows), every old row lands on an even new row
    torch.testing.assert_close(table[::2], old_t)
    torch.testing.assert_close(table[1::2], (old_t[:-1] + old_t[1:]) / 2)
    torch.testing.assert_close(bias[::2], old_b)
    assert unit(torch.randn(1, 7, 2, 2, 8)).shape == (1, 7, 2, 2, 4)


def test_tiled_temporal_windows_are_independent():
    unit = PositionalGatingUnit(4, "temporal", (4,), gamma=2, adapt_temporal=False, table_init="trunc_normal")
    x = torch.randn(1, 10, 2, 2, 8)  # windows 0-3, 4-7, 8-9 (+2 padded)
    y = x.clone()
    y[:, 4:] = torch.randn_like(y[:, 4:])
    torch.testing.assert_close(unit(x)[:, :4], unit(y)[:, :4])
    torch.testing.assert_close(unit(x)[:, 8:], unit(x[:, 8:]))


def test_window_from_params_recovers_every_kind():
    assert window_from_params(31, 16, 1) == (16,)
    assert window_from_params(729, 196, 2) == (14, 14)
    assert window_from_params(7 * 13 * 13, 4 * 7 * 7, 3) == (4, 7, 7)


def test_bad_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="divisible by gamma"):
        PositionalGatingUnit(10, "spatial", (4, 4), gamma=4)
    with pytest.raises(ValueError, match="2-D window"):
        PositionalGatingUnit(8, "spatial", (4,), gamma=4)
    with pytest.raises(ValueError, match="table_init"):
        PositionalGatingUnit(8, "temporal", (4,), gamma=4, table_init="ones")


def test_index_cached_under_inference_mode_still_serves_autograd():
    """A map smaller than the window first seen under inference_mode (e.g. the app classifying), then trained
    or attributed through (autograd): the cached index of that window must work in both."""
    unit = PositionalGatingUnit(8, "spatial", (4, 4), gamma=2, table_init="trunc_normal")
    x = torch.randn(1, 2, 3, 3, 16)
    with torch.inference_mode():
        expected = unit(x)
    out = unit(x.clone().requires_grad_())
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert unit.relative_position_bias_table.grad.abs().sum() > 0
