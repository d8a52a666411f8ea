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
# # 03 · Attributions: which pixels and frames drive a prediction
#
# `analysis.attribute` explains one clip's prediction with Captum, on the frames the model actually saw
# (after the checkpoint's resize and crop). We compare four methods on SynthMotion clips:
#
# * **integrated gradients** (IG): per-pixel contributions that add up to the logit change from a baseline
#   (the dataset's mean colour) to the clip, up to Captum's convergence delta;
# * **occlusion**: how much the logit drops when a spatio-temporal patch is replaced by the baseline;
# * **frame occlusion**: the same for whole frames, a per-frame importance curve;
# * **Grad-CAM** on a stage's output, upsampled to the clip.
#
# Then the **pointing game**: SynthMotion knows which pixels the acting object covers, so we measure how
# much of each method's top-10% attribution mass falls on the object, over many clips, against random maps
# on the same masks.
#
# **CI values.** By default the pointing game runs Grad-CAM and saliency on 48 clips, integrated gradients
# (16 steps) on 24 clips and occlusion on 12, which keeps the notebook well under a minute on 2 CPU cores.
# Set `POSMLP_NB_FULL=1` (or edit the parameters cell) for 240 clips for the cheap methods, 96 for IG and
# occlusion and 32 IG steps (a few minutes); the conclusions at the end are printed from whatever ran.

# %% tags=["parameters"]
import os
import tempfile
import time
from pathlib import Path

FULL = os.environ.get("POSMLP_NB_FULL") == "1"
SMOKE = os.environ.get("POSMLP_NB_SMOKE") == "1"  # a quick run that only checks every cell works (the tests)
CHECKPOINT = os.environ.get("POSMLP_NB_CHECKPOINT") or None  # None = the bundled SynthMotion model
OUT = Path(os.environ.get("POSMLP_NB_OUT") or tempfile.mkdtemp(prefix="posmlp_nb03_"))
OUT.mkdir(parents=True, exist_ok=True)
POINTING_CLIPS = 240 if FULL else 12 if SMOKE else 48  # pointing-game clips for the cheap methods (Grad-CAM, saliency)
SLOW_CLIPS = 96 if FULL else 4 if SMOKE else 24  # ... for integrated gradients (IG_STEPS passes per clip)
OCCLUSION_CLIPS = 96 if FULL else 3 if SMOKE else 12  # ... for occlusion (one pass per occluded patch)
IG_STEPS = 32 if FULL else 16  # integrated-gradients steps (Gauss-Legendre)
SEED = 1000  # SynthMotion seed: never used in training
OCCLUSION_PATCH = (2, 16, 16)  # occluded block: frames x pixels x pixels (16 patches per frame pair at 64 px)
GRAD_CAM_STAGE = 0  # the finest stage (16 x 16 tokens at 64-pixel inputs; the last stage has 2 x 2, see below)
# Torch threads: these models are small, and on a shared machine extra threads mostly spin-wait (many
# times slower under load); raise it on a dedicated multi-core machine.
THREADS = int(os.environ.get("POSMLP_NB_THREADS", "1"))

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Video, display

from analysis import (
    align_mask,
    attribute,
    frame_strip,
    overlay_video,
    plots,
    pointing_game,
    pointing_game_report,
)
from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.data import SynthMotion

# %matplotlib inline
torch.set_num_threads(THREADS)

model, meta = load_checkpoint(CHECKPOINT)
clips = SynthMotion(12, seed=SEED, num_frames=int(meta["num_frames"]), size=tuple(meta["input_size"]))
print(f"{meta['model']} on {meta['num_frames']} x {meta['input_size']} clips; "
      f"pointing game: {POINTING_CLIPS} clips, IG steps {IG_STEPS}")

# %% [markdown]
# ## Four methods on one clip
#
# A "moving left to right" clip (class 1). Each strip shows the frames the model saw (top) and the
# attribution magnitude blended on them (bottom), one colour scale for the whole clip.

# %%
item = clips[1]
mask = align_mask(item["mask"], meta)
results = {
    "integrated_gradients": attribute(model, item["video"], "integrated_gradients", meta=meta, steps=IG_STEPS),
    "occlusion": attribute(model, item["video"], "occlusion", meta=meta, patch=OCCLUSION_PATCH),
    "frame_occlusion": attribute(model, item["video"], "frame_occlusion", meta=meta),
    "grad_cam": attribute(model, item["video"], "grad_cam", meta=meta, stage=GRAD_CAM_STAGE),
}
ig = results["integrated_gradients"]
print(f"true: {meta['class_names'][item['label']]}")
print(f"explained (top-1): {ig.target_name}, p = {ig.probability:.2f}")
print(f"IG completeness: sum of attributions {ig.values.sum():.4f} vs logit change {ig.logit_change:.4f} "
      f"(delta {ig.delta:+.2e}, {ig.relative_delta:.1%} of the change)")

fig, axes = plt.subplots(len(results), 1, figsize=(12, 2.2 * len(results)), layout="constrained")
for ax, (name, result) in zip(axes, results.items()):
    ax.imshow(frame_strip(result, scale=2))
    if name == "frame_occlusion":  # one value per frame: it says when, not where
        ax.set_title(f"{name}: one score per frame (no spatial information)", fontsize=9)
    else:
        ax.set_title(f"{name}: pointing game {pointing_game(result, mask):.2f} on this clip", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ### Which frames matter
#
# Frame occlusion gives one number per frame: the logit drop when that frame is replaced by the mean colour.
# IG's per-frame sums are each frame's share of the logit change.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), layout="constrained")
plots.plot_temporal_importance(results["frame_occlusion"].temporal_importance(),
                               "frame occlusion: logit drop per frame", ax=axes[0])
plots.plot_temporal_importance(ig.temporal_importance(), "integrated gradients: sum per frame", ax=axes[1])
plt.show()

# %% [markdown]
# ### Grad-CAM at every stage
#
# Deeper stages have coarser token grids (the input size divided by 4, 8, 16 and 32), so their maps are
# blurrier after upsampling; with the bundled model's 64-pixel inputs the last stage is a 2 x 2 grid per
# frame, so its Grad-CAM says mostly *when*, hardly *where*. That is why this notebook uses
# `GRAD_CAM_STAGE = 0` elsewhere and scores the last stage separately in the pointing game.

# %%
stages = len(model.stages)
fig, axes = plt.subplots(stages, 1, figsize=(12, 2.2 * stages), layout="constrained")
for stage, ax in enumerate(axes):
    cam = attribute(model, item["video"], "grad_cam", meta=meta, stage=stage)
    ax.imshow(frame_strip(cam, scale=2))
    ax.set_title(f"Grad-CAM, stage {stage}: pointing game {pointing_game(cam, mask):.2f}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# An overlay video (H.264, plays in the browser and in JupyterLab), next to the plain frames:

# %%
video_path = overlay_video(ig, OUT / "ig_overlay.mp4", fps=4)
display(Video(str(video_path), embed=True, width=512))

# %% [markdown]
# ## Pointing game over many clips
#
# For every clip we explain the **true** class, keep the top 10% of `|attribution|` over the whole clip, and
# measure the share of that mass on the acting object's pixels. A random map scores about the object's share
# of the pixels; that is the baseline every method must beat. The slower methods run on fewer clips (see the
# parameters cell); the first clips are the same for all methods.

# %%
last = len(model.stages) - 1
methods = {
    f"grad_cam stage {GRAD_CAM_STAGE}": dict(method="grad_cam", num_clips=POINTING_CLIPS, stage=GRAD_CAM_STAGE),
    f"grad_cam stage {last}": dict(method="grad_cam", num_clips=POINTING_CLIPS, stage=last),
    "saliency": dict(method="saliency", num_clips=POINTING_CLIPS),
    "integrated_gradients": dict(method="integrated_gradients", num_clips=SLOW_CLIPS, steps=IG_STEPS),
    "occlusion": dict(method="occlusion", num_clips=OCCLUSION_CLIPS, patch=OCCLUSION_PATCH),
}
reports = {}
for name, kwargs in methods.items():
    start = time.perf_counter()
    reports[name] = pointing_game_report(model, meta, seed=SEED, **kwargs)
    print(f"{name:22s} {reports[name].format()}  [{time.perf_counter() - start:.1f} s]")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained", gridspec_kw=dict(width_ratios=[1, 1.4]))
names = list(reports)
x = np.arange(len(names))
axes[0].bar(x - 0.2, [r.mean for r in reports.values()], 0.4, label="method",
            yerr=[r.scores.std() / np.sqrt(len(r.scores)) for r in reports.values()], capsize=3)
axes[0].bar(x + 0.2, [r.random_mean for r in reports.values()], 0.4, color="0.6", label="random map")
axes[0].set_xticks(x, names, rotation=25, ha="right", fontsize=8)
axes[0].set_ylabel("mass on the object (top 10%)")
axes[0].set_ylim(0, 1)
axes[0].legend(fontsize=8)
axes[0].set_title("pointing game (mean ± s.e.)", fontsize=9)
for i, (name, r) in enumerate(reports.items()):
    axes[1].scatter(r.random_scores, r.scores, s=14, label=name, color=f"C{i}")
axes[1].plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
axes[1].set_xlabel("random map (same clip)")
axes[1].set_ylabel("method")
axes[1].set_xlim(0, min(1.0, 1.5 * max(r.random_scores.max() for r in reports.values())))
axes[1].set_ylim(0, 1)
axes[1].legend(fontsize=7)
axes[1].set_title("per clip: above the diagonal = beats random", fontsize=9)
plt.show()

# %% [markdown]
# Per class (Grad-CAM and IG), with the random baseline of the same clips: the object's share of the
# pixels differs a lot between classes (a growing object covers more than a moving one), so compare each
# score with its own baseline.

# %%
class_names = meta["class_names"]
for name in (f"grad_cam stage {GRAD_CAM_STAGE}", "integrated_gradients"):
    r = reports[name]
    per_class = {c: r.scores[r.labels == c].mean() for c in np.unique(r.labels)}
    print(name)
    for c, score in per_class.items():
        random = r.random_scores[r.labels == c].mean()
        print(f"  {class_names[c]:38s} {score:.2f} (random {random:.2f}, {np.sum(r.labels == c)} clips)")

# %% [markdown]
# **Reading the numbers.** Every `PointingReport.format()` line above states the method's mean, the random
# baseline on the same masks and the share of clips where the method beats random; with the CI values these
# are small samples (48 clips, 24 for IG, 12 for occlusion), so differences of a few points between methods
# are noise.
# The cell below states the comparison from the numbers that ran.

# %%
for name, r in reports.items():
    verdict = "above" if r.mean > r.random_mean else "NOT above"
    print(f"{name:22s} {verdict} random: {r.mean:.3f} vs {r.random_mean:.3f} "
          f"(x{r.mean / max(r.random_mean, 1e-9):.1f}), beats random on {r.win_rate:.0%} of {len(r.scores)} clips")
