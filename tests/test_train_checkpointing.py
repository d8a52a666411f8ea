"""Training checkpoints: atomic, weights_only-loadable, and they bring back every RNG stream."""

import random

import numpy as np
import pytest
import torch

from posmlp_video.errors import CheckpointError
from posmlp_video.train import checkpointing
from posmlp_video.train.checkpointing import (
    load_training_state,
    rng_state,
    save_training_state,
    set_rng_state,
)


def _draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), [random.random() for _ in range(3)]


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    saved = rng_state()
    expected = _draws()
    save_training_state({"model": {}, "epoch": 0, "rng": [saved]}, tmp_path / "last.pt")
    _draws()  # move every generator on
    state = torch.load(tmp_path / "last.pt", weights_only=True)  # plain tensors/numbers only
    set_rng_state(state["rng"][0])
    assert _draws() == expected


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_training_state({"model": {"w": torch.ones(2)}, "epoch": 1}, path)

    def dies_mid_write(obj, f):
        with open(f, "wb") as out:  # torch.save gets the temporary path
            out.write(b"half a checkpoint")
        raise KeyboardInterrupt  # e.g. Ctrl-C while writing

    monkeypatch.setattr(checkpointing.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_training_state({"model": {"w": torch.zeros(2)}, "epoch": 2}, path)
    state = load_training_state(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


def test_unreadable_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        load_training_state(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_training_state(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_training_state(tmp_path / "other.pt")


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"model": {}, "epoch": 0, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects: refused"):
        load_training_state(tmp_path / "evil.pt")
