"""Write uint8 frames as a video file through PyAV (H.264 mp4 that browsers play, or other codecs)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0, *, crf: int = 20) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as a browser-playable H.264 mp4.

    yuv420p needs even sizes, so odd heights/widths are padded by one replicated row/column; the moov
    atom is written first (``+faststart``) so playback can start before the download ends.
    """
    frames = _check_frames(frames)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return write_video(path, frames, fps, codec="libx264", pix_fmt="yuv420p",
                       codec_options={"crf": str(crf), "preset": "veryfast"},
                       container_options={"movflags": "+faststart"})


def write_video(path: str | Path, frames: np.ndarray, fps: float, *, codec: str, pix_fmt: str,
                codec_options: dict[str, str] | None = None, container_options: dict[str, str] | None = None,
                timestamps: Sequence[float] | None = None, rotation: int = 0) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames with any PyAV encoder; the container follows the suffix.

    ``pix_fmt="pal8"`` (GIF) stores each frame's colours exactly and needs at most 256 of them.
    ``timestamps`` (seconds, increasing) makes a variable-frame-rate file; ``rotation`` stores a display
    rotation (degrees counter-clockwise, as ``av.VideoFrame.rotation`` reads it back) without touching pixels.
    """
    frames = _check_frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    time_base = Fraction(1, 1000) if timestamps is not None else 1 / rate
    with av.open(str(path), "w", container_options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=codec_options or {})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = _palette_frame(image) if pix_fmt == "pal8" else av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(timestamps[i] / time_base) if timestamps is not None else i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _palette_frame(image: np.ndarray) -> av.VideoFrame:
    """A ``pal8`` frame (GIF) from an image with at most 256 distinct colours, exactly (no dithering)."""
    colours, inverse = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) > 256:
        raise ValueError(f"pal8 needs at most 256 colours per frame, this frame has {len(colours)}")
    palette = np.zeros((256, 4), np.uint8)
    palette[: len(colours), 0] = 255
    palette[: len(colours), 1:] = colours
    indices = inverse.reshape(image.shape[:2]).astype(np.uint8)
    return av.VideoFrame.from_ndarray((indices, palette), format="pal8")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected non-empty uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)
