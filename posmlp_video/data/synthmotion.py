"""SynthMotion: a procedurally generated motion benchmark that a small model can learn on a 2-core CPU.

Twelve classes in six time-reversed pairs (class ``2k`` played backwards is class ``2k + 1``), so
appearance alone cannot solve it: only the temporal order tells "moving left" from "moving right" or
"splitting" from "merging". Each clip is a textured or noisy background with static distractor shapes,
one acting object (shape, colour, size, speed and start position drawn at random) and mild camera noise.
Clips are deterministic per ``(seed, index)`` and can be generated at any ``T``, ``H``, ``W``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posmlp_video.data.encode import write_mp4
from posmlp_video.data.realpixels import picture_bank, render_real_clip

CLASS_NAMES: tuple[str, ...] = (
    "Moving something from right to left",
    "Moving something from left to right",
    "Moving something up",
    "Moving something down",
    "Something growing (coming closer)",
    "Something shrinking (moving away)",
    "Turning something clockwise",
    "Turning something counter-clockwise",
    "Something appearing (fading in)",
    "Something disappearing (fading out)",
    "Splitting something into two pieces",
    "Merging two pieces into one",
)
NUM_CLASSES = len(CLASS_NAMES)
# Playing a clip backwards turns class 2k into 2k + 1 and back.
REVERSE_PAIRS: dict[int, int] = {label: label ^ 1 for label in range(NUM_CLASSES)}
# A horizontal mirror swaps left/right and clockwise/counter-clockwise; the other classes keep their label.
FLIP_PAIRS: dict[int, int | None] = {0: 1, 1: 0, 6: 7, 7: 6}


def _polygon(points: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float32)


def _star(points: int, inner: float) -> np.ndarray:
    angles = np.arange(2 * points) * np.pi / points - np.pi / 2
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1).astype(np.float32)


# Unit shapes (radius about 1) as polygons.
SHAPES: dict[str, np.ndarray] = {
    "circle": _star(10, 1.0),
    "rectangle": _polygon([(-1, -0.45), (1, -0.45), (1, 0.45), (-1, 0.45)]),
    "triangle": _polygon([(1, 0), (-0.7, 0.55), (-0.7, -0.55)]),
    "arrow": _polygon([(1, 0), (0.2, 0.6), (0.2, 0.25), (-1, 0.25), (-1, -0.25), (0.2, -0.25), (0.2, -0.6)]),
    "diamond": _polygon([(1, 0), (0, 0.55), (-1, 0), (0, -0.55)]),
    "star": _star(5, 0.45),
    "cross": _polygon([(-1, -0.3), (-0.3, -0.3), (-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3),
                       (0.3, 0.3), (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3)]),
}
# Turning uses shapes with no rotational symmetry: the rectangle and diamond look the same after half a turn,
# so a frame-to-frame turn of theirs can read as a turn the other way.
ASYMMETRIC = ("triangle", "arrow")
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions give smooth motion at small sizes


class SynthMotion:
    """``SynthMotion(num_clips, seed, num_frames, size)[i] -> {"video", "label", "mask"}``.

    ``video`` is uint8 ``(T, H, W, 3)``, ``label`` is ``i % 12`` (balanced classes), ``mask`` is bool
    ``(T, H, W)``: the pixels the acting object covers in each frame (empty while it is invisible).
    ``real_fraction`` of the clips (0: flat shapes only, 1: all) are real-pixel clips
    (`posmlp_video.data.realpixels`: photo cut-outs over photos, from the fetched assets in `assets`).
    With ``transform`` (``(video, label) -> (video, label)``, e.g. ``TrainTransform``) the returned
    video is the transformed one; ``mask`` always refers to the untransformed frames.
    """

    class_names = CLASS_NAMES
    flip_pairs = FLIP_PAIRS
    reverse_pairs = REVERSE_PAIRS

    def __init__(self, num_clips: int, seed: int = 0, num_frames: int = 8, size: int | tuple[int, int] = 64,
                 transform: Callable[[np.ndarray, int], tuple[Any, int]] | None = None,
                 real_fraction: float = 0.0, assets: str | Path | None = None) -> None:
        height, width = (size, size) if isinstance(size, int) else size
        if num_clips < 0 or num_frames < 1 or min(height, width) < 16:
            raise ValueError("need num_clips >= 0, num_frames >= 1 and frames of at least 16x16 pixels")
        if not 0.0 <= real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
        self.num_clips, self.seed, self.num_frames = num_clips, seed, num_frames
        self.height, self.width = height, width
        self.transform = transform
        self.real_fraction = real_fraction
        # the pictures are loaded now, so a missing asset folder is one clear error before any clip is drawn
        self.bank = picture_bank(assets) if real_fraction > 0 else None

    def is_real(self, index: int) -> bool:
        """Whether clip `index` has real pixels (drawn from its own stream, so flat clips stay as in flat mode)."""
        if self.real_fraction <= 0:
            return False
        return self.real_fraction >= 1 or np.random.default_rng([self.seed, index, 1]).random() < self.real_fraction

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
        label = index % NUM_CLASSES
        rng = np.random.default_rng([self.seed, index])
        if self.is_real(index):
            video, mask = render_real_clip(rng, label, _progress(rng, label, self.num_frames), self.height,
                                           self.width, self.bank)
        else:
            video, mask = render_clip(rng, label, self.num_frames, self.height, self.width)
        if self.transform is not None:
            video, label = self.transform(video, label)
        return {"video": video, "label": label, "mask": mask}


def render_clip(rng: np.random.Generator, label: int, num_frames: int, height: int,
                width: int) -> tuple[np.ndarray, np.ndarray]:
    """One clip of class ``label``: ``(video uint8 (T, H, W, 3), mask bool (T, H, W))``.

    The pair ``(2k, 2k + 1)`` shares one motion family; class ``2k + 1`` runs the family's progress
    ``s`` from 1 to 0 instead of 0 to 1, which is exactly the time reversal.
    """
    background = _background(rng, height, width)
    colour, outline = _object_colours(rng, background)
    family = label // 2
    progress = _progress(rng, label, num_frames)
    polygons_at, alpha_at = _FAMILIES[family](rng, height, width)
    video = np.empty((num_frames, height, width, 3), np.uint8)
    mask = np.zeros((num_frames, height, width), np.uint8)
    for t, s in enumerate(progress):
        polygons = polygons_at(s)
        alpha = alpha_at(s)
        frame = background.copy()
        if alpha > 0:
            for polygon in polygons:  # one call per piece: overlapping pieces in one call would cancel out
                cv2.fillPoly(frame, [polygon], colour, cv2.LINE_AA, _SHIFT)
                cv2.polylines(frame, [polygon], True, outline, 1, cv2.LINE_AA, _SHIFT)
                cv2.fillPoly(mask[t], [polygon], 1, cv2.LINE_8, _SHIFT)
                cv2.polylines(mask[t], [polygon], True, 1, 1, cv2.LINE_8, _SHIFT)
            if alpha < 1:
                frame = cv2.addWeighted(frame, alpha, background, 1.0 - alpha, 0.0)
        video[t] = frame
    return _camera_noise(rng, video), mask.astype(bool)


def _progress(rng: np.random.Generator, label: int, num_frames: int) -> np.ndarray:
    """Per-frame progress of the motion in [0, 1]: it starts and ends at random times, reversed for class 2k + 1."""
    timeline = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.array([0.5])
    start, end = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)  # when the action starts and ends
    progress = np.clip((timeline - start) / (end - start), 0.0, 1.0)
    return progress[::-1] if label % 2 else progress


# --------------------------------------------------------------------------- scene parts


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Textured or noisy background with 1-3 static distractor shapes."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:  # smooth blotches
        grid = rng.random((rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.float32)
        pattern = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # stripes at a random angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.15, 0.5) * min(height, width)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        pattern = wave[..., None] * rng.random(3).astype(np.float32)
    elif kind == 2:  # checkerboard
        cell = rng.uniform(0.1, 0.3) * min(height, width)
        board = ((xx // cell + yy // cell) % 2).astype(np.float32)
        pattern = board[..., None] * rng.random(3).astype(np.float32)
    else:  # gradient
        pattern = (xx / width)[..., None] * rng.random(3).astype(np.float32) + (yy / height)[..., None] * 0.3
    base = rng.uniform(50, 200, 3)
    amplitude = rng.uniform(25, 70)
    grain = rng.normal(0.0, rng.uniform(0, 10), (height, width, 1))
    image = np.clip(base + amplitude * (pattern - pattern.mean()) + grain, 0, 255).astype(np.uint8)
    size = min(height, width)
    for _ in range(rng.integers(1, 4)):
        shape = SHAPES[rng.choice(list(SHAPES))]
        centre = rng.uniform((0, 0), (width, height))
        polygon = _place(shape, centre, rng.uniform(0.06, 0.14) * size, rng.uniform(0, 2 * np.pi))
        cv2.fillPoly(image, [polygon], rng.integers(0, 256, 3).tolist(), cv2.LINE_AA, _SHIFT)
    return image


def _object_colours(rng: np.random.Generator, background: np.ndarray) -> tuple[list[int], list[int]]:
    """A fill colour far from the background's mean colour, and a contrasting outline."""
    mean = background.reshape(-1, 3).mean(axis=0)
    candidates = rng.integers(0, 256, (12, 3))
    fill = candidates[np.abs(candidates - mean).sum(axis=1).argmax()]
    outline = [0, 0, 0] if fill.mean() > 128 else [255, 255, 255]
    return fill.tolist(), outline


def _camera_noise(rng: np.random.Generator, video: np.ndarray) -> np.ndarray:
    """Per-pixel sensor noise plus a slight per-frame brightness flicker."""
    noise = rng.standard_normal(video.shape, dtype=np.float32) * rng.uniform(1.5, 5.0)
    flicker = rng.uniform(-3, 3, (len(video), 1, 1, 1)).astype(np.float32)
    return np.clip(video + noise + flicker, 0, 255).astype(np.uint8)


def _place(shape: np.ndarray, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Unit polygon -> cv2 fixed-point int32 points, rotated by ``angle`` (clockwise on screen: y points down)."""
    c, s = np.cos(angle), np.sin(angle)
    rotated = shape @ np.array([[c, s], [-s, c]], dtype=np.float32)
    return np.round((rotated * radius + centre) * (1 << _SHIFT)).astype(np.int32)


# --------------------------------------------------------------------------- motion families
# Each returns (polygons_at(s), alpha_at(s)) for progress s in [0, 1], the first class of the pair's direction.

Family = Callable[[np.random.Generator, int, int], tuple[Callable[[float], list[np.ndarray]], Callable[[float], float]]]


def _opaque(_: float) -> float:
    return 1.0


def _translate(axis: int) -> Family:
    """Moving left (axis 0) or up (axis 1): the coordinate decreases as s goes 0 -> 1."""

    def family(rng: np.random.Generator, height: int, width: int):
        extent = (width, height)
        radius = rng.uniform(0.1, 0.17) * min(height, width)
        travel = rng.uniform(0.3, 0.55) * extent[axis]
        start = np.empty(2)
        start[axis] = rng.uniform(radius + travel, extent[axis] - radius)
        start[1 - axis] = rng.uniform(radius, extent[1 - axis] - radius)
        direction = np.zeros(2)
        direction[axis] = -travel
        shape, angle = _random_shape(rng)
        return (lambda s: [_place(shape, start + s * direction, radius, angle)]), _opaque

    return family


def _grow(rng: np.random.Generator, height: int, width: int):
    small = rng.uniform(0.07, 0.1) * min(height, width)
    large = small * rng.uniform(1.8, 2.6)
    centre = rng.uniform((large, large), (width - large, height - large))
    shape, angle = _random_shape(rng)
    return (lambda s: [_place(shape, centre, small + s * (large - small), angle)]), _opaque


def _turn(rng: np.random.Generator, height: int, width: int):
    # large enough that the turn is visible after the model's 4x downsampling stem at small clip sizes
    radius = rng.uniform(0.26, 0.34) * min(height, width)
    centre = rng.uniform((radius, radius), (width - radius, height - radius))
    shape = SHAPES[rng.choice(ASYMMETRIC)]
    angle, sweep = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(90, 180))
    return (lambda s: [_place(shape, centre, radius, angle + s * sweep)]), _opaque


def _fade(rng: np.random.Generator, height: int, width: int):
    radius = rng.uniform(0.12, 0.2) * min(height, width)
    centre = rng.uniform((radius, radius), (width - radius, height - radius))
    shape, angle = _random_shape(rng)
    polygons = [_place(shape, centre, radius, angle)]
    return (lambda s: polygons), (lambda s: float(s))


def _split(rng: np.random.Generator, height: int, width: int):
    radius = rng.uniform(0.1, 0.14) * min(height, width)
    heading = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(1.4, 2.0) * radius * np.array([np.cos(heading), np.sin(heading)])
    margin = np.abs(offset) + radius
    centre = rng.uniform(margin, (width - margin[0], height - margin[1]))
    shape, angle = _random_shape(rng)
    return (lambda s: [_place(shape, centre + s * offset, radius, angle),
                       _place(shape, centre - s * offset, radius, angle)]), _opaque


def _random_shape(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    return SHAPES[rng.choice(list(SHAPES))], rng.uniform(0, 2 * np.pi)


_FAMILIES: tuple[Family, ...] = (_translate(0), _translate(1), _grow, _turn, _fade, _split)


def write_examples(folder: str | Path, *, seed: int = 0, per_class: int = 1, num_frames: int = 16,
                   size: int | tuple[int, int] = 128, fps: float = 8.0) -> list[Path]:
    """Write ``per_class`` example clips of every class as H.264 mp4 files named ``NN_class-name_K.mp4``."""
    dataset = SynthMotion(per_class * NUM_CLASSES, seed, num_frames, size)
    paths = []
    for i in range(len(dataset)):
        label = i % NUM_CLASSES
        slug = "".join(ch if ch.isalnum() else "-" for ch in CLASS_NAMES[label].lower()).strip("-")
        slug = "-".join(part for part in slug.split("-") if part)
        paths.append(write_mp4(Path(folder) / f"{label:02d}_{slug}_{i // NUM_CLASSES}.mp4", dataset[i]["video"], fps))
    return paths
