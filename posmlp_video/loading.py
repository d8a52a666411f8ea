"""What both checkpoint formats need: the shipped label sets and a strict state-dict load with one-line errors.

``checkpoint`` (our safetensors files) and ``convert`` (the authors' .pth/.pyth files) both use these, so
neither has to import the other for them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posmlp_video.bounds import check_tensor
from posmlp_video.errors import CheckpointError

PACKAGE_DIR = Path(__file__).resolve().parent
LABEL_FILES = {
    "ssv1": "something_something_v1.txt",
    "ssv2": "something_something_v2.txt",
    "k400": "kinetics_400.txt",
}


def load_class_names(name_or_path: str | Path) -> list[str]:
    """Class names of a shipped label set ("ssv1", "ssv2", "k400") or from a text file, one per line."""
    key = str(name_or_path).lower()
    path = PACKAGE_DIR / "labels" / LABEL_FILES[key] if key in LABEL_FILES else Path(name_or_path)
    if not path.is_file():
        raise CheckpointError(f"no label set {name_or_path!r}: use ssv1, ssv2, k400 or a text file")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise CheckpointError(f"label file {path} is empty")
    return names


def numbered_class_names(count: int) -> list[str]:
    """``["class 0", "class 1", ...]``: the names of a checkpoint loaded without a class list."""
    return [f"class {i}" for i in range(count)]


def has_numbered_classes(names: list[str]) -> bool:
    """Whether `names` are the placeholder numbers of `numbered_class_names` (no real names attached)."""
    return list(names) == numbered_class_names(len(names))


def load_state_dict_checked(
    model: torch.nn.Module, state: dict[str, torch.Tensor], names: dict[str, str] | None = None
) -> None:
    """load_state_dict(strict=True) with one-line errors naming the first offending key.

    `names` maps our keys to the checkpoint's own names (for converted checkpoints).
    """
    names = names or {}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [names.get(k, k) for k in state if k not in own]
    if missing:
        raise CheckpointError(f"checkpoint lacks key {missing[0]!r} ({len(missing)} missing in all)")
    if unexpected:
        raise CheckpointError(f"checkpoint has unexpected key {unexpected[0]!r} ({len(unexpected)} in all)")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            shown = f"{names[k]!r} (our {k!r})" if k in names else repr(k)
            raise CheckpointError(f"key {shown} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
        check_tensor(names.get(k, k), v, own[k])  # no int8/bool cast to float, no NaN/inf
    model.load_state_dict(state, strict=True)
