"""The "How relative positions mix tokens" view as HTML: a query's weights on the window grid beside the
offset table they were read from. Hovering a key token highlights the table cell of its offset (in the
browser, no round trip); clicking a key token makes it the query.

All numbers come from `analysis.mixing.MixingRow` (the model's own table read through its index); this
module only lays them out and colours them with the figures' diverging scale.
"""

from __future__ import annotations

from html import escape

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import CenteredNorm, to_hex

from analysis.mixing import MixingRow
from analysis.plots import CMAP

# Hover: highlight every element of the same offset; click: ask the server to make the key the query.
JS_ON_LOAD = """
element.addEventListener('mouseover', (e) => {
  const key = e.target.closest('.key');
  element.querySelectorAll('.hl').forEach((x) => x.classList.remove('hl'));
  if (!key) return;
  element.querySelectorAll(`[data-cell="${key.dataset.cell}"]`).forEach((x) => x.classList.add('hl'));
  const info = element.querySelector('.hover-info');
  if (info) info.textContent = key.title;
});
element.addEventListener('click', (e) => {
  const key = e.target.closest('.key');
  if (key) trigger('click', {query: key.dataset.query});
});
"""

CSS = """
.mix { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.mix h4 { margin: 0 0 4px 0; font-size: 0.9em; }
.panels { display: flex; flex-wrap: wrap; gap: 10px; }
.grid { display: grid; gap: 1px; }
.grid div { width: var(--cell); height: var(--cell); box-sizing: border-box; font-size: 10px; line-height: var(--cell);
  text-align: center; color: #000; }
.key { cursor: pointer; }
.off { opacity: 0.3; }
.off.read { opacity: 1; }
.query { outline: 3px solid #000; z-index: 1; }
.qrow { outline: 2px solid #000; z-index: 1; }
.hl { outline: 3px solid #00c000 !important; z-index: 2; }
.axis { font-size: 0.8em; opacity: 0.8; }
.hover-info { min-height: 1.4em; font-size: 0.9em; }
.colourbar { height: 12px; width: 220px; background: linear-gradient(to right, var(--lo), #f7f7f7, var(--hi)); }
"""


def _colour(value: float, norm: CenteredNorm) -> str:
    return to_hex(colormaps[CMAP](norm(value)))


def _grid(cells: list[str], rows: int, cols: int, cell_px: int) -> str:
    style = f"grid-template-columns: repeat({cols}, {cell_px}px); --cell: {cell_px}px"
    return f'<div class="grid" style="{style}">{"".join(cells)}</div>'


def _key(row: MixingRow, key: tuple[int, ...], norm: CenteredNorm, query: tuple[int, ...] | None = None) -> str:
    """One key token: coloured by its weight, tagged with its offset's table cell and its own coordinates."""
    query = row.query if query is None else query
    cell = tuple(q - k + w - 1 for q, k, w in zip(query, key, row.window))
    offset = tuple(q - k for q, k in zip(query, key))
    weight = float(row.table[cell])
    names = ", ".join(f"Δ{a}" for a in row.axes)
    if row.unit == "temporal":  # a cell of the T x T matrix: the query's row is boxed
        classes, star = "key" + (" qrow" if tuple(query) == tuple(row.query) else ""), ""
    else:
        is_query = tuple(key) == tuple(row.query)
        classes, star = "key" + (" query" if is_query else ""), "★" if is_query else ""
    title = (f"key {tuple(key)} -> query {tuple(query)}: offset ({names}) = {offset}, "
             f"table cell {cell}, weight {weight:+.4f}")
    pick = ",".join(map(str, query if row.unit == "temporal" else key))
    return (f'<div class="{classes}" data-cell="{",".join(map(str, cell))}" data-query="{pick}" '
            f'title="{escape(title)}" style="background:{_colour(weight, norm)}">{star}</div>')


def _table_cell(row: MixingRow, cell: tuple[int, ...], norm: CenteredNorm, read: bool) -> str:
    offset = tuple(c - w + 1 for c, w in zip(cell, row.window))
    title = f"offset {offset}: weight {float(row.table[cell]):+.4f}"
    return (f'<div class="off{" read" if read else ""}" data-cell="{",".join(map(str, cell))}" '
            f'title="{escape(title)}" style="background:{_colour(float(row.table[cell]), norm)}"></div>')


def mixing_html(row: MixingRow, cell_px: int = 26) -> str:
    """The teaching view of one `MixingRow` as self-contained HTML (colours inline, CSS in `CSS`)."""
    norm = CenteredNorm(vcenter=0.0, halfrange=float(np.abs(row.table).max()) or 1.0)
    read = {tuple(int(v) for v in np.unravel_index(i, row.table.shape)) for i in np.ravel(row.index)}
    window = row.window
    if row.unit == "temporal":
        t = window[0]
        left_title = "T x T mixing matrix: row = query frame, column = key frame (the query's row is boxed)"
        cells = [_key(row, (c,), norm, query=(r,)) for r in range(t) for c in range(t)]
        left = _grid(cells, t, t, cell_px)
        right = _grid([_table_cell(row, (i,), norm, (i,) in read) for i in range(2 * t - 1)], 1, 2 * t - 1, cell_px)
        axis = f'<div class="axis">Δt = query - key: {-(t - 1)} .. {t - 1} (left to right)</div>'
    else:
        h, w = window[-2:]
        frames = [()] if row.unit == "spatial" else [(f,) for f in range(window[0])]
        panels = []
        for f in frames:
            cells = [_key(row, (*f, i, j), norm) for i in range(h) for j in range(w)]
            caption = f"key frame {f[0]}" if f else "h down, w across"
            panels.append(f'<div><div class="axis">{caption}</div>{_grid(cells, h, w, cell_px)}</div>')
        left = f'<div class="panels">{"".join(panels)}</div>'
        left_title = f"weight of each key token for the query ★ {tuple(row.query)}"
        slices = [()] if row.unit == "spatial" else [(d,) for d in range(2 * window[0] - 1)]
        small = max(8, cell_px * 2 // 3)
        tables = []
        for d in slices:
            cells = [_table_cell(row, (*d, i, j), norm, (*d, i, j) in read) for i in range(2 * h - 1)
                     for j in range(2 * w - 1)]
            caption = f"Δt = {d[0] - window[0] + 1}" if d else f"Δh down, Δw across: {-(h - 1)} .. {h - 1}, centre = 0"
            tables.append(f'<div><div class="axis">{caption}</div>{_grid(cells, 2 * h - 1, 2 * w - 1, small)}</div>')
        right = f'<div class="panels">{"".join(tables)}</div>'
        axis = ""
    lo, hi = _colour(-norm.halfrange, norm), _colour(norm.halfrange, norm)
    scale = (f'<div class="axis">weight: {-norm.halfrange:+.3f} '
             f'<span class="colourbar" style="display:inline-block; --lo:{lo}; --hi:{hi}"></span> '
             f'{norm.halfrange:+.3f} (0 = white)</div>')
    return (f'<div class="mix-view"><h4>{escape(row.name)}, group {row.group}: query {tuple(row.query)}, token bias '
            f'{row.token_bias:+.4f}</h4><div class="hover-info">hover a key token; click one to make it the query</div>'
            f'<div class="mix"><div><h4>{escape(left_title)}</h4>{left}</div>'
            f'<div><h4>offset table of group {row.group} (faded: offsets this query never reads; green: the '
            f'hovered key\'s offset)</h4>{right}{axis}</div></div>{scale}</div>')
