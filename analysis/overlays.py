"""Attribution heatmaps blended on frames (OpenCV colormaps), frame strips (PNG) and overlay videos (mp4).

One colour scale is used for the whole clip, so frames are comparable: by default |values| divided by
their 99th percentile (clipped to 0..1). Videos are written with the data pipeline's H.264 writer
(`posmlp_video.data.write_mp4`), which browsers play.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from analysis.attributions import Attribution
from analysis.errors import AnalysisError
from posmlp_video.data import write_mp4

COLORMAPS = {"jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO,
             "viridis": cv2.COLORMAP_VIRIDIS, "hot": cv2.COLORMAP_HOT, "magma": cv2.COLORMAP_MAGMA}
MODES = ("abs", "positive", "negative")


def normalize_map(values: np.ndarray, mode: str = "abs", percentile: float = 99.0) -> np.ndarray:
    """Scale a ``(T, H, W)`` map to 0..1 with one scale for the whole clip.

    `mode` picks what is shown: "abs" (magnitude), "positive" (evidence for the class) or "negative"
    (evidence against); the `percentile` of the shown values maps to 1 so single hot pixels do not wash
    out the rest.
    """
    if mode not in MODES:
        raise AnalysisError(f"unknown heatmap mode {mode!r}; choose from {', '.join(MODES)}")
    values = np.asarray(values, dtype=np.float32)
    shown = {"abs": np.abs(values), "positive": np.maximum(values, 0), "negative": np.maximum(-values, 0)}[mode]
    top = float(np.percentile(shown, percentile)) if shown.size else 0.0
    if top <= 0:
        top = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
    return np.clip(shown / top, 0.0, 1.0)


def colorize(heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """``(T, H, W)`` values in 0..1 -> uint8 RGB ``(T, H, W, 3)`` with an OpenCV colormap."""
    if colormap not in COLORMAPS:
        raise AnalysisError(f"unknown colormap {colormap!r}; choose from {', '.join(COLORMAPS)}")
    levels = np.round(np.asarray(heat) * 255).astype(np.uint8)
    return np.stack([cv2.cvtColor(cv2.applyColorMap(f, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB) for f in levels])


def overlay(attribution: Attribution, alpha: float = 0.5, colormap: str = "jet", mode: str = "abs") -> np.ndarray:
    """The clip with its heatmap blended in: uint8 ``(T, H, W, 3)``; `alpha` is the heatmap's weight."""
    if not 0.0 <= alpha <= 1.0:
        raise AnalysisError(f"alpha must be in [0, 1], got {alpha}")
    colours = colorize(normalize_map(attribution.values, mode), colormap)
    return np.stack([cv2.addWeighted(frame, 1.0 - alpha, heat, alpha, 0.0)
                     for frame, heat in zip(attribution.clip, colours)])


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return frames
    if scale < 1:
        raise AnalysisError(f"scale must be a positive integer, got {scale}")
    return np.stack([cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for f in frames])


def frame_strip(attribution: Attribution, path: str | Path | None = None, scale: int = 2, gap: int = 2,
                alpha: float = 0.5, colormap: str = "jet", mode: str = "abs") -> np.ndarray:
    """Frames on top, overlays below, side by side in time: uint8 RGB; written as PNG when `path` is given."""
    rows = [_upscale(attribution.clip, scale), _upscale(overlay(attribution, alpha, colormap, mode), scale)]
    T, H, W, _ = rows[0].shape
    strip = np.full((2 * H + gap, T * W + (T - 1) * gap, 3), 255, np.uint8)
    for r, frames in enumerate(rows):
        for t, frame in enumerate(frames):
            strip[r * (H + gap): r * (H + gap) + H, t * (W + gap): t * (W + gap) + W] = frame
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise AnalysisError(f"could not write the frame strip to {path}")
    return strip


def overlay_video(attribution: Attribution, path: str | Path, fps: float = 4.0, scale: int = 4,
                  alpha: float = 0.5, colormap: str = "jet", mode: str = "abs", side_by_side: bool = True) -> Path:
    """An H.264 mp4 (browser-playable) of the overlay, next to the plain frames when `side_by_side`."""
    frames = overlay(attribution, alpha, colormap, mode)
    if side_by_side:
        frames = np.concatenate([attribution.clip, frames], axis=2)
    return write_mp4(path, _upscale(frames, scale), fps=fps)
