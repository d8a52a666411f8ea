"""Find the videos of a dataset that cannot be used: ``python -m posmlp_video check-videos DATASET``.

A dataset is a folder (every video file under it, recursively: class-per-folder sets included) or an
annotation file (``path label`` lines, as training reads them). Each file is probed with
`posmlp_video.data.decode.probe_video` (the index pass training and ``predict`` run first: it opens the
container, counts the frames and decodes the first picture) and reported when that fails or when it has
fewer than ``--min-frames`` frames. Output: one ``path<TAB>reason`` line per bad file (ready for ``cut -f1``),
a summary on stderr, exit code 1 when any file is bad.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from posmlp_video.data.datasets import VIDEO_EXTENSIONS, DatasetError, FrameFolder, VideoList
from posmlp_video.data.decode import probe_video
from posmlp_video.data.sampling import ClipSampler
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


def check_file(path: Path, min_frames: int) -> Problem | None:
    """Why `path` is unusable, or None when it decodes and has at least `min_frames` frames."""
    if not path.is_file():
        return Problem(path, "missing file")
    try:
        info = probe_video(path)
    except PosMLPError as err:
        return Problem(path, str(err))
    if info.num_frames < min_frames:
        return Problem(path, f"too short: {info.num_frames} frame(s), fewer than {min_frames}")
    return None


def check_videos(paths: Sequence[Path], min_frames: int = 1, workers: int = 4,
                 progress: bool = False) -> Iterator[Problem]:
    """Probe `paths` on `workers` threads (PyAV decodes outside the GIL); yields problems in input order."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda p: check_file(p, min_frames), paths)
        for problem in tqdm(results, total=len(paths), desc="checking videos", disable=not progress, leave=False):
            if problem is not None:
                yield problem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a folder of videos (searched recursively) or an annotation file")
    parser.add_argument("--root", help="base folder of relative paths in an annotation file (default: its folder)")
    parser.add_argument("--min-frames", type=int, default=8,
                        help="report videos with fewer frames (default 8; use the model's num_frames)")
    parser.add_argument("--workers", type=int, default=4, help="files probed in parallel (default 4)")


def run(args: argparse.Namespace) -> int:
    paths = dataset_files(args.dataset, args.root)
    bad = 0
    for problem in check_videos(paths, args.min_frames, args.workers, progress=sys.stderr.isatty()):
        bad += 1
        print(f"{one_line(str(problem.path))}\t{problem.reason}", flush=True)  # a name cannot split its line
    print(f"checked {len(paths)} video file(s): {bad} unusable, {len(paths) - bad} fine", file=sys.stderr)
    return 1 if bad else 0
