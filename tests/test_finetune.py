"""Fine-tuning on a class-per-folder dataset with configs/finetune_folder.yaml: linear probe, full fine-tune,
TensorBoard logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint, read_meta, save_checkpoint
from posmlp_video.data import SynthMotion
from posmlp_video.data.encode import write_mp4
from posmlp_video.errors import PosMLPError
from posmlp_video.models import PosMLPVideo
from posmlp_video.train.config import load_config
from posmlp_video.train.engine import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "finetune_folder.yaml"
CLASSES = {"a_left": 0, "b_up": 2, "c_grow": 4}  # folder name -> SynthMotion class drawn into it

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root with train/ and val/ class folders of mp4s, a 3-class init checkpoint for those classes)."""
    root = tmp_path_factory.mktemp("my_videos")
    clips = SynthMotion(60, seed=3, num_frames=8, size=32)
    wanted = {label: name for name, label in CLASSES.items()}
    counts = dict.fromkeys(CLASSES, 0)
    for i in range(len(clips)):
        item = clips[i]
        name = wanted.get(item["label"])
        if name is None or counts[name] >= 5:
            continue
        split = "train" if counts[name] < 3 else "val"
        write_mp4(root / split / name / f"{i}.mp4", item["video"])
        counts[name] += 1
    assert set(counts.values()) == {5}
    # start from the bundled model, its classifier cut down to the three classes the folders hold
    bundled, meta = load_checkpoint(BUNDLED_CHECKPOINT)
    init = PosMLPVideo(**{**meta["model_kwargs"], "num_classes": 3})
    state = bundled.state_dict()
    rows = list(CLASSES.values())
    state["head.weight"], state["head.bias"] = state["head.weight"][rows], state["head.bias"][rows]
    init.load_state_dict(state)
    path = save_checkpoint(init, root / "init.safetensors", {**meta, "class_names": list(CLASSES)})
    return root, path


def _run(root: Path, init: Path, out: Path, *overrides: str) -> dict:
    return train(load_config(RECIPE, [f"data.train={root / 'train'}", f"data.val={root / 'val'}", f"model.init={init}",
                                      f"output_dir={out}", "data.num_workers=0", "train.batch_size=3",
                                      "optim.lr_batch_size=3", "optim.warmup_epochs=0", *overrides]))


def test_linear_probe_changes_only_the_head_and_logs_to_tensorboard(folder_dataset, tmp_path) -> None:
    root, init = folder_dataset
    _run(root, init, tmp_path, "train.epochs=2", "train.tensorboard=true")
    before, after = load_file(str(init)), load_file(str(tmp_path / "model.safetensors"))
    assert before.keys() == after.keys()
    backbone = [k for k in before if not k.startswith("head.")]
    assert any("running_mean" in k for k in backbone)  # BatchNorm statistics are compared too
    for key in backbone:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert not torch.equal(before["head.bias"], after["head.bias"])
    meta = read_meta(tmp_path / "model.safetensors")
    assert meta["class_names"] == sorted(CLASSES) and meta["recipe"]["train"]["freeze"] == "backbone"
    assert "freeze backbone" in (tmp_path / "MODEL_CARD.md").read_text()

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "epoch/train_loss", "epoch/val_top1", "epoch/val_top5"} <= scalars
    lr = {e.step: e.value for e in events.Scalars("train/lr")}
    assert sorted(lr) == list(range(1, 7))  # 9 training clips / batch 3 = 3 steps per epoch, 2 epochs
    for record in records:  # the lr after each epoch's last step is the one metrics.jsonl records
        assert lr[3 * record["epoch"]] == pytest.approx(record["lr"], rel=1e-6)
    top1 = {e.step: e.value for e in events.Scalars("epoch/val_top1")}
    assert top1 == {r["epoch"]: pytest.approx(r["val_top1"]) for r in records}


def test_full_fine_tune_changes_the_backbone(folder_dataset, tmp_path) -> None:
    root, init = folder_dataset
    _run(root, init, tmp_path, "train.epochs=1", "train.freeze=none")
    before, after = load_file(str(init)), load_file(str(tmp_path / "model.safetensors"))
    assert not torch.equal(before["stem.conv1.weight"], after["stem.conv1.weight"])
    assert not torch.equal(before["stages.3.blocks.0.spatial.fc1.weight"], after["stages.3.blocks.0.spatial.fc1.weight"])
    assert not (tmp_path / "tensorboard").exists()  # off unless asked for


def test_bad_freeze_value_is_a_user_error(folder_dataset, tmp_path) -> None:
    root, init = folder_dataset
    with pytest.raises(PosMLPError, match="train.freeze must be none or backbone"):
        _run(root, init, tmp_path, "train.freeze=head")
