"""Statistics of learned relative-position-bias tables: how local, how asymmetric in time, where they peak.

Every statistic treats the magnitude ``|table[g, d]|`` as a mass over offsets ``d = query - key`` (in tokens
of the unit's grid). A negative offset along t means the key frame comes *after* the query frame, so mass at
``d_t < 0`` is "future" and at ``d_t > 0`` is "past". All-zero tables (e.g. the zero init) have no mass:
their mass-weighted statistics are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from analysis.biases import BiasTable


@dataclass(frozen=True)
class TableStats:
    """Statistics of one table: per group (arrays of length gamma) and pooled over groups (floats).

    locality: mass-weighted mean Euclidean |offset| (small = local mixing).
    asymmetry: (future - past) / (future + past) mass along t, in [-1, 1]; NaN for spatial units.
    peak: the offset with the largest |value| (per group: one row per group).
    spread: mass-weighted standard deviation of the offset vector around its mean.
    """

    stage: int
    block: int
    unit: str
    window: tuple[int, ...]
    groups: int
    locality: float
    asymmetry: float
    peak: tuple[int, ...]
    spread: float
    mean_abs: float
    max_abs: float
    group_locality: np.ndarray
    group_asymmetry: np.ndarray
    group_peak: np.ndarray
    group_spread: np.ndarray


def _offset_grid(table: BiasTable) -> np.ndarray:
    """(prod(2w-1), D) offsets in the flattened order of ``table.table[g]``."""
    grids = np.meshgrid(*[table.offsets(a) for a in range(len(table.window))], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.float64)


def _mass_stats(mass: np.ndarray, offsets: np.ndarray, t_axis: int | None) -> tuple[float, float, float]:
    """(locality, asymmetry, spread) of one non-negative mass vector over `offsets`."""
    total = mass.sum()
    if total <= 0:
        return math.nan, math.nan, math.nan
    p = mass / total
    locality = float(p @ np.linalg.norm(offsets, axis=1))
    mean = p @ offsets
    spread = float(math.sqrt(p @ ((offsets - mean) ** 2).sum(axis=1)))
    asymmetry = math.nan
    if t_axis is not None:
        future, past = p[offsets[:, t_axis] < 0].sum(), p[offsets[:, t_axis] > 0].sum()
        asymmetry = float((future - past) / (future + past)) if future + past > 0 else 0.0
    return locality, asymmetry, spread


def table_stats(table: BiasTable) -> TableStats:
    """Locality, temporal asymmetry, peak offset and spread of one table, per group and pooled."""
    offsets = _offset_grid(table)
    t_axis = table.axes.index("t") if "t" in table.axes else None
    mass = np.abs(table.table.reshape(table.groups, -1)).astype(np.float64)
    per_group = np.array([_mass_stats(m, offsets, t_axis) for m in mass])
    peaks = offsets[mass.argmax(axis=1)].astype(int)
    pooled = mass.sum(axis=0)
    locality, asymmetry, spread = _mass_stats(pooled, offsets, t_axis)
    return TableStats(
        stage=table.stage, block=table.block, unit=table.unit, window=table.window, groups=table.groups,
        locality=locality, asymmetry=asymmetry, peak=tuple(int(v) for v in offsets[pooled.argmax()]),
        spread=spread, mean_abs=float(mass.mean()), max_abs=float(mass.max()),
        group_locality=per_group[:, 0], group_asymmetry=per_group[:, 1], group_peak=peaks,
        group_spread=per_group[:, 2],
    )


SUMMARY_COLUMNS = ("stage", "block", "unit", "window", "groups", "locality", "asymmetry", "peak", "spread",
                   "mean_abs", "max_abs")


def summary(tables: Iterable[BiasTable]) -> list[dict]:
    """One tidy row (dict with `SUMMARY_COLUMNS`) per table: the per-model summary table."""
    rows = []
    for table in tables:
        row = asdict(table_stats(table))
        rows.append({k: row[k] for k in SUMMARY_COLUMNS})
    return rows


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def format_summary(rows: list[dict], columns: Iterable[str] = SUMMARY_COLUMNS) -> str:
    """The summary rows as a Markdown table (for notebooks, the README and the app)."""
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["x".join(map(str, row[c])) if c == "window" else _cell(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
