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
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from analysis.attributions import Attribution
from analysis.biases import BiasTable, select
from analysis.errors import AnalysisError
from analysis.mixing import MixingRow

CMAP = "RdBu_r"
FORMATS = ("png", "pdf", "svg")
NEUTRAL = "#808080"  # mid-grey text: readable on light and dark backgrounds alike (the app's two themes)
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


def plot_attribution_strip(result: Attribution, ncols: int | None = None, panel: float = 1.5,
                           times: Sequence[float] | None = None) -> Figure:
    """The frames the model saw above their signed attribution maps, one column per frame, numbered.

    Red is evidence for the target class, blue against it, on one zero-centred scale for the whole clip
    (colour bar on the right) so frames compare; the title of each column gives the frame number (and with
    `times`, each frame's time in the video in seconds, e.g. from `Predictor.sample_timed`) and its sum.
    """
    T = len(result.clip)
    ncols = ncols or T
    nrows = math.ceil(T / ncols)
    fig = Figure(figsize=(panel * ncols + 1.2, 2 * panel * nrows + 0.7), layout="constrained")
    axes = fig.subplots(2 * nrows, ncols, squeeze=False)
    values = result.values
    top = float(np.percentile(np.abs(values), 99.5)) or float(np.abs(values).max()) or 1.0
    norm = CenteredNorm(vcenter=0.0, halfrange=top)
    sums = result.temporal_importance()
    for t in range(nrows * ncols):
        r, c = 2 * (t // ncols), t % ncols
        for ax in (axes[r, c], axes[r + 1, c]):
            ax.set_xticks([])
            ax.set_yticks([])
        if t >= T:
            axes[r, c].set_visible(False)
            axes[r + 1, c].set_visible(False)
            continue
        axes[r, c].imshow(result.clip[t], interpolation="nearest")
        axes[r, c].set_title(f"frame {t}" + (f"\n{times[t]:.2f} s" if times is not None else ""), fontsize=8)
        im = axes[r + 1, c].imshow(values[t], cmap=CMAP, norm=norm, interpolation="nearest")
        axes[r + 1, c].set_title(f"sum {sums[t]:+.3g}", fontsize=7)
    axes[0, 0].set_ylabel("frame", fontsize=8)
    axes[1, 0].set_ylabel("attribution", fontsize=8)
    target = result.target_name or f"class {result.target}"
    fig.suptitle(f"{result.method} for {target}\nred: for the class, blue: against (scale clipped at the 99.5th "
                 "percentile of |values|)", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="attribution")
    return fig


def for_any_background(fig: Figure) -> Figure:
    """`fig` made transparent, its text, ticks and frames mid-grey: in the app it is neither a white block on the
    dark theme nor unreadable on the light one (images and colour maps keep their colours). In place."""
    fig.patch.set_facecolor("none")
    for ax in fig.axes:
        ax.patch.set_facecolor("none")
        ax.tick_params(which="both", colors=NEUTRAL)
        for spine in ax.spines.values():
            spine.set_edgecolor(NEUTRAL)
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor("none")
    for text in fig.findobj(Text):
        text.set_color(NEUTRAL)
    return fig


def _outline(ax: Axes, x: float, y: float, w: float = 1.0, h: float = 1.0, colour: str = "k", lw: float = 1.5) -> None:
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=colour, lw=lw))


def plot_mixing(row: MixingRow, key: Sequence[int] | None = None) -> Figure:
    """One query's mixing weights on the window grid, beside the offset table they were read from.

    Left: the weight of every key token (spatial: h x w grid, the query boxed; temporal: the whole T x T
    Toeplitz matrix with the query frame's row boxed). Right: the group's offset table, the cells this query
    reads boxed. With `key`, that key token and the table cell of its offset are boxed in green.
    """
    norm = _norm([row.table])
    cell = row.table_cell(key) if key is not None else None
    if row.unit == "temporal":
        fig = Figure(figsize=(9, 3.6), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
        t = row.window[0]
        im = left.imshow(row.matrix, cmap=CMAP, norm=norm, interpolation="nearest")
        _outline(left, 0, row.query[0], w=t, colour="k", lw=2)
        if key is not None:
            _outline(left, key[0], row.query[0], colour="lime", lw=2.5)
        left.set_xlabel("key frame")
        left.set_ylabel("query frame")
        left.set_title(f"T x T mixing matrix (row: query frame {row.query[0]})", fontsize=9)
        offsets = np.arange(-(t - 1), t)
        read = np.zeros(len(offsets), bool)
        read[np.ravel(row.index)] = True
        right.bar(offsets, row.table, color=np.where(read, "C0", "0.8"), edgecolor="k", linewidth=0.3)
        if cell is not None:
            right.bar(offsets[cell[0]], row.table[cell[0]], color="none", edgecolor="lime", linewidth=2.5)
        right.axhline(0, color="0.4", lw=0.6)
        right.axvline(0, color="0.4", lw=0.6, ls=":")
        right.set_xlabel(AXIS_LABEL["t"] + " = query - key")
        right.set_ylabel("weight")
        right.set_title("offset table (blue: offsets this query reads)", fontsize=9)
        fig.colorbar(im, ax=left, shrink=0.8, label="weight")
    else:
        panels = 1 if row.unit == "spatial" else row.window[0]
        fig = Figure(figsize=(4 + 2.6 * panels, 3.4 * (1 if panels == 1 else 1.6)), layout="constrained")
        grid = fig.subfigures(1, 2, width_ratios=[1, 1.6] if panels == 1 else [1, 1.8])
        weights = row.weights[None] if panels == 1 else row.weights
        table = row.table[None] if panels == 1 else row.table
        q = row.query[-2:]
        axes_l = grid[0].subplots(1, panels, squeeze=False)[0]
        for i, ax in enumerate(axes_l):
            im = ax.imshow(weights[i], cmap=CMAP, norm=norm, interpolation="nearest")
            ax.set_xlabel("w")
            ax.set_ylabel("h")
            ax.set_title(f"key frame {i}" if panels > 1 else "weight of each key token", fontsize=8)
            if panels == 1 or i == row.query[0]:
                ax.plot(q[1], q[0], marker="*", color="k", ms=10)
                _outline(ax, q[1], q[0], colour="k", lw=2)
            if key is not None and (panels == 1 or i == key[0]):
                _outline(ax, key[-1], key[-2], colour="lime", lw=2.5)
        grid[0].suptitle(f"{row.name}, group {row.group}: query {tuple(row.query)}", fontsize=9)
        axes_r = grid[1].subplots(1 if panels == 1 else 2, max(1, math.ceil(len(table) / (1 if panels == 1 else 2))),
                                  squeeze=False).ravel().tolist()
        h, w = row.window[-2:]
        for i, ax in enumerate(axes_r):
            if i >= len(table):
                ax.set_visible(False)
                continue
            dt = i - (row.window[0] - 1) if panels > 1 else None
            im = _heatmap(ax, table[i], norm, "offset table" if dt is None else f"Δt = {dt}")
            ax.axhline(0, color="0.3", lw=0.5, ls=":")
            ax.axvline(0, color="0.3", lw=0.5, ls=":")
            if panels == 1 or 0 <= row.query[0] - dt < row.window[0]:
                _outline(ax, q[1] - (w - 1), q[0] - (h - 1), w=w, h=h, colour="k", lw=1.2)
            if cell is not None and (panels == 1 or cell[0] == i):
                _outline(ax, cell[-1] - (w - 1), cell[-2] - (h - 1), colour="lime", lw=2.5)
        grid[1].colorbar(im, ax=axes_r, shrink=0.8, label="weight")
        grid[1].suptitle("read at offset (query - key); box: the cells this query reads", fontsize=8)
    if row.unit == "temporal":
        fig.suptitle(f"{row.name}, group {row.group}: query frame {row.query[0]}", fontsize=9)
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
