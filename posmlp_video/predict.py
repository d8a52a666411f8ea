"""Classify video files or arrays with a checkpoint: ``python -m posmlp_video predict PATH [PATH ...]``.

``Predictor`` is the Python API (used by the web app): it holds the model and its metadata, samples and
preprocesses a clip exactly as the checkpoint expects, and returns the top-k classes, the frames the model
saw and the time it took.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.errors import PosMLPError, one_line
from posmlp_video.views import Views, check_views, load_views, mean_softmax, sample_clips_timed


@dataclass(frozen=True)
class Prediction:
    """Top-k ``(label, probability)`` pairs, best first, and what produced them."""

    top: list[tuple[str, float]]
    frames: np.ndarray  # uint8 (T, H, W, 3): the middle view's frames after resize and crop, as the model saw them
    input: torch.Tensor  # float (3, T, H, W): the normalised model input made from ``frames``
    model_ms: float  # forward pass only (all views)
    total_ms: float  # decode + preprocess + forward


class Predictor:
    """A model and its checkpoint metadata, ready to classify clips.

    ``clips`` temporal x ``crops`` spatial views (1 or 3) are scored and their softmax averaged exactly as
    ``eval`` does (``posmlp_video.views``); the default is one centre clip, centre crop.
    """

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], clips: int = 1, crops: int = 1) -> None:
        check_views(clips, crops)
        self.model = model.eval()
        self.meta = meta
        self.class_names: list[str] = list(meta["class_names"])
        self.clips, self.crops = clips, crops
        self.device = next(model.parameters()).device  # inputs follow the model (CPU or GPU)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, clips: int = 1, crops: int = 1) -> Predictor:
        """Load one of our checkpoints (default: the bundled SynthMotion model)."""
        from posmlp_video.checkpoint import load_checkpoint

        return cls(*load_checkpoint(path), clips=clips, crops=crops)

    def sample(self, source: str | Path | np.ndarray) -> np.ndarray:
        """The middle clip of ``source`` (a video/image path, or uint8 ``(T, H, W, 3)`` / ``(H, W, 3)``) as
        uint8 ``(num_frames, H, W, 3)``, before resize and crop (with one clip: the checkpoint's clip)."""
        return self.sample_timed(source)[0]

    def sample_timed(self, source: str | Path | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`sample` and the time of each of its frames in seconds from the video's first frame (None for an
        array or a file without timestamps): what the app labels its frame strips with."""
        clips, times = sample_clips_timed(source, self.meta, self.clips)
        return clips[self.clips // 2], None if times is None else times[self.clips // 2]

    def views(self, source: str | Path | np.ndarray) -> Views:
        """Decode, sample and preprocess ``source`` into this predictor's ``clips x crops`` views."""
        return load_views(source, self.meta, self.clips, self.crops)

    def probabilities(self, views: Views) -> torch.Tensor:
        """Class probabilities ``(num_classes,)``: the mean softmax over the views."""
        with torch.inference_mode():
            logits = self.model(views.tensor.to(self.device))
        probabilities = mean_softmax(logits, len(views.tensor))[0].cpu()
        if not bool(torch.isfinite(probabilities).all()):  # e.g. weights that overflow float32
            raise PosMLPError("the model's scores for this clip are NaN or infinite (a broken checkpoint?)")
        return probabilities

    def top(self, probabilities: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` ``(label, probability)`` pairs, best first."""
        scores, indices = probabilities.topk(min(top_k, len(self.class_names)))
        return [(self.class_names[i], float(s)) for s, i in zip(scores.tolist(), indices.tolist())]

    def predict(self, source: str | Path | np.ndarray, top_k: int = 5, *,
                lock: threading.Lock | None = None) -> Prediction:
        """Classify one video; raises ``VideoDecodeError`` (a ``PosMLPError``) for unusable input.

        ``lock`` (the app's per-model lock) is held around the forward pass only: decoding and preprocessing
        a slow or hostile file never make other requests wait.
        """
        start = time.perf_counter()
        views = self.views(source)
        with lock or contextlib.nullcontext():
            forward_start = time.perf_counter()
            probabilities = self.probabilities(views)
            end = time.perf_counter()
        middle = (self.clips // 2) * self.crops + self.crops // 2
        return Prediction(self.top(probabilities, top_k), views.frames, views.tensor[middle],
                          (end - forward_start) * 1e3, (end - start) * 1e3)


# --------------------------------------------------------------------------- command line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """``--clips`` / ``--crops``, as ``eval`` takes them (shared by predict and features)."""
    parser.add_argument("--clips", type=positive_int, default=1, help="temporal views per video (default 1)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="spatial views per clip (default 1)")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--glob`` (which files of a folder) and ``--workers`` (parallel decoding), shared by predict and features."""
    parser.add_argument("--glob", default=None,
                        help="which files of a folder, e.g. '*.mp4' (default: video and image extensions)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes decoding inputs in parallel (default 0: decode in the main process)")


def expand_inputs(paths: list[str], glob: str | None) -> Iterator[str]:
    """Files as given; folders replaced by the files under them (recursively, sorted) that match ``glob``
    (default: known video and image extensions)."""
    from posmlp_video.data.datasets import VIDEO_EXTENSIONS

    for path in paths:
        folder = Path(path)
        if not folder.is_dir():
            yield path
            continue
        if glob is not None:
            files = sorted(f for f in folder.rglob(glob) if f.is_file())
        else:
            known = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
            files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in known)
        if not files:
            raise PosMLPError(f"no {glob or 'video or image'} files under {folder}")
        yield from map(str, files)


class _Inputs(torch.utils.data.Dataset):
    """Decoding + preprocessing of each input for DataLoader workers: its Views, or the error's one line."""

    def __init__(self, paths: list[str], meta: dict[str, Any], clips: int, crops: int) -> None:
        self.paths, self.meta, self.clips, self.crops = paths, meta, clips, crops

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Views | str:
        try:
            return load_views(self.paths[index], self.meta, self.clips, self.crops)
        except PosMLPError as err:
            return str(err)


def _as_is(item: Any) -> Any:
    return item


def decoded_views(paths: list[str], meta: dict[str, Any], clips: int, crops: int, workers: int = 0,
                  desc: str = "", progress: bool = False) -> Iterator[tuple[str, Views | str]]:
    """``(path, its Views or the one-line error)`` in input order, decoded by ``workers`` processes (0: here)
    a few files ahead of the caller, with a progress bar on stderr when ``progress``."""
    from tqdm import tqdm

    if workers < 0:
        raise PosMLPError(f"--workers must be 0 or more, got {workers}")
    loader = torch.utils.data.DataLoader(_Inputs(paths, meta, clips, crops), batch_size=None, num_workers=workers,
                                         collate_fn=_as_is)
    yield from tqdm(zip(paths, loader), total=len(paths), desc=desc, unit="file", disable=not progress or None)


class _Table:
    """A CSV or JSON-lines file of one row per input, appended to (so a rerun skips what it holds)."""

    def __init__(self, path: Path, top_k: int) -> None:
        self.path, self.csv = path, path.suffix.lower() == ".csv"
        self.header = ["path", *[f"{kind}_{i}" for i in range(1, top_k + 1) for kind in ("label", "score")], "error"]
        self.done = self._read_done()
        self.file = open(path, "a", newline="", encoding="utf-8")
        if self.csv and not self.done and self.file.tell() == 0:
            self._write_csv(self.header)

    def _read_done(self) -> set[str]:
        if not self.path.is_file():
            return set()
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a row cut off by an interrupted run: drop it, it is redone
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text, encoding="utf-8")
        lines = text.splitlines()
        if self.csv:
            if lines and next(csv.reader(lines[:1])) != self.header:
                raise PosMLPError(f"{self.path} has other columns (another --top-k?): use a new file")
            return {row[0] for row in csv.reader(lines[1:]) if row}
        try:
            return {json.loads(line)["path"] for line in lines if line.strip()}
        except (json.JSONDecodeError, KeyError, TypeError):
            raise PosMLPError(f"{self.path} is not a predict JSON-lines file: use a new file") from None

    def _write_csv(self, row: list[Any]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(row)
        self.file.write(buffer.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        """One input's row (``{"path", "predictions"}`` or ``{"path", "error"}``), flushed at once."""
        if self.csv:
            cells = [row["path"]]
            for i in range(1, (len(self.header) - 2) // 2 + 1):
                pair = row.get("predictions", [])[i - 1:i]
                cells += [pair[0]["label"], pair[0]["score"]] if pair else ["", ""]
            self._write_csv([*cells, row.get("error", "")])
        else:
            self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="video files, GIFs or images to classify, or folders of them (searched recursively)")
    parser.add_argument("--checkpoint", type=Path, help="our .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("--top-k", type=positive_int, default=5, help="how many classes to show (default 5)")
    add_view_arguments(parser)
    add_input_arguments(parser)
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help='one JSON object per input per line on stdout: {"path", "predictions"} or {"path", "error"}')
    out.add_argument("--csv", type=Path, default=None,
                     help="write one row per input to this CSV (path, label_i, score_i, error); appends, "
                          "skipping inputs already in it")
    out.add_argument("--jsonl", type=Path, default=None,
                     help="write the --json rows to this file; appends, skipping inputs already in it")


def run(args: argparse.Namespace) -> int:
    """Answer every input; exit 1 if any of them failed (the others are still answered)."""
    from posmlp_video.card import is_uncertain, min_prob, scope_summary

    table_path = args.csv or args.jsonl
    table = _Table(table_path, args.top_k) if table_path else None
    predictor = Predictor.from_checkpoint(args.checkpoint, clips=args.clips, crops=args.crops)
    threshold = min_prob(predictor.meta)
    # what this checkpoint knows, shown above the first answer on screen so that answers are read in scope
    header = "" if table is not None or args.json else textwrap.fill(
        scope_summary(predictor.meta), width=100, initial_indent="model: ", subsequent_indent="       ")
    if header and threshold is not None:
        header += (f"\n       a top class below {threshold:.2f} probability is marked uncertain "
                   "(threshold calibrated on held-out clips)")
    try:
        paths = [path for path in expand_inputs(args.paths, args.glob) if table is None or path not in table.done]
        failed = 0
        for path, item in decoded_views(paths, predictor.meta, args.clips, args.crops, args.workers, "predict",
                                        progress=table is not None):
            if isinstance(item, str):
                failed += 1
                row: dict[str, Any] = {"path": path, "error": item}
            else:
                top = predictor.top(predictor.probabilities(item), args.top_k)
                row = {"path": path, "predictions": [{"label": label, "score": round(score, 6)} for label, score in top]}
                if threshold is not None and table is None:
                    row["uncertain"] = is_uncertain(predictor.meta, top[0][1])
                if header:
                    print(header + "\n")
                    header = ""
            _emit(row, table, args.json)
    finally:
        if table is not None:
            table.close()
    if table is not None:
        skipped = len(table.done)
        print(f"{len(paths) - failed} classified, {failed} failed"
              + (f", {skipped} already in {table_path}" if skipped else "") + f" -> {table_path}", file=sys.stderr)
    return 1 if failed else 0


def _emit(row: dict[str, Any], table: _Table | None, as_json: bool) -> None:
    if table is not None:
        table.write(row)
        if "error" in row:
            from tqdm import tqdm

            tqdm.write(f"posmlp-video predict: error: {one_line(row['path'])}: {row['error']}", file=sys.stderr)
    elif as_json:
        print(json.dumps(row), flush=True)
    elif "error" in row:
        print(f"posmlp-video predict: error: {one_line(row['path'])}: {row['error']}", file=sys.stderr, flush=True)
    else:
        print(one_line(row["path"]) + ("  uncertain" if row.get("uncertain") else ""))
        for prediction in row["predictions"]:
            print(f"  {prediction['score']:6.3f}  {prediction['label']}")
        sys.stdout.flush()
