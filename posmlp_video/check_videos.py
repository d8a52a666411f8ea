"""Find the videos of a dataset that cannot be used: ``python -m posmlp_video check-videos DATASET``.

A dataset is a folder (every video file under it, recursively: class-per-folder sets included) or an
annotation file (``path label`` lines, as training reads them). Each file goes through the index pass training
and ``predict`` run first (`posmlp_video.data.decode`: open the container, count the frames, decode the first
picture), then its frames are decoded (`check_decoding`): by default the ``--min-frames`` frames a test
clip samples (one at the centre of each equal part of the video) plus the last frame, so a cut-off tail is
found at the cost of a few decodes; with ``--full`` every frame. A file is reported when any of that fails,
when a frame it holds does not decode (training would quietly repeat a neighbour instead), or when it has
fewer than ``--min-frames`` frames. Output: one ``path<TAB>reason`` line per bad file (ready for
``cut -f1``), a summary on stderr, exit code 1 when any file is bad.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posmlp_video.data.datasets import VIDEO_EXTENSIONS, DatasetError, FrameFolder, VideoList
from posmlp_video.data.decode import check_decoding
from posmlp_video.data.sampling import ClipSampler, segment_indices
from posmlp_video.errors import PosMLPError, one_line


@dataclass(frozen=True)
class Problem:
    """A file a training run or ``predict`` could not use, and why (one line)."""

    path: Path
    reason: str


def dataset_files(source: str | Path, root: str | Path | None = None) -> list[Path]:
    """The video files of a folder (recursively, by extension) or of an annotation file (frame folders skipped)."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if source.is_file():
        samples = VideoList(source, ClipSampler(1), root=root).samples
        return [path for path, _ in samples if not isinstance(path, FrameFolder)]
    raise DatasetError(f"no dataset at {source}: give a folder of videos or an annotation file")


def check_file(path: Path, min_frames: int, full: bool = False) -> Problem | None:
    """Why `path` is unusable, or None when it has at least `min_frames` frames and the checked frames decode
    (`min_frames` spread over the video and the last one; every frame with `full`)."""
    if not path.is_file():
        return Problem(path, "missing file")

    def spread(n: int) -> np.ndarray:  # a test clip's frames, and the last one: where a cut-off file fails
        return np.append(segment_indices(n, max(1, min_frames)), n - 1)

    try:
        check = check_decoding(path, None if full else spread)
    except PosMLPError as err:
        return Problem(path, str(err))
    frames = check.info.num_frames
    if frames < min_frames:
        return Problem(path, f"too short: {frames} frame(s), fewer than {min_frames}")
    if check.failed.size:
        return Problem(path, f"truncated or corrupt: {check.failed.size} of {check.checked.size} frames checked do "
                             f"not decode (the first is frame {check.failed[0]} of {frames})")
    return None


def check_videos(paths: Sequence[Path], min_frames: int = 1, workers: int = 4, full: bool = False,
                 progress: bool = False) -> Iterator[Problem]:
    """Check `paths` on `workers` threads (PyAV decodes outside the GIL); yields problems in input order."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda p: check_file(p, min_frames, full), paths)
        for problem in tqdm(results, total=len(paths), desc="checking videos", disable=not progress, leave=False):
            if problem is not None:
                yield problem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a folder of videos (searched recursively) or an annotation file")
    parser.add_argument("--root", help="base folder of relative paths in an annotation file (default: its folder)")
    parser.add_argument("--min-frames", type=int, default=8,
                        help="report videos with fewer frames (default 8; use the model's num_frames)")
    parser.add_argument("--workers", type=int, default=4, help="files checked in parallel (default 4)")
    parser.add_argument("--full", action="store_true",
                        help="decode every frame (default: --min-frames frames spread over each video and its last)")


def run(args: argparse.Namespace) -> int:
    paths = dataset_files(args.dataset, args.root)
    bad = 0
    for problem in check_videos(paths, args.min_frames, args.workers, args.full, progress=sys.stderr.isatty()):
        bad += 1
        print(f"{one_line(str(problem.path))}\t{problem.reason}", flush=True)  # a name cannot split its line
    print(f"checked {len(paths)} video file(s): {bad} unusable, {len(paths) - bad} fine", file=sys.stderr)
    return 1 if bad else 0
