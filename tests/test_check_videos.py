"""check-videos finds exactly the corpus files that cannot be decoded or are too short."""

from __future__ import annotations

from pathlib import Path

from video_corpus import BROKEN, GOOD

from posmlp_video.cli import main
from posmlp_video.data.datasets import VIDEO_EXTENSIONS


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
