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
# # 01 · Quick start: classify clips with PosMLP-Video
#
# This notebook loads the bundled checkpoint (`posmlp_video_xs` trained on SynthMotion, our CPU-scale
# motion benchmark), classifies SynthMotion clips and a clip drawn here by hand, shows the frames the
# model actually saw with its top-5 classes, and finally loads a checkpoint in the authors' format the way
# you would load their released SSv1/K400 weights.
#
# Everything runs on a laptop CPU in well under a minute. Files are written to a temporary folder
# (`OUT`, or the folder named by the `POSMLP_NB_OUT` environment variable), never into the repository.

# %% tags=["parameters"]
import os
import tempfile
from pathlib import Path

# Which checkpoint to use: None = the bundled SynthMotion model (or set POSMLP_NB_CHECKPOINT).
CHECKPOINT = os.environ.get("POSMLP_NB_CHECKPOINT") or None
OUT = Path(os.environ.get("POSMLP_NB_OUT") or tempfile.mkdtemp(prefix="posmlp_nb01_"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 1000  # SynthMotion seed for test clips: the bundled model was trained on seed 0, validated on seed 1
# Torch threads: these models are small, and on a shared machine extra threads mostly spin-wait (many
# times slower under load); raise it on a dedicated multi-core machine.
THREADS = int(os.environ.get("POSMLP_NB_THREADS", "1"))

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import posmlp_video
from posmlp_video.checkpoint import load_checkpoint, save_checkpoint
from posmlp_video.data import SynthMotion, write_mp4
from posmlp_video.predict import Predictor

torch.manual_seed(0)
torch.set_num_threads(THREADS)
print("posmlp_video from", Path(posmlp_video.__file__).parent, "| torch", torch.__version__,
      "| threads", torch.get_num_threads())
print("outputs go to", OUT)

# %% [markdown]
# ## Load the bundled model
#
# `load_checkpoint()` with no path returns the bundled model in eval mode and its metadata: class names and
# how clips must be fed (frames, sampling, crop size, normalisation). A checkpoint is all you need.

# %%
model, meta = load_checkpoint(CHECKPOINT)
n_params = sum(p.numel() for p in model.parameters())
print(f"{meta['model']}: {n_params:,} parameters, {len(meta['class_names'])} classes")
print(f"input: {meta['num_frames']} frames, sampling={meta['sampling']}, crop {meta['input_size']}, "
      f"short side {meta['resize_short']}, mean {meta['mean']}, std {meta['std']}")
for key in ("val_top1", "val_top5", "epoch"):
    if key in meta:
        print(f"{key}: {meta[key]}")
print("block types per stage:", meta["model_kwargs"]["block_types"])
for i, name in enumerate(meta["class_names"]):
    print(f"  {i:2d}  {name}")

# %% [markdown]
# ## Classify SynthMotion clips
#
# `Predictor` samples and preprocesses a clip exactly as the checkpoint's metadata says. We draw one test clip
# per class from a seed the model never saw, at 16 frames and 128 x 128 pixels: the predictor samples 8
# frames (one per segment) and resizes/crops them to the model's input.

# %%
predictor = Predictor(model, meta)
clips = SynthMotion(num_clips=12, seed=SEED, num_frames=16, size=128)
results = []
for i in range(len(clips)):
    item = clips[i]
    pred = predictor.predict(item["video"], top_k=5)
    results.append((item, pred))
    true = meta["class_names"][item["label"]]
    mark = "ok " if pred.top[0][0] == true else "-- "
    print(f"{mark} true: {true:38s} predicted: {pred.top[0][0]:38s} p={pred.top[0][1]:.2f}  "
          f"({pred.model_ms:.0f} ms model, {pred.total_ms:.0f} ms total)")
correct = sum(pred.top[0][0] == meta["class_names"][item["label"]] for item, pred in results)
print(f"top-1 on these {len(results)} clips: {correct}/{len(results)}")


# %% [markdown]
# ### The frames the model saw, and its top-5
#
# `Prediction.frames` are the sampled frames after resize and crop, exactly the model's input before
# normalisation.

# %%
def show_prediction(frames, top, title):
    """Frames in a row and a top-5 bar chart underneath."""
    t = len(frames)
    fig = plt.figure(figsize=(1.4 * t, 3.6), layout="constrained")
    grid = fig.add_gridspec(2, t, height_ratios=[1, 1.1])
    for k, frame in enumerate(frames):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(frame)
        ax.set_title(f"frame {k}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    labels, scores = zip(*top)
    ax.barh(range(len(top))[::-1], scores, color="C0")
    ax.set_yticks(range(len(top))[::-1], labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    fig.suptitle(title, fontsize=10)
    return fig


for index in (1, 6):  # "left to right" and "clockwise"
    item, pred = results[index]
    show_prediction(pred.frames, pred.top, f"true class: {meta['class_names'][item['label']]}")
    plt.show()

# %% [markdown]
# ## A clip you bring
#
# `Predictor.predict` takes a path to any video file, GIF or image (or a uint8 array). Set
# `MY_VIDEO` (or the `POSMLP_NB_VIDEO` environment variable) to one of your files. Without one, we draw a
# clip here with plain numpy (a dark disc moving down a light, plain background: nothing like SynthMotion's
# textured scenes), write it as an H.264 mp4 and classify the file, so decoding is exercised too.
# The model only knows SynthMotion's 12 classes, so on real footage it will pick one of them.

# %%
MY_VIDEO = os.environ.get("POSMLP_NB_VIDEO")
if MY_VIDEO is None:
    T, H, W = 24, 96, 128
    yy, xx = np.mgrid[:H, :W]
    frames = np.full((T, H, W, 3), 225, np.uint8)
    for t in range(T):
        cy = 15 + (H - 30) * t / (T - 1)
        disc = (yy - cy) ** 2 + (xx - W / 2) ** 2 < 12 ** 2
        frames[t][disc] = (40, 60, 160)
    MY_VIDEO = write_mp4(OUT / "my_clip.mp4", frames, fps=12)
print("classifying", MY_VIDEO)
mine = predictor.predict(MY_VIDEO, top_k=5)
for label, score in mine.top:
    print(f"  {score:6.3f}  {label}")
show_prediction(mine.frames, mine.top, f"{Path(MY_VIDEO).name}")
plt.show()

# %% [markdown]
# The same from the command line (one JSON line per input with `--json`):
#
# ```bash
# python -m posmlp_video predict my_clip.mp4 --top-k 5
# ```

# %% [markdown]
# ## Loading an authors'-format checkpoint
#
# The authors release `.pyth` files (SlowFast-style dictionaries holding `model_state` and a YAML `cfg`).
# With one of theirs you would write
#
# ```python
# model, meta = load_checkpoint("SSV1_MLP_S16.pyth", class_names=load_class_names("ssv1"))
# ```
#
# We have no right to ship their weights, so here we use a **stand-in**: a small checkpoint in exactly their
# format (their code's key names and cfg) with *random* weights, kept with our tests. We save it as a `.pyth`
# file and load it the way a user would. Its predictions are meaningless (random weights), but everything
# on the way (reading the cfg, converting the keys, building the matching model, metadata for preprocessing)
# is the real path.

# %%
reference = torch.load(Path(posmlp_video.__file__).parents[1] / "tests" / "data" / "official_small.pt",
                       weights_only=True)
their_file = OUT / "their_model.pyth"
torch.save(reference["checkpoint"], their_file)
print(f"wrote {their_file.name}: keys {sorted(reference['checkpoint'])}, "
      f"{len(reference['checkpoint']['model_state'])} tensors")
print("their cfg (excerpt):\n" + "\n".join(reference["checkpoint"]["cfg"].splitlines()[:12]))

# %%
theirs, their_meta = load_checkpoint(their_file)  # class_names=... names their classes (they ship none)
print(f"built {theirs.config['embed_dims']} dims, {theirs.config['depths']} depths, "
      f"{theirs.num_frames} frames, {theirs.num_classes} classes")
print({k: their_meta[k] for k in ("num_frames", "input_size", "resize_short", "sampling", "source")})

# The stand-in ships with the outputs of the authors' own code on a fixed input: ours must match.
with torch.no_grad():
    ours = theirs(reference["input"])
print("max |ours - authors' code| on the reference input:",
      f"{(ours - reference['logits']).abs().max().item():.2e}")

# %% [markdown]
# Classify a clip with it exactly like with our checkpoints, and convert it once to our format (a
# `.safetensors` file with the metadata inside; the CLI equivalent is
# `python -m posmlp_video convert their_model.pyth ours.safetensors --labels ssv1`).

# %%
their_predictor = Predictor(theirs, their_meta)
item = clips[0]
pred = their_predictor.predict(item["video"], top_k=5)
show_prediction(pred.frames, pred.top, "stand-in authors' checkpoint (random weights: meaningless scores)")
plt.show()

converted = save_checkpoint(theirs, OUT / "their_model.safetensors", their_meta)
again, again_meta = load_checkpoint(converted)
with torch.no_grad():
    same = torch.equal(again(reference["input"]), theirs(reference["input"]))
print(f"{converted.name}: {converted.stat().st_size / 1e3:.0f} kB, reloaded outputs identical: {same}")
