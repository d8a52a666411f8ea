"""Atomic file replacement: a reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from posmlp_video.errors import StorageError

# mkstemp's names: "." + target name + "." + 8 random characters + ".tmp"
_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
LOW_SPACE = 64 << 20  # below this much free space, a failed write is reported as a full disk


@contextmanager
def atomic_path(path: str | Path, backup: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it over `path`.

    With `backup`, the old `path` is first renamed to `backup` (one previous version is kept). If the block
    raises (or the process dies), `path` keeps its old content and the temporary file is removed (or left as
    a hidden ``.name.*.tmp`` that :func:`remove_stale_temps` deletes on the next start). A full disk is a
    one-line `StorageError`, whichever way the writer reports it.
    """
    path = Path(path)
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    try:
        with disk_errors(path):
            yield Path(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shareable files
            if backup is not None and path.is_file():
                os.replace(path, backup)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn "no space left" (OSError ENOSPC/EDQUOT, or torch's ``[enforce fail at inline_container.cc]`` when
    the disk is nearly full) into a one-line `StorageError` naming `path`."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"cannot write {path}: no space left on device") from None
        raise
    except RuntimeError as err:
        if "inline_container" not in str(err) and "PytorchStreamWriter" not in str(err):
            raise
        try:
            full = shutil.disk_usage(path.parent).free < LOW_SPACE
        except OSError:
            full = False
        reason = "no space left on device" if full else f"the write failed ({str(err).strip().splitlines()[0][:120]})"
        raise StorageError(f"cannot write {path}: {reason}") from None


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the hidden temporary files :func:`atomic_path` leaves in `folder` when a process is killed.

    Call it only where no other process is writing into `folder` (e.g. at the start of a training run).
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if _TEMP.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
