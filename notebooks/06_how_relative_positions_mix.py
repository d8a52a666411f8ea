# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · How relative positions mix tokens
#
# A positional gating unit mixes the tokens of a window with **one learned weight per offset**: the weight a
# query token gives a key token depends only on `offset = query - key` (and on the channel group), not on where
# the pair sits in the window. The unit stores
#
# * `relative_position_bias_table`, `(prod(2w - 1), groups)`: one weight per offset and group, and
# * `relative_position_index`, `(N, N)`: for every (query, key) pair of the `N` window tokens, the table row
#   of their offset.
#
# The `N x N` mixing matrix the unit multiplies tokens by is the table **read through the index**. This notebook
# picks a query token and shows its row of that matrix on the window grid, beside the table the weights came
# from; then the same for a temporal unit, whose `T x T` matrix is Toeplitz (constant along diagonals). Every
# number is read from the bundled model's own units (`analysis.mixing`); the app's "How positions mix" tab shows
# the same view with hover and click. Figures go to `OUT` (or `POSMLP_NB_OUT`).

# %% tags=["parameters"]
import os
import tempfile
from pathlib import Path

CHECKPOINT = os.environ.get("POSMLP_NB_CHECKPOINT") or None  # None = the bundled SynthMotion model
OUT = Path(os.environ.get("POSMLP_NB_OUT") or tempfile.mkdtemp(prefix="posmlp_nb06_"))
OUT.mkdir(parents=True, exist_ok=True)
STAGE, BLOCK, GROUP = 0, 0, 0  # the unit and channel group to look at
QUERY = (2, 3)  # the query token in the spatial window (row h, column w)
KEY = (5, 1)  # a key token whose offset we follow into the table
QUERY_FRAME, KEY_FRAME = 2, 6  # the same for the temporal unit

# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from analysis import model_mixing_row
from analysis.mixing import get_unit
from analysis.plots import plot_mixing, save_figure
from posmlp_video.checkpoint import load_checkpoint

# %matplotlib inline
model, meta = load_checkpoint(CHECKPOINT)
gate = get_unit(model, STAGE, BLOCK, "spatial")
print(gate)
print("table", tuple(gate.relative_position_bias_table.shape), "index", tuple(gate.relative_position_index.shape))

# %% [markdown]
# ## One query's row, on the window grid
#
# `model_mixing_row` returns the query's weights over the window (`weights`), the offset of every key
# (`offsets`), the table row each key reads (`index`, the query's row of `relative_position_index`) and the
# group's offset table reshaped so that offset 0 is its centre. The star is the query; the black box on the
# table marks the offsets this query reads (keys further away in the window read cells further from the
# centre); the green boxes follow one key token to the table cell of its offset.

# %%
row = model_mixing_row(model, STAGE, BLOCK, "spatial", GROUP, QUERY)
offset = tuple(int(v) for v in row.offsets[KEY])
print(f"query {row.query}, key {KEY}: offset (Δh, Δw) = {offset}, table cell {row.table_cell(KEY)}, "
      f"weight {row.weights[KEY]:+.4f}")
fig = plot_mixing(row, key=KEY)
save_figure(fig, OUT / "mixing_spatial.png")
display(fig)

# %% [markdown]
# **The row is the unit's own mixing matrix.** `PositionalGatingUnit.mixing_weights()` is what the forward pass
# multiplies tokens by; the row read through the index matches it exactly, and every key's weight is the table
# value at its offset:

# %%
with torch.no_grad():
    runtime = gate.mixing_weights()[0][GROUP, row.query_token].numpy()
assert np.array_equal(row.weights.ravel(), runtime)
assert all(row.weights[k] == row.table[row.table_cell(k)] for k in np.ndindex(*row.window))
same = [k for k in np.ndindex(*row.window) if tuple(row.offsets[k]) == (0, 0)]
display(Markdown(f"Row equals `mixing_weights()` for all {row.weights.size} keys. Only the key at the query's "
                 f"own position, {same}, reads offset (0, 0), the centre of the table."))

# %% [markdown]
# ## Moving the query slides the window over the table
#
# Because the weight depends only on the offset, moving the query by one token moves the block of table cells
# it reads by one cell: the same table serves every position. Two queries, side by side:

# %%
for q in [(0, 0), (row.window[0] - 1, row.window[1] - 1)]:
    other = model_mixing_row(model, STAGE, BLOCK, "spatial", GROUP, q)
    cells = np.array([other.table_cell(k) for k in np.ndindex(*other.window)])
    print(f"query {q}: reads table rows {cells[:, 0].min()}..{cells[:, 0].max()}, "
          f"columns {cells[:, 1].min()}..{cells[:, 1].max()} of {other.table.shape}")
display(plot_mixing(model_mixing_row(model, STAGE, BLOCK, "spatial", GROUP, (0, 0))))

# %% [markdown]
# ## The temporal unit: a T x T Toeplitz matrix
#
# A temporal unit mixes the frames of a clip. Its matrix is constant along every diagonal (each diagonal is one
# Δt), so the query frame's row is a slice of the 1-D table, read back to front.

# %%
temporal = model_mixing_row(model, STAGE, BLOCK, "temporal", GROUP, (QUERY_FRAME,))
matrix = temporal.matrix
diagonals = [np.ptp(np.diagonal(matrix, offset=d)) for d in range(-len(matrix) + 1, len(matrix))]
print(f"T = {len(matrix)}; largest spread along a diagonal: {max(diagonals):.1e} (Toeplitz: 0)")
print(f"query frame {QUERY_FRAME}, key frame {KEY_FRAME}: Δt = {QUERY_FRAME - KEY_FRAME}, "
      f"weight {temporal.weights[KEY_FRAME]:+.4f}")
fig = plot_mixing(temporal, key=(KEY_FRAME,))
save_figure(fig, OUT / "mixing_temporal.png")
display(fig)

# %% [markdown]
# The figures above were exported as PNG to `OUT`; `save_figure(fig, path, formats=["pdf", "svg"])` writes the
# vector versions. In the app, the "How positions mix" tab draws the same row for any unit, group and query:
# hover a key to light up its offset in the table, click one to make it the query.

# %%
print(sorted(p.name for p in OUT.iterdir()))
