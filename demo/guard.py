"""Disk hygiene for the app: oversized uploads refused before their body is read, partial uploads of clients
that disconnect deleted, and the app's work folder (uploads included) removed on SIGTERM as on a clean exit.

Gradio writes each upload to a temporary file at the top of its upload folder while it arrives, then moves it
into a per-content subfolder. A client that disconnects mid-upload leaves that temporary file behind; every
few seconds, top-level files that have not changed for a while and that no open file descriptor of this
process points to are such leftovers, and are deleted (Linux, via /proc/self/fd; elsewhere Gradio's hourly
cache cleaning removes them).
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]
MULTIPART_SLACK = 64 << 10  # form boundaries and headers around the file itself


class UploadGuard:
    """ASGI middleware for ``/gradio_api/upload``: a Content-Length above the limit is refused (413) at once.

    A background thread removes abandoned partial uploads from `upload_dir` every `interval` seconds.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_dir: str | Path, interval: float = 5.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_dir = Path(upload_dir)
        threading.Thread(target=_sweep_forever, args=(self.upload_dir, interval), daemon=True,
                         name="partial-upload-sweeper").start()

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/upload"):
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes + MULTIPART_SLACK:
                await _reply(send, 413, f"File size exceeded maximum allowed size of {self.max_bytes} bytes.")
                return
        await self.app(scope, receive, send)


def _sweep_forever(upload_dir: Path, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            remove_partial_uploads(upload_dir, min_age=interval)
        except OSError:
            continue


async def _reply(send: Callable, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _open_files() -> set[str] | None:
    """Real paths of this process's open files, or None where /proc/self/fd does not exist."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return None
    found = set()
    for fd in os.listdir(fds):
        try:
            found.add(os.path.realpath(os.readlink(fds / fd)))
        except OSError:
            continue
    return found


def remove_partial_uploads(upload_dir: Path, min_age: float = 5.0) -> list[Path]:
    """Delete top-level files in Gradio's upload folder that no request is writing (abandoned uploads).

    Only files unchanged for `min_age` seconds and not open in this process go: a finished upload is renamed
    into its subfolder the moment it is closed, and one still arriving is open and fresh.
    """
    if not upload_dir.is_dir():
        return []
    now = time.time()
    stale = [p for p in upload_dir.iterdir()
             if p.is_file() and not p.is_symlink() and now - p.stat().st_mtime >= min_age]
    open_now = _open_files() if stale else None
    if open_now is None:
        return []
    if any(os.path.realpath(p) in open_now for p in stale):  # a dropped request's file may wait for the GC
        gc.collect()
        open_now = _open_files() or set()
    removed = []
    for path in stale:
        if os.path.realpath(path) not in open_now:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_on_exit(folder: Path) -> None:
    """Remove `folder` at interpreter exit, and make SIGTERM a clean exit (so that happens) in the main thread."""
    import atexit

    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # Gradio's serving loop closes the server on it; then atexit handlers run
