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

Hostile files stay bounded too: FFmpeg gets an already opened file object (no file name to expand, no
protocol) and only self-contained container formats (``ACCEPTED_FORMATS``: no playlists, concat lists or other
demuxers that open further files); every frame's size and aspect ratio is checked as it is decoded (the
decoder itself refuses pictures beyond ``MAX_PIXELS`` before allocating them), and every call runs under a
``DecodeBudget`` of wall time, packets decoded and decoded bytes.
"""

from __future__ import annotations

import errno
import io
import itertools
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from posmlp_video.errors import PosMLPError

MAX_FRAMES = 1_000_000  # index pass limit: ~9 h at 30 fps
MAX_PIXELS = 7680 * 4320  # 8K UHD; larger frames are refused
MAX_ASPECT = 16  # long side / short side; a 2,000,000 x 1 image would be resized to gigabytes
MAX_OUTPUT_BYTES = 2 << 30  # decoded frames returned by one call
MAX_TAGS = 1000  # metadata entries (container and streams together)
MAX_TAG_BYTES = 64 << 10  # Matroska Tags, AVI INFO lists, Ogg comments: measured before FFmpeg parses them
MAX_TAG_WALK = 10_000  # elements (Matroska), chunks (AVI) or pages (Ogg) walked to measure the tags
SEEK_MIN_SKIP = 4  # seek when that many frames or more can be skipped by jumping to a keyframe

# Demuxers of self-contained files. Playlists (hls), concat lists, image sequences (image2) and other
# formats that open further files or URLs are left out: FFmpeg refuses them before reading a byte more.
ACCEPTED_FORMATS = (
    "apng", "asf", "avi", "bmp_pipe", "flv", "gif", "gif_pipe", "h264", "hevc", "ivf", "jpeg_pipe", "m4v",
    "matroska", "mjpeg", "mov", "mp4", "mpeg", "mpegts", "mpegvideo", "ogg", "png_pipe", "tiff_pipe",
    "webm", "webp_pipe", "yuv4mpegpipe",
)
# Those of them a still image opens as: the frame-folder reader's whitelist. None of these demuxers parses the
# Matroska/AVI/Ogg tags measured before opening a video, so an image skips that measurement.
IMAGE_FORMATS = ("apng", "bmp_pipe", "gif", "gif_pipe", "jpeg_pipe", "mjpeg", "png_pipe", "tiff_pipe", "webp_pipe")
PLAYLIST_ERROR = "not a video file (playlist/indirection formats are not accepted)"
IMAGE_ERROR = "not an image file (a still image format is expected)"
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat")  # HLS and concat lists are text; FFmpeg only probes them by name

Sampler = Callable[[int], np.ndarray]


class VideoDecodeError(PosMLPError):
    """A file cannot be turned into frames; the message is a one-line reason a person understands."""


class _NoFile(VideoDecodeError):
    """Nothing at the path (a frame folder names such a frame "missing")."""


@dataclass(frozen=True)
class DecodeBudget:
    """Work one decode call may do before it stops with "too slow/too large: ...".

    ``seconds`` of wall time (index and decode passes together, checked on every read and decoded packet),
    ``frames``: packets handed to the decoder, ``bytes``: decoded pictures counted as RGB (width x height x 3,
    at the size they decode to, before any downscaling). The defaults come from the environment
    (``POSMLP_DECODE_SECONDS``, ``POSMLP_DECODE_FRAMES``, ``POSMLP_DECODE_BYTES``), read at each call.
    """

    seconds: float = 30.0
    frames: int = 20_000
    bytes: int = 32 << 30

    @classmethod
    def from_env(cls) -> DecodeBudget:
        """The default budget, with the ``POSMLP_DECODE_*`` environment variables that are set applied."""
        values: dict[str, float] = {}
        for name, kind in (("seconds", float), ("frames", int), ("bytes", int)):
            text = os.environ.get(f"POSMLP_DECODE_{name.upper()}")
            if text is None:
                continue
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if not value > 0 or not math.isfinite(value):
                raise VideoDecodeError(f"POSMLP_DECODE_{name.upper()} must be a positive number, got {text!r}")
            values[name] = value
        return cls(**values)


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


def probe_video(path: str | Path, *, budget: DecodeBudget | None = None) -> VideoInfo:
    """Count frames and read size/rate/rotation, decoding only the first picture."""
    return _indexed(path, _Work(budget)).info


def read_video(path: str | Path, sampler: Sampler | None = None, *, short_side: int | None = None,
               budget: DecodeBudget | None = None) -> VideoClip:
    """Decode the frames ``sampler(timeline_frames)`` asks for, or every frame that decodes if None.

    ``short_side`` downscales (never upscales) so the shorter displayed side is at most that many pixels.
    Sampled frames that fail to decode (corrupt packets, a cut-off tail) are replaced by the closest frame
    that did (for a cut-off tail, the last one), so the clip keeps its shape. ``budget`` bounds the work
    (default: ``DecodeBudget.from_env()``).
    """
    work = _Work(budget)
    index = _indexed(path, work)
    info = index.info
    grid, wanted = _sampled(index, sampler)
    out_w, out_h = _output_size(info, short_side)
    check_output(wanted.size, out_w, out_h)
    decoded = _decode_wanted(path, index, np.unique(wanted), _coded_size(info, out_w, out_h), work)
    if not decoded:
        raise VideoDecodeError("no decodable frames (corrupt data or unsupported codec)")
    have = np.array(sorted(decoded))
    if sampler is None:  # all frames: exactly those that decoded
        wanted = grid = have
    frames = np.stack([_display(decoded[i], info.rotation) for i in _nearest(have, wanted.reshape(-1))])
    return VideoClip(frames.reshape(*wanted.shape, *frames.shape[1:]), grid, info)


def frames_between(first: int, last: int) -> Sampler:
    """A sampler for ``read_video``: every timeline index in ``[first, last)``, cut at the video's end (on a
    constant-rate video, the frames numbered so). A range with no frame in the video is a ``VideoDecodeError``."""

    def sampler(num_available: int) -> np.ndarray:
        end = min(last, num_available)
        if not 0 <= first < end:
            raise VideoDecodeError(f"no frames in {first}-{last}: the video has {num_available}")
        return np.arange(first, end)

    return sampler


@dataclass(frozen=True)
class DecodeCheck:
    """What `check_decoding` found: the index pass's info, the frame indices it decoded for (sorted), and
    those among them that did not decode (empty: every one did)."""

    info: VideoInfo
    checked: np.ndarray
    failed: np.ndarray


def check_decoding(path: str | Path, sampler: Sampler | None = None, *,
                   budget: DecodeBudget | None = None) -> DecodeCheck:
    """Decode the frames ``sampler(timeline_frames)`` asks for (every frame if None) and say which did not.

    What ``read_video`` quietly replaces by a neighbour (a cut-off tail, corrupt packets) is counted here, so a
    dataset check can name the file. Frames the decoder conceals (outputs despite damage) are not detectable.
    Without a sampler the whole file is decoded, under ``budget`` scaled to its length as ``FrameStream``
    does (an hour-long file is not "too large" for being long); with one, under ``budget`` as it is.
    """
    base = budget or DecodeBudget.from_env()
    work = _Work(base)
    index = _indexed(path, work)
    if sampler is None:
        work = _Work(_length_budget(base, index.info.num_frames))
    wanted = np.unique(_sampled(index, sampler)[1])
    decoded = _decode_wanted(path, index, wanted, (1, 1), work)  # 1x1 pixel: only whether it decodes matters
    return DecodeCheck(index.info, wanted, wanted[~np.isin(wanted, list(decoded))])


def read_frame_folder(folder: str | Path, num_frames: int, sampler: Sampler, *, template: str = "{:05d}.jpg",
                      start: int = 1, short_side: int | None = None, budget: DecodeBudget | None = None) -> np.ndarray:
    """Read sampled frames of a folder of numbered images (the authors' Something-Something v1 layout:
    ``00001.jpg`` ...) as uint8 ``(*indices.shape, H, W, 3)``; each image is opened as a still image (only
    ``IMAGE_FORMATS``) and decoded with a video's per-frame checks, all under one shared ``budget``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoDecodeError(f"frame folder not found: {folder}")
    indices = np.asarray(sampler(num_frames), dtype=np.int64)
    work = _Work(budget)
    cache: dict[int, np.ndarray] = {}
    for i in np.unique(indices):
        file = folder / template.format(int(i) + start)
        try:
            with _open(file, work, image=True) as container:
                frame = next(_frames(container, container.streams.video[0], work), None)
                if frame is None:
                    raise VideoDecodeError("no picture")
                cache[int(i)] = _to_rgb(frame, _scaled_size(frame.width, frame.height, short_side))
        except _NoFile:
            raise VideoDecodeError(f"missing frame image {file.name} in {folder}") from None
        except VideoDecodeError as err:
            raise VideoDecodeError(f"unreadable frame image {file.name} in {folder}: {err}") from None
    check_output(len(indices.reshape(-1)), *cache[int(indices.flat[0])].shape[1::-1])
    frames = np.stack([cache[int(i)] for i in indices.reshape(-1)])
    return frames.reshape(*indices.shape, *frames.shape[1:])


def check_frame_size(width: int, height: int) -> None:
    """Refuse a frame (decoded, or about to be made by a resize) beyond ``MAX_PIXELS`` or ``MAX_ASPECT``."""
    if width * height > MAX_PIXELS:
        raise VideoDecodeError(f"too large: {width}x{height} frames exceed the 8K limit")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise VideoDecodeError(f"unusable aspect ratio: {width}x{height} frames are more than {MAX_ASPECT}:1")


def check_output(num_frames: int, width: int, height: int) -> None:
    """Refuse returning more than ``MAX_OUTPUT_BYTES`` of uint8 RGB frames from one call."""
    check_frame_size(width, height)
    if num_frames * width * height * 3 > MAX_OUTPUT_BYTES:
        raise VideoDecodeError(f"too large: {num_frames} frames of {width}x{height} exceed the "
                               f"{MAX_OUTPUT_BYTES >> 20} MiB decode limit; sample fewer frames or downscale")


# --------------------------------------------------------------------------- internals


class _Work:
    """What one call has spent of its ``DecodeBudget``."""

    def __init__(self, budget: DecodeBudget | None) -> None:
        self.budget = budget or DecodeBudget.from_env()
        self.deadline = time.monotonic() + self.budget.seconds
        self.packets = 0
        self.bytes = 0

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def check_time(self) -> None:
        if self.expired():
            raise VideoDecodeError(f"too slow: decoding took more than {self.budget.seconds:g} s "
                                   f"(POSMLP_DECODE_SECONDS)")

    def packet(self) -> None:
        """One packet is about to be decoded."""
        self.check_time()
        self.packets += 1
        if self.packets > self.budget.frames:
            raise VideoDecodeError(f"too large: more than {self.budget.frames} frames to decode "
                                   f"(POSMLP_DECODE_FRAMES)")

    def frame(self, frame: av.VideoFrame) -> None:
        """A frame came out of the decoder: check its own size (not the header's) and count its bytes."""
        check_frame_size(frame.width, frame.height)
        self.bytes += frame.width * frame.height * 3
        if self.bytes > self.budget.bytes:
            raise VideoDecodeError(f"too large: more than {self.budget.bytes >> 20} MiB of decoded frames "
                                   f"(POSMLP_DECODE_BYTES)")


class _Source:
    """The one file FFmpeg may read, as a file object: no name to expand or probe by, no protocol. Past the
    time budget it reads as ended, so FFmpeg stops soon; the caller then raises "too slow" (an exception
    raised inside FFmpeg's read would be dropped)."""

    def __init__(self, file: Path, work: _Work) -> None:
        self._file = open(file, "rb")  # noqa: SIM115  (closed with the container, see _open)
        self._work = work

    def read(self, size: int) -> bytes:
        return b"" if self._work.expired() else self._file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def _refuse_nested_open(url: str, flags: int, options: dict) -> None:
    """FFmpeg's hook for opening further files (references inside a container): none is allowed."""
    raise PermissionError("a video file may not open other files")


class _Input:
    """``with _open(...) as container``: closes the container, then its file."""

    def __init__(self, container: av.container.InputContainer, source: _Source) -> None:
        self.container, self.source = container, source

    def __enter__(self) -> av.container.InputContainer:
        return self.container

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        self.source.close()


def _open(path: str | Path, work: _Work, *, image: bool = False) -> _Input:
    """Open ``path`` for decoding, after checking it with one ``stat``. ``image``: a still image (a frame-folder
    frame): only ``IMAGE_FORMATS`` are accepted, so the tags of the video containers need no measuring, and its one
    picture is decoded without frame threads."""
    file = Path(path)
    _check_file(file)
    if not image:
        tag_bytes = _tag_bytes(file)
        if tag_bytes > MAX_TAG_BYTES:
            raise VideoDecodeError(f"too large: {tag_bytes >> 10} KiB of metadata tags (more than {MAX_TAG_BYTES >> 10} KiB)")
    source = _Source(file, work)
    try:
        timeout = max(work.remaining(), 1e-3)
        container = av.open(source, metadata_errors="ignore", timeout=(timeout, timeout),
                            container_options={"format_whitelist": ",".join(IMAGE_FORMATS if image else ACCEPTED_FORMATS)},
                            io_open=_refuse_nested_open)
    except av.error.FFmpegError as err:
        source.close()
        work.check_time()  # the file read as ended, or FFmpeg's own loops were interrupted, past the deadline
        if image and isinstance(err, av.error.ArgumentError):
            raise VideoDecodeError(IMAGE_ERROR) from None  # a format outside IMAGE_FORMATS
        if isinstance(err, av.error.ArgumentError) or _looks_like_playlist(file):
            raise VideoDecodeError(PLAYLIST_ERROR) from None  # a format outside ACCEPTED_FORMATS
        raise VideoDecodeError(f"not a video file, or truncated/corrupt ({_reason(err)})") from None
    except BaseException:
        source.close()
        raise
    opened = _Input(container, source)
    try:
        work.check_time()
        _check_metadata(container)
        if not container.streams.video:
            raise VideoDecodeError("no video stream in the file (audio-only or not a video)")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoDecodeError("unsupported video codec (no decoder in this FFmpeg build)")
    except BaseException:
        opened.close()
        raise
    if not image:  # frame threads only delay a single picture (a PNG then needs the flush packet to come out)
        stream.thread_type = "AUTO"
    stream.codec_context.options = {"max_pixels": str(MAX_PIXELS)}  # the decoder refuses larger pictures
    return opened


def _check_file(file: Path) -> None:
    """Refuse, with a one-line reason, what is not a readable non-empty regular file (one ``stat``)."""
    try:
        info = file.stat()
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):  # what Path.exists() says no to
            raise _NoFile(f"file not found: {file}") from None
        raise
    if stat.S_ISDIR(info.st_mode):
        raise VideoDecodeError(f"{file} is a folder, not a video file")
    if not os.access(file, os.R_OK):
        raise VideoDecodeError(f"permission denied: cannot read {file}")
    if info.st_size == 0:
        raise VideoDecodeError("empty file (0 bytes)")
    if not stat.S_ISREG(info.st_mode):
        raise VideoDecodeError(f"{file} is not a regular file")


_EBML, _SEGMENT, _SEEKHEAD, _SEEK, _SEEK_ID, _SEEK_POSITION, _TAGS, _CLUSTER = (
    0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC, 0x1254C367, 0x1F43B675)


def _vint(data: BinaryIO, marker: bool) -> int | None:
    """An EBML variable-length integer (an element ID with ``marker``, a size without); None past the end or
    when invalid. An unknown size reads as -1."""
    first = data.read(1)
    if not first or first[0] == 0:
        return None
    length = 9 - first[0].bit_length()
    rest = data.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = first[0] if marker else first[0] & (0xFF >> length)
    for byte in rest:
        value = value << 8 | byte
    return -1 if not marker and value == (1 << 7 * length) - 1 else value


def _tag_bytes(file: Path) -> int:
    """Bytes of the metadata tags FFmpeg would parse before any of our checks (Matroska/WebM, AVI and Ogg; 0 for
    other files), measured through one open of the file: each measure checks its own magic bytes."""
    with open(file, "rb") as data:
        for measure in (_matroska_tag_bytes, _avi_tag_bytes, _ogg_tag_bytes):
            data.seek(0)
            if tags := measure(data):
                return tags
    return 0


def _matroska_tag_bytes(data: BinaryIO) -> int:
    """Bytes of the Tags elements FFmpeg would parse in a Matroska/WebM file (0 for other files): those among
    the segment's elements before the first cluster, and those its SeekHeads point to."""
    if data.read(4) != _EBML.to_bytes(4, "big"):
        return 0
    header = _vint(data, False)
    if header is None or header < 0:
        return 0
    data.seek(header, os.SEEK_CUR)
    if _vint(data, True) != _SEGMENT or _vint(data, False) is None:
        return 0
    segment = data.tell()
    tags: dict[int, int] = {}  # position -> size
    pending = [segment]  # where to walk elements from: the segment start, then what SeekHeads point to
    seen: set[int] = set()
    while pending and len(seen) < 64:
        position = pending.pop()
        if position in seen:
            continue
        seen.add(position)
        data.seek(position)
        for _ in range(MAX_TAG_WALK):  # elements before the first cluster (FFmpeg reads those in its header)
            start = data.tell()
            element, size = _vint(data, True), _vint(data, False)
            if element is None or size is None or size < 0 or element == _CLUSTER:
                break
            body = data.tell()
            if element == _TAGS:
                tags[start] = size
            elif element == _SEEKHEAD:
                pending += [segment + offset for offset in _seek_positions(data.read(min(size, 1 << 20)))]
            if position != segment:
                break  # a SeekHead target: that one element only
            data.seek(body + size)
    return sum(tags.values())


def _avi_tag_bytes(data: BinaryIO) -> int:
    """Bytes of the INFO lists FFmpeg would parse in an AVI file (0 for other files). Its header pass reads the
    chunks of the first RIFF in order, descending into lists (hdrl, strl, ...) up to movi; its index pass then
    reads the chunks after movi: INFO lists in either place become metadata, each tag one more entry."""
    head = data.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return 0
    tags, position = 0, 12
    for _ in range(MAX_TAG_WALK):
        data.seek(position)
        chunk = data.read(12)
        if len(chunk) < 8:
            break
        size = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"LIST" and chunk[8:12] not in (b"movi", b"INFO"):
            position += 12  # a list of the header: its chunks come next
            continue
        if chunk[:4] == b"LIST" and chunk[8:12] == b"INFO":
            tags += size
        position += 8 + size + (size & 1)
    return tags


def _ogg_tag_bytes(data: BinaryIO) -> int:
    """Bytes of the comment headers FFmpeg would parse in an Ogg file (0 for other files): the second packet of
    every logical stream (Vorbis, Theora, Opus, VP8 and Speex comments). FFmpeg reassembles such a packet whole
    and then parses it in memory, where the time budget cannot stop it; measured here from the pages' lacing."""
    packets: dict[int, int] = {}  # serial -> packets completed so far
    tags = 0
    for _ in range(MAX_TAG_WALK):
        page = data.read(27)
        if len(page) < 27 or page[:4] != b"OggS" or tags > MAX_TAG_BYTES:
            break
        serial = int.from_bytes(page[14:18], "little")
        lacing = data.read(page[26])
        for value in lacing:
            done = packets.setdefault(serial, 0)
            if done == 1:
                tags += value
            if value < 255:  # a segment shorter than 255 bytes ends its packet
                packets[serial] = done + 1
        if all(done >= 2 for done in packets.values()):
            break  # every stream's comments are complete (FFmpeg's header pass ends about here)
        data.seek(sum(lacing), os.SEEK_CUR)
    return tags


def _seek_positions(body: bytes) -> list[int]:
    """Segment offsets of the Tags and SeekHead elements a SeekHead body lists."""
    stream, positions = io.BytesIO(body), []
    while True:
        element, size = _vint(stream, True), _vint(stream, False)
        if element is None or size is None or size < 0:
            return positions
        entry = stream.read(size)
        if element != _SEEK:
            continue
        fields, target, offset = io.BytesIO(entry), None, None
        while True:
            field, length = _vint(fields, True), _vint(fields, False)
            if field is None or length is None or length < 0:
                break
            value = fields.read(length)
            if field == _SEEK_ID:
                target = int.from_bytes(value, "big")
            elif field == _SEEK_POSITION:
                offset = int.from_bytes(value, "big")
        if target in (_TAGS, _SEEKHEAD) and offset is not None:
            positions.append(offset)


def _looks_like_playlist(file: Path) -> bool:
    with open(file, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(_PLAYLIST_MAGIC)


def _check_metadata(container: av.container.InputContainer) -> None:
    count = len(container.metadata) + sum(len(stream.metadata) for stream in container.streams)
    if count > MAX_TAGS:
        raise VideoDecodeError(f"too large: {count} metadata tags (more than {MAX_TAGS})")


def _reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.split(":")[0].strip().rstrip(".") or type(err).__name__


def _index(container: av.container.InputContainer, work: _Work) -> _Index:
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width and height:
        check_frame_size(width, height)
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
            if count % 1024 == 0:
                work.check_time()
            if count > MAX_FRAMES:
                raise VideoDecodeError(f"too large: more than {MAX_FRAMES} frames")
            if packet.pts is None:
                missing_pts = True
            else:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
            if rotation is None:
                rotation = _first_rotation(packet, work)
    except av.error.FFmpegError as err:
        work.check_time()
        if count == 0:
            raise VideoDecodeError(f"truncated or corrupt video ({_reason(err)})") from None
    work.check_time()  # the file reads as ended past the deadline: not a short file
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


def _indexed(path: str | Path, work: _Work) -> _Index:
    """Open ``path`` and run the index pass."""
    with _open(path, work) as container:
        return _index(container, work)


def _sampled(index: _Index, sampler: Sampler | None) -> tuple[np.ndarray, np.ndarray]:
    """(timeline indices, frame indices) ``sampler`` asks for; without one, every frame (the two the same)."""
    if sampler is None:
        grid = np.arange(index.info.num_frames)
        return grid, grid
    grid = np.asarray(sampler(index.info.timeline_frames), dtype=np.int64)
    return grid, index.grid_to_frame[grid]


def _nominal_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _first_rotation(packet: av.Packet, work: _Work) -> int | None:
    """Display rotation (CCW degrees, multiple of 90) of the first frame this packet yields, if any."""
    for frame in _decode(packet, work):
        return int(round(frame.rotation / 90.0)) * 90 % 360
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


def _decode(packet: av.Packet, work: _Work) -> list[av.VideoFrame]:
    """The frames one packet decodes to, each checked and counted; a corrupt packet gives none."""
    work.packet()
    try:
        frames = packet.decode()
    except av.error.ArgumentError:  # what the decoder's max_pixels check answers (and nothing else we see)
        raise VideoDecodeError("too large: a frame in the stream exceeds the 8K limit") from None
    except av.error.FFmpegError:
        return []
    for frame in frames:
        work.frame(frame)
    return frames


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            work: _Work) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order; corrupt packets are skipped, a truncated tail ends the stream."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.error.FFmpegError):
            work.check_time()  # the file reads as ended past the deadline: not a cut-off tail
            return
        yield from _decode(packet, work)


def _decode_wanted(path: str | Path, index: _Index, wanted: np.ndarray, size: tuple[int, int],
                   work: _Work) -> dict[int, np.ndarray]:
    """Decode the frames in ``wanted`` (sorted unique frame indices) as RGB arrays of coded ``size``.

    Also keeps the last frame that decoded, so a cut-off tail falls back to it rather than to an earlier one.
    """
    out: dict[int, np.ndarray] = {}
    wanted_set = set(wanted.tolist())
    seekable = index.pts is not None
    opened = _open(path, work)
    container = opened.container
    try:
        frames = _frames(container, container.streams.video[0], work)
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
                    frames = _frames(container, container.streams.video[0], work)
                    first = next(frames, None)
                    if first is not None and _frame_index(first, index, position) > target:
                        # The seek landed past the target (bad index): start again from the top, never seeking.
                        seekable = False
                        opened.close()
                        opened = _open(path, work)
                        container = opened.container
                        frames, position = _frames(container, container.streams.video[0], work), -1
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
        opened.close()
    return out


def _length_budget(base: DecodeBudget, num_frames: int) -> DecodeBudget:
    """``base`` scaled to decoding all ``num_frames`` frames: its frame and byte limits raised to the frames
    counted, its time limit by the same factor (a file decoding slower than ``base``'s rate still stops)."""
    scale = max(1.0, (num_frames + 16) / base.frames)
    return DecodeBudget(seconds=base.seconds * scale, frames=max(base.frames, num_frames + 16),
                        bytes=max(base.bytes, int(base.bytes * scale)))


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


# --------------------------------------------------------------------------- streaming (long videos)


class FrameStream:
    """A video indexed once, whose frames are then decoded in one forward pass, a few at a time.

    For long videos (``timeline``): memory holds only the frames the caller keeps, never the whole video.
    The same opening, indexing, per-frame checks and conversion as ``read_video``. The index pass runs under
    ``budget``; the decode pass under the same budget scaled to the video's length (its frame and byte limits
    raised to the frames counted, its time limit by the same factor), so an hour-long file can be streamed
    while a file that decodes slower than the budget's rate still stops with "too slow".
    """

    def __init__(self, path: str | Path, *, short_side: int | None = None, budget: DecodeBudget | None = None) -> None:
        self.path = path
        base = budget or DecodeBudget.from_env()
        self._index = _indexed(path, _Work(base))
        self.info = info = self._index.info
        self._size = _coded_size(info, *_output_size(info, short_side))
        self._budget = _length_budget(base, info.num_frames)

    def frames(self, timeline_indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``(timeline index, uint8 (H, W, 3) frame)`` for each of the sorted unique ``timeline_indices``,
        in order. A frame that fails to decode is replaced by the one before it (a cut-off tail by the last)."""
        grid = np.unique(np.asarray(timeline_indices, dtype=np.int64))
        wanted = self._index.grid_to_frame[grid]
        k, position, previous = 0, -1, None  # previous: (index, frame) of the frame before the current one
        converted: tuple[int, np.ndarray] | None = None

        def rgb(entry: tuple[int, av.VideoFrame]) -> np.ndarray:
            nonlocal converted
            if converted is None or converted[0] != entry[0]:
                converted = (entry[0], _display(_to_rgb(entry[1], self._size), self.info.rotation))
            return converted[1]

        work = _Work(self._budget)
        with _open(self.path, work) as container:
            for frame in _frames(container, container.streams.video[0], work):
                position = _frame_index(frame, self._index, position)
                while k < len(grid) and wanted[k] <= position:
                    use = (position, frame) if wanted[k] == position or previous is None else previous
                    yield int(grid[k]), rgb(use)
                    k += 1
                if k == len(grid):
                    return
                previous = (position, frame)
        if previous is None:
            raise VideoDecodeError("no decodable frames (corrupt data or unsupported codec)")
        for index in grid[k:]:
            yield int(index), rgb(previous)


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
