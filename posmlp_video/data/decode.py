"""Decode a video file (or still image / GIF / JPEG frame folder) into the uint8 frames a clip needs.

How it stays bounded on a 90-minute or 4K file:

1. An index pass demuxes packets without decoding them, counting frames and collecting timestamps
   (container frame counts are often wrong). Stops with "too large" past ``MAX_FRAMES``.
2. The sampler picks indices on a constant-rate timeline built from those timestamps, so a
   variable-frame-rate video is sampled evenly in time, not in frame count.
3. A decode pass decodes forward and converts only the wanted frames, downscaled by FFmpeg to
   ``short_side`` while converting to RGB; when the keyframe before the next wanted frame lies more than
   ``SEEK_MIN_SKIP`` frames ahead, it seeks there instead of decoding through the frames in between.

Rotation metadata (display matrix) is applied in multiples of 90 degrees. Any decoding problem is a
``VideoDecodeError`` with a one-line reason.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from posmlp_video.errors import PosMLPError

MAX_FRAMES = 1_000_000  # index pass limit: ~9 h at 30 fps
MAX_PIXELS = 7680 * 4320  # 8K UHD; larger frames are refused
MAX_OUTPUT_BYTES = 2 << 30  # decoded frames returned by one call
SEEK_MIN_SKIP = 4  # seek when that many frames or more can be skipped by jumping to a keyframe

Sampler = Callable[[int], np.ndarray]


class VideoDecodeError(PosMLPError):
    """A file cannot be turned into frames; the message is a one-line reason a person understands."""


@dataclass(frozen=True)
class VideoInfo:
    """What the index pass found. ``width``/``height`` are as displayed (after rotation)."""

    num_frames: int  # frames actually present (counted, not the container's claim)
    timeline_frames: int  # length of the constant-rate timeline the sampler sees
    fps: float  # rate of that timeline (0.0 when the file has no timestamps)
    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to the coded frames for display
    codec: str


@dataclass(frozen=True)
class VideoClip:
    """Decoded frames ``(*indices.shape, H, W, 3)`` uint8 and the timeline indices the sampler chose
    (without a sampler: the indices of the frames that decoded)."""

    frames: np.ndarray
    indices: np.ndarray
    info: VideoInfo


@dataclass
class _Index:
    info: VideoInfo
    pts: np.ndarray | None  # sorted presentation timestamps of every frame, None if the file has none
    grid_to_frame: np.ndarray  # timeline index -> frame index
    keyframes: np.ndarray  # sorted frame indices of keyframes (empty without timestamps: no seeking)


def probe_video(path: str | Path) -> VideoInfo:
    """Count frames and read size/rate/rotation, decoding only the first picture."""
    with _open(path) as container:
        return _index(container).info


def read_video(path: str | Path, sampler: Sampler | None = None, *, short_side: int | None = None) -> VideoClip:
    """Decode the frames ``sampler(timeline_frames)`` asks for, or every frame that decodes if None.

    ``short_side`` downscales (never upscales) so the shorter displayed side is at most that many pixels.
    Sampled frames that fail to decode (corrupt packets, a cut-off tail) are replaced by the closest frame
    that did (for a cut-off tail, the last one), so the clip keeps its shape.
    """
    with _open(path) as container:
        index = _index(container)
    info = index.info
    if sampler is None:
        grid = np.arange(info.num_frames)
        wanted = grid
    else:
        grid = np.asarray(sampler(info.timeline_frames), dtype=np.int64)
        wanted = index.grid_to_frame[grid]
    out_w, out_h = _output_size(info, short_side)
    if wanted.size * out_w * out_h * 3 > MAX_OUTPUT_BYTES:
        raise VideoDecodeError(f"too large: {wanted.size} frames of {out_w}x{out_h} exceed the "
                               f"{MAX_OUTPUT_BYTES >> 20} MiB decode limit; sample fewer frames or downscale")
    decoded = _decode_wanted(path, index, np.unique(wanted), _coded_size(info, out_w, out_h))
    if not decoded:
        raise VideoDecodeError("no decodable frames (corrupt data or unsupported codec)")
    have = np.array(sorted(decoded))
    if sampler is None:  # all frames: exactly those that decoded
        wanted = grid = have
    frames = np.stack([_display(decoded[i], info.rotation) for i in _nearest(have, wanted.reshape(-1))])
    return VideoClip(frames.reshape(*wanted.shape, *frames.shape[1:]), grid, info)


def read_frame_folder(folder: str | Path, num_frames: int, sampler: Sampler, *, template: str = "{:05d}.jpg",
                      start: int = 1, short_side: int | None = None) -> np.ndarray:
    """Read sampled frames of a folder of numbered images (the authors' Something-Something v1 layout:
    ``00001.jpg`` ...) as uint8 ``(*indices.shape, H, W, 3)``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoDecodeError(f"frame folder not found: {folder}")
    indices = np.asarray(sampler(num_frames), dtype=np.int64)
    cache: dict[int, np.ndarray] = {}
    for i in np.unique(indices):
        file = folder / template.format(int(i) + start)
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoDecodeError(f"missing or unreadable frame image {file.name} in {folder}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        size = _scaled_size(rgb.shape[1], rgb.shape[0], short_side)
        cache[int(i)] = rgb if size == rgb.shape[1::-1] else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    frames = np.stack([cache[int(i)] for i in indices.reshape(-1)])
    return frames.reshape(*indices.shape, *frames.shape[1:])


# --------------------------------------------------------------------------- internals


def _open(path: str | Path) -> av.container.InputContainer:
    file = Path(path)
    if not file.exists():
        raise VideoDecodeError(f"file not found: {file}")
    if file.is_dir():
        raise VideoDecodeError(f"{file} is a folder, not a video file")
    if not os.access(file, os.R_OK):
        raise VideoDecodeError(f"permission denied: cannot read {file}")
    if file.stat().st_size == 0:
        raise VideoDecodeError("empty file (0 bytes)")
    try:
        container = av.open(str(file), metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"not a video file, or truncated/corrupt ({_reason(err)})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError("no video stream in the file (audio-only or not a video)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoDecodeError("unsupported video codec (no decoder in this FFmpeg build)")
    stream.thread_type = "AUTO"
    return container


def _reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.split(":")[0].strip().rstrip(".") or type(err).__name__


def _index(container: av.container.InputContainer) -> _Index:
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_PIXELS:
        raise VideoDecodeError(f"too large: {width}x{height} frames exceed the 8K limit")
    pts: list[int] = []
    count = 0
    missing_pts = False
    key_pts: list[int] = []
    rotation: int | None = None  # read from the first frame that decodes
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if count > MAX_FRAMES:
                raise VideoDecodeError(f"too large: more than {MAX_FRAMES} frames")
            if packet.pts is None:
                missing_pts = True
            else:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
            if rotation is None:
                rotation = _first_rotation(packet)
    except av.error.FFmpegError as err:
        if count == 0:
            raise VideoDecodeError(f"truncated or corrupt video ({_reason(err)})") from None
    if count == 0:
        raise VideoDecodeError("no video frames in the file")
    if width == 0 or height == 0:
        raise VideoDecodeError("video stream has no picture size (corrupt header)")
    rotation = rotation or 0
    if rotation % 180:
        width, height = height, width
    codec = stream.codec_context.name
    if missing_pts or len(pts) < 2:
        info = VideoInfo(count, count, _nominal_fps(stream), width, height, rotation, codec)
        return _Index(info, None, np.arange(count), np.zeros(0, np.int64))
    sorted_pts = np.sort(np.asarray(pts, dtype=np.int64))
    diffs = np.diff(sorted_pts)
    diffs = diffs[diffs > 0]
    span = int(sorted_pts[-1] - sorted_pts[0])
    step = min(float(np.median(diffs)), span / (len(sorted_pts) - 1)) if diffs.size else 1.0
    grid_len = min(round(span / step) + 1, MAX_FRAMES)
    step = span / (grid_len - 1) if grid_len > 1 else step
    times = sorted_pts[0] + np.arange(grid_len) * step + step / 2
    grid_to_frame = np.clip(np.searchsorted(sorted_pts, times, side="right") - 1, 0, len(sorted_pts) - 1)
    fps = 1.0 / (step * float(stream.time_base)) if stream.time_base else 0.0
    info = VideoInfo(len(sorted_pts), grid_len, fps, width, height, rotation, codec)
    keyframes = np.unique(np.searchsorted(sorted_pts, np.asarray(key_pts, dtype=np.int64)))
    return _Index(info, sorted_pts, grid_to_frame, keyframes)


def _nominal_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _first_rotation(packet: av.Packet) -> int | None:
    """Display rotation (CCW degrees, multiple of 90) of the first frame this packet yields, if any."""
    try:
        for frame in packet.decode():
            return int(round(frame.rotation / 90.0)) * 90 % 360
    except av.error.FFmpegError:
        pass
    return None


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) downscaled so the shorter side is at most ``short_side``; never upscaled."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _output_size(info: VideoInfo, short_side: int | None) -> tuple[int, int]:
    """Displayed (width, height) after downscaling to ``short_side``."""
    return _scaled_size(info.width, info.height, short_side)


def _nearest(have: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each wanted frame index, the closest index in the sorted array ``have``."""
    right = np.clip(np.searchsorted(have, wanted), 0, len(have) - 1)
    left = np.clip(right - 1, 0, len(have) - 1)
    return np.where(np.abs(have[left] - wanted) <= np.abs(have[right] - wanted), have[left], have[right])


def _coded_size(info: VideoInfo, out_w: int, out_h: int) -> tuple[int, int]:
    return (out_h, out_w) if info.rotation % 180 else (out_w, out_h)


def _display(image: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order; corrupt packets are skipped, a truncated tail ends the stream."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            return
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue


def _decode_wanted(path: str | Path, index: _Index, wanted: np.ndarray, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Decode the frames in ``wanted`` (sorted unique frame indices) as RGB arrays of coded ``size``.

    Also keeps the last frame that decoded, so a cut-off tail falls back to it rather than to an earlier one.
    """
    out: dict[int, np.ndarray] = {}
    wanted_set = set(wanted.tolist())
    seekable = index.pts is not None
    container = _open(path)
    try:
        frames = _frames(container, container.streams.video[0])
        position, last = -1, None  # index and frame of the last decoded frame
        targets = wanted.tolist()
        k = 0
        while k < len(targets):
            target = targets[k]
            if target <= position:
                k += 1
                continue
            if seekable and _keyframe_before(index, target) - position > SEEK_MIN_SKIP:
                try:
                    container.seek(int(index.pts[target]), stream=container.streams.video[0], backward=True)
                except av.error.FFmpegError:
                    seekable = False
                else:
                    frames = _frames(container, container.streams.video[0])
                    first = next(frames, None)
                    if first is not None and _frame_index(first, index, position) > target:
                        # The seek landed past the target (bad index): start again from the top, never seeking.
                        seekable = False
                        container.close()
                        container = _open(path)
                        frames, position = _frames(container, container.streams.video[0]), -1
                        continue
                    frames = itertools.chain([first] if first is not None else [], frames)
            for frame in frames:
                position, last = _frame_index(frame, index, position), frame
                if position in wanted_set:
                    out[position] = _to_rgb(frame, size)
                if position >= target:
                    break
            else:
                break  # end of stream
            k += 1
        if last is not None and position not in out:
            out[position] = _to_rgb(last, size)
    finally:
        container.close()
    return out


def _keyframe_before(index: _Index, target: int) -> int:
    """Frame index of the last keyframe at or before ``target`` (-1 if none is known)."""
    k = int(np.searchsorted(index.keyframes, target, side="right")) - 1
    return int(index.keyframes[k]) if k >= 0 else -1


def _frame_index(frame: av.VideoFrame, index: _Index, previous: int) -> int:
    if index.pts is None or frame.pts is None:
        return previous + 1
    return max(int(np.searchsorted(index.pts, frame.pts, side="right")) - 1, 0)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if (frame.width, frame.height) == (width, height):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def write_preview(source: str | Path, path: str | Path, *, max_frames: int = 96, short_side: int = 240,
                  still_seconds: float = 1.0) -> Path:
    """A browser-playable H.264 preview of any file `read_video` reads (MPEG-4 part 2, GIF, still image...).

    At most `max_frames` frames spread evenly over the clip, downscaled to `short_side`, played at the rate
    that keeps the original duration (a still image becomes a `still_seconds` clip). Returns `path`.
    """
    from posmlp_video.data.encode import write_mp4

    clip = read_video(source, lambda n: np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(np.int64)),
                      short_side=short_side)
    info = clip.info
    duration = info.timeline_frames / info.fps if info.fps > 0 else 0.0
    frames = clip.frames
    if len(frames) == 1:
        frames, duration = np.repeat(frames, 2, axis=0), still_seconds
    fps = len(frames) / duration if duration > 0 else 8.0
    return write_mp4(path, frames, fps=min(max(fps, 1.0), 60.0))
