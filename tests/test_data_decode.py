"""Decoding real files written with PyAV: frame counts, sampling, orientation, limits and failures."""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from video_corpus import BROKEN, GOOD, VFR_TIMES, frame_pattern, marker_corner, read_index, write_tagged_avi

from posmlp_video.data import decode
from posmlp_video.data.decode import (
    DecodeBudget,
    VideoDecodeError,
    frames_between,
    probe_video,
    read_frame_folder,
    read_video,
)
from posmlp_video.data.encode import write_mp4
from posmlp_video.data.sampling import ClipSampler
from posmlp_video.data.transforms import preprocess, resize_to_cover


def _indices_of(frames: np.ndarray) -> list[int]:
    return [read_index(frame) for frame in frames.reshape(-1, *frames.shape[-3:])]


@pytest.mark.parametrize("name", list(GOOD))
def test_good_file_decodes_every_frame_upright(video_corpus, name):
    spec = GOOD[name]
    clip = read_video(video_corpus[name])
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (spec.num_frames, spec.height, spec.width, 3)
    assert clip.info.num_frames == spec.num_frames
    assert _indices_of(clip.frames) == list(range(spec.num_frames))
    assert marker_corner(clip.frames[0]) == "top-left"


def test_rotation_metadata_is_applied(video_corpus):
    info = probe_video(video_corpus["rotated_portrait_mp4"])
    assert (info.width, info.height, info.rotation) == (176, 320, 270)  # stored as 320x176 landscape


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_file_gives_one_line_reason(video_corpus, name):
    with pytest.raises(VideoDecodeError) as caught:
        read_video(video_corpus[name], ClipSampler(8))
    message = str(caught.value)
    assert BROKEN[name][1] in message
    assert "\n" not in message and len(message) < 200


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoDecodeError, match="is a folder"):
        read_video(tmp_path)


def test_segment_sampling_of_long_clip_seeks_to_the_right_frames(video_corpus):
    # 450 frames, 8 segments of 56.25 frames, centres floor((i + 0.5) * 56.25).
    clip = read_video(video_corpus["long_90s_mp4"], ClipSampler(8), short_side=32)
    expected = [28, 84, 140, 196, 253, 309, 365, 421]
    assert clip.indices.tolist() == [expected]
    assert _indices_of(clip.frames) == expected
    assert clip.frames.shape == (1, 8, 32, 43, 3)


def test_dense_multi_clip_sampling_spans_the_long_clip(video_corpus):
    # span (8 - 1) * 4 + 1 = 29; starts spread over 0..421 -> 0, 210 (round 210.5 to even), 421.
    clip = read_video(video_corpus["long_90s_mp4"], ClipSampler(8, "dense", rate=4, num_clips=3))
    expected = [[s + 4 * k for k in range(8)] for s in (0, 210, 421)]
    assert clip.indices.tolist() == expected
    assert _indices_of(clip.frames) == sum(expected, [])


def test_variable_frame_rate_is_sampled_evenly_in_time(video_corpus):
    # Frames at 0.0..0.9 s every 0.1 s, then 1.0, 1.4, 1.8, 2.2, 2.6 s. Timeline step 0.1 s -> 27 slots.
    # Segment centres of 3 segments: slots 4, 13, 22 = 0.4 s, 1.3 s, 2.2 s -> frames 4, 10 (shown 1.0-1.4 s), 13.
    info = probe_video(video_corpus["vfr_mp4"])
    assert (info.num_frames, info.timeline_frames) == (len(VFR_TIMES), 27)
    assert info.fps == pytest.approx(10.0)
    clip = read_video(video_corpus["vfr_mp4"], ClipSampler(3))
    assert _indices_of(clip.frames) == [4, 10, 13]


@pytest.mark.parametrize("name", ["one_frame_mp4", "three_frames_mp4", "still_png", "gif"])
def test_short_clips_are_looped_or_held_not_refused(video_corpus, name):
    clip = read_video(video_corpus[name], ClipSampler(8))
    n = GOOD[name].num_frames
    assert clip.frames.shape[:2] == (1, 8)
    assert _indices_of(clip.frames) == [(i * 2 + 1) * n // 16 for i in range(8)]


def test_downscale_keeps_aspect_and_never_upscales(video_corpus):
    assert read_video(video_corpus["hd1080_mp4"], ClipSampler(2), short_side=90).frames.shape == (1, 2, 90, 160, 3)
    assert read_video(video_corpus["one_frame_mp4"], ClipSampler(1), short_side=480).frames.shape[2:4] == (48, 64)
    rotated = read_video(video_corpus["rotated_portrait_mp4"], ClipSampler(2), short_side=88).frames
    assert rotated.shape == (1, 2, 160, 88, 3)
    assert marker_corner(rotated[0, 0]) == "top-left"


def test_truncated_faststart_file_decodes_what_is_there(tmp_path):
    frames = np.stack([frame_pattern(i, 64, 48) for i in range(40)])
    frames[:, 12:24] = np.random.default_rng(0).integers(0, 256, (40, 12, 64, 3))  # bulk up the media data
    data = write_mp4(tmp_path / "full.mp4", frames, fps=10).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    clip = read_video(cut)
    assert 0 < len(clip.frames) < 40
    assert _indices_of(clip.frames) == clip.indices.tolist()
    assert clip.indices[:10].tolist() == list(range(10))
    decoded = np.array(clip.indices)
    sampled = read_video(cut, ClipSampler(8))  # the timeline still counts the frames the index promised
    wanted = sampled.indices[0]
    expected = [int(decoded[np.abs(decoded - w).argmin()]) for w in wanted]
    assert _indices_of(sampled.frames) == expected


def test_limits_refuse_too_large(video_corpus, monkeypatch):
    monkeypatch.setattr(decode, "MAX_FRAMES", 100)
    with pytest.raises(VideoDecodeError, match="too large"):
        read_video(video_corpus["long_90s_mp4"], ClipSampler(8))
    monkeypatch.setattr(decode, "MAX_PIXELS", 1280 * 720)
    with pytest.raises(VideoDecodeError, match="too large"):
        probe_video(video_corpus["hd1080_mp4"])
    monkeypatch.setattr(decode, "MAX_OUTPUT_BYTES", 1 << 20)
    with pytest.raises(VideoDecodeError, match="too large"):
        read_video(video_corpus["h264_mp4"])  # 45 frames of 320x240 RGB is 10 MiB


def test_write_mp4_is_browser_playable_h264(tmp_path):
    frames = np.stack([frame_pattern(i, 33, 21) for i in range(5)])  # odd size
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=5)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    info = probe_video(path)
    assert (info.codec, info.width, info.height, info.num_frames) == ("h264", 34, 22, 5)
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    decoded = read_video(path).frames
    assert _indices_of(decoded[:, :21, :33]) == list(range(5))


def test_frame_folder_reads_sampled_jpegs(tmp_path):
    import cv2

    for i in range(12):
        cv2.imwrite(str(tmp_path / f"{i + 1:05d}.jpg"), cv2.cvtColor(frame_pattern(i, 80, 60), cv2.COLOR_RGB2BGR))
    frames = read_frame_folder(tmp_path, 12, ClipSampler(4), short_side=30)
    assert frames.shape == (1, 4, 30, 40, 3)
    assert _indices_of(frames) == [1, 4, 7, 10]  # floor((i + 0.5) * 3)
    with pytest.raises(VideoDecodeError, match="00013.jpg"):
        read_frame_folder(tmp_path, 13, ClipSampler(13))


def _count_stats(monkeypatch, path) -> list[str]:
    """Record each ``os.stat`` (what Path.exists/is_dir/is_file/stat all call) of ``path`` or a file inside it."""
    stat, seen = os.stat, []

    def counting(target, *args, **kwargs):
        if os.fspath(target).startswith(os.fspath(path)):
            seen.append(os.fspath(target))
        return stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    return seen


def test_a_video_is_checked_with_one_stat_per_open(video_corpus, monkeypatch):
    stats = _count_stats(monkeypatch, video_corpus["still_jpg"])
    assert probe_video(video_corpus["still_jpg"]).num_frames == 1 and len(stats) == 1  # one open, one stat
    assert read_video(video_corpus["still_jpg"]).frames.shape == (1, 60, 80, 3) and len(stats) == 3  # two opens


def test_frame_images_are_opened_as_still_images_with_their_limits(tmp_path, hostile_corpus, monkeypatch):
    """One stat per image and no container-tag measuring (no image format has such tags); an image's bounds (8K,
    aspect ratio, the shared budget) and the one-line reasons still apply, and a video is no frame image."""
    import cv2

    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i + 1:05d}.png"), cv2.cvtColor(frame_pattern(i, 80, 60), cv2.COLOR_RGB2BGR))
    stats, measured = _count_stats(monkeypatch, tmp_path), []
    monkeypatch.setattr(decode, "_tag_bytes", lambda file: measured.append(file) or 0)
    frames = read_frame_folder(tmp_path, 6, lambda n: np.array([0, 2, 5, 2]), template="{:05d}.png")
    assert _indices_of(frames) == [0, 2, 5, 2] and not measured
    assert sorted(Path(s).name for s in stats if s != str(tmp_path)) == ["00001.png", "00003.png", "00006.png"]
    with pytest.raises(VideoDecodeError, match=r"^unreadable frame image 00003.png in .*: too large: more than 2 frames"):
        read_frame_folder(tmp_path, 6, lambda n: np.arange(3), template="{:05d}.png",
                          budget=DecodeBudget(frames=2))  # one budget for the folder; one packet per image
    for name, reason in [("wide_png", "unusable aspect ratio: 2000000x1"), ("many_tags_mkv", "not an image file"),
                         ("target_mp4", "not an image file")]:
        shutil.copy(hostile_corpus[name], tmp_path / "00001.png")
        with pytest.raises(VideoDecodeError, match=f"^unreadable frame image 00001.png in {tmp_path}: {reason}"):
            read_frame_folder(tmp_path, 6, lambda n: np.array([0]), template="{:05d}.png")
    (tmp_path / "00001.png").write_bytes(b"")
    with pytest.raises(VideoDecodeError, match=r"^unreadable frame image 00001.png in .*: empty file \(0 bytes\)$"):
        read_frame_folder(tmp_path, 6, lambda n: np.array([0]), template="{:05d}.png")
    with pytest.raises(VideoDecodeError, match=f"^missing frame image 00007.png in {tmp_path}$"):
        read_frame_folder(tmp_path, 7, lambda n: np.array([6]), template="{:05d}.png")


@pytest.mark.parametrize("name", [name for name in GOOD if name != "vfr_mp4"])
def test_sparse_picks_jump_to_the_right_frames(video_corpus, name):
    """Far-apart frames are reached by seeking to keyframes (every frame in MJPEG, every 10 in the long clip)."""
    last = GOOD[name].num_frames - 1
    for pick in ([last], [last // 3, last], [0, last // 2, last]):
        clip = read_video(video_corpus[name], lambda n, pick=pick: np.array([pick]))
        assert _indices_of(clip.frames) == pick


def test_frames_between_reads_each_frame_in_it_and_stops_at_the_end(video_corpus):
    path = video_corpus["long_90s_mp4"]  # 450 frames
    assert _indices_of(read_video(path, frames_between(100, 105)).frames) == list(range(100, 105))
    assert _indices_of(read_video(path, frames_between(445, 460)).frames) == list(range(445, 450))
    with pytest.raises(VideoDecodeError, match="no frames in 450-460: the video has 450"):
        read_video(path, frames_between(450, 460))


# --------------------------------------------------------------------------- hostile inputs (issue 15)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", ["wide_png", "wide_jpg"])
def test_absurd_aspect_ratio_is_refused_at_once_with_memory_bounded(hostile_corpus, name):
    """A 2,000,000 x 1 PNG (6 KB) / 65500 x 1 JPEG (17 KB): resized to the short side they were gigabytes."""
    before, start = _peak_rss_mib(), time.perf_counter()
    with pytest.raises(VideoDecodeError, match=r"^unusable aspect ratio: (2000000x1|65500x1) frames are more than 16:1$"):
        read_video(hostile_corpus[name], ClipSampler(8), short_side=256)
    assert time.perf_counter() - start < 2.0
    assert _peak_rss_mib() - before < 100


def test_every_resize_output_is_bounded(monkeypatch):
    """Arrays bypass the decoder: the resize itself refuses an output beyond the aspect or pixel limits."""
    with pytest.raises(VideoDecodeError, match="^unusable aspect ratio: 17x1 frames are more than 16:1$"):
        resize_to_cover(np.zeros((1, 1, 17, 3), np.uint8), 1)
    with pytest.raises(VideoDecodeError, match="aspect ratio"):
        preprocess(np.zeros((1, 1, 4000, 3), np.uint8), {"input_size": [8, 8], "resize_short": 8,
                                                         "mean": [0.5] * 3, "std": [0.5] * 3})
    monkeypatch.setattr(decode, "MAX_PIXELS", 100 * 100)
    with pytest.raises(VideoDecodeError, match="too large: 128x128 frames exceed"):
        resize_to_cover(np.zeros((1, 8, 8, 3), np.uint8), 128)  # upscaling a legal frame past the limit
    assert resize_to_cover(np.zeros((1, 8, 8, 3), np.uint8), 96).shape == (1, 96, 96, 3)


@pytest.mark.parametrize("name", ["hls_absolute", "hls_url", "concat_list"])
def test_playlists_and_lists_are_refused_without_opening_what_they_name(hostile_corpus, name):
    # Control: FFmpeg on its own follows the reference and decodes the other (valid) video.
    with av.open(str(hostile_corpus[name])) as container:
        assert container.format.name in ("hls", "concat")
        assert next(container.decode(video=0)).width == 64
    for call in (probe_video, read_video):
        with pytest.raises(VideoDecodeError) as caught:
            call(hostile_corpus[name])
        assert str(caught.value) == "not a video file (playlist/indirection formats are not accepted)"


def test_a_file_name_is_never_expanded_into_other_files(hostile_corpus):
    """``seq%d.png`` is read as the PNG it is (80 x 60), not as the image sequence seq1.png ... (32 x 16)."""
    with av.open(str(hostile_corpus["image_pattern"])) as container:  # control: FFmpeg reads seq1.png
        assert (container.format.name, container.streams.video[0].codec_context.width) == ("image2", 32)
    clip = read_video(hostile_corpus["image_pattern"], ClipSampler(2))
    assert clip.frames.shape == (1, 2, 60, 80, 3) and _indices_of(clip.frames) == [0, 0]


def test_only_self_contained_formats_are_opened(video_corpus, monkeypatch):
    """A format outside ``ACCEPTED_FORMATS`` is refused before its header is read."""
    assert read_video(video_corpus["vp9_webm"], ClipSampler(1)).frames.shape[1] == 1
    monkeypatch.setattr(decode, "ACCEPTED_FORMATS", tuple(f for f in decode.ACCEPTED_FORMATS if f not in ("matroska", "webm")))
    with pytest.raises(VideoDecodeError, match="playlist/indirection formats are not accepted"):
        read_video(video_corpus["vp9_webm"], ClipSampler(1))


def test_frame_budget_stops_a_stream_without_keyframes(hostile_corpus, monkeypatch):
    """200 packets the decoder can make nothing of: without a budget every one is decoded, twice."""
    start = time.perf_counter()
    with pytest.raises(VideoDecodeError, match=r"^too large: more than 50 frames to decode \(POSMLP_DECODE_FRAMES\)$"):
        read_video(hostile_corpus["no_keyframes_mp4"], ClipSampler(8), budget=DecodeBudget(frames=50))
    assert time.perf_counter() - start < 2.0
    monkeypatch.setenv("POSMLP_DECODE_FRAMES", "40")  # the default budget reads the environment
    with pytest.raises(VideoDecodeError, match="more than 40 frames"):
        probe_video(hostile_corpus["no_keyframes_mp4"])


def test_byte_budget_stops_a_gif_of_one_pixel_frames_on_a_large_canvas(hostile_corpus):
    """3000 one-pixel frames (45 KB) on a 1024 x 1024 canvas: each decodes to 3 MiB, 9 GiB in all."""
    start = time.perf_counter()
    with pytest.raises(VideoDecodeError, match=r"^too large: more than 64 MiB of decoded frames \(POSMLP_DECODE_BYTES\)$"):
        read_video(hostile_corpus["many_frames_gif"], ClipSampler(8), short_side=64,
                   budget=DecodeBudget(bytes=64 << 20))
    assert time.perf_counter() - start < 2.0


def test_time_budget(hostile_corpus, video_corpus, monkeypatch):
    clock = iter(itertools.count(0.0, 1.0))  # every look at the clock: one more second
    monkeypatch.setattr(decode.time, "monotonic", lambda: next(clock))
    with pytest.raises(VideoDecodeError, match=r"^too slow: decoding took more than 5 s \(POSMLP_DECODE_SECONDS\)$"):
        read_video(video_corpus["long_90s_mp4"], ClipSampler(8), budget=DecodeBudget(seconds=5))
    monkeypatch.setenv("POSMLP_DECODE_SECONDS", "nan")
    with pytest.raises(VideoDecodeError, match="^POSMLP_DECODE_SECONDS must be a positive number, got 'nan'$"):
        read_video(video_corpus["h264_mp4"])


def test_metadata_flood_is_refused(hostile_corpus, video_corpus, monkeypatch):
    with pytest.raises(VideoDecodeError, match=r"^too large: 1502 metadata tags \(more than 1000\)$"):
        probe_video(hostile_corpus["many_tags_mkv"])
    assert probe_video(video_corpus["vp9_webm"]).num_frames == 24  # Matroska with its usual few tags


def test_matroska_tags_are_measured_before_ffmpeg_parses_them(hostile_corpus, monkeypatch):
    """FFmpeg's Matroska tag parse is quadratic in the count (20,000 tags: 6-50 s here): refused unread.
    Counted from the element sizes (before the first cluster, and wherever a SeekHead points)."""
    monkeypatch.setattr(decode, "MAX_TAG_BYTES", 16 << 10)  # the file holds 24 KB of tags

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("FFmpeg opened the file")

    monkeypatch.setattr(decode.av, "open", no_ffmpeg)
    with pytest.raises(VideoDecodeError, match=r"^too large: 23 KiB of metadata tags \(more than 16 KiB\)$"):
        read_video(hostile_corpus["many_tags_mkv"])


@pytest.mark.parametrize("name", ["many_tags_avi", "many_tags_ogg"])
def test_avi_and_ogg_tags_are_measured_before_ffmpeg_parses_them(hostile_corpus, monkeypatch, name):
    """1500 distinct tags (an AVI INFO list, Ogg comments): parsed, and then refused by their count; or refused
    unread by their size. FFmpeg's parse is quadratic in the count (here 10,000 tags: AVI 3.5 s, Ogg 5.9 s;
    Ogg's runs on a packet already in memory, which no time budget can stop)."""
    with pytest.raises(VideoDecodeError, match=r"^too large: 15\d\d metadata tags \(more than 1000\)$"):
        probe_video(hostile_corpus[name])
    monkeypatch.setattr(decode, "MAX_TAGS", 2000)  # control: the crafted file is a valid video
    clip = read_video(hostile_corpus[name])
    assert clip.frames.shape == (3, 32, 32, 3) and _indices_of(clip.frames) == [0, 1, 2]

    monkeypatch.setattr(decode, "MAX_TAG_BYTES", 8 << 10)  # each file holds about 15 KB of tags

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("FFmpeg opened the file")

    monkeypatch.setattr(decode.av, "open", no_ffmpeg)
    with pytest.raises(VideoDecodeError, match=r"^too large: 1\d KiB of metadata tags \(more than 8 KiB\)$"):
        read_video(hostile_corpus[name])


def test_the_time_budget_stops_a_tag_parse_it_can_reach(tmp_path, monkeypatch):
    """Where no size is measured beforehand (here the AVI measure is switched off; FLV and ASF never have one),
    FFmpeg parses tags as it reads them, and past the deadline the file reads as ended: 20,000 AVI tags (13 s
    unbounded here) stop at the budget."""
    path = write_tagged_avi(tmp_path / "tags.avi", 20_000)
    monkeypatch.setattr(decode, "MAX_TAG_BYTES", 1 << 40)
    start = time.perf_counter()
    with pytest.raises(VideoDecodeError, match=r"^too slow: decoding took more than 0.5 s"):
        probe_video(path, budget=DecodeBudget(seconds=0.5))
    assert time.perf_counter() - start < 2.0


def test_every_decoded_frame_is_checked_not_only_the_header(hostile_corpus, monkeypatch):
    """MJPEG declared 64 x 64 whose later frames are 1024 x 32: the header passes, those frames do not."""
    assert probe_video(hostile_corpus["size_switch_avi"]).width == 64
    with pytest.raises(VideoDecodeError, match="unusable aspect ratio: 1024x32"):
        read_video(hostile_corpus["size_switch_avi"], ClipSampler(4))
    monkeypatch.setattr(decode, "MAX_PIXELS", 128 * 128)  # now 1024 x 32 = 32768 pixels is too many too
    with pytest.raises(VideoDecodeError, match="^too large: a frame in the stream exceeds the 8K limit$"):
        read_video(hostile_corpus["size_switch_avi"], ClipSampler(4))
