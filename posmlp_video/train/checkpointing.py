"""Training checkpoints (``last.pt``, ``best.pt``): everything needed to resume, readable with ``weights_only=True``.

A checkpoint is a dict of plain tensors, numbers, strings, lists and dicts: model / optimizer / scheduler
/ EMA / GradScaler state, the number of finished epochs, the metric history and every rank's RNG states
(as tensors). It is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one, so a process killed at any moment leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.atomic import atomic_path
from posmlp_video.bounds import torch_load
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


def save_training_state(state: dict[str, Any], path: str | Path, backup: str | Path | None = None) -> Path:
    """Write `state` atomically: temp file in the same folder, fsync, rename over `path` (the old one to
    `backup` when given)."""
    path = Path(path)
    with atomic_path(path, backup) as tmp:
        torch.save(state, tmp)
    return path


def previous_path(path: Path) -> Path:
    """Where the checkpoint before `path` is kept (``last.pt`` -> ``last.prev.pt``)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_resume_state(out: Path) -> dict[str, Any] | None:
    """The newest readable of ``last.pt``, ``last.prev.pt`` and ``best.pt`` in `out` (None when there is none).

    A checkpoint that cannot be read is skipped with a one-line warning naming the one used instead; if
    checkpoints exist but none is readable, the run stops rather than starting over.
    """
    last = out / "last.pt"
    candidates = [p for p in (last, previous_path(last), out / "best.pt") if p.exists()]
    problems = []
    for path in candidates:
        try:
            state = load_training_state(path)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if problems:
            print(f"warning: {problems[0]}; resuming from {path.name} (epoch {state['epoch']}) instead",
                  file=sys.stderr, flush=True)
        return state
    if problems:
        raise CheckpointError(f"no readable checkpoint to resume in {out}: {problems[0]}")
    return None


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` (nothing arbitrary is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no training checkpoint at {path}")
    state = torch_load(path, "a readable training checkpoint")
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path.name} is not a training checkpoint (no model state / epoch)")
    return state


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace a small text file atomically (used to rewrite metrics.jsonl on resume)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
