"""Class-name lists: the ones shipped with the package (authors' label order) and user files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from posmlp_video.errors import PosMLPError

BUNDLED = ("something_something_v1", "something_something_v2", "kinetics_400")


def bundled_class_names(dataset: str) -> list[str]:
    """Class names of ``something_something_v1``, ``something_something_v2`` or ``kinetics_400``,
    in the label-index order of the authors' annotation files."""
    if dataset not in BUNDLED:
        raise PosMLPError(f"no bundled class names for {dataset!r} (choose from {', '.join(BUNDLED)})")
    text = resources.files("posmlp_video").joinpath("labels", f"{dataset}.txt").read_text(encoding="utf-8")
    return _parse(text)


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored), line order = label index."""
    try:
        return _parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise PosMLPError(f"cannot read class names from {path}: {err}") from None


def _parse(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]
