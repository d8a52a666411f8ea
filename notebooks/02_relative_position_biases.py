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
# # 02 · The learned relative-position-bias tables
#
# PosMLP-Video mixes tokens with small learned tables: inside a window, the weight between a query token
# and a key token depends only on their offset `d = query - key` and on the channel group `g` (channel `c`
# uses group `c mod gamma`). The temporal unit (PoTGU) has one weight per frame offset `Δt`, the spatial unit
# (PoSGU) one per `(Δh, Δw)`. This notebook takes the tables out of the bundled checkpoint and shows
#
# 1. every table per stage, block and group, and their statistics (locality, temporal asymmetry, peak);
# 2. trained versus initial tables;
# 3. paper-ready exports (PNG, PDF, SVG);
# 4. where the temporal tables are directional in time, and what that means for the model.
#
# Offsets are in tokens of each stage's grid: one frame along `t` (no temporal downsampling), and 4, 8, 16,
# 32 pixels along `h`, `w` in stages 0..3. Figures go to a temporary folder (`OUT`, or `POSMLP_NB_OUT`).

# %% tags=["parameters"]
import os
import tempfile
from pathlib import Path

SMOKE = os.environ.get("POSMLP_NB_SMOKE") == "1"  # a quick run that only checks every cell works (the tests)
CHECKPOINT = os.environ.get("POSMLP_NB_CHECKPOINT") or None  # None = the bundled SynthMotion model
OUT = Path(os.environ.get("POSMLP_NB_OUT") or tempfile.mkdtemp(prefix="posmlp_nb02_"))
OUT.mkdir(parents=True, exist_ok=True)
REVERSAL_CLIPS = 12 if SMOKE else 48  # clips for the time-reversal check at the end (the numbers below: 48; 600 for tighter ones)
# Torch threads: these models are small, and on a shared machine extra threads mostly spin-wait (many
# times slower under load); raise it on a dedicated multi-core machine.
THREADS = int(os.environ.get("POSMLP_NB_THREADS", "1"))

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from analysis import (
    compare_biases,
    format_summary,
    get_table,
    interactive,
    plots,
    relative_position_biases,
    select,
    summary,
    table_stats,
)
from analysis.reversal import time_reversal_report
from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.models import PosMLPVideo

# %matplotlib inline
torch.set_num_threads(THREADS)

model, meta = load_checkpoint(CHECKPOINT)
tables = relative_position_biases(model)
print(f"{len(tables)} gating units in {meta['model']} (block types {meta['model_kwargs']['block_types']})")
for t in tables:
    print(f"  {t.name:28s} window {str(t.window):8s} groups {t.groups:3d}  table {t.table.shape}")

# %% [markdown]
# `relative_position_biases(model)` returns one `BiasTable` per gating unit. `table.table[g, *(d + w - 1)]` is
# group `g`'s weight for offset `d`, so offset 0 sits in the centre of every axis. `BiasTable.matrix()`
# expands a table to the `N x N` token-mixing weights the unit really applies inside a window.

# %% [markdown]
# ## Statistics of every table
#
# All statistics treat `|table|` as a mass over offsets:
#
# * **locality**: mass-weighted mean distance `|d|` (small = mixes mostly with near tokens);
# * **asymmetry** (temporal units): `(future - past) / (future + past)` mass along `t`, in `[-1, 1]`;
#   `Δt < 0` means the key frame comes *after* the query frame ("future"), `Δt > 0` before it ("past");
# * **peak**: the offset with the largest `|value|`, pooled over groups; **spread**: standard deviation of
#   the offset around its mean; **mean_abs**, **max_abs**: the size of the weights.

# %%
rows = summary(tables)
display(Markdown(format_summary(rows)))

# %% [markdown]
# ## Spatial tables, per stage: blocks x groups
#
# One colour scale per figure, centred at 0 (red positive, blue negative). The centre pixel is `Δ = (0, 0)`,
# the token mixing with itself.

# %%
stages = sorted({t.stage for t in tables})
figures = {}
for stage in stages:
    if any(t.unit == "spatial" for t in tables if t.stage == stage):
        figures[f"stage{stage}_spatial"] = fig = plots.plot_stage_grid(tables, stage, "spatial")
        display(fig)

# %% [markdown]
# ## Temporal tables, per stage: one curve per group
#
# The x axis is `Δt = query frame - key frame`; a curve that is not mirror-symmetric around `Δt = 0` treats
# earlier and later frames differently.

# %%
for stage in stages:
    if any(t.unit == "temporal" for t in tables if t.stage == stage):
        figures[f"stage{stage}_temporal"] = fig = plots.plot_stage_grid(tables, stage, "temporal")
        display(fig)

# %% [markdown]
# ### Interactive explorer
#
# Pick any unit in the dropdown; hover a cell for its group, offset and value (plotly; open the notebook
# in JupyterLab to interact).

# %%
interactive.bias_explorer(tables).show()

# %% [markdown]
# ## Trained versus initial tables
#
# Like the authors' code, every table (and token bias) starts at **zero**: at initialisation a gating unit
# mixes no tokens at all (`u' = 0·u + 0`), so the gate is constant and each block starts as its channel MLP.
# A freshly initialised model of the same configuration confirms it, and its difference to the trained
# tables is therefore the trained tables themselves: everything in the figures above was learned.

# %%
torch.manual_seed(0)
fresh = PosMLPVideo(**meta["model_kwargs"])
initial = relative_position_biases(fresh)
print("all initial tables zero:", all(not np.any(t.table) for t in initial))
print("all initial token biases zero:", all(not np.any(t.token_bias) for t in initial))
changes = compare_biases(tables, initial)
print("trained - initial == trained for every unit:",
      all(np.array_equal(c.table, t.table) for c, t in zip(changes, tables)))
change_rows = summary(changes)

fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
names = [f"s{r['stage']}b{r['block']} {r['unit'][0]}" for r in change_rows]
ax.bar(range(len(change_rows)), [r["mean_abs"] for r in change_rows],
       color=["C0" if r["unit"] == "temporal" else "C1" for r in change_rows])
ax.set_xticks(range(len(change_rows)), names, rotation=60, fontsize=8)
ax.set_ylabel("mean |trained - initial|")
ax.set_title("How far training moved each table from its zero init (t = temporal, s = spatial)", fontsize=9)
figures["trained_vs_initial"] = fig
plt.show()

# %% [markdown]
# The same comparison for one unit, group by group (`plot_difference` shows before, after and their
# difference; with a zero init "before" is flat). The stage-0 tables act on the finest grid, so they are the
# easiest to read.

# %%
first_spatial = select(tables, unit="spatial")[0]
first_temporal = select(tables, unit="temporal")[0]
display(plots.plot_difference(first_spatial, get_table(initial, first_spatial.stage, first_spatial.block, "spatial")))
display(plots.plot_difference(first_temporal, get_table(initial, first_temporal.stage, first_temporal.block,
                                                        "temporal")))

# %% [markdown]
# ## Paper-ready exports
#
# `analysis.plots.save_figure` writes a figure as PNG (150 dpi), PDF and SVG (vector, editable text), and
# the summary table goes out as Markdown and CSV. `EXPORT` picks the figures (all of them with
# `EXPORT = list(figures)`; the many-panel grids take a while as SVG).

# %%
EXPORT = ["stage0_spatial", "stage0_temporal", "trained_vs_initial"]
export_dir = OUT / "figures"
for name in EXPORT:
    plots.save_figure(figures[name], export_dir / name, formats=("png", "pdf", "svg"))
(export_dir / "table_summary.md").write_text(format_summary(rows) + "\n", encoding="utf-8")
with open(export_dir / "table_summary.csv", "w", encoding="utf-8") as f:
    f.write(",".join(rows[0]) + "\n")
    for row in rows:
        f.write(",".join(str(v).replace(",", ";") for v in row.values()) + "\n")
for path in sorted(export_dir.iterdir()):
    print(f"{path.stat().st_size / 1e3:8.1f} kB  {path}")

# %% [markdown]
# ## Where the tables are directional in time
#
# A temporal table is **symmetric** when a group weighs the frame `k` steps before the query like the frame
# `k` steps after it. Then its `T x T` mixing matrix is symmetric, and it cannot by itself tell a clip from
# the same clip played backwards. The **asymmetry** statistic measures the imbalance of weight mass between
# future (`Δt < 0`) and past (`Δt > 0`) keys, per group: `+1` = reads only later frames, `-1` = only earlier ones.

# %%
temporal = select(tables, unit="temporal")
asym = [table_stats(t).group_asymmetry for t in temporal]
width = max(len(a) for a in asym)
grid = np.full((len(temporal), width), np.nan)
for i, a in enumerate(asym):
    grid[i, : len(a)] = a
fig, ax = plt.subplots(figsize=(9, 0.45 * len(temporal) + 1.2), layout="constrained")
im = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
ax.set_yticks(range(len(temporal)), [t.name for t in temporal], fontsize=8)
ax.set_xlabel("group")
ax.set_title("temporal asymmetry per group: +1 = only future keys (Δt < 0), -1 = only past keys (Δt > 0)",
             fontsize=9)
fig.colorbar(im, ax=ax, label="asymmetry")
figures["temporal_asymmetry"] = fig
plots.save_figure(fig, export_dir / "temporal_asymmetry", formats=("png", "pdf", "svg"))
plt.show()

all_asym = np.concatenate(asym)
for level in (0.1, 0.3, 0.5):
    print(f"groups with |asymmetry| > {level}: {np.mean(np.abs(all_asym) > level):.0%} of {len(all_asym)}")
for t, a in zip(temporal, asym):
    print(f"  {t.name:28s} mean |asymmetry| {np.abs(a).mean():.2f}, most directional group {np.abs(a).argmax()} "
          f"({a[np.abs(a).argmax()]:+.2f})")

# %% [markdown]
# The most directional group, as its table and as the mixing matrix it applies (rows: query frame, columns:
# key frame). Weight above the diagonal reads *later* frames, below it *earlier* ones; the right panel
# shows the antisymmetric part `(M - Mᵀ)/2`, which is zero for a time-symmetric table.

# %%
which = int(np.argmax([np.abs(a).max() for a in asym]))
table, group = temporal[which], int(np.abs(asym[which]).argmax())
matrix = table.matrix()[group]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), layout="constrained")
axes[0].plot(table.offsets(0), table.table[group], marker="o")
axes[0].axhline(0, color="0.6", lw=0.6)
axes[0].axvline(0, color="0.6", lw=0.6, ls=":")
axes[0].set_xlabel("Δt = query - key (frames)")
axes[0].set_ylabel("bias")
axes[0].set_title(f"{table.name}, group {group} (asymmetry {asym[which][group]:+.2f})", fontsize=9)
top = np.abs(matrix).max() or 1.0
for ax, image, title in ((axes[1], matrix, "mixing matrix M"), (axes[2], (matrix - matrix.T) / 2, "(M - Mᵀ) / 2")):
    im = ax.imshow(image, cmap="RdBu_r", vmin=-top, vmax=top)
    ax.set_xlabel("key frame")
    ax.set_ylabel("query frame")
    ax.set_title(title, fontsize=9)
fig.colorbar(im, ax=axes[1:], label="weight")
plt.show()

# %% [markdown]
# **What it means.** The stem and the downsampling layers never mix frames (their kernels are `1 x 3 x 3`),
# so the temporal gating units are the model's only way to see frame order. Symmetric tables would make the
# whole network give the same output for a clip and its time reversal. SynthMotion's classes come in
# time-reversed pairs ("moving left" is "moving right" played backwards), so the model must break that
# symmetry, and the directional groups above are where it does. The check below plays test clips forwards
# and backwards through the bundled model: the largest logit change shows the output depends on frame
# order, and pair accuracy counts clips where *both* directions are classified right (an order-blind model
# scores 0 there; notebook 04 trains one).

# %%
report = time_reversal_report(model, meta, num_clips=REVERSAL_CLIPS)
for key, value in report.row().items():
    print(f"  {key:17s} {value:.4g}")
