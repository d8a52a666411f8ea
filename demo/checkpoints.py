"""Which checkpoints the app may load, and a small cache of loaded ones.

The browser names checkpoints only by their name in the listing of ``--checkpoint-dir`` (files whose real
path lies inside it: traversal and symlinks out are refused) or uploads one. Everything is loaded through
`posmlp_video.checkpoint.load_checkpoint` (safetensors, or ``torch.load(weights_only=True)`` for the authors'
.pth/.pyth), never unpickled.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from analysis import BiasTable, complexity_table, format_complexity, relative_position_biases
from analysis.attributions import cam_stages
from posmlp_video.assets import sha256_file
from posmlp_video.card import model_card_markdown
from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint
from posmlp_video.errors import CheckpointError
from posmlp_video.loading import LABEL_FILES, load_class_names
from posmlp_video.predict import Predictor

SUFFIXES = (".safetensors", ".pth", ".pyth")
NUMBERED = "numbered"  # no class list: "class 0", "class 1", ... (any class count)
LABEL_SETS = (*LABEL_FILES, NUMBERED)  # class lists for the authors' checkpoints, which carry none
DEFAULT_KEY = "default"
SESSION_MARK = " | session "  # separates a key's shown part from the session that owns it


class CheckpointDir:
    """The checkpoint files of one folder, addressed by their relative name only."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise CheckpointError(f"--checkpoint-dir {root} is not a folder")

    def names(self) -> list[str]:
        """Relative names of the checkpoint files whose real path is inside the folder, sorted."""
        if self.root is None:
            return []
        found = []
        for path in self.root.rglob("*"):
            real = path.resolve()
            if path.suffix in SUFFIXES and real.is_file() and real.is_relative_to(self.root):
                found.append(path.relative_to(self.root).as_posix())
        return sorted(found)

    def resolve(self, name: str) -> Path:
        """The real path of a listed name; anything else (traversal, absolute, symlink out) is refused."""
        if name not in self.names():
            raise CheckpointError(f"no checkpoint named {name!r} in the checkpoint folder (the list now shows what is there)")
        return (self.root / name).resolve()


def check_upload(path: str | Path) -> Path:
    """An uploaded file's path if its suffix is a checkpoint format we read, else a one-line error."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise CheckpointError(f"{path.name}: upload a {', '.join(SUFFIXES)} checkpoint")
    return path


@dataclass
class Loaded:
    """One loaded checkpoint: the predictor, and what the tabs derive from it (computed once, on demand).

    Classify runs the predictor's model under `lock`; attributions run on `explainer`, a separate copy under
    `explain_lock`, so Captum's hooks and autograd never hold up a classification.
    """

    name: str
    predictor: Predictor
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    explain_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> torch.nn.Module:
        return self.predictor.model

    @property
    def meta(self) -> dict[str, Any]:
        return self.predictor.meta

    @cached_property
    def tables(self) -> list[BiasTable]:
        return relative_position_biases(self.model)

    @cached_property
    def explainer(self) -> torch.nn.Module:
        """The model copy attributions run on (made on first use, under `explain_lock`)."""
        return copy.deepcopy(self.model).eval()

    @cached_property
    def cam_sizes(self) -> list[tuple[int, int, int]]:
        """Each stage's (T, H, W) map for this checkpoint's input: the Grad-CAM stage choices."""
        with self.explain_lock:
            return cam_stages(self.explainer, self.meta)

    @cached_property
    def complexity(self) -> str:
        with self.explain_lock:  # FLOP counting runs a forward pass with a counter mode: on the copy
            return format_complexity(complexity_table(self.explainer))

    @cached_property
    def card(self) -> str:
        """The checkpoint's MODEL_CARD.md text (what `python -m posmlp_video card` prints); counted on the copy."""
        with self.explain_lock:
            return model_card_markdown(self.meta, self.explainer)


class ModelCache:
    """Loaded checkpoints by key: the default one always, plus the `capacity` most recently used others.

    A key names a file by its content (a SHA-256 prefix) and class list, and an upload also by the session that
    sent it (`add`): two sessions never share an uploaded model, even one with the same name or bytes, while a
    file picked from the server's folder (the operator's, read-only) is loaded once for everyone. At most
    `capacity` checkpoints besides the default stay loaded (least recently used go first) and `max_sources` are
    remembered, so memory stays bounded however many sessions upload; an evicted checkpoint is reloaded when
    asked for again. Loading runs outside the cache's lock (one load at a time): requests on models already
    loaded never wait for someone else's upload.
    """

    def __init__(self, default: str | Path | None, device: str, capacity: int = 2, max_sources: int = 64) -> None:
        self.device = device
        self.capacity = capacity
        self.max_sources = max_sources
        self._sources: OrderedDict[str, tuple[Path | None, str, list[str] | None]] = OrderedDict()
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._hashes: OrderedDict[tuple[str, int, int], str] = OrderedDict()  # see `_content_hash`
        self._lock = threading.Lock()  # guards the three dicts only; held for microseconds
        self._loading = threading.Lock()  # one checkpoint load at a time (memory)
        name = Path(default).name if default is not None else BUNDLED_CHECKPOINT.name
        self._sources[DEFAULT_KEY] = (Path(default) if default is not None else None, name, None)
        self.get(DEFAULT_KEY)  # fail at start, not at the first request

    def add(self, path: Path, name: str, label_set: str | None = None, session: str | None = None) -> str:
        """Load a checkpoint file (an authors' one needs `label_set`) and return its key; `session` (the
        uploader's Gradio session) makes the key that session's own."""
        class_names, tag = None, ""
        if path.suffix != ".safetensors":
            if label_set not in LABEL_SETS:
                raise CheckpointError(f"{name} is an authors' checkpoint: choose its class list ({', '.join(LABEL_SETS)})")
            class_names = None if label_set == NUMBERED else load_class_names(label_set)
            tag = f" [{label_set}]"
        key = f"{name} [{self._content_hash(path)[:12]}]{tag}"
        key += f"{SESSION_MARK}{session}" if session else ""
        with self._lock:
            self._sources[key] = (path, name, class_names)
            self._sources.move_to_end(key)
            others = [k for k in self._sources if k != DEFAULT_KEY and k not in self._loaded and k != key]
            for old in others[: max(0, len(self._sources) - 1 - self.max_sources)]:
                del self._sources[old]
        try:
            self.get(key)
        except BaseException:
            with self._lock:
                if key not in self._loaded:
                    self._sources.pop(key, None)
            raise
        return key

    def _content_hash(self, path: Path) -> str:
        """``sha256_file(path)``, remembered by (real path, size, mtime_ns): picking the same unchanged file again
        does not read it again, a file changed since (new size or mtime) is hashed anew. Bounded like the
        sources (``max_sources`` entries, least recently used dropped)."""
        real = path.resolve()
        stat = real.stat()
        memo = (str(real), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if memo in self._hashes:
                self._hashes.move_to_end(memo)
                return self._hashes[memo]
        digest = sha256_file(real)  # outside the lock: a large file does not hold up other requests
        with self._lock:
            self._hashes[memo] = digest
            while len(self._hashes) > self.max_sources:
                self._hashes.popitem(last=False)
        return digest

    def get(self, key: str) -> Loaded:
        """The loaded checkpoint for `key`, loading it if needed."""
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            if key not in self._sources:
                raise CheckpointError(f"checkpoint {key!r} is not loaded any more: pick or upload it again")
            path, name, class_names = self._sources[key]
        with self._loading:
            with self._lock:
                if key in self._loaded:  # loaded by another request meanwhile
                    return self._loaded[key]
            loaded = Loaded(name, Predictor(*load_named(path, class_names, self.device)))
            with self._lock:
                self._loaded[key] = loaded
                others = [k for k in self._loaded if k != DEFAULT_KEY]
                for old in others[: max(0, len(others) - self.capacity)]:
                    del self._loaded[old]
            return loaded


def key_label(key: str) -> str:
    """The part of a checkpoint key a person reads: file name, content hash and class list, not the session."""
    return key.split(SESSION_MARK)[0]


def load_named(path: Path | None, class_names: list[str] | None, device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """`load_checkpoint`, with an authors' checkpoint's classes named by `class_names` when the counts match.

    A class count that the chosen list does not have (a fine-tuned head, a subset) is not an error here: the
    classes stay numbered ("class 17") and the app says how to attach names (`convert --labels`).
    """
    model, meta = load_checkpoint(path, device=device)
    if class_names is not None and len(class_names) == model.num_classes:
        meta["class_names"] = list(class_names)
    return model, meta


