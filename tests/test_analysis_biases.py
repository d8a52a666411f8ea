"""Bias tables: layout and centring against hand-built tables; .matrix() against the unit's own mixing."""

import itertools

import numpy as np
import pytest
import timm
import torch

import posmlp_video  # noqa: F401  (registers the timm variants)
from analysis import AnalysisError, compare_biases, get_table, relative_position_biases, select, unit_table
from posmlp_video.models.gating import PositionalGatingUnit

WINDOWS = {"temporal": (5,), "spatial": (3, 4), "spatiotemporal": (3, 2, 3)}


def code(offset, group):
    """A value that spells out its own group and offset, so any misplacement shows."""
    return 1000.0 * group + sum(10.0 ** (2 - i) * (d + 5) for i, d in enumerate(offset))


def hand_filled_unit(kind, gamma=3):
    """A unit whose flat table holds code(offset, group) for every (query, key) pair, written pair by pair."""
    window = WINDOWS[kind]
    unit = PositionalGatingUnit(gamma * 2, kind, window, gamma)
    flat = torch.full_like(unit.relative_position_bias_table, float("nan"))
    coords = list(itertools.product(*[range(w) for w in window]))
    index = unit.relative_position_index
    for m, q in enumerate(coords):
        for n, k in enumerate(coords):
            offset = tuple(a - b for a, b in zip(q, k))
            for g in range(gamma):
                flat[index[m, n], g] = code(offset, g)
    with torch.no_grad():
        unit.relative_position_bias_table.copy_(flat)
        unit.token_bias.copy_(torch.arange(len(coords), dtype=torch.float32))
    return unit


@pytest.mark.parametrize("kind", list(WINDOWS))
def test_table_layout_and_centre(kind):
    unit = hand_filled_unit(kind)
    t = unit_table(unit, stage=2, block=1)
    window = WINDOWS[kind]
    assert (t.stage, t.block, t.unit, t.window, t.groups) == (2, 1, kind, window, 3)
    assert t.table.shape == (3, *[2 * w - 1 for w in window])
    assert not np.isnan(t.table).any()  # every offset is reachable from some (query, key) pair
    for offset in itertools.product(*[range(-(w - 1), w) for w in window]):
        for g in range(3):
            assert t.table[(g, *[d + w - 1 for d, w in zip(offset, window)])] == code(offset, g)
            assert t.value(offset, g) == code(offset, g)
    centre = tuple(w - 1 for w in window)  # offset 0 in the middle of each axis
    np.testing.assert_array_equal(t.table[(slice(None), *centre)], [code((0,) * len(window), g) for g in range(3)])
    np.testing.assert_array_equal(t.token_bias, np.arange(np.prod(window)))
    np.testing.assert_array_equal(t.offsets(0), np.arange(-(window[0] - 1), window[0]))
    with pytest.raises(AnalysisError, match="outside"):
        t.value(tuple(w for w in window))
    if kind != "spatial":  # Δt profile, at (Δh, Δw) = (1, -1) for the joint unit
        spatial = (1, -1) if kind == "spatiotemporal" else ()
        profile = t.temporal_profile(spatial or (0, 0))
        for dt in range(-(window[0] - 1), window[0]):
            assert profile[2, dt + window[0] - 1] == code((dt, *spatial), 2)
    if kind != "temporal":  # Δh x Δw maps, at Δt = -1 for the joint unit
        dts = (-1,) if kind == "spatiotemporal" else ()
        maps = t.spatial_slice(dts[0] if dts else 0)
        wh, ww = window[-2:]
        assert maps.shape == (3, 2 * wh - 1, 2 * ww - 1)
        assert maps[1, 0, 2 * ww - 2] == code((*dts, -(wh - 1), ww - 1), 1)


@pytest.mark.parametrize("kind", list(WINDOWS))
def test_matrix_reproduces_mixing(kind):
    torch.manual_seed(0)
    gamma, window = 2, WINDOWS[kind]
    unit = PositionalGatingUnit(6, kind, window, gamma, table_init="trunc_normal")
    with torch.no_grad():
        unit.token_bias.normal_()
    t = unit_table(unit)
    n = int(np.prod(window))
    matrix = torch.from_numpy(t.matrix())
    assert matrix.shape == (gamma, n, n)
    # direct reimplementation: out[b, m, c] = sum_n W[c % gamma, m, n] u[b, n, c] + bias[m]
    u = torch.randn(2, n, 6)
    expected = torch.stack([matrix[c % gamma] @ u[:, :, c].T for c in range(6)], dim=-1).permute(1, 0, 2)
    expected = expected + torch.from_numpy(t.token_bias)[None, :, None]
    torch.testing.assert_close(unit.mix(u), expected)
    # and through the unit's forward on one whole window, with v = 1 so the gate passes mix(u) unchanged
    sizes = dict(zip({"temporal": "t", "spatial": "hw", "spatiotemporal": "thw"}[kind], window))
    shape = (sizes.get("t", 1), sizes.get("h", 1), sizes.get("w", 1))
    x = torch.cat([u.reshape(2, *shape, 6), torch.ones(2, *shape, 6)], dim=-1)
    torch.testing.assert_close(unit(x).reshape(2, n, 6), expected)


def test_model_tables_order_select_and_compare():
    model = timm.create_model("posmlp_video_xs", block_types=["parallel", "sequential", "joint", "temporal"])
    tables = relative_position_biases(model)
    keys = [(t.stage, t.block, t.unit) for t in tables]
    assert keys == [(0, 0, "temporal"), (0, 0, "spatial"), (1, 0, "temporal"), (1, 0, "spatial"),
                    (2, 0, "spatiotemporal"), (2, 1, "spatiotemporal"), (2, 2, "spatiotemporal"), (3, 0, "temporal")]
    assert [t.groups for t in tables] == [4, 4, 8, 8, 16, 16, 16, 32]
    joint = get_table(tables, 2, 1, "spatiotemporal")
    assert joint.window == (8, 4, 4) and joint.table.shape == (16, 15, 7, 7)
    assert not np.any(joint.table)  # zero init
    assert len(select(tables, unit="temporal")) == 3
    with pytest.raises(AnalysisError, match="no gating unit"):
        select(tables, stage=0, unit="spatiotemporal")
    with pytest.raises(AnalysisError, match="unknown unit"):
        select(tables, unit="joint")
    with torch.no_grad():
        model.stages[2].blocks[1].joint.gate.relative_position_bias_table.add_(0.5)
    diff = compare_biases(relative_position_biases(model), tables)
    np.testing.assert_allclose(get_table(diff, 2, 1, "spatiotemporal").table, 0.5)
    assert not np.any(get_table(diff, 2, 0, "spatiotemporal").table)
    other = timm.create_model("posmlp_video_xs")
    with pytest.raises(AnalysisError, match="cannot compare|not comparable"):
        compare_biases(relative_position_biases(other), tables)
