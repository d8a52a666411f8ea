"""check-videos finds exactly the corpus files that cannot be decoded or are too short, and files cut off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from video_corpus import BROKEN, GOOD, frame_pattern, read_index

from posmlp_video.cli import main
from posmlp_video.data.datasets import VIDEO_EXTENSIONS
from posmlp_video.data.decode import check_decoding, probe_video, read_video
from posmlp_video.data.encode import write_mp4


def _reported(stdout: str) -> dict[str, str]:
    return {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in stdout.splitlines()}


def test_folder_scan_finds_broken_and_short_files(video_corpus, capsys) -> None:
    folder = video_corpus["h264_mp4"].parent
    assert main(["check-videos", str(folder), "--min-frames", "4", "--workers", "2"]) == 1
    out = capsys.readouterr()
    reported = _reported(out.out)
    broken = {name: words for name, words in BROKEN.values() if Path(name).suffix in VIDEO_EXTENSIONS}
    short = {g.filename for g in GOOD.values() if g.num_frames < 4 and Path(g.filename).suffix in VIDEO_EXTENSIONS}
    assert set(reported) == set(broken) | short
    for name, words in broken.items():
        assert words in reported[name]
    assert reported["one_frame.mp4"] == "too short: 1 frame(s), fewer than 4"
    scanned = sum(Path(g.filename).suffix in VIDEO_EXTENSIONS for g in GOOD.values()) + len(broken)
    assert f"checked {scanned} video file(s): {len(reported)} unusable" in out.err


def test_annotation_file_scan_and_a_clean_set(video_corpus, tmp_path, capsys) -> None:
    listing = tmp_path / "train.txt"
    names = ["h264_mp4", "audio_only", "vp9_webm"]
    listing.write_text("".join(f"{video_corpus[n]} 0\n" for n in names) + "gone.mp4 1\n")
    assert main(["check-videos", str(listing)]) == 1
    reported = _reported(capsys.readouterr().out)
    assert reported == {"audio_only.m4a": reported["audio_only.m4a"], "gone.mp4": "missing file"}
    assert BROKEN["audio_only"][1] in reported["audio_only.m4a"]
    listing.write_text(f"{video_corpus['h264_mp4']} 0\n{video_corpus['gif']} 1\n")
    assert main(["check-videos", str(listing)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check-videos", str(tmp_path / "nowhere")]) == 1
    assert "no dataset at" in capsys.readouterr().err


def test_a_control_character_in_a_file_name_keeps_one_line_per_file(tmp_path, capsys) -> None:
    (tmp_path / "bad\nforged.mp4\tfine.mp4").write_bytes(b"")
    assert main(["check-videos", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{tmp_path}/bad\\nforged.mp4\\tfine.mp4\tempty file (0 bytes)"]


def test_a_file_cut_off_after_its_first_frames_is_found(tmp_path, capsys) -> None:
    """A faststart mp4 cut short: the index pass counts the packets still there and its first pictures decode, so
    the first-picture probe passes it, but its last counted frames do not decode (training would repeat a
    neighbour). Decoding the sampled frames and the last one finds it; --full counts every frame lost."""
    frames = np.stack([frame_pattern(i, 64, 48) for i in range(40)])
    frames[:, 12:24] = np.random.default_rng(0).integers(0, 256, (40, 12, 64, 3))  # bulk up the media data
    data = write_mp4(tmp_path / "whole" / "fine.mp4", frames, fps=10).read_bytes()
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "fine.mp4").write_bytes(data)
    cut, tail = folder / "cut.mp4", folder / "tail.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    tail.write_bytes(data[: len(data) - len(data) // 100])  # only the end of the last packets is missing
    counted, lost = {}, {}
    for path in (cut, tail):
        counted[path] = probe_video(path).num_frames
        assert counted[path] >= 8  # what the first-picture probe sees: enough frames, nothing wrong
        assert read_index(read_video(path, lambda n: np.arange(3)).frames[2]) == 2  # its first frames decode
        # independent count: the counted frames read_video could not decode
        lost[path] = sorted(set(range(counted[path])) - set(read_video(path).indices.tolist()))
        assert lost[path] and lost[path][-1] == counted[path] - 1

    assert main(["check-videos", str(folder), "--min-frames", "8"]) == 1
    out = capsys.readouterr()
    reported = _reported(out.out)
    assert set(reported) == {"cut.mp4", "tail.mp4"} and "2 unusable, 1 fine" in out.err
    for path in (cut, tail):
        assert reported[path.name].startswith("truncated or corrupt: ")
    assert main(["check-videos", str(folder), "--full"]) == 1
    reported = _reported(capsys.readouterr().out)
    for path in (cut, tail):
        n = counted[path]
        assert reported[path.name] == (f"truncated or corrupt: {len(lost[path])} of {n} frames checked do not "
                                       f"decode (the first is frame {lost[path][0]} of {n})")
    assert check_decoding(folder / "fine.mp4").failed.size == 0
