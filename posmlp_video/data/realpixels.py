"""Real-pixel SynthMotion: the same 12 motions, acted by photographic cut-outs over real photos.

The acting object is a cut-out with alpha (Tux Paint stamps), 10% to 60% of the frame, stretched to any
aspect ratio and wobbling slightly from frame to frame; the background is a crop of a photo (OpenCV and
scikit-image samples) under slow camera drift and zoom and a lighting change; up to two other cut-outs
drift a little as distractors; then motion blur, sensor noise and JPEG blocking (the look of a compressed
video). The pictures come from `posmlp_video.assets` (``python -m posmlp_video assets fetch``); no frame of
real video is used. The mask is the acting object's alpha (the pixels it covers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from posmlp_video.assets import AssetError, asset_files, cache_dir

_OBJECT_SIDE = 160  # cut-outs are kept at most this big (pixels) in memory
_BACKGROUND_SIDE = 320  # photos are kept with this short side
_SHIFT = 4  # cv2 fixed-point bits for sub-pixel lines
_MIN_FIT = 4.0  # pictures are never shrunk below this many pixels (a cut-out warped smaller vanishes)


@dataclass(frozen=True)
class PictureBank:
    """Cut-outs (RGBA uint8, cropped to their alpha's box) and background photos (RGB uint8) in a fixed order."""

    objects: tuple[np.ndarray, ...]
    backgrounds: tuple[np.ndarray, ...]


def _fit(image: np.ndarray, side: float, short: bool = False) -> np.ndarray:
    """`image` shrunk (area interpolation, no aliasing) so its shorter (`short`) or longer side is about `side`
    pixels (at least ``_MIN_FIT``, each side at least 2); never enlarged."""
    h, w = image.shape[:2]
    scale = max(side, _MIN_FIT) / (min(h, w) if short else max(h, w))
    if scale >= 1:
        return image
    return cv2.resize(image, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)


def _load_object(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        return None
    ys, xs = np.nonzero(image[..., 3] > 127)
    if len(ys) < 64:
        return None
    image = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if len(ys) < 0.3 * image.shape[0] * image.shape[1]:
        return None  # wiry or mostly transparent (a stick, a wire, smoke): too few pixels to see it move
    return np.ascontiguousarray(cv2.cvtColor(_fit(image, _OBJECT_SIDE), cv2.COLOR_BGRA2RGBA))


def _load_background(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(_fit(image, _BACKGROUND_SIDE, short=True), cv2.COLOR_BGR2RGB))


@lru_cache(maxsize=2)
def _bank(root: Path) -> PictureBank:
    objects = tuple(o for o in map(_load_object, asset_files("objects", root)) if o is not None)
    backgrounds = tuple(b for b in map(_load_background, asset_files("backgrounds", root)) if b is not None)
    if not objects or not backgrounds:
        raise AssetError(f"no readable cut-outs or photos in {root}: run 'python -m posmlp_video assets fetch'")
    return PictureBank(objects, backgrounds)


def picture_bank(cache: str | Path | None = None) -> PictureBank:
    """The fetched pictures, loaded once per process (an AssetError naming the fetch command when absent)."""
    return _bank(cache_dir(cache).resolve())


# --------------------------------------------------------------------------- rendering


def _affine(centre: np.ndarray, angle: float, scale: tuple[float, float], origin: tuple[float, float]) -> np.ndarray:
    """2x3 map from picture pixels to frame pixels: move `origin` to 0, scale, rotate clockwise on screen, move to `centre`."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]]) @ np.diag(scale)
    return np.hstack([rotation, (centre - rotation @ np.asarray(origin))[:, None]])


def _paste(frame: np.ndarray, rgba: np.ndarray, matrix: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Alpha-blend `rgba` warped by `matrix` onto `frame` (float RGB) in place; return its alpha (H, W)."""
    h, w = frame.shape[:2]
    layer = cv2.warpAffine(rgba, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(0, 0, 0, 0)).astype(np.float32)
    alpha = layer[..., 3:] / 255.0 * opacity
    frame *= 1.0 - alpha
    frame += layer[..., :3] * alpha
    return alpha[..., 0]


def _camera(rng: np.random.Generator, photo: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """Frames of a photo crop under slow drift and zoom, with a lighting change: float32 (T, H, W, 3)."""
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    ph, pw = photo.shape[:2]
    side = rng.uniform(0.4, 1.0) * min(ph / height, pw / width)  # photo pixels per frame pixel
    photo = np.ascontiguousarray(photo)
    drift = rng.uniform(-0.06, 0.06, 2) * np.array([width, height])
    zoom = np.exp(rng.uniform(-0.06, 0.06))
    centre = rng.uniform((width * side / 2, height * side / 2), (pw - width * side / 2, ph - height * side / 2))
    gains = np.exp(rng.uniform(-0.25, 0.25, 2))
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.float32)
    smooth = cv2.GaussianBlur(photo, (0, 0), max(0.5 * side, 0.01)) if side > 1.5 else photo
    for t in range(num_frames):
        u = t / max(num_frames - 1, 1)
        scale = side * zoom ** u
        # frame pixel p -> photo pixel: centre_t + scale * (p - frame centre)
        inverse = np.array([[scale, 0, centre[0] + u * drift[0] * side - scale * width / 2],
                            [0, scale, centre[1] + u * drift[1] * side - scale * height / 2]])
        frames[t] = cv2.warpAffine(smooth, inverse, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
        frames[t] *= tint * (gains[0] + u * (gains[1] - gains[0]))
    return frames


def _finish(rng: np.random.Generator, frames: np.ndarray, heading: float) -> np.ndarray:
    """Motion blur along `heading`, sensor noise and JPEG blocking: float frames -> uint8 (T, H, W, 3)."""
    if rng.random() < 0.5:  # a 1.5 to 3 pixel streak
        reach = rng.uniform(0.75, 1.5)
        kernel = np.zeros((5, 5), np.float32)
        d = np.array([np.cos(heading), np.sin(heading)]) * reach * (1 << _SHIFT)
        centre = 2 * (1 << _SHIFT)
        cv2.line(kernel, (int(centre - d[0]), int(centre - d[1])), (int(centre + d[0]), int(centre + d[1])), 1.0, 1,
                 cv2.LINE_AA, _SHIFT)
        kernel /= kernel.sum()
        frames = np.stack([cv2.filter2D(f, -1, kernel) for f in frames])
    frames = frames + rng.standard_normal(frames.shape, dtype=np.float32) * rng.uniform(0.5, 6.0)
    video = np.clip(frames, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(25, 90))
        for t in range(len(video)):
            ok, data = cv2.imencode(".jpg", video[t], [cv2.IMWRITE_JPEG_QUALITY, quality])
            video[t] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return video


def render_real_clip(rng: np.random.Generator, label: int, progress: np.ndarray, height: int, width: int,
                     bank: PictureBank) -> tuple[np.ndarray, np.ndarray]:
    """One real-pixel clip of class `label` at the given per-frame `progress` (see `synthmotion.render_clip`).

    Returns ``(video uint8 (T, H, W, 3), mask bool (T, H, W))``.
    """
    num_frames, size = len(progress), min(height, width)
    frames = _camera(rng, bank.backgrounds[rng.integers(len(bank.backgrounds))], num_frames, height, width)
    # distractors: other cut-outs that drift a little, drawn behind the actor
    for _ in range(rng.integers(0, 3)):
        rgba = _fit(bank.objects[rng.integers(len(bank.objects))], rng.uniform(0.1, 0.3) * size)
        start = rng.uniform((0, 0), (width, height))
        drift = rng.uniform(-0.04, 0.04, 2) * size
        angle = rng.uniform(-0.3, 0.3)
        origin = (rgba.shape[1] / 2, rgba.shape[0] / 2)
        for t in range(num_frames):
            _paste(frames[t], rgba, _affine(start + drift * t / max(num_frames - 1, 1), angle, (1, 1), origin))
    family = label // 2
    rgba = bank.objects[rng.integers(len(bank.objects))]
    if rng.random() < 0.5:
        rgba = rgba[:, ::-1]
    stretch = np.exp(rng.uniform(-0.35, 0.35))
    limits = {0: (0.2, 0.5), 1: (0.2, 0.5), 2: (0.15, 0.25), 3: (0.4, 0.6), 4: (0.2, 0.5), 5: (0.25, 0.45)}
    longest = rng.uniform(*limits[family]) * size  # the object's longer side in frame pixels (at full size)
    big = longest * (rng.uniform(1.8, 2.6) if family == 2 else 1.0)
    rgba = np.ascontiguousarray(_fit(rgba, big * 1.2))
    h, w = rgba.shape[:2]
    base = longest / max(h, w)
    scale = (base * stretch ** 0.5, base / stretch ** 0.5)
    half = np.array([w * scale[0], h * scale[1]]) / 2  # half extent at rest (x, y)
    angle = rng.uniform(-0.25, 0.25)
    wobble = rng.uniform(-1, 1, (num_frames, 4)) * np.array([0.03, 0.05, 0.01 * size, 0.01 * size])
    heading = 0.0
    if family in (0, 1):  # moving left (axis 0) / up (axis 1)
        axis = family
        extent = np.array([width, height], np.float64)
        travel = rng.uniform(0.3, 0.55) * extent[axis]
        start = np.empty(2)
        low, high = half[axis] + travel, extent[axis] - half[axis]
        start[axis] = rng.uniform(min(low, high), max(low, high))
        start[1 - axis] = rng.uniform(min(half[1 - axis], extent[1 - axis] - half[1 - axis]),
                                      max(half[1 - axis], extent[1 - axis] - half[1 - axis]))
        direction = np.zeros(2)
        direction[axis] = -travel
        heading = np.pi / 2 * axis

        def place(s: float) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
            return [(_affine(start + s * direction, angle, scale, (w / 2, h / 2)), None, 1.0)]
    elif family == 2:  # growing
        grow = big / longest
        margin = half * grow
        centre = rng.uniform(np.minimum(margin, [width / 2, height / 2]),
                             np.maximum([width - margin[0], height - margin[1]], [width / 2, height / 2]))

        def place(s: float) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
            g = 1 + s * (grow - 1)
            return [(_affine(centre, angle, (scale[0] * g, scale[1] * g), (w / 2, h / 2)), None, 1.0)]
    elif family == 3:  # turning clockwise
        centre = rng.uniform(np.minimum(half, [width / 2, height / 2]) * 0.8,
                             np.maximum([width - half[0] * 0.8, height - half[1] * 0.8], [width / 2, height / 2]))
        sweep = np.deg2rad(rng.uniform(90, 180))
        heading = angle

        def place(s: float) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
            return [(_affine(centre, angle + s * sweep, scale, (w / 2, h / 2)), None, 1.0)]
    elif family == 4:  # appearing
        centre = rng.uniform(half, np.maximum([width - half[0], height - half[1]], half + 1))

        def place(s: float) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
            return [(_affine(centre, angle, scale, (w / 2, h / 2)), None, float(s))]
    else:  # splitting: the cut-out is cut across `heading` and the halves move apart along it
        heading = rng.uniform(0, 2 * np.pi)
        unit = np.array([np.cos(heading), np.sin(heading)])
        yy, xx = np.mgrid[0:h, 0:w]
        side = ((xx - w / 2) * unit[0] + (yy - h / 2) * unit[1]) >= 0
        halves = []
        for keep in (side, ~side):
            piece = rgba.copy()
            piece[..., 3] = np.where(keep, piece[..., 3], 0)
            halves.append(piece)
        offset = rng.uniform(0.5, 0.9) * longest * unit
        margin = np.abs(offset) + half
        centre = rng.uniform(np.minimum(margin, [width / 2, height / 2]),
                             np.maximum([width - margin[0], height - margin[1]], [width / 2, height / 2]))

        def place(s: float) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
            return [(_affine(centre + sign * s * offset, angle, scale, (w / 2, h / 2)), piece, 1.0)
                    for sign, piece in ((1, halves[0]), (-1, halves[1]))]

    mask = np.zeros((num_frames, height, width), bool)
    for t, s in enumerate(progress):
        for matrix, piece, opacity in place(float(s)):
            jitter = _affine(np.array([wobble[t, 2], wobble[t, 3]]), wobble[t, 1], (1 + wobble[t, 0],) * 2, (0, 0))
            # wobble about the piece's own centre: frame centre of the piece = matrix @ (w/2, h/2, 1)
            middle = matrix @ np.array([w / 2, h / 2, 1.0])
            around = np.vstack([jitter, [0, 0, 1]])
            shift = np.array([[1, 0, middle[0]], [0, 1, middle[1]], [0, 0, 1]])
            full = (shift @ around @ np.linalg.inv(shift) @ np.vstack([matrix, [0, 0, 1]]))[:2]
            if opacity > 0:
                mask[t] |= _paste(frames[t], rgba if piece is None else piece, full, opacity) >= 0.5 * opacity
    return _finish(rng, frames, heading), mask
