"""A small corpus of real video files written with PyAV, plus broken inputs, for decode/predict/app tests.

``build_corpus(folder)`` writes every file once and returns ``{name: path}``; ``GOOD`` says what each good
file must decode to and ``BROKEN`` which one-line reason each broken file must give. Every frame of a good
file shows its own index (two grey levels, see ``frame_pattern``) and a red marker in its top-left corner,
so tests can check which frames were decoded and in which orientation.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from posmlp_video.data.encode import write_video


@dataclass(frozen=True)
class Good:
    """A file that must decode: displayed size, frame count, and how it is written."""

    filename: str
    width: int  # as displayed
    height: int
    num_frames: int
    fps: float = 10.0
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)
    timestamps: tuple[float, ...] | None = None
    rotation: int = 0  # display rotation written as metadata (CCW degrees)


# Variable frame rate: ten frames 0.1 s apart, then five frames held 0.4 s each.
VFR_TIMES = tuple([i / 10 for i in range(10)] + [1.0 + 0.4 * i for i in range(5)])
X264_QUIET = {"preset": "ultrafast", "crf": "18"}

GOOD: dict[str, Good] = {
    "h264_mp4": Good("h264.mp4", 320, 240, 45, fps=30, options=X264_QUIET),
    "vp9_webm": Good("vp9.webm", 160, 120, 24, fps=24, codec="libvpx-vp9",
                     options={"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}),
    "mjpeg_avi": Good("mjpeg.avi", 160, 120, 20, codec="mjpeg", pix_fmt="yuvj420p", options={"q": "2"}),
    "mpeg4_mp4": Good("mpeg4.mp4", 176, 144, 25, codec="mpeg4", options={"q": "2"}),
    "gif": Good("animated.gif", 96, 64, 10, codec="gif", pix_fmt="pal8"),
    "one_frame_mp4": Good("one_frame.mp4", 64, 48, 1, options=X264_QUIET),
    "three_frames_mp4": Good("three_frames.mp4", 64, 48, 3, options=X264_QUIET),
    # Coded landscape 320x176, displayed portrait: rotation 270 CCW (= 90 clockwise, what phones write).
    "rotated_portrait_mp4": Good("rotated_portrait.mp4", 176, 320, 12, options=X264_QUIET, rotation=270),
    "odd_size_mp4": Good("odd_size.mp4", 173, 97, 8, pix_fmt="yuv444p", options=X264_QUIET),
    "hd1080_mp4": Good("hd1080.mp4", 1920, 1080, 3, options=X264_QUIET),
    # 90 s at 5 fps with a keyframe every 2 s, so sparse sampling exercises seeking.
    "long_90s_mp4": Good("long_90s.mp4", 64, 48, 450, fps=5, options={**X264_QUIET, "g": "10"}),
    "vfr_mp4": Good("vfr.mp4", 96, 64, len(VFR_TIMES), options=X264_QUIET, timestamps=VFR_TIMES),
    "hevc_mp4": Good("hevc.mp4", 160, 120, 12, codec="libx265",
                     options={"preset": "ultrafast", "x265-params": "log-level=none"}),
    "still_png": Good("still.png", 80, 60, 1, codec="png"),
    "still_jpg": Good("still.jpg", 80, 60, 1, codec="jpeg"),
}

# name -> (filename, words the one-line error must contain)
BROKEN: dict[str, tuple[str, str]] = {
    "empty": ("empty.mp4", "empty file"),
    "random_bytes": ("random.mp4", "not a video"),
    "text_as_mp4": ("notes.mp4", "not a video"),
    "truncated_mp4": ("truncated.mp4", "truncated"),
    "audio_only": ("audio_only.m4a", "no video stream"),
}


def frame_pattern(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index``: left half grey ``16 + 8 * (index // 25)``, right half ``16 + 8 * (index % 25)``,
    and a red square marker in the top-left corner (a quarter of the short side)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2] = 16 + 8 * (index // 25)
    image[:, width // 2:] = 16 + 8 * (index % 25)
    marker = max(2, min(width, height) // 4)
    image[:marker, :marker] = (230, 20, 20)
    return image


def read_index(image: np.ndarray) -> int:
    """Invert ``frame_pattern`` on a decoded (lossy) displayed frame in its upright orientation."""
    h, w = image.shape[:2]
    rows = slice(h // 2, h - max(1, h // 8))
    high = image[rows, w // 8: w // 2 - max(1, w // 16)].mean()
    low = image[rows, w // 2 + max(1, w // 16): w - w // 8].mean()
    return int(round((high - 16) / 8)) * 25 + int(round((low - 16) / 8))


def marker_corner(image: np.ndarray) -> str:
    """Which corner of a displayed frame holds the red marker: 'top-left', 'top-right', ... ."""
    h, w = image.shape[:2]
    redness = image[..., 0].astype(int) - image[..., 1].astype(int)
    corners = {
        "top-left": redness[: h // 4, : w // 4], "top-right": redness[: h // 4, -(w // 4):],
        "bottom-left": redness[-(h // 4):, : w // 4], "bottom-right": redness[-(h // 4):, -(w // 4):],
    }
    return max(corners, key=lambda name: corners[name].mean())


def build_corpus(folder: str | Path) -> dict[str, Path]:
    """Write every GOOD and BROKEN file into ``folder``; returns ``{name: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: _write_good(folder / spec.filename, spec) for name, spec in GOOD.items()}
    paths.update(_write_broken(folder, paths["h264_mp4"]))
    return paths


def _write_good(path: Path, spec: Good) -> Path:
    coded_w, coded_h = (spec.height, spec.width) if spec.rotation % 180 else (spec.width, spec.height)
    frames = np.stack([_coded_pattern(i, spec, coded_w, coded_h) for i in range(spec.num_frames)])
    if spec.codec in ("png", "jpeg"):
        cv2.imwrite(str(path), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
        return path
    return write_video(path, frames, spec.fps, codec=spec.codec, pix_fmt=spec.pix_fmt, codec_options=spec.options,
                       timestamps=spec.timestamps, rotation=spec.rotation)


def _coded_pattern(index: int, spec: Good, coded_w: int, coded_h: int) -> np.ndarray:
    """The stored picture: the upright pattern rotated so that applying the display rotation restores it."""
    upright = frame_pattern(index, spec.width, spec.height)
    return np.ascontiguousarray(np.rot90(upright, k=-(spec.rotation // 90))) if spec.rotation else upright


def _write_broken(folder: Path, good_mp4: Path) -> dict[str, Path]:
    paths = {name: folder / filename for name, (filename, _) in BROKEN.items()}
    paths["empty"].write_bytes(b"")
    paths["random_bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, np.uint8).tobytes())
    paths["text_as_mp4"].write_text("These are meeting notes, not a video.\n" * 20)
    data = good_mp4.read_bytes()
    paths["truncated_mp4"].write_bytes(data[: len(data) // 2])
    with av.open(str(paths["audio_only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (0.2 * np.sin(np.linspace(0, 2 * np.pi * 440, 16000))).astype(np.float32)[None, :]
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate = 16000
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    return paths


# --------------------------------------------------------------------------- hostile inputs (issue 15)

# name -> filename of the small hostile files ``build_hostile`` writes; what each must give is tested in
# tests/test_data_decode.py (some with lowered limits, so they stay small and fast).
HOSTILE: dict[str, str] = {
    "wide_png": "wide.png",  # 2,000,000 x 1 PNG, 6 KB: resized to the short side it would be ~6 GB a frame
    "wide_jpg": "wide.jpg",  # 65500 x 1 JPEG, 17 KB
    "hls_absolute": "absolute.m3u8",  # HLS playlists naming another video by absolute path / file:// URL
    "hls_url": "url.m3u8",
    "concat_list": "list.ffconcat",  # FFmpeg concat list naming another video
    "image_pattern": "seq%d.png",  # a valid PNG whose name is also an image-sequence pattern (seq1.png ...)
    "many_frames_gif": "many_frames.gif",  # 1024 x 1024 canvas, 3000 one-pixel frames, 45 KB
    "many_tags_mkv": "many_tags.mkv",  # 1500 container metadata tags
    "many_tags_avi": "many_tags.avi",  # an INFO list of 1500 distinct tags, 15 KB
    "many_tags_ogg": "many_tags.ogg",  # VP8 in Ogg, 1500 comments in its comment header
    "no_keyframes_mp4": "no_keyframes.mp4",  # H.264 whose only keyframe was dropped
    "size_switch_avi": "size_switch.avi",  # MJPEG declared 64 x 64, switching to 1024 x 32 frames mid-file
    "target_mp4": "target.mp4",  # a valid video that the playlists/lists/patterns point at
    "pattern_target_png": "seq1.png",
}

# The decode budget the app and CLI tests run the hostile corpus under (environment variables, read at each
# call), and the words each file's one-line error must contain under it. (image_pattern and the targets are
# valid files.)
LOWERED_BUDGET = {"POSMLP_DECODE_FRAMES": "100", "POSMLP_DECODE_BYTES": str(64 << 20)}
HOSTILE_REASONS = {
    "wide_png": "unusable aspect ratio", "wide_jpg": "unusable aspect ratio",
    "hls_absolute": "playlist/indirection", "hls_url": "playlist/indirection", "concat_list": "playlist/indirection",
    "many_frames_gif": "more than 64 MiB of decoded frames", "many_tags_mkv": "metadata tags",
    "many_tags_avi": "metadata tags", "many_tags_ogg": "metadata tags",
    "no_keyframes_mp4": "more than 100 frames to decode", "size_switch_avi": "unusable aspect ratio",
}


def build_hostile(folder: str | Path) -> dict[str, Path]:
    """Write every HOSTILE file into ``folder`` (about a second); returns ``{name: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / filename for name, filename in HOSTILE.items()}
    write_video(paths["target_mp4"], np.stack([frame_pattern(i, 64, 48) for i in range(10)]), 10,
                codec="libx264", pix_fmt="yuv420p", codec_options=X264_QUIET)
    target = paths["target_mp4"].resolve()
    _write_png(paths["wide_png"], np.full((1, 2_000_000, 3), 128, np.uint8))
    cv2.imwrite(str(paths["wide_jpg"]), np.full((1, 65500, 3), 128, np.uint8))
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{}\n#EXT-X-ENDLIST\n"
    paths["hls_absolute"].write_text(playlist.format(target))
    paths["hls_url"].write_text(playlist.format(f"file://{target}"))
    paths["concat_list"].write_text(f"ffconcat version 1.0\nfile {target.name}\n")
    _write_png(paths["image_pattern"], frame_pattern(0, 80, 60))
    _write_png(paths["pattern_target_png"], frame_pattern(7, 32, 16))
    paths["many_frames_gif"].write_bytes(_one_pixel_gif(1024, 1024, 3000))
    _write_tagged_mkv(paths["many_tags_mkv"], 1500)
    write_tagged_avi(paths["many_tags_avi"], 1500)
    write_tagged_ogg(paths["many_tags_ogg"], 1500)
    _write_without_keyframes(paths["no_keyframes_mp4"], 200)
    _write_size_switch(paths["size_switch_avi"])
    return paths


def _write_png(path: Path, image: np.ndarray) -> None:
    """An RGB PNG written by hand (OpenCV refuses images wider than 2^20 pixels)."""
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in image)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def _one_pixel_gif(width: int, height: int, num_frames: int) -> bytes:
    """A GIF on a ``width x height`` canvas whose frames each draw one pixel (what the GIF encoder cannot make)."""
    out = [b"GIF89a", struct.pack("<HHBBB", width, height, 0x80, 0, 0), b"\x00\x00\x00\xff\xff\xff"]
    for i in range(num_frames):
        x, y = i % width, (i // width) % height
        # graphic control (1/100 s), a 1 x 1 image at (x, y), LZW (min code size 2): clear, index 1, end
        out += [b"\x21\xf9\x04\x00\x01\x00\x00\x00", b"\x2c" + struct.pack("<HHHHB", x, y, 1, 1, 0),
                b"\x02\x02\x4c\x01\x00"]
    return b"".join(out + [b"\x3b"])


def _write_tagged_mkv(path: Path, num_tags: int) -> None:
    with av.open(str(path), "w") as container:
        container.metadata.update({f"tag{i}": "x" for i in range(num_tags)})
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, 32, 32), format="rgb24").reformat(format="yuvj420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_tagged_avi(path: Path, num_tags: int) -> Path:
    """MJPEG in AVI (3 frames of 32 x 32) with an INFO list of ``num_tags`` distinct four-letter tags before
    its movi list: each 10 bytes, and each one more metadata entry for FFmpeg (whose muxer would write only
    the few dozen INFO tags it knows)."""
    write_video(path, np.stack([frame_pattern(i, 32, 32) for i in range(3)]), 10, codec="mjpeg",
                pix_fmt="yuvj420p", codec_options={"q": "2"})
    data = path.read_bytes()
    movi = data.index(b"movi") - 8  # the movi list's header; the index after it counts from movi, so stays valid
    assert data[movi:movi + 4] == b"LIST"
    keys = ("".join(chr(65 + i // 26 ** k % 26) for k in range(4)).encode() for i in range(num_tags))
    body = b"INFO" + b"".join(key + struct.pack("<I", 2) + b"x\0" for key in keys)
    info = b"LIST" + struct.pack("<I", len(body)) + body
    riff = struct.pack("<I", struct.unpack("<I", data[4:8])[0] + len(info))
    path.write_bytes(data[:4] + riff + data[8:movi] + info + data[movi:])
    return path


def write_tagged_ogg(path: Path, num_tags: int) -> Path:
    """VP8 in Ogg (3 frames of 32 x 32) whose comment header holds ``num_tags`` distinct comments."""
    with av.open(str(path), "w", format="ogg") as container:
        container.metadata.update({f"tag{i}": "x" for i in range(num_tags)})
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_pattern(i, 32, 32), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _write_without_keyframes(path: Path, num_frames: int) -> None:
    """H.264 in MP4 with the first (only) keyframe left out: a decoder gets nothing out of any packet."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={**X264_QUIET, "x264-params": "keyint=100000:scenecut=0"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        packets = []
        for _ in range(num_frames):
            image = rng.integers(0, 256, (64, 64, 3), np.uint8)
            packets += stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
        packets += stream.encode(None)
        assert packets[0].is_keyframe and not any(p.is_keyframe for p in packets[1:])
        for packet in packets[1:]:
            container.mux(packet)


def _write_size_switch(path: Path) -> None:
    """MJPEG in AVI: the header says 64 x 64 (4 frames), then come 3 frames of 1024 x 32."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuvj420p"
        pts = 0
        for width, height, count in ((64, 64, 4), (1024, 32, 3)):
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, 10)
            for _ in range(count):
                frame = av.VideoFrame.from_ndarray(frame_pattern(pts, width, height), format="rgb24")
                frame = frame.reformat(format="yuvj420p")
                frame.pts = pts
                pts += 1
                for packet in encoder.encode(frame):
                    packet.stream = stream
                    container.mux(packet)
