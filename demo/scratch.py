"""A bounded folder for the files the app hands to Gradio (overlay videos, figure downloads).

Gradio copies returned files into its own cache (cleaned by ``delete_cache``); our originals only have to
live until then, so each request gets a fresh subfolder and only the newest `keep` subfolders are kept.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path


class Scratch:
    """Fresh per-request folders under one temporary root; the oldest are deleted beyond `keep`."""

    def __init__(self, root: Path, keep: int = 32) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._folders: deque[Path] = deque()
        self._keep = keep
        self._lock = threading.Lock()

    def folder(self) -> Path:
        """A new empty folder for one request's output files."""
        folder = Path(tempfile.mkdtemp(dir=self.root))
        with self._lock:
            self._folders.append(folder)
            while len(self._folders) > self._keep:
                shutil.rmtree(self._folders.popleft(), ignore_errors=True)
        return folder
