"""Extract PosMLP's learned relative-position-bias tables as offset-indexed arrays, one per gating unit.

Inside a unit the table is stored flat as ``(prod(2 w_i - 1), gamma)`` and indexed through a buffer; here
every table is reshaped to ``(gamma, 2w_1 - 1, ...)``: groups first, then one axis per mixed axis, indexed by
the offset ``d = query - key`` shifted by ``w - 1``, so offset 0 sits in the centre of every axis.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from analysis.errors import AnalysisError
from posmlp_video.models.gating import AXES, PositionalGatingUnit

UNITS = ("temporal", "spatial", "spatiotemporal")


@dataclass(frozen=True)
class BiasTable:
    """One gating unit's learned position encoding, detached from the model (float32 numpy).

    Attributes:
        stage, block: where the unit sits (``model.stages[stage].blocks[block]``).
        unit: "temporal", "spatial" or "spatiotemporal".
        window: the window over the mixed axes, e.g. (8,), (8, 8) or (8, 4, 4).
        table: ``(groups, 2w_1 - 1, ...)``; ``table[g, *(d + w - 1)]`` is group g's weight for offset d.
        token_bias: ``(N,)`` the bias added to each output token of a window (row-major over the window).
    """

    stage: int
    block: int
    unit: str
    window: tuple[int, ...]
    table: np.ndarray
    token_bias: np.ndarray

    @property
    def groups(self) -> int:
        """gamma: channel c of the unit uses group ``c mod gamma``."""
        return self.table.shape[0]

    @property
    def axes(self) -> str:
        """The mixed axes, one letter each: "t", "hw" or "thw"."""
        return AXES[self.unit]

    @property
    def name(self) -> str:
        """A short label such as ``stage 2 block 1 spatial``."""
        return f"stage {self.stage} block {self.block} {self.unit}"

    def check_group(self, group: int) -> int:
        """`group`, or a one-line error when the unit has no such channel group."""
        if not 0 <= group < self.groups:
            raise AnalysisError(f"group {group} out of range: {self.name} has {self.groups} groups")
        return group

    def offsets(self, axis: int = 0) -> np.ndarray:
        """The offsets ``-(w-1) .. w-1`` along one table axis (0 = the first mixed axis)."""
        w = self.window[axis]
        return np.arange(-(w - 1), w)

    def value(self, offset: Sequence[int], group: int | None = None) -> np.ndarray | float:
        """The weight at a relative offset (query - key), for one group or all groups."""
        idx = tuple(int(d) + w - 1 for d, w in zip(offset, self.window))
        if len(idx) != len(self.window) or any(not 0 <= i < 2 * w - 1 for i, w in zip(idx, self.window)):
            raise AnalysisError(f"offset {tuple(offset)} is outside the {self.window} window's range")
        values = self.table[(slice(None), *idx)]
        return values if group is None else float(values[group])

    def spatial_slice(self, dt: int = 0) -> np.ndarray:
        """``(groups, 2h-1, 2w-1)``: a spatial table, or the Δt = `dt` slice of a spatiotemporal one."""
        if self.unit == "spatial":
            return self.table
        if self.unit == "spatiotemporal":
            wt = self.window[0]
            if not -wt < dt < wt:
                raise AnalysisError(f"dt={dt} is outside {self.name}'s temporal offsets ±{wt - 1}")
            return self.table[:, dt + wt - 1]
        raise AnalysisError(f"{self.name} has no spatial offsets; show it as temporal curves")

    def temporal_profile(self, spatial_offset: Sequence[int] = (0, 0)) -> np.ndarray:
        """``(groups, 2t-1)``: a temporal table, or a spatiotemporal one along Δt at a fixed (Δh, Δw)."""
        if self.unit == "temporal":
            return self.table
        if self.unit == "spatiotemporal":
            _, wh, ww = self.window
            dh, dw = spatial_offset
            if not (-wh < dh < wh and -ww < dw < ww):
                raise AnalysisError(f"spatial offset {tuple(spatial_offset)} is outside {self.name}'s window")
            return self.table[:, :, dh + wh - 1, dw + ww - 1]
        raise AnalysisError(f"{self.name} has no temporal offsets; show it as spatial maps")

    def matrix(self) -> np.ndarray:
        """The expanded ``(groups, N, N)`` token-mixing weights the unit applies inside one window.

        ``matrix()[g, m, n]`` is the weight of key token n in output token m for channel group g; tokens are
        numbered row-major over the window. Built from the offset table, independently of the unit's index.
        """
        coords = np.array(list(itertools.product(*[range(w) for w in self.window])))  # (N, D)
        rel = coords[:, None, :] - coords[None, :, :] + np.array(self.window) - 1  # (N, N, D)
        return self.table[(slice(None), *np.moveaxis(rel, -1, 0))]

    def __sub__(self, other: BiasTable) -> BiasTable:
        """The difference of two tables of the same unit (e.g. after minus before training)."""
        if (self.stage, self.block, self.unit, self.window, self.groups) != (
            other.stage, other.block, other.unit, other.window, other.groups
        ):
            raise AnalysisError(f"cannot compare {self.name} {self.window} with {other.name} {other.window}")
        return BiasTable(self.stage, self.block, self.unit, self.window, self.table - other.table,
                         self.token_bias - other.token_bias)


def unit_table(unit: PositionalGatingUnit, stage: int = 0, block: int = 0) -> BiasTable:
    """The offset-indexed table of one gating unit (see the module docstring for the layout)."""
    flat = unit.relative_position_bias_table.detach().float().cpu()
    shape = [2 * w - 1 for w in unit.window]
    table = flat.t().reshape(unit.gamma, *shape).numpy().copy()
    return BiasTable(stage, block, unit.kind, tuple(unit.window), table,
                     unit.token_bias.detach().float().cpu().numpy().copy())


def gating_units(model: nn.Module) -> list[tuple[int, int, PositionalGatingUnit]]:
    """``(stage, block, unit)`` for every gating unit of a PosMLP-Video model, in forward order."""
    return [(i, j, branch.gate) for i, j, _, branch in branches(model)]


def branches(model: nn.Module) -> list[tuple[int, int, str, nn.Module]]:
    """``(stage, block, attribute, branch)`` for every gated branch, in the order the blocks' residual steps
    (``block.steps``) apply them."""
    stages = getattr(model, "stages", None)
    if stages is None:
        raise AnalysisError(f"{type(model).__name__} has no .stages: not a PosMLP-Video model")
    return [(i, j, name, getattr(block, name)) for i, stage in enumerate(stages) for j, block in enumerate(stage.blocks)
            for step in block.steps for name in step]


def relative_position_biases(model: nn.Module) -> list[BiasTable]:
    """One `BiasTable` per gating unit of `model`, ordered by stage, block, then the block's residual steps
    (temporal before spatial)."""
    return [unit_table(unit, i, j) for i, j, unit in gating_units(model)]


def select(
    tables: Iterable[BiasTable], stage: int | None = None, block: int | None = None, unit: str | None = None
) -> list[BiasTable]:
    """The tables matching the given stage/block/unit (None matches all); an empty match is an error."""
    tables = list(tables)
    if unit is not None and unit not in UNITS:
        raise AnalysisError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    picked = [t for t in tables if (stage is None or t.stage == stage) and (block is None or t.block == block)
              and (unit is None or t.unit == unit)]
    if not picked:
        where = ", ".join(f"{k}={v!r}" for k, v in (("stage", stage), ("block", block), ("unit", unit)) if v is not None)
        have = sorted({(t.stage, t.block, t.unit) for t in tables})
        raise AnalysisError(f"no gating unit with {where}; the model has (stage, block, unit) in {have}")
    return picked


def get_table(tables: Iterable[BiasTable], stage: int, block: int, unit: str) -> BiasTable:
    """Exactly one table, by stage, block and unit."""
    return select(tables, stage, block, unit)[0]


def compare_biases(after: Iterable[BiasTable], before: Iterable[BiasTable]) -> list[BiasTable]:
    """Difference tables ``after - before`` of two models with the same architecture (e.g. trained vs init)."""
    after, before = list(after), list(before)
    if len(after) != len(before):
        raise AnalysisError(f"the models have {len(after)} and {len(before)} gating units: not comparable")
    return [a - b for a, b in zip(after, before)]

