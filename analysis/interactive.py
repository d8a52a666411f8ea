"""Interactive (plotly) views of learned bias tables for the app and notebooks.

The app's unit view draws one panel per channel group (or one group zoomed in) with offset-labelled axes and
offset 0 marked; the notebook explorer tiles many groups into one heatmap (a mosaic, tiles separated by
gaps). Hovering any cell shows its group, offset and value. Colours are centred at 0 (diverging scale,
symmetric range, one colour bar).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.biases import BiasTable, get_table
from analysis.plots import NEUTRAL

COLORSCALE = "RdBu_r"
HOVER_MAP = "group %{customdata[0]}<br>Δt=%{customdata[1]}, Δh=%{customdata[2]}, Δw=%{customdata[3]}<br>bias=%{z:.4g}<extra></extra>"
HOVER_CURVE = "group %{customdata}<br>Δt=%{x}<br>bias=%{y:.4g}<extra></extra>"


def _mosaic(maps: np.ndarray, info: Sequence[tuple[int, int]], ncols: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile (K, h, w) maps into one image with one-cell gaps; customdata (rows, cols, 4) = group, Δt, Δh, Δw.

    `info` gives (group, Δt) per tile; gaps are NaN (drawn empty, no hover).
    """
    k, h, w = maps.shape
    ncols = max(1, min(ncols, k))
    nrows = math.ceil(k / ncols)
    z = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    custom = np.full((*z.shape, 4), np.nan)
    dh, dw = np.meshgrid(np.arange(h) - (h - 1) // 2, np.arange(w) - (w - 1) // 2, indexing="ij")
    for i, (image, (group, dt)) in enumerate(zip(maps, info)):
        r, c = (i // ncols) * (h + 1), (i % ncols) * (w + 1)
        z[r:r + h, c:c + w] = image
        custom[r:r + h, c:c + w] = np.stack([np.full_like(dh, group), np.full_like(dh, dt), dh, dw], axis=-1)
    return z, custom


def _mosaic_trace(maps: np.ndarray, info: Sequence[tuple[int, int]], ncols: int, name: str) -> go.Heatmap:
    z, custom = _mosaic(maps, info, ncols)
    top = float(np.nanmax(np.abs(z))) or 1.0
    return go.Heatmap(z=z, customdata=custom, hovertemplate=HOVER_MAP, colorscale=COLORSCALE, zmid=0,
                      zmin=-top, zmax=top, hoverongaps=False, name=name, colorbar=dict(title="bias"))


# Transparent backgrounds and mid-grey text: readable on the app's light and dark themes alike.
THEMELESS = dict(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font=dict(color=NEUTRAL))
PANEL_PX = 150  # height of one heatmap panel in a grid of groups
ZOOM_PX = 520  # height of a figure with a single panel


def _panels(maps: np.ndarray, info: Sequence[tuple[int, int]], titles: Sequence[str], ncols: int,
            title: str) -> go.Figure:
    """One heatmap per (h, w) map in a grid with offset-labelled axes (Δw across, Δh down), offset 0 marked
    by dotted lines, a title per panel and one zero-centred colour scale with a colour bar.

    `info` gives (group, Δt) per panel for the hover text (group, Δt, Δh, Δw, bias).
    """
    k, h, w = maps.shape
    ncols = max(1, min(ncols, k))
    nrows = math.ceil(k / ncols)
    dh, dw = np.arange(h) - (h - 1) // 2, np.arange(w) - (w - 1) // 2
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(titles), horizontal_spacing=0.3 / ncols,
                        vertical_spacing=min(0.35 / nrows, 0.12))
    top = float(np.abs(maps).max()) or 1.0
    shapes: list[dict] = []
    for i, (image, (group, dt)) in enumerate(zip(maps, info)):
        row, col = i // ncols + 1, i % ncols + 1
        grid_h, grid_w = np.meshgrid(dh, dw, indexing="ij")
        custom = np.stack([np.full_like(grid_h, group), np.full_like(grid_h, dt), grid_h, grid_w], axis=-1)
        fig.add_trace(go.Heatmap(z=image, x=dw, y=dh, customdata=custom, hovertemplate=HOVER_MAP,
                                 coloraxis="coloraxis", name=f"group {group}, Δt = {dt}"), row=row, col=col)
        n = "" if i == 0 else str(i + 1)  # make_subplots numbers axes row-major: x, x2, x3, ...
        zero = dict(type="line", line=dict(color="black", width=1, dash="dot"), layer="above")
        shapes += [dict(zero, xref=f"x{n}", x0=0, x1=0, yref=f"y{n} domain", y0=0, y1=1),
                   dict(zero, yref=f"y{n}", y0=0, y1=0, xref=f"x{n} domain", x0=0, x1=1)]
    fig.update_xaxes(showgrid=False, zeroline=False, tickfont=dict(size=9), nticks=5)
    fig.update_yaxes(showgrid=False, zeroline=False, tickfont=dict(size=9), nticks=5, autorange="reversed")
    for col in range(1, ncols + 1):
        fig.update_xaxes(title_text="Δw", row=nrows, col=col)
    for row in range(1, nrows + 1):
        fig.update_yaxes(title_text="Δh", row=row, col=1)
    fig.update_annotations(font_size=11)
    height = ZOOM_PX if k == 1 else max(360, PANEL_PX * nrows + 110)
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=80, b=50), shapes=shapes, **THEMELESS,
                      coloraxis=dict(colorscale=COLORSCALE, cmid=0, cmin=-top, cmax=top, colorbar=dict(title="bias")))
    if k == 1:
        fig.update_yaxes(scaleanchor="x")
    return fig


def bias_heatmap(table: BiasTable, group: int | None = None, dt: int = 0, ncols: int = 8) -> go.Figure:
    """All groups' Δh x Δw maps (a spatiotemporal unit at Δt = `dt`), one group's map zoomed in, or (for a
    spatiotemporal unit with `group`) that group's Δt slices."""
    if table.unit == "spatiotemporal" and group is not None:
        table.check_group(group)
        offsets = table.offsets(0)
        return _panels(table.table[group], [(group, d) for d in offsets], [f"Δt = {d}" for d in offsets],
                       min(ncols, len(offsets)), f"{table.name}, group {group}: Δt = {offsets[0]} .. {offsets[-1]}")
    maps = table.spatial_slice(dt)
    suffix = f", Δt = {dt}" if table.unit == "spatiotemporal" else ""
    if group is not None:
        table.check_group(group)
        return _panels(maps[group:group + 1], [(group, dt)], [f"group {group}"], 1, f"{table.name}{suffix}, group {group}")
    return _panels(maps, [(g, dt) for g in range(len(maps))], [f"group {g}" for g in range(len(maps))], ncols,
                   f"{table.name}{suffix}: groups 0..{len(maps) - 1}")


def _curve_traces(table: BiasTable, spatial_offset: Sequence[int], group: int | None = None) -> list[go.Scatter]:
    curves, offsets = table.temporal_profile(spatial_offset), table.offsets(0)
    groups = range(len(curves)) if group is None else [table.check_group(group)]
    return [go.Scatter(x=offsets, y=curves[g], mode="lines+markers", name=f"group {g}", customdata=[g] * len(offsets),
                       hovertemplate=HOVER_CURVE) for g in groups]


def temporal_curves(table: BiasTable, spatial_offset: Sequence[int] = (0, 0), group: int | None = None) -> go.Figure:
    """Bias against Δt, one line per group (click the legend to hide groups), or only `group`'s line."""
    fig = go.Figure(_curve_traces(table, spatial_offset, group))
    where = f" at (Δh, Δw) = {tuple(spatial_offset)}" if table.unit == "spatiotemporal" else ""
    which = f", group {group}" if group is not None else ""
    fig.add_vline(0, line=dict(color="gray", width=1, dash="dot"))
    fig.add_hline(0, line=dict(color="gray", width=1))
    fig.update_layout(title=f"{table.name}{where}{which}", xaxis_title="Δt = query - key (frames; < 0: key after query)",
                      yaxis_title="bias", hovermode="closest", height=440, **THEMELESS)
    fig.update_xaxes(dtick=1)
    return fig


def unit_figure(tables: Iterable[BiasTable], stage: int, block: int, unit: str, group: int | None = None,
                dt: int = 0) -> go.Figure:
    """The app's one call: pick a unit by stage/block/unit and show its curves or heatmaps."""
    table = get_table(tables, stage, block, unit)
    return temporal_curves(table, group=group) if unit == "temporal" else bias_heatmap(table, group, dt)


def bias_explorer(tables: Iterable[BiasTable], dt: int = 0, ncols: int = 8) -> go.Figure:
    """Every unit of a model in one figure with a dropdown to choose stage/block/unit (for notebooks).

    Temporal units show one curve per group; spatial and spatiotemporal units (at Δt = `dt`) a mosaic of groups.
    """
    tables = list(tables)
    fig = go.Figure()
    spans = []
    for table in tables:
        start = len(fig.data)
        if table.unit == "temporal":
            fig.add_traces(_curve_traces(table, (0, 0)))
        else:
            maps = table.spatial_slice(dt)
            fig.add_trace(_mosaic_trace(maps, [(g, dt) for g in range(len(maps))], ncols, table.name))
        spans.append((start, len(fig.data)))
    buttons = []
    for table, (start, stop) in zip(tables, spans):
        visible = [start <= i < stop for i in range(len(fig.data))]
        heat = table.unit != "temporal"
        axes = dict(showticklabels=not heat, showgrid=not heat, zeroline=not heat)
        buttons.append(dict(label=table.name, method="update", args=[
            {"visible": visible},
            {"title.text": table.name, "xaxis": {**axes, "title": {"text": "" if heat else "Δt"}},
             "yaxis": {**axes, "autorange": "reversed" if heat else True, "title": {"text": "" if heat else "bias"}}},
        ]))
    for i, trace in enumerate(fig.data):
        trace.visible = i < spans[0][1]
    first_heat = tables[0].unit != "temporal"
    fig.update_layout(updatemenus=[dict(buttons=buttons, x=0, y=1.12, xanchor="left", yanchor="top")],
                      title=dict(text=tables[0].name, x=0.5), plot_bgcolor="white" if first_heat else None,
                      margin=dict(t=90))
    if first_heat:
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    return fig


def temporal_importance_figure(importance: np.ndarray, title: str = "temporal importance",
                               times: Sequence[float] | None = None) -> go.Figure:
    """Per-frame importance as bars (hover: frame, its time in seconds when `times` are given, and value)."""
    importance = np.asarray(importance, dtype=float)
    when = " (%{customdata:.2f} s)" if times is not None else ""
    fig = go.Figure(go.Bar(x=np.arange(len(importance)), y=importance, customdata=times,
                           marker_color=np.where(importance >= 0, "#d6604d", "#4393c3").tolist(),
                           hovertemplate=f"frame %{{x}}{when}<br>importance=%{{y:.4g}}<extra></extra>"))
    fig.add_hline(0, line=dict(color="gray", width=1))
    fig.update_layout(title=title, xaxis_title="frame", yaxis_title="importance (red: for, blue: against)", **THEMELESS)
    fig.update_xaxes(dtick=1)
    return fig
