"""Map-style datasets of video clips for ``torch.utils.data.DataLoader`` (workers included).

``VideoFolder`` reads ``root/class_name/*.mp4``; ``VideoList`` reads annotation files in the authors'
formats: ``path label``, ``path,label`` (Kinetics-400, Something-Something v2 video lists) and
``frame_folder num_frames label`` (Something-Something v1 JPEG frame folders). Items are
``{"video": ..., "label": int}``: uint8 ``(T, H, W, 3)`` frames, or whatever ``transform`` makes of them
(``(num_clips, ...)`` stacked when the sampler takes several clips).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.data.decode import VideoDecodeError, read_frame_folder, read_video
from posmlp_video.data.sampling import ClipSampler
from posmlp_video.errors import PosMLPError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")
Transform = Callable[[np.ndarray, int], tuple[Any, int]]


class DatasetError(PosMLPError):
    """A dataset folder or annotation file is missing or malformed."""


@dataclass(frozen=True)
class FrameFolder:
    """A video stored as numbered JPEG frames (``00001.jpg`` ...), as in the authors' SSv1 release."""

    folder: Path
    num_frames: int


class VideoClipDataset(torch.utils.data.Dataset):
    """Clips of ``(source, label)`` samples, where a source is a video file or a ``FrameFolder``.

    ``short_side`` downscales while decoding (set it to the transform's resize size to save time and
    memory). Training samplers draw from torch's generator, so DataLoader worker seeding applies.
    """

    def __init__(self, samples: Sequence[tuple[Path | FrameFolder, int]], sampler: ClipSampler, *,
                 transform: Transform | None = None, short_side: int | None = None,
                 class_names: Sequence[str] | None = None, frame_template: str = "{:05d}.jpg") -> None:
        self.samples = list(samples)
        self.sampler = sampler
        self.transform = transform
        self.short_side = short_side
        self.class_names = list(class_names) if class_names is not None else None
        self.frame_template = frame_template

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, label = self.samples[index]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()))) if self.sampler.train else None

        def sampler(n: int) -> np.ndarray:
            return self.sampler(n, rng)

        try:
            if isinstance(source, FrameFolder):
                clips = read_frame_folder(source.folder, source.num_frames, sampler, template=self.frame_template,
                                          short_side=self.short_side)
            else:
                clips = read_video(source, sampler, short_side=self.short_side).frames
        except VideoDecodeError as err:
            name = source.folder if isinstance(source, FrameFolder) else source
            raise VideoDecodeError(f"{name}: {err}") from None
        if self.transform is None:
            return {"video": clips[0] if len(clips) == 1 else clips, "label": label}
        outputs = [self.transform(clip, label) for clip in clips]
        videos = [video for video, _ in outputs]
        return {"video": videos[0] if len(videos) == 1 else torch.stack(videos), "label": outputs[0][1]}


class VideoFolder(VideoClipDataset):
    """``root/<class name>/<video files>``; classes sorted by name give the label indices."""

    def __init__(self, root: str | Path, sampler: ClipSampler, *, transform: Transform | None = None,
                 short_side: int | None = None, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"dataset folder not found: {root}")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        samples = [(file, label) for label, name in enumerate(classes) for file in sorted((root / name).iterdir())
                   if file.suffix.lower() in extensions]
        if not samples:
            raise DatasetError(f"no videos ({', '.join(extensions)}) in class folders under {root}")
        super().__init__(samples, sampler, transform=transform, short_side=short_side, class_names=classes)


class VideoList(VideoClipDataset):
    """Samples from an annotation file; relative paths are resolved against ``root`` (default: the
    annotation file's folder). Each non-blank line is one of

    - ``path label`` or ``path,label``: a video file (Kinetics-400, Something-Something v2);
    - ``folder num_frames label``: a folder of JPEG frames named by ``frame_template`` (Something-Something v1).
    """

    def __init__(self, annotation_file: str | Path, sampler: ClipSampler, *, root: str | Path | None = None,
                 transform: Transform | None = None, short_side: int | None = None,
                 class_names: Sequence[str] | None = None, frame_template: str = "{:05d}.jpg") -> None:
        annotation_file = Path(annotation_file)
        try:
            lines = annotation_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read annotation file {annotation_file}: {err}") from None
        base = Path(root) if root is not None else annotation_file.parent
        samples = [_parse_line(line, base, f"{annotation_file.name} line {number}", class_names)
                   for number, line in enumerate(lines, 1) if line.strip()]
        if not samples:
            raise DatasetError(f"annotation file {annotation_file} has no samples")
        super().__init__(samples, sampler, transform=transform, short_side=short_side, class_names=class_names,
                         frame_template=frame_template)


def _parse_line(line: str, base: Path, where: str,
                class_names: Sequence[str] | None) -> tuple[Path | FrameFolder, int]:
    fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
    try:
        if len(fields) == 3 and fields[1].isdigit():
            source: Path | FrameFolder = FrameFolder(base / fields[0], int(fields[1]))
        elif len(fields) == 2:
            source = base / fields[0]
        else:
            raise ValueError
        label = int(fields[-1])
    except ValueError:
        raise DatasetError(f"{where}: expected 'path label', 'path,label' or 'folder num_frames label', "
                           f"got {line.strip()!r}") from None
    if label < 0 or (class_names is not None and label >= len(class_names)):
        raise DatasetError(f"{where}: label {label} is out of range"
                           + (f" for {len(class_names)} classes" if class_names is not None else ""))
    if isinstance(source, FrameFolder) and source.num_frames < 1:
        raise DatasetError(f"{where}: a frame folder needs at least one frame")
    return source, label
