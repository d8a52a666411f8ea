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
# # 05 · Training walkthrough: configs, a short run, resume, eval, confusion matrix, export
#
# Training is driven by typed YAML recipes in `configs/` plus dotted `key=value` overrides, from the
# command line (`python -m posmlp_video train configs/synthmotion_xs.yaml train.epochs=4`) or from Python,
# as here. A run directory holds `config.yaml`, `metrics.jsonl`, `last.pt` (resume point), `best.pt` and the
# exported `model.safetensors`.
#
# **CI values.** The run below uses the bundled model's recipe (`configs/synthmotion_xs.yaml`) shrunk to
# `TRAIN_CLIPS = 64` clips per epoch, 2 epochs, then one more epoch by resuming: about a minute on 2 CPU cores.
# Such a run stays near chance (1/12 = 8.3%): SynthMotion takes several epochs of 2048 clips before
# accuracy leaves chance. The bundled checkpoint was made with the full recipe (printed below).
# `POSMLP_NB_FULL=1` runs 1024 clips x 6 + 2 epochs instead.
# Everything is written under a temporary folder (`OUT`, or `POSMLP_NB_OUT`).

# %% tags=["parameters"]
import os
import tempfile
from pathlib import Path

FULL = os.environ.get("POSMLP_NB_FULL") == "1"
SMOKE = os.environ.get("POSMLP_NB_SMOKE") == "1"  # a quick run that only checks every cell works (the tests)
OUT = Path(os.environ.get("POSMLP_NB_OUT") or tempfile.mkdtemp(prefix="posmlp_nb05_"))
OUT.mkdir(parents=True, exist_ok=True)
TRAIN_CLIPS = 1024 if FULL else 64  # SynthMotion clips per epoch (fresh clips every epoch)
VAL_CLIPS = 384 if FULL else 48
FIRST_EPOCHS, TOTAL_EPOCHS = (6, 8) if FULL else (2, 3)  # train, "get interrupted", resume to the total
EVAL_CLIPS = 600 if FULL else 32 if SMOKE else 96  # held-out clips for the final evaluations
BUNDLED = os.environ.get("POSMLP_NB_CHECKPOINT") or None  # the fully trained model to compare with (None = bundled)
# Torch threads: these models are small, and on a shared machine extra threads mostly spin-wait (many
# times slower under load); raise it on a dedicated multi-core machine.
THREADS = int(os.environ.get("POSMLP_NB_THREADS", "1"))

# %%
import json
import shutil
import subprocess
import sys

import matplotlib.pyplot as plt
import torch
import yaml
from IPython.display import Image, display

import posmlp_video
from posmlp_video.checkpoint import load_checkpoint, read_meta
from posmlp_video.data import SynthMotion
from posmlp_video.evaluate import evaluate_model
from posmlp_video.predict import Predictor
from posmlp_video.train.config import ConfigError, config_to_dict, load_config
from posmlp_video.train.data import eval_dataset
from posmlp_video.train.engine import train

# %matplotlib inline
torch.set_num_threads(THREADS)

REPO = Path(posmlp_video.__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
print("recipes:", ", ".join(sorted(p.name for p in CONFIGS.glob("*.yaml"))))

# %% [markdown]
# ## Configs
#
# A recipe is a YAML file whose keys map onto dataclasses (`model`, `data`, `aug`, `optim`, `train`); every
# value is type-checked and every key must exist. Here is the bundled model's recipe, fully resolved
# (defaults filled in):

# %%
recipe = CONFIGS / "synthmotion_xs.yaml"
cfg = load_config(recipe)
print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

# %% [markdown]
# Overrides use dotted keys and YAML values; mistakes are one-line errors, not silently ignored settings:

# %%
for bad in (["train.epoch=3"], ["optim.lr=fast"]):
    try:
        load_config(recipe, bad)
    except ConfigError as err:
        print(f"{bad[0]!r}: {err}")

# %% [markdown]
# ## A short run with progress
#
# The same recipe, shrunk for this notebook. Progress bars show loss and learning rate per step; one line
# per epoch reports validation accuracy and throughput.

# %%
run_dir = OUT / "run"
shutil.rmtree(run_dir, ignore_errors=True)  # start from scratch (an existing run directory would be resumed)
overrides = [
    f"output_dir={run_dir}",
    f"data.train_clips={TRAIN_CLIPS}",
    f"data.val_clips={VAL_CLIPS}",
    "train.batch_size=16",
    f"train.epochs={FIRST_EPOCHS}",
]
short = load_config(recipe, overrides)
print("overrides:", " ".join(overrides))
result = train(short)
print(json.dumps(result["best"]))

# %% [markdown]
# ## Resume
#
# Every epoch ends by writing `last.pt` (model, optimizer, scheduler, EMA, RNG states and the metrics so
# far) atomically, so a run that is killed resumes from its last complete epoch when started again with the
# same `output_dir`. Here we extend the finished run to more epochs: the engine reads `last.pt` and carries
# on from epoch `FIRST_EPOCHS + 1` with the same learning-rate schedule position.

# %%
resumed = train(load_config(recipe, overrides[:-1] + [f"train.epochs={TOTAL_EPOCHS}"]))
history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
print(f"{len(history)} epochs in metrics.jsonl; files: {sorted(p.name for p in run_dir.iterdir())}")

# %% [markdown]
# ## Curves
#
# From `metrics.jsonl` (one JSON line per epoch); the dashed line marks where the run was resumed.

# %%
epochs = [r["epoch"] for r in history]
fig, axes = plt.subplots(1, 3, figsize=(12, 3), layout="constrained")
axes[0].plot(epochs, [r["train_loss"] for r in history], marker="o")
axes[0].set_ylabel("training loss")
axes[1].plot(epochs, [r["val_top1"] for r in history], marker="o", label="top-1")
axes[1].plot(epochs, [r["val_top5"] for r in history], marker="s", label="top-5")
axes[1].axhline(100 / 12, color="0.6", ls=":", label="chance (top-1)")
axes[1].set_ylabel("validation accuracy (%)")
axes[1].legend(fontsize=8)
axes[2].plot(epochs, [r["lr"] for r in history], marker="o")
axes[2].set_ylabel("learning rate (end of epoch)")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.axvline(FIRST_EPOCHS + 0.5, color="C3", ls="--", lw=0.8)
    ax.set_xticks(epochs)
plt.show()

# %% [markdown]
# ## Evaluate
#
# `python -m posmlp_video eval` scores a checkpoint on held-out data (mean softmax over clips x crops views)
# and writes the confusion matrix and per-class accuracy. SynthMotion seed 1000 was used for neither
# training (seed 0) nor validation (seed 1).

# %%
exported = Path(resumed["model"])
command = [sys.executable, "-m", "posmlp_video", "eval", "--checkpoint", str(exported), "--num-clips",
           str(EVAL_CLIPS), "--seed", "1000", "--output", str(OUT / "eval_short"), "--json"]
out = subprocess.run(command, capture_output=True, text=True, check=True,
                     env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
short_eval = json.loads(out.stdout)
print({k: short_eval[k] for k in ("clips", "views", "top1", "top5")})
print("wrote", sorted(p.name for p in (OUT / "eval_short").iterdir()))

# %% [markdown]
# The confusion matrix it wrote (`confusion_matrix.png`; counts in `confusion_matrix.csv`, rows are true
# classes, columns predictions):

# %%
display(Image(filename=str(OUT / "eval_short" / "confusion_matrix.png"), width=520))

# %% [markdown]
# The same from Python, with the confusion matrix in hand, for the bundled checkpoint (the same recipe
# trained in full). SynthMotion's classes come in time-reversed pairs (0/1, 2/3, ...), so a model that
# misreads frame order fills the off-diagonal cells of the 2x2 blocks along the diagonal.

# %%
def show_confusion(result, title):
    rates = (result.confusion.float() / result.confusion.sum(1, keepdim=True).clamp(min=1)).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    n = len(result.class_names)
    ax.set_xticks(range(n), [f"{i}" for i in range(n)], fontsize=8)
    ax.set_yticks(range(n), [f"{i} {name}" for i, name in enumerate(result.class_names)], fontsize=7)
    for i in range(n):
        for j in range(n):
            if result.confusion[i, j]:
                ax.text(j, i, int(result.confusion[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_title(f"{title}: top-1 {result.top1:.1f}%, top-5 {result.top5:.1f}% on {result.count} clips",
                 fontsize=9)
    fig.colorbar(im, ax=ax, label="share of the true class")
    plt.show()


bundled_model, bundled_meta = load_checkpoint(BUNDLED)
dataset, names = eval_dataset("synthmotion", bundled_meta, num_clips=EVAL_CLIPS, seed=1000)
loader = torch.utils.data.DataLoader(dataset, batch_size=16)
bundled_result = evaluate_model(bundled_model, loader, names, torch.device("cpu"))
show_confusion(bundled_result, "bundled checkpoint")

# %%
pairs = bundled_result.confusion.view(6, 2, 6, 2).sum((1, 3)).diagonal().sum() / bundled_result.count
print(f"bundled checkpoint: top-1 {bundled_result.top1:.1f}%; the right *pair* of classes {100 * float(pairs):.1f}%")
print("per class top-1 (%):")
for name, acc in bundled_result.per_class().items():
    print(f"  {'-' if acc is None else f'{acc:5.1f}'}  {name}")

# %% [markdown]
# ## Export
#
# At the end of a run the engine exports the best epoch's weights (the EMA weights when EMA is on) to
# `output_dir/model.safetensors`, our inference format: weights plus metadata (classes, preprocessing, the
# validation score and the full recipe), no pickles. `export_to=PATH` also copies it elsewhere; that is how
# the bundled checkpoint was made (after `configs/synthmotion_xs.yaml`, which gives its starting weights):
#
# ```bash
# python -m posmlp_video train configs/realmotion_xs.yaml \
#     export_to=posmlp_video/weights/posmlp_video_xs_realmotion.safetensors
# ```
#
# The exported file is used like any checkpoint: `load_checkpoint`, `Predictor`, the `predict` and `eval`
# commands, the app and the other notebooks (set `POSMLP_NB_CHECKPOINT` to it).

# %%
meta = read_meta(exported)
print(f"{exported.name}: {exported.stat().st_size / 1e6:.1f} MB")
print({k: meta[k] for k in ("model", "num_frames", "input_size", "epoch", "val_top1", "val_top5")})
print("recipe stored inside:", json.dumps(meta["recipe"]["data"])[:200], "...")
predictor = Predictor.from_checkpoint(exported)
item = SynthMotion(1, seed=1000, num_frames=16, size=96)[0]
top = predictor.predict(item["video"], top_k=3).top
print(f"true: {meta['class_names'][item['label']]}; short-run model says: {top}")
