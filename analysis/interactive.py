"""Interactive (plotly) views of learned bias tables for the app and notebooks.

Spatial maps of many groups are tiled into one heatmap (a mosaic, tiles separated by gaps), so a unit is a
single trace whatever its number of groups; hovering any cell shows its group, offset and value. Colours
are centred at 0 (diverging scale, symmetric range).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

from analysis.biases import BiasTable, get_table

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


def _map_layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, plot_bgcolor="white", margin=dict(l=20, r=20, t=50, b=20))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x")
    return fig


def bias_heatmap(table: BiasTable, group: int | None = None, dt: int = 0, ncols: int = 8) -> go.Figure:
    """All groups' Δh x Δw maps (a spatiotemporal unit at Δt = `dt`), or one joint group's Δt slices."""
    if table.unit == "spatiotemporal" and group is not None:
        table.check_group(group)
        offsets = table.offsets(0)
        trace = _mosaic_trace(table.table[group], [(group, d) for d in offsets], ncols, table.name)
        return _map_layout(go.Figure(trace), f"{table.name}, group {group}: Δt = {offsets[0]} .. {offsets[-1]}")
    maps = table.spatial_slice(dt)
    trace = _mosaic_trace(maps, [(g, dt) for g in range(len(maps))], ncols, table.name)
    suffix = f", Δt = {dt}" if table.unit == "spatiotemporal" else ""
    return _map_layout(go.Figure(trace), f"{table.name}{suffix}: groups 0..{len(maps) - 1}")


def _curve_traces(table: BiasTable, spatial_offset: Sequence[int]) -> list[go.Scatter]:
    curves, offsets = table.temporal_profile(spatial_offset), table.offsets(0)
    return [go.Scatter(x=offsets, y=curve, mode="lines+markers", name=f"group {g}", customdata=[g] * len(offsets),
                       hovertemplate=HOVER_CURVE) for g, curve in enumerate(curves)]


def temporal_curves(table: BiasTable, spatial_offset: Sequence[int] = (0, 0)) -> go.Figure:
    """Bias against Δt, one line per group (click the legend to hide groups)."""
    fig = go.Figure(_curve_traces(table, spatial_offset))
    where = f" at (Δh, Δw) = {tuple(spatial_offset)}" if table.unit == "spatiotemporal" else ""
    fig.update_layout(title=f"{table.name}{where}", xaxis_title="Δt (frames; < 0: key after query)",
                      yaxis_title="bias", hovermode="closest")
    return fig


def unit_figure(tables: Iterable[BiasTable], stage: int, block: int, unit: str, group: int | None = None,
                dt: int = 0) -> go.Figure:
    """The app's one call: pick a unit by stage/block/unit and show its curves or heatmaps."""
    table = get_table(tables, stage, block, unit)
    return temporal_curves(table) if unit == "temporal" else bias_heatmap(table, group, dt)


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


def temporal_importance_figure(importance: np.ndarray, title: str = "temporal importance") -> go.Figure:
    """Per-frame importance as bars (hover: frame and value)."""
    importance = np.asarray(importance, dtype=float)
    fig = go.Figure(go.Bar(x=np.arange(len(importance)), y=importance,
                           hovertemplate="frame %{x}<br>importance=%{y:.4g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="frame", yaxis_title="importance")
    return fig
