"""Training under faults: bad config values, a full disk, broken or odd checkpoints in output_dir, kill -9
leftovers and a loss that turns NaN. Each is one line (CLI exit 1) and leaves the last good state in place."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from posmlp_video.atomic import atomic_path
from posmlp_video.cli import main
from posmlp_video.errors import PosMLPError, StorageError
from posmlp_video.train import checkpointing, engine
from posmlp_video.train.checkpointing import load_training_state, save_training_state
from posmlp_video.train.config import load_config
from posmlp_video.train.engine import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthmotion_xs.yaml"
TINY = ["data.num_frames=4", "data.input_size=32", "data.resize_short=32", "data.train_clips=12", "data.val_clips=12",
        "aug.hflip=false", "aug.scale=[1, 1]", "optim.warmup_epochs=0", "optim.lr_batch_size=6",
        "train.batch_size=6", "model.kwargs={embed_dims: [8, 16, 32, 64], depths: [1, 1, 1, 1], "
        "gammas: [2, 4, 8, 16]}"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(out: Path, *overrides: str) -> dict:
    return train(load_config(RECIPE, [*TINY, f"output_dir={out}", *overrides]))


@pytest.mark.parametrize("override, message", [
    ("data.train_clips=0", "data.train_clips must be at least 1, got 0"),
    ("data.num_workers=-1", "data.num_workers must be 0 or more, got -1"),
    ("data.std=[0, 0, 0]", "data.std must be 3 positive numbers"),
    ("data.mean=[.nan, 0, 0]", "data.mean must be 3 finite numbers"),
    ("optim.lr=0", "optim.lr must be a positive number"),
    ("optim.lr=.inf", "optim.lr must be a positive number"),
    ("train.seed=-1", "train.seed must be in 0..2^32-1"),
    ("aug.scale=[0, 1]", "aug.scale must be two numbers"),
    ("aug.label_smoothing=1.5", "aug.label_smoothing must be in [0, 1)"),
    ("train.device=tpu", "train.device must be auto, cpu or cuda"),
    ("output_dir=/etc/passwd", "output_dir /etc/passwd exists and is not a folder"),
    ("output_dir=/proc/posmlp/run", "is not a writable folder"),
    ("model.name=posmlp_video_huge", "model.name 'posmlp_video_huge' is not a variant"),
    ("model.kwargs={embed_dims: [100000, 16, 32, 64]}", "embed_dims=100000 is out of bounds"),
    ("model.kwargs={block_types: nonsense}", "cannot build the model"),
    ("model.kwargs={embed_dims: [8192, 8192, 8192, 8192], depths: [64, 64, 64, 64], gammas: [8, 8, 8, 8]}",
     "the model would need"),
])
def test_bad_config_values_are_one_line_errors_before_training(override, message, tmp_path, capsys):
    code = main(["train", str(RECIPE), *TINY, f"output_dir={tmp_path / 'run'}", override])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing started


def test_a_model_too_large_for_memory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(engine.os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 1024)  # 4 MiB of RAM
    with pytest.raises(PosMLPError, match="more than the 0.0 GiB of cpu memory"):
        _run(tmp_path, "model.kwargs={}")


def test_last_pt_that_is_a_folder_is_refused_and_nothing_is_touched(tmp_path):
    (tmp_path / "last.pt").mkdir()
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (tmp_path / "best.pt").write_bytes(b"best")
    with pytest.raises(PosMLPError, match="last.pt is not a file"):
        _run(tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    assert (tmp_path / "best.pt").read_bytes() == b"best" and (tmp_path / "last.pt").is_dir()


def test_corrupt_last_pt_falls_back_and_kill_leftovers_are_removed(tmp_path, capsys):
    _run(tmp_path, "train.epochs=2")
    assert load_training_state(tmp_path / "last.prev.pt")["epoch"] == 1  # one previous version is kept
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 cut short by a crash")
    stale = tmp_path / ".last.pt.k9x2_ab7.tmp"  # what a kill -9 during a save leaves
    stale.write_bytes(b"half")
    other = tmp_path / ".notes.tmp"  # not our writer's pattern: kept
    other.write_text("mine")
    capsys.readouterr()
    _run(tmp_path, "train.epochs=3")
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "last.pt is not a readable training checkpoint" in warnings[0]
    assert "resuming from last.prev.pt (epoch 1)" in warnings[0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]  # epoch 2 re-run from the previous good state
    assert load_training_state(tmp_path / "last.pt")["epoch"] == 3
    assert not stale.exists() and other.read_text() == "mine"


def test_no_readable_checkpoint_stops_instead_of_starting_over(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"junk")
    (tmp_path / "best.pt").write_bytes(b"junk")
    with pytest.raises(PosMLPError, match="no readable checkpoint to resume"):
        _run(tmp_path)


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_state(tmp_path, monkeypatch):
    calls = []

    class Poisoned(torch.nn.CrossEntropyLoss):
        def forward(self, logits, targets):
            calls.append(1)
            loss = super().forward(logits, targets)
            return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", Poisoned)
    with pytest.raises(PosMLPError, match=r"NaN or infinite at step 3 \(epoch 2/2, batch 1\)") as err:
        _run(tmp_path, "train.epochs=2")
    assert "\n" not in str(err.value)
    last = load_training_state(tmp_path / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_writer_failure(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                       "data/0: file write failed")


@pytest.mark.parametrize("failure", [_enospc, _torch_writer_failure])
def test_a_full_disk_is_one_line_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, failure):
    path = tmp_path / "last.pt"
    save_training_state({"model": {"w": torch.ones(2)}, "epoch": 1}, path)
    monkeypatch.setattr(checkpointing.torch, "save", failure)
    monkeypatch.setattr("posmlp_video.atomic.shutil.disk_usage", lambda p: type("U", (), {"free": 4096})())
    with pytest.raises(StorageError, match=f"cannot write {path}: no space left on device$"):
        save_training_state({"model": {"w": torch.zeros(2)}, "epoch": 2}, path)
    assert load_training_state(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_write_failure_with_free_space_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(StorageError, match="the write failed") as err:
        with atomic_path(tmp_path / "x.pt"):
            _torch_writer_failure()
    assert "no space" not in str(err.value)


def test_a_full_disk_during_training_is_one_line_in_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpointing.torch, "save", _enospc)
    code = main(["train", str(RECIPE), *TINY, f"output_dir={tmp_path}", "train.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    # (the progress bar's cursor codes may precede it on the terminal line)
    assert code == 1 and err[-1].endswith(f"posmlp-video train: error: cannot write {tmp_path / 'best.pt'}: "
                                          "no space left on device")
