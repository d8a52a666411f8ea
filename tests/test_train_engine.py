"""The training loop in one process: it learns, writes what it promises, resumes, and initialises from weights."""

import contextlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posmlp_video.checkpoint import load_checkpoint, resize_state_dict, save_checkpoint
from posmlp_video.convert import from_official
from posmlp_video.data import SynthMotion
from posmlp_video.errors import CheckpointError, PosMLPError
from posmlp_video.evaluate import evaluate_model
from posmlp_video.models import create_model
from posmlp_video.train.checkpointing import load_training_state
from posmlp_video.train.config import load_config
from posmlp_video.train.data import eval_dataset
from posmlp_video.train.engine import init_weights, train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthmotion_xs.yaml"
# 4 frames at 32x32, no augmentation: a few seconds per run on 2 cores
TINY = ["data.num_frames=4", "data.input_size=32", "data.resize_short=32", "data.train_clips=12", "data.val_clips=12",
        "aug.hflip=false", "aug.scale=[1, 1]", "optim.warmup_epochs=0", "optim.lr=1e-3", "optim.lr_batch_size=6",
        "train.batch_size=6"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(tmp_path: Path, *overrides: str) -> dict:
    return train(load_config(RECIPE, [*TINY, f"output_dir={tmp_path}", *overrides]))


def _accuracy_on(path: Path, seed: int, num_clips: int) -> float:
    model, meta = load_checkpoint(path)
    dataset, names = eval_dataset("synthmotion", meta, num_clips=num_clips, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=12)
    return evaluate_model(model, loader, names, torch.device("cpu")).top1


@pytest.mark.slow
def test_overfits_a_tiny_fixed_set_and_writes_its_outputs(tmp_path):
    summary = _run(tmp_path, "data.fresh_clips=false", "train.epochs=30")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == list(range(1, 31))
    for key in ("epoch", "lr", "train_loss", "val_top1", "val_top5", "clips_per_s", "world_size"):
        assert key in records[0]
    assert records[0]["world_size"] == 1
    assert records[-1]["train_loss"] < 0.25 * records[0]["train_loss"]
    # the lr follows warmup-free cosine decay down to min_lr
    assert records[0]["lr"] > records[15]["lr"] > records[-1]["lr"] == pytest.approx(1e-5, rel=0.05)
    # the exported model classifies its 12 training clips (seed 0) almost perfectly
    assert _accuracy_on(tmp_path / "model.safetensors", seed=0, num_clips=12) >= 90
    # resolved config, weights_only training checkpoints, inference export with metadata
    assert load_config(tmp_path / "config.yaml").train.epochs == 30
    last = load_training_state(tmp_path / "last.pt")
    best = load_training_state(tmp_path / "best.pt")
    assert last["epoch"] == 30 and last["history"] == records
    assert best["history"][-1]["val_top1"] == max(r["val_top1"] for r in records) == summary["best"]["val_top1"]
    model, meta = load_checkpoint(tmp_path / "model.safetensors")
    assert meta["class_names"] == list(SynthMotion.class_names)
    assert (meta["num_frames"], meta["input_size"], meta["model"]) == (4, [32, 32], "posmlp_video_xs")
    assert meta["recipe"]["train"]["epochs"] == 30 and meta["recipe"]["data"]["train_seed"] == 0
    exported = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(exported[k], v) for k, v in best["model"].items())


def test_rerun_of_a_finished_run_trains_nothing_more(tmp_path):
    _run(tmp_path, "train.epochs=2")
    before = (tmp_path / "metrics.jsonl").read_text()
    weights = load_file(str(tmp_path / "model.safetensors"))
    _run(tmp_path, "train.epochs=2")
    assert (tmp_path / "metrics.jsonl").read_text() == before
    again = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert "## Classes (12)" in (tmp_path / "MODEL_CARD.md").read_text()  # the export's card, beside it


def test_ema_mixup_cutmix_smoothing_accumulation_and_clipping_run(tmp_path):
    from posmlp_video.fast import cpu_has_fast_bf16

    # bf16 autocast: on a CPU without bf16 kernels the run warns that it is slow there, elsewhere it is silent
    warns = contextlib.nullcontext() if cpu_has_fast_bf16() else pytest.warns(UserWarning, match="slow fallback")
    with warns:
        _run(tmp_path, "train.epochs=2", "train.ema=true", "train.ema_decay=0.9", "aug.mixup=0.8", "aug.cutmix=1.0",
             "aug.label_smoothing=0.1", "train.accum_steps=2", "optim.clip_grad=1.0", "aug.random_erasing=0.5",
             "aug.randaugment_n=2", "aug.hflip=true", "train.amp=bf16", "model.grad_checkpointing=true")
    last = load_training_state(tmp_path / "last.pt")
    assert last["num_updates"] == 2  # 12 clips / (6 x 2) per step, 2 epochs
    assert last["ema"].keys() == last["model"].keys()
    assert any(not torch.equal(last["ema"][k], last["model"][k]) for k in last["model"])
    model, _ = load_checkpoint(tmp_path / "model.safetensors")  # exported from the EMA weights
    best = load_training_state(tmp_path / "best.pt")
    assert all(torch.equal(v, best["ema"][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("overrides, message", [
    (["train.amp=fp16", "train.device=cpu"], "fp16 needs CUDA"),
    (["aug.mixup=0.8", "train.batch_size=5"], "batch_size must be even"),
    (["data.val_seed=0"], "must differ"),
    (["data.train=/no/such/folder"], "no dataset at"),
    (["data.train_clips=4"], "make no full step"),
    (["model.init=/no/such.safetensors"], "no checkpoint to initialise from"),
    (["model.kwargs={depths: [1, 1]}"], r"depths=\[1, 1\] must be a list of 4 integers"),
])
def test_bad_settings_are_user_errors(tmp_path, overrides, message):
    with pytest.raises(PosMLPError, match=message):
        _run(tmp_path, "train.epochs=1", *overrides)


def test_init_resets_the_head_when_classes_differ(tmp_path):
    source = create_model("posmlp_video_xs", num_classes=5, num_frames=4, img_size=32)
    save_checkpoint(source, tmp_path / "five.safetensors", dict(class_names=list("abcde"), num_frames=4,
                                                                 input_size=[32, 32]))
    model = create_model("posmlp_video_xs", num_classes=12, num_frames=4, img_size=32)
    head = model.head.weight.clone()
    init_weights(model, tmp_path / "five.safetensors")
    for key, value in source.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(model.state_dict()[key], value), key
    assert torch.equal(model.head.weight, head)


def test_init_inflates_an_image_model_to_video(tmp_path):
    image = create_model("posmlp_video_xs", num_classes=12, num_frames=1, img_size=32)
    with torch.no_grad():
        for name, p in image.named_parameters():
            if name.endswith(("relative_position_bias_table", "token_bias")):
                p.normal_()
    save_checkpoint(image, tmp_path / "image.safetensors", dict(class_names=[str(i) for i in range(12)],
                                                                  num_frames=1, input_size=[32, 32]))
    video = create_model("posmlp_video_xs", num_classes=12, num_frames=4, img_size=32)
    init_weights(video, tmp_path / "image.safetensors")
    expected = resize_state_dict(image.state_dict(), video)
    table = "stages.0.blocks.0.temporal.gate.relative_position_bias_table"
    assert image.state_dict()[table].shape != video.state_dict()[table].shape  # really inflated
    for key, value in video.state_dict().items():
        assert torch.equal(value, expected[key]), key
    video.eval()(torch.randn(1, 3, 4, 32, 32))  # and it runs on 4-frame clips


def test_init_from_the_authors_checkpoint(official_small, tmp_path):
    torch.save(official_small["checkpoint"], tmp_path / "theirs.pyth")
    theirs = from_official(tmp_path / "theirs.pyth")
    cfg = theirs.config
    kwargs = {k: cfg[k] for k in ("embed_dims", "depths", "spatial_windows", "gammas")}
    model = create_model("posmlp_video_xs", num_classes=12, num_frames=cfg["num_frames"], img_size=32, **kwargs)
    init_weights(model, tmp_path / "theirs.pyth")  # 10 classes -> our 12: head reset, backbone theirs
    for key, value in theirs.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="lacks key"):
        init_weights(create_model("posmlp_video_xs", num_classes=12, num_frames=4), tmp_path / "theirs.pyth")
