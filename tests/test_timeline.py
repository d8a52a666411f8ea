"""`timeline`: streaming decode equals read_video, windows stream lazily, segments found at the right times."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.cli import main
from posmlp_video.data.decode import FrameStream, read_video
from posmlp_video.data.encode import write_mp4
from posmlp_video.data.synthmotion import CLASS_NAMES, render_clip
from posmlp_video.timeline import _window_clips, compute_timeline, parse_seconds, window_indices

WINDOW, STRIDE = 2.0, 0.5


@pytest.mark.parametrize("name", ["vfr_mp4", "long_90s_mp4", "rotated_portrait_mp4"])
def test_stream_gives_read_videos_frames(video_corpus, name):
    stream = FrameStream(video_corpus[name], short_side=40)
    wanted = np.unique(np.linspace(0, stream.info.timeline_frames - 1, 9).astype(np.int64))
    streamed = list(stream.frames(wanted))
    assert [i for i, _ in streamed] == wanted.tolist()
    expected = read_video(video_corpus[name], lambda n: wanted, short_side=40).frames
    assert np.array_equal(np.stack([f for _, f in streamed]), expected)


def test_windows_come_out_as_soon_as_their_frames_did():
    meta = {"num_frames": 4, "sampling": "segment", "sampling_rate": 1}
    starts, span, indices = window_indices(100, 10.0, 2.0, 0.5, meta)
    assert span == 20 and starts.tolist() == list(range(0, 81, 5)) and indices.shape == (17, 4)
    assert indices[0].tolist() == [2, 7, 12, 17] and indices[1].tolist() == [7, 12, 17, 22]  # segment centres
    pulled = []

    def frames():
        for i in np.unique(indices):
            pulled.append(int(i))
            yield int(i), np.full((2, 2, 3), i, np.uint8)

    for w, clip in enumerate(_window_clips(frames(), indices)):
        assert clip[:, 0, 0, 0].tolist() == indices[w].tolist()
        assert pulled[-1] == indices[w].max()  # nothing read ahead of the window that needed it
    assert parse_seconds("500ms") == 0.5 and parse_seconds("2s") == 2.0


@pytest.mark.slow
def test_segments_of_concatenated_synthmotion_clips(tmp_path, capsys):
    """Three 4 s SynthMotion motions back to back: each is found, within one and a half windows of its true start
    and end, and anything else (windows straddling two motions) lasts less than one window. (The 64-pixel
    bundled model names "up" only once most of its travel is in the 2 s window: its segment starts 2.25 s late.)"""
    labels = [0, 2, 6]
    clips = [render_clip(np.random.default_rng([5, i]), label, 32, 64, 64)[0] for i, label in enumerate(labels)]
    video = write_mp4(tmp_path / "three.mp4", np.concatenate(clips), fps=8)
    model, meta = load_checkpoint()
    timeline = compute_timeline(model, meta, video, WINDOW, STRIDE)
    assert timeline.duration == pytest.approx(12.0) and len(timeline.starts) == 21
    assert np.allclose(timeline.probabilities.sum(1), 1, atol=1e-5)
    segments = timeline.segments()
    for k, label in enumerate(labels):
        start, end = 4.0 * k, 4.0 * (k + 1)
        found = [s for s in segments if s.label == CLASS_NAMES[label]
                 and abs(s.start - start) <= 1.5 * WINDOW and abs(s.end - end) <= 1.5 * WINDOW]
        assert found, (CLASS_NAMES[label], segments)
    for s in segments:
        truth = CLASS_NAMES[labels[min(int(((s.start + s.end) / 2) // 4), 2)]]
        assert s.label == truth or s.end - s.start < WINDOW, s
    out = tmp_path / "t"
    code = main(["timeline", str(video), "--window", "2s", "--stride", "0.5s", "--csv", f"{out}.csv",
                 "--json", f"{out}.json", "--plot", f"{out}.png"])
    assert code == 0
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["start", "end", CLASS_NAMES[0]] and len(rows) == 22
    data = json.loads((tmp_path / "t.json").read_text())
    assert [w["start"] for w in data["windows"]][:3] == [0.0, 0.5, 1.0] and data["segments"][0]["label"] == CLASS_NAMES[0]
    assert (tmp_path / "t.png").stat().st_size > 10_000
    assert "21 windows of 2 s every 0.5 s" in capsys.readouterr().out


def test_stream_runs_under_the_decode_budget(video_corpus):
    from posmlp_video.data.decode import DecodeBudget, VideoDecodeError

    with pytest.raises(VideoDecodeError, match="too slow"):
        stream = FrameStream(video_corpus["long_90s_mp4"], budget=DecodeBudget(seconds=1e-4))
        list(stream.frames(np.arange(stream.info.timeline_frames)))
    # 450 frames stream under a 100-frame budget: its limits scale with the video's length
    stream = FrameStream(video_corpus["long_90s_mp4"], budget=DecodeBudget(frames=100))
    assert len(list(stream.frames(np.arange(0, 450, 7)))) == len(range(0, 450, 7))
