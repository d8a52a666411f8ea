"""Real evaluation footage: windows of OpenCV's ``vtest.avi`` around people walking left or right.

``vtest.avi`` (``opencv-doc``, fetched by ``python -m posmlp_video assets fetch``) is 795 frames of a static
camera over a walkway. The builder finds walkers by background subtraction (the median frame), links them
into tracks, cuts square windows of `num_frames` frames (every `stride`-th frame) around each track, and
labels a window "left to right" or "right to left" by the dense optical flow (Farneback, between consecutive
frames) of its moving pixels, keeping only windows whose motion is clearly horizontal, consistent in time, not
mixed with people walking the other way, and confirmed by where the moving pixels' centroid goes. Each window also enters as its time reversal (label swapped within its pair),
its horizontal mirror (left <-> right) and the mirror's reversal, so the set is balanced and a model that
ignores frame order or has a left/right bias cannot score well.

Two disjoint sets: ``real`` (windows inside frames 0-389) and ``real-heldout`` (frames 410-794). The footage
is evaluation data only: nothing here is ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posmlp_video.assets import AssetError, asset_files, cache_dir
from posmlp_video.data.decode import frames_between, read_video
from posmlp_video.data.synthmotion import FLIP_PAIRS, REVERSE_PAIRS

LEFT, RIGHT = 0, 1  # SynthMotion's "Moving something from right to left" / "... from left to right"
SPLITS: dict[str, tuple[int, int]] = {"real": (0, 390), "real-heldout": (410, 795)}
VARIANTS = ("original", "reversed", "mirrored", "mirrored+reversed")
CLIP_SIDE = 96  # windows are stored at this size; evaluation resizes them like any video
_VERSION = 3  # bump when the builder changes, so cached sets are rebuilt


@dataclass(frozen=True)
class Window:
    """One labelled window: frames ``start, start + stride, ...`` of the crop ``(x, y, side)``."""

    start: int
    x: int
    y: int
    side: int
    label: int
    shift: float  # horizontal displacement of the moving pixels over the window, in crop widths


def _foreground(frames: np.ndarray) -> np.ndarray:
    """Moving-pixel masks ``(N, H, W)`` against the median frame (the camera is static)."""
    background = np.median(frames[:: max(1, len(frames) // 60)], axis=0).astype(np.int16)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    masks = np.empty(frames.shape[:3], np.uint8)
    for i, frame in enumerate(frames):
        diff = np.abs(frame.astype(np.int16) - background).max(axis=2)
        mask = (diff > 35).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        masks[i] = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    return masks.astype(bool)


def _blobs(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Person-sized moving blobs of one frame: rows (cx, cy, x, y, w, h)."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    rows = [(*centroids[i], *stats[i, :4]) for i in range(1, count)
            if stats[i, 4] >= min_area and stats[i, 3] >= 0.8 * stats[i, 2]]
    return np.array(rows, np.float64).reshape(-1, 6)


def _follow(blobs: list[np.ndarray], first: np.ndarray, reach: float) -> np.ndarray | None:
    """Chain `first` through the sampled frames' blobs (nearest centroid within `reach` pixels, similar height)."""
    chain = [first]
    for candidates in blobs:
        if not len(candidates):
            return None
        last = chain[-1]
        distance = np.hypot(candidates[:, 0] - last[0], candidates[:, 1] - last[1])
        distance[np.abs(np.log(candidates[:, 5] / last[5])) > 0.5] = np.inf
        j = int(np.argmin(distance))
        if distance[j] > reach:
            return None
        chain.append(candidates[j])
    return np.stack(chain)


def find_windows(frames: np.ndarray, num_frames: int = 8, stride: int = 3, first: int = 0,
                 min_area: int = 150) -> list[Window]:
    """Labelled walker windows in `frames` (frame numbers offset by `first`); see the module docstring.

    Windows start every half window; a walker is followed from blob to nearest blob over the sampled frames.
    Windows of one start whose crops overlap by more than half are kept once.
    """
    masks = _foreground(frames)
    span = (num_frames - 1) * stride + 1
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    height, width = grey.shape[1:]
    blobs = [_blobs(m, min_area) for m in masks]
    windows: list[Window] = []
    for start in range(0, len(frames) - span + 1, max(1, span // 2)):
        steps = list(range(start, start + span, stride))
        kept: list[tuple[int, int, int]] = []
        for blob in blobs[start]:
            chain = _follow([blobs[t] for t in steps[1:]], blob, reach=8.0 * stride)
            if chain is None:
                continue
            x0, y0 = chain[:, 2].min(), chain[:, 3].min()
            x1, y1 = (chain[:, 2] + chain[:, 4]).max(), (chain[:, 3] + chain[:, 5]).max()
            side = int(max(x1 - x0, y1 - y0) * 1.3) + 8
            if side > min(height, width):
                continue
            x = int(np.clip((x0 + x1) / 2 - side / 2, 0, width - side))
            y = int(np.clip((y0 + y1) / 2 - side / 2, 0, height - side))
            if any(_overlap((x, y, side), box) > 0.5 for box in kept):
                continue
            raw = slice(start, start + span)  # flow between consecutive raw frames: small, trackable steps
            found = _label(grey[raw, y:y + side, x:x + side], masks[raw, y:y + side, x:x + side])
            if found is not None:
                kept.append((x, y, side))
                windows.append(Window(start + first, x, y, side, *found))
    return windows


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Intersection over union of two square boxes (x, y, side)."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    return w * h / (a[2] ** 2 + b[2] ** 2 - w * h)


def _label(grey: np.ndarray, moving: np.ndarray) -> tuple[int, float] | None:
    """(label, shift) from the optical flow of the moving pixels over consecutive frames, or None when the
    motion is not clearly one way, or when the moving pixels' centroid does not go the way the flow says."""
    side = grey.shape[1]
    dx, dy, signs, mixed = 0.0, 0.0, [], []
    for a, b, mask in zip(grey[:-1], grey[1:], moving[:-1]):
        if mask.sum() < 20:
            return None
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        fx, fy = flow[..., 0][mask], flow[..., 1][mask]
        step = float(np.median(fx))
        dx, dy = dx + step, dy + float(np.median(fy))
        signs.append(np.sign(step))
        strong = np.abs(fx) > 0.3
        mixed.append(float((np.sign(fx[strong]) == -np.sign(step)).mean()) if strong.any() else 0.0)
    shift = dx / side
    consistent = np.mean(np.array(signs) == np.sign(dx)) >= 0.75
    centroid = np.argwhere(moving[-1])[:, 1].mean() - np.argwhere(moving[0])[:, 1].mean() if moving[-1].any() else 0.0
    if abs(shift) < 0.12 or abs(dx) < 2 * abs(dy) or not consistent or np.mean(mixed) > 0.25:
        return None
    if np.sign(centroid) != np.sign(dx) or abs(centroid) < 0.5 * abs(dx):
        return None
    return (RIGHT if dx > 0 else LEFT), shift


def cut(frames: np.ndarray, window: Window, num_frames: int, stride: int, first: int = 0) -> np.ndarray:
    """The window's clip, uint8 ``(T, CLIP_SIDE, CLIP_SIDE, 3)``."""
    steps = [window.start - first + k * stride for k in range(num_frames)]
    crops = frames[steps, window.y:window.y + window.side, window.x:window.x + window.side]
    return np.stack([cv2.resize(c, (CLIP_SIDE, CLIP_SIDE), interpolation=cv2.INTER_AREA) for c in crops])


def variants(video: np.ndarray, label: int) -> list[tuple[np.ndarray, int, str]]:
    """The clip, its time reversal, its mirror and the mirror's reversal, with their labels."""
    mirrored = video[:, :, ::-1]
    flipped = FLIP_PAIRS[label] if FLIP_PAIRS.get(label) is not None else label
    return [(video, label, VARIANTS[0]), (video[::-1], REVERSE_PAIRS[label], VARIANTS[1]),
            (mirrored, flipped, VARIANTS[2]), (mirrored[::-1], REVERSE_PAIRS[flipped], VARIANTS[3])]


def build_real_set(split: str, num_frames: int = 8, stride: int = 3, footage: str | Path | None = None,
                   frame_range: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Build a real set from the footage: videos ``(N, T, S, S, 3)``, labels, pair (index of each clip's
    reversal), window (index of its source window), start/x/y/side per window and variant names."""
    if split not in SPLITS and frame_range is None:
        raise AssetError(f"unknown real set {split!r}; choose from {', '.join(SPLITS)}")
    first, last = frame_range or SPLITS[split]
    path = Path(footage) if footage else asset_files("footage")[0]
    frames = read_video(path, frames_between(first, last)).frames
    windows = find_windows(frames, num_frames, stride, first)
    videos, labels, pairs, sources, names = [], [], [], [], []
    for k, window in enumerate(windows):
        base = len(videos)
        for offset, (video, label, name) in enumerate(variants(cut(frames, window, num_frames, stride, first),
                                                                 window.label)):
            videos.append(np.ascontiguousarray(video))
            labels.append(label)
            pairs.append(base + (offset ^ 1))  # original <-> reversed, mirrored <-> mirrored+reversed
            sources.append(k)
            names.append(name)
    if not windows:
        raise AssetError(f"no walker windows found in {path.name} frames {first}-{last}")
    return dict(videos=np.stack(videos), labels=np.array(labels), pairs=np.array(pairs), windows=np.array(sources),
                variants=np.array(names), starts=np.array([w.start for w in windows]),
                boxes=np.array([(w.x, w.y, w.side) for w in windows]), shifts=np.array([w.shift for w in windows]))


def load_real_set(split: str, num_frames: int = 8, stride: int = 3, cache: str | Path | None = None) -> dict[str, np.ndarray]:
    """A real set, built once from the fetched footage and then read from ``<cache>/realsets/``."""
    if split not in SPLITS:
        raise AssetError(f"unknown real set {split!r}; choose from {', '.join(SPLITS)}")
    folder = cache_dir(cache) / "realsets"
    path = folder / f"{split}_v{_VERSION}_t{num_frames}_s{stride}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    footage = asset_files("footage", cache)[0]
    data = build_real_set(split, num_frames, stride, footage)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **data)
    tmp.replace(path)
    return data


class RealClips:
    """A real set as a dataset: ``[i] -> {"video", "label"}`` (transformed like SynthMotion clips when
    `transform` is given); ``pairs[i]`` is the index of clip i's time reversal."""

    def __init__(self, split: str, num_frames: int = 8, transform: Any = None, cache: str | Path | None = None) -> None:
        self.data = load_real_set(split, num_frames, cache=cache)
        self.split, self.transform = split, transform
        self.labels, self.pairs = self.data["labels"], self.data["pairs"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        video, label = self.data["videos"][index], int(self.labels[index])
        if self.transform is not None:
            return self.transform(video, label)
        return {"video": video, "label": label}


def contact_sheet(data: dict[str, np.ndarray], path: str | Path, columns: int = 4, scale: int = 1) -> Path:
    """PNG of every window (original variant): first, middle and last frame with the flow label, to check by eye."""
    from posmlp_video.data.synthmotion import CLASS_NAMES

    originals = np.nonzero(data["variants"] == VARIANTS[0])[0]
    tiles = []
    for i in originals:
        video = data["videos"][i]
        strip = np.concatenate([video[0], video[len(video) // 2], video[-1]], axis=1).copy()
        arrow = "->" if data["labels"][i] == RIGHT else "<-"
        w = int(data["windows"][i])
        text = f"{arrow} f{int(data['starts'][w])} {CLASS_NAMES[int(data['labels'][i])].split()[-1]}"
        cv2.rectangle(strip, (0, 0), (strip.shape[1], 12), (0, 0, 0), -1)
        cv2.putText(strip, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(np.pad(strip, ((2, 2), (2, 2), (0, 0)), constant_values=255))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    sheet = np.concatenate(rows, axis=0)
    if scale > 1:
        sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path
