"""Publication figures (matplotlib) of learned bias tables, their differences and attribution curves.

Heatmaps use a diverging colormap centred at 0 with one symmetric colour range per figure, so colours are
comparable across panels; axes are labelled in offsets (query - key, in tokens of the unit's grid).
Every function returns a `matplotlib.figure.Figure` built without pyplot (no global figure registry, no
backend switch: safe in the app's threads, and notebooks still display it); `save_figure` writes PNG/PDF/SVG and `figure_bytes`
gives the bytes for a download button.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.biases import BiasTable, select
from analysis.errors import AnalysisError

CMAP = "RdBu_r"
FORMATS = ("png", "pdf", "svg")
AXIS_LABEL = {"t": "Δt (frames)", "h": "Δh", "w": "Δw"}


def _norm(values: Iterable[np.ndarray]) -> CenteredNorm:
    """A colour scale centred at 0 and symmetric over all values (unit range when all are zero)."""
    top = max(float(np.abs(v).max()) for v in values)
    return CenteredNorm(vcenter=0.0, halfrange=top if top > 0 else 1.0)


def _heatmap(ax: Axes, image: np.ndarray, norm: CenteredNorm, title: str, labels: bool = True):
    """One offset-indexed 2-D map (rows Δh, columns Δw) with offset-labelled axes."""
    rh, rw = (image.shape[0] - 1) // 2, (image.shape[1] - 1) // 2
    im = ax.imshow(image, cmap=CMAP, norm=norm, extent=(-rw - 0.5, rw + 0.5, rh + 0.5, -rh - 0.5),
                   interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    if labels:
        ax.set_xlabel(AXIS_LABEL["w"], fontsize=7)
        ax.set_ylabel(AXIS_LABEL["h"], fontsize=7)
    return im


def _grid(n: int, ncols: int, panel: float = 1.6, extra_w: float = 0.9) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel * ncols + extra_w, panel * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def plot_group_grid(table: BiasTable, dt: int = 0, ncols: int = 8) -> Figure:
    """All groups' spatial offset maps of one unit (a spatiotemporal unit at the Δt = `dt` slice)."""
    maps = table.spatial_slice(dt)
    fig, axes = _grid(len(maps), ncols)
    norm = _norm([maps])
    for g, (ax, image) in enumerate(zip(axes.flat, maps)):
        im = _heatmap(ax, image, norm, f"group {g}", labels=g % axes.shape[1] == 0)
    suffix = f", Δt = {dt}" if table.unit == "spatiotemporal" else ""
    fig.suptitle(f"{table.name}{suffix}", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="bias")
    return fig


def plot_joint_slices(table: BiasTable, group: int = 0, ncols: int = 8) -> Figure:
    """One group's spatiotemporal volume as a row of Δh x Δw maps, one per Δt."""
    if table.unit != "spatiotemporal":
        raise AnalysisError(f"{table.name} is not a spatiotemporal unit")
    table.check_group(group)
    volume, offsets = table.table[group], table.offsets(0)
    fig, axes = _grid(len(offsets), ncols)
    norm = _norm([volume])
    for k, (ax, dt) in enumerate(zip(axes.flat, offsets)):
        im = _heatmap(ax, volume[k], norm, f"Δt = {dt}", labels=k % axes.shape[1] == 0)
    fig.suptitle(f"{table.name}, group {group}", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="bias")
    return fig


def plot_temporal_curves(table: BiasTable, spatial_offset: Sequence[int] = (0, 0), ax: Axes | None = None) -> Figure:
    """Bias against Δt, one curve per group (a spatiotemporal unit at a fixed spatial offset)."""
    curves = table.temporal_profile(spatial_offset)
    fig = ax.figure if ax is not None else Figure(figsize=(5, 3), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    offsets = table.offsets(0)
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 1, len(curves)))
    for g, (curve, colour) in enumerate(zip(curves, colours)):
        ax.plot(offsets, curve, marker=".", color=colour, lw=1, label=f"group {g}")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.axvline(0, color="0.6", lw=0.6, ls=":")
    ax.set_xlabel(AXIS_LABEL["t"] + "   (< 0: key frame after query)")
    ax.set_ylabel("bias")
    where = f" at (Δh, Δw) = {tuple(spatial_offset)}" if table.unit == "spatiotemporal" else ""
    ax.set_title(f"{table.name}{where}", fontsize=9)
    if len(curves) <= 16:
        ax.legend(fontsize=6, ncols=2 if len(curves) > 8 else 1)
    return fig


def plot_table(table: BiasTable, group: int | None = None, dt: int = 0) -> Figure:
    """The natural figure for a unit: temporal curves, a grid of spatial maps, or Δt slices of one group.

    A spatiotemporal unit shows all groups at Δt = `dt`, or with `group` given, that group's Δt slices.
    """
    if table.unit == "temporal":
        return plot_temporal_curves(table)
    if table.unit == "spatiotemporal" and group is not None:
        return plot_joint_slices(table, group)
    return plot_group_grid(table, dt)


def plot_stage_grid(tables: Iterable[BiasTable], stage: int, unit: str, dt: int = 0) -> Figure:
    """Every block of a stage for one unit kind: rows are blocks, columns are groups (curves for temporal)."""
    picked = select(tables, stage=stage, unit=unit)
    if unit == "temporal":
        fig = Figure(figsize=(5, 2.6 * len(picked)), layout="constrained")
        axes = fig.subplots(len(picked), 1, squeeze=False)
        for ax, table in zip(axes[:, 0], picked):
            plot_temporal_curves(table, ax=ax)
        return fig
    maps = [t.spatial_slice(dt) for t in picked]
    groups = maps[0].shape[0]
    fig = Figure(figsize=(1.3 * groups + 0.9, 1.4 * len(picked) + 0.6), layout="constrained")
    axes = fig.subplots(len(picked), groups, squeeze=False)
    norm = _norm(maps)
    for row, (table, block_maps) in enumerate(zip(picked, maps)):
        for g, image in enumerate(block_maps):
            im = _heatmap(axes[row, g], image, norm, f"b{table.block} g{g}", labels=g == 0)
    suffix = f", Δt = {dt}" if unit == "spatiotemporal" else ""
    fig.suptitle(f"stage {stage} {unit}{suffix}: blocks x groups", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.6, label="bias")
    return fig


def plot_difference(after: BiasTable, before: BiasTable, group: int = 0, dt: int = 0) -> Figure:
    """Before, after and after - before for one group of one unit (e.g. init vs trained checkpoint)."""
    diff = after - before
    after.check_group(group)
    if after.unit == "temporal":
        fig = Figure(figsize=(5, 3), layout="constrained")
        ax = fig.subplots()
        offsets = after.offsets(0)
        ax.plot(offsets, before.table[group], label="before", color="0.5")
        ax.plot(offsets, after.table[group], label="after", color="C0")
        ax.bar(offsets, diff.table[group], color="C3", alpha=0.4, label="after - before")
        ax.set_xlabel(AXIS_LABEL["t"])
        ax.set_ylabel("bias")
        ax.legend(fontsize=7)
        ax.set_title(f"{after.name}, group {group}", fontsize=9)
        return fig
    panels = [t.spatial_slice(dt)[group] for t in (before, after, diff)]
    fig = Figure(figsize=(7.5, 2.8), layout="constrained")
    axes = fig.subplots(1, 3)
    shared = _norm(panels[:2])
    _heatmap(axes[0], panels[0], shared, "before")
    im = _heatmap(axes[1], panels[1], shared, "after", labels=False)
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="bias")
    im = _heatmap(axes[2], panels[2], _norm(panels[2:]), "after - before", labels=False)
    fig.colorbar(im, ax=axes[2], shrink=0.8, label="difference")
    suffix = f", Δt = {dt}" if after.unit == "spatiotemporal" else ""
    fig.suptitle(f"{after.name}, group {group}{suffix}", fontsize=9)
    return fig


def plot_temporal_importance(importance: np.ndarray, title: str = "temporal importance",
                             ax: Axes | None = None) -> Figure:
    """A per-frame importance curve (e.g. `Attribution.temporal_importance()`) as bars over frame index."""
    importance = np.asarray(importance, dtype=float)
    fig = ax.figure if ax is not None else Figure(figsize=(5, 2.5), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    frames = np.arange(len(importance))
    ax.bar(frames, importance, color=np.where(importance >= 0, "C3", "C0"))
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set_xticks(frames)
    ax.set_xlabel("frame")
    ax.set_ylabel("importance")
    ax.set_title(title, fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] | None = None, dpi: int = 150) -> list[Path]:
    """Write `fig` to `path` (its suffix picks the format) or to ``path.<fmt>`` for each of `formats`."""
    path = Path(path)
    formats = list(formats) if formats else [path.suffix.lstrip(".") or "png"]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise AnalysisError(f"unsupported figure format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = path.with_suffix(f".{fmt}")
        fig.savefig(out, format=fmt, dpi=dpi)
        written.append(out)
    return written


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure encoded as PNG, PDF or SVG bytes (for download buttons)."""
    if fmt not in FORMATS:
        raise AnalysisError(f"unsupported figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()
