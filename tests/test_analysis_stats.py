"""Table statistics against tables whose answer is known by construction."""

import math

import numpy as np
import pytest

from analysis import BiasTable, format_summary, summary, table_stats


def table(unit, window, values):
    """A BiasTable with the given (groups, 2w-1, ...) values."""
    values = np.asarray(values, dtype=np.float32)
    return BiasTable(0, 0, unit, window, values, np.zeros(int(np.prod(window)), np.float32))


def spike(unit, window, offset, groups=1, value=-2.0):
    values = np.zeros((groups, *[2 * w - 1 for w in window]))
    values[(slice(None), *[d + w - 1 for d, w in zip(offset, window)])] = value
    return table(unit, window, values)


def test_single_offset_spatiotemporal():
    s = table_stats(spike("spatiotemporal", (4, 3, 3), (-2, 1, 2)))
    assert s.locality == pytest.approx(math.sqrt(4 + 1 + 4))
    assert s.peak == (-2, 1, 2) and s.group_peak.tolist() == [[-2, 1, 2]]
    assert s.spread == pytest.approx(0.0)
    assert s.asymmetry == 1.0  # key after query only: all future
    assert s.max_abs == 2.0


def test_temporal_asymmetry_and_spread():
    window = (4,)
    values = np.zeros((2, 7))
    values[0, [0, 6]] = [1.0, -1.0]  # symmetric offsets -3 and +3
    values[1, [4, 5]] = [3.0, 1.0]  # past only (offsets +1, +2)
    s = table_stats(table("temporal", window, values))
    assert s.group_asymmetry.tolist() == [0.0, -1.0]
    assert s.group_locality.tolist() == pytest.approx([3.0, 1.25])
    assert s.group_spread.tolist() == pytest.approx([3.0, math.sqrt(0.75 * 0.25)])
    # pooled: masses at -3 (1), +1 (3), +2 (1), +3 (1); future 1/6, past 5/6
    assert s.asymmetry == pytest.approx((1 - 5) / 6)
    assert s.peak == (1,)


def test_spatial_and_zero_tables():
    spatial = table_stats(spike("spatial", (3, 3), (0, 0), groups=2))
    assert spatial.locality == 0.0 and math.isnan(spatial.asymmetry) and spatial.peak == (0, 0)
    zero = table_stats(table("temporal", (3,), np.zeros((2, 5))))
    assert math.isnan(zero.locality) and math.isnan(zero.spread) and zero.max_abs == 0.0


def test_summary_rows_and_markdown():
    tables = [spike("temporal", (3,), (1,)), spike("spatial", (2, 2), (-1, 1), groups=3)]
    rows = summary(tables)
    assert [r["unit"] for r in rows] == ["temporal", "spatial"] and rows[1]["groups"] == 3
    assert rows[1]["locality"] == pytest.approx(math.sqrt(2))
    text = format_summary(rows)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| stage | block | unit")
    assert "nan" in lines[3] and "(-1, 1)" in lines[3] and "| 2x2 |" in lines[3] and "| 3 |" in lines[2]
