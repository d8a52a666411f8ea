"""Training checkpoints (``last.pt``, ``best.pt``): everything needed to resume, readable with ``weights_only=True``.

A checkpoint is a dict of plain tensors, numbers, strings, lists and dicts: model / optimizer / scheduler
/ EMA / GradScaler state, the number of finished epochs, the metric history and every rank's RNG states
(as tensors). It is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one, so a process killed at any moment leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.atomic import atomic_path
from posmlp_video.errors import CheckpointError


def rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), NumPy and Python RNG states as tensors and numbers."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
        "python_version": int(version),
        "python_state": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss_next": gauss_next,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached_gaussian"]))
    random.setstate((state["python_version"], tuple(state["python_state"].tolist()), state["python_gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_training_state(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` atomically: temp file in the same folder, fsync, rename over `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` (nothing arbitrary is unpickled)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no training checkpoint at {path}") from None
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
            raise CheckpointError(f"{path.name} holds pickled Python objects: refused (weights_only=True loading)") from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path.name} is not a readable training checkpoint ({first})") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path.name} is not a training checkpoint (no model state / epoch)")
    return state


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace a small text file atomically (used to rewrite metrics.jsonl on resume)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
