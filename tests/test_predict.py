"""`predict`: the Predictor API on files and arrays, and the command line's output and exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import timm
import torch
from video_corpus import BROKEN, GOOD, HOSTILE_REASONS

from posmlp_video import views as views_module
from posmlp_video.checkpoint import save_checkpoint
from posmlp_video.cli import main
from posmlp_video.data.decode import VideoDecodeError
from posmlp_video.data.encode import write_mp4
from posmlp_video.data.synthmotion import CLASS_NAMES, SynthMotion
from posmlp_video.data.transforms import preprocess
from posmlp_video.errors import PosMLPError, one_line
from posmlp_video.predict import Predictor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("posmlp_video_xs", num_classes=12, num_frames=8)
    meta = {"class_names": list(CLASS_NAMES), "num_frames": 8, "input_size": [64, 64], "resize_short": 72,
            "sampling": "segment"}
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", meta)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor.from_checkpoint(checkpoint)


@pytest.mark.parametrize("name", list(GOOD))
def test_every_good_file_classifies(predictor, video_corpus, name):
    prediction = predictor.predict(video_corpus[name], top_k=12)
    assert [label for label, _ in prediction.top] != [] and {label for label, _ in prediction.top} == set(CLASS_NAMES)
    scores = [score for _, score in prediction.top]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert prediction.frames.shape == (8, 64, 64, 3) and prediction.frames.dtype == np.uint8
    assert prediction.input.shape == (3, 8, 64, 64)
    assert 0 < prediction.model_ms <= prediction.total_ms


def test_array_input_matches_a_manual_forward_pass(predictor):
    clip = SynthMotion(1, seed=4, num_frames=16, size=(80, 96))[0]["video"]
    prediction = predictor.predict(clip, top_k=3)
    sampled = clip[[1, 3, 5, 7, 9, 11, 13, 15]]  # segment centres of 16 frames in 8 segments
    expected_input = preprocess(sampled, predictor.meta).tensor
    assert torch.equal(prediction.input, expected_input)
    with torch.inference_mode():
        probabilities = predictor.model(expected_input[None]).softmax(-1)[0]
    best = probabilities.argsort(descending=True)[:3].tolist()
    assert [label for label, _ in prediction.top] == [CLASS_NAMES[i] for i in best]
    assert prediction.top[0][1] == pytest.approx(float(probabilities[best[0]]), rel=1e-5)
    assert len(predictor.predict(clip[0]).top) == 5  # a single (H, W, 3) image is a clip too


def test_sampled_frames_carry_their_times_in_the_video(predictor, tmp_path):
    """Frame i of a 10 fps file is grey level 6 i: each sampled frame's brightness says which frame it is, so its
    time (i / 10 s) is known independently of the sampler."""
    frames = np.ascontiguousarray(np.broadcast_to((np.arange(40, dtype=np.uint8) * 6)[:, None, None, None],
                                                  (40, 64, 80, 3)))
    path = write_mp4(tmp_path / "counting.mp4", frames, fps=10.0)
    clip, times = predictor.sample_timed(path)
    shown = np.round(clip.reshape(len(clip), -1).mean(1) / 6)  # which source frame each sampled one is
    assert len(times) == len(clip) == 8 and shown.tolist() == sorted(set(shown.tolist()))
    np.testing.assert_allclose(times, shown / 10.0, atol=1e-6)
    assert np.array_equal(clip, predictor.sample(path))
    assert predictor.sample_timed(frames)[1] is None  # an array has no timeline


def test_bad_arrays_are_refused(predictor):
    with pytest.raises(VideoDecodeError, match="uint8 array"):
        predictor.predict(np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(VideoDecodeError, match="uint8 array"):
        predictor.predict(np.zeros((0, 32, 32, 3), np.uint8))


def test_cli_json_lines_answer_every_input(checkpoint, video_corpus, capsys):
    inputs = [video_corpus["h264_mp4"], video_corpus["random_bytes"], video_corpus["gif"]]
    code = main(["predict", *map(str, inputs), "--checkpoint", str(checkpoint), "--json", "--top-k", "3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [line["path"] for line in lines] == list(map(str, inputs))
    assert [len(line["predictions"]) for line in (lines[0], lines[2])] == [3, 3]
    assert set(lines[0]["predictions"][0]) == {"label", "score"}
    assert lines[1] == {"path": str(inputs[1]), "error": lines[1]["error"]} and BROKEN["random_bytes"][1] in lines[1]["error"]


def test_cli_text_output_and_success_code(checkpoint, video_corpus, capsys):
    code = main(["predict", str(video_corpus["vp9_webm"]), "--checkpoint", str(checkpoint), "--top-k", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    # the checkpoint's scope first (from its metadata), then the answer
    assert out[0].startswith("model: ") and "12 classes; input 8 frames at 64x64." in " ".join(out[:3])
    answer = out[out.index("") + 1:]
    assert answer[0].startswith(str(video_corpus["vp9_webm"])) and len(answer) == 3
    assert answer[1].split(maxsplit=1)[1] in CLASS_NAMES


def test_cli_marks_answers_below_the_cards_confidence_threshold(checkpoint, video_corpus, capsys, tmp_path):
    from posmlp_video.checkpoint import update_meta

    carded = tmp_path / "carded.safetensors"
    carded.write_bytes(checkpoint.read_bytes())
    update_meta(carded, {"card": {"summary": "A test model.", "confidence": {"min_prob": 0.99, "how": "test"}}})
    video = str(video_corpus["vp9_webm"])
    assert main(["predict", video, "--checkpoint", str(carded), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model: A test model.") and "below 0.99 probability is marked uncertain" in out
    assert out.splitlines()[-3] == f"{video}  uncertain"  # an untrained model is unsure
    assert main(["predict", video, "--checkpoint", str(carded), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["uncertain"] is True


def test_cli_errors_are_one_line_without_traceback(checkpoint, video_corpus):
    broken = subprocess.run([sys.executable, "-m", "posmlp_video", "predict", str(video_corpus["audio_only"]),
                             str(video_corpus["empty"]), "--checkpoint", str(checkpoint)],
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and broken.stdout == ""
    assert broken.stderr.splitlines() == [
        f"posmlp-video predict: error: {video_corpus['audio_only']}: no video stream in the file (audio-only or not a video)",
        f"posmlp-video predict: error: {video_corpus['empty']}: empty file (0 bytes)",
    ]


def test_cli_missing_checkpoint_is_one_line(video_corpus, tmp_path, capsys):
    code = main(["predict", str(video_corpus["h264_mp4"]), "--checkpoint", str(tmp_path / "nope.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no checkpoint file" in err


def test_cli_usage_errors_exit_2(capsys):
    for argv in (["predict"], ["predict", "x.mp4", "--top-k", "0"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_decoding_never_holds_the_model_lock(predictor, video_corpus, monkeypatch):
    """The app passes its per-model lock: only the forward pass runs under it, so a slow file stalls no one."""
    lock = threading.Lock()
    held: dict[str, bool] = {}
    decode = views_module.read_video

    def read_video(*args, **kwargs):
        held["decode"] = lock.locked()
        return decode(*args, **kwargs)

    def forward(*_):
        held["forward"] = lock.locked()

    monkeypatch.setattr(views_module, "read_video", read_video)
    hook = predictor.model.register_forward_pre_hook(forward)
    try:
        predictor.predict(video_corpus["h264_mp4"], lock=lock)
    finally:
        hook.remove()
    assert held == {"decode": False, "forward": True} and not lock.locked()


@pytest.mark.parametrize("json_lines", [False, True])
def test_control_characters_in_a_file_name_cannot_split_or_forge_error_lines(tmp_path, checkpoint, capsys, json_lines):
    name = tmp_path / "clip\nposmlp-video predict: error: forged.mp4\r\x1b[2K.mp4"
    name.write_bytes(b"")
    code = main(["predict", str(name), "--checkpoint", str(checkpoint), *(["--json"] if json_lines else [])])
    captured = capsys.readouterr()
    lines = (captured.out if json_lines else captured.err).splitlines()
    assert code == 1 and len(lines) == 1 and "\x1b" not in lines[0] and "\r" not in lines[0]
    error = json.loads(lines[0])["error"] if json_lines else lines[0]
    assert error.endswith("empty file (0 bytes)")
    if not json_lines:
        assert lines[0] == (f"posmlp-video predict: error: {tmp_path}/clip\\nposmlp-video predict: error: "
                            f"forged.mp4\\r\\x1b[2K.mp4: empty file (0 bytes)")


def test_user_errors_escape_control_characters_wherever_shown():
    assert str(VideoDecodeError("file not found: a\nb\tc")) == "file not found: a\\nb\\tc"
    assert one_line("ok é 日本") == "ok é 日本"


@pytest.mark.parametrize("name", ["wide_png", "hls_absolute", "many_tags_avi", "many_tags_ogg"])
def test_cli_answers_hostile_files_with_one_line(checkpoint, hostile_corpus, capsys, name):
    """(How fast they are refused is asserted on the decoder itself in test_data_decode.py: loading the
    checkpoint dominates a CLI call's time.)"""
    code = main(["predict", str(hostile_corpus[name]), "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert HOSTILE_REASONS[name] in err


# --------------------------------------------------------------------------- multi-view (as eval)


def test_views_and_scores_equal_evals(predictor, tmp_path):
    """Predictor(clips=2, crops=3) feeds the model exactly eval's 6 views and averages their softmax like eval."""
    from posmlp_video.evaluate import evaluate_model
    from posmlp_video.train.data import eval_dataset

    files = []
    for label in (0, 3):
        clip = SynthMotion(1, seed=7 + label, num_frames=20, size=(80, 112))[0]["video"]
        files.append(write_mp4(tmp_path / CLASS_NAMES[label] / "clip.mp4", clip, fps=8))
    multi = Predictor(predictor.model, predictor.meta, clips=2, crops=3)
    dataset, names = eval_dataset(str(tmp_path), predictor.meta, num_clips=1, seed=0, test_clips=2, test_crops=3,
                                  class_names=list(CLASS_NAMES))
    assert sorted(str(path) for path, _ in dataset.dataset.samples) == sorted(map(str, files))
    for i, (path, _) in enumerate(dataset.dataset.samples):
        views, _ = dataset[i]
        assert views.shape == (6, 3, 8, 64, 64)
        assert torch.equal(multi.views(path).tensor, views)
        with torch.inference_mode():  # independent expectation: the mean of each view's own softmax
            expected = torch.stack([predictor.model(v[None]).softmax(-1)[0] for v in views]).mean(0)
        prediction = multi.predict(path, top_k=12)
        assert dict(prediction.top)[CLASS_NAMES[0]] == pytest.approx(float(expected[0]), abs=1e-5)
        assert [label for label, _ in prediction.top][0] == CLASS_NAMES[int(expected.argmax())]
        # the middle view (centre crop of the second clip) is what `frames`/`input` show
        assert torch.equal(prediction.input, views[4])
    result = evaluate_model(predictor.model, torch.utils.data.DataLoader(dataset, batch_size=2), names,
                            torch.device("cpu"))
    predicted = [CLASS_NAMES.index(multi.predict(path).top[0][0]) for path in files]
    assert result.confusion[0, predicted[0]] == 1 and result.confusion[3, predicted[1]] == 1
    with pytest.raises(PosMLPError, match="crops must be 1 or 3"):
        Predictor(predictor.model, predictor.meta, crops=2)


# --------------------------------------------------------------------------- folders and tables


@pytest.fixture
def folder(video_corpus, tmp_path):
    """A folder tree of three good files (one in a subfolder), one broken file and a non-video file."""
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    for name, target in (("h264_mp4", "a.mp4"), ("vp9_webm", "sub/b.webm"), ("gif", "c.gif"),
                         ("random_bytes", "sub/broken.mp4")):
        (root / target).write_bytes(video_corpus[name].read_bytes())
    (root / "notes.txt").write_text("not an input")
    return root


def test_csv_on_a_folder_with_a_broken_file(checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "out.csv"
    code = main(["predict", str(folder), "--checkpoint", str(checkpoint), "--csv", str(out), "--top-k", "2"])
    assert code == 1
    rows = list(csv.DictReader(out.open()))
    expected = sorted(str(p) for p in [folder / "a.mp4", folder / "c.gif", folder / "sub" / "b.webm",
                                       folder / "sub" / "broken.mp4"])
    assert [row["path"] for row in rows] == expected
    by_path = {row["path"]: row for row in rows}
    broken = by_path[str(folder / "sub" / "broken.mp4")]
    assert BROKEN["random_bytes"][1] in broken["error"] and broken["label_1"] == ""
    for path in expected:
        if "broken" not in path:
            row = by_path[path]
            assert row["error"] == "" and row["label_1"] in CLASS_NAMES and row["label_2"] in CLASS_NAMES
            assert 1 >= float(row["score_1"]) >= float(row["score_2"]) > 0
            assert row["label_1"] == Predictor.from_checkpoint(checkpoint).predict(path).top[0][0]
    assert "broken.mp4" in capsys.readouterr().err


def test_tables_resume_and_workers_give_the_same_rows(checkpoint, folder, tmp_path, capsys):
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--jsonl", str(first)]) == 1
    lines = first.read_text().splitlines()
    # an interrupted run: two rows written, the second cut off mid-line
    again.write_text(lines[0] + "\n" + lines[1][:10])
    args = ["predict", str(folder), "--checkpoint", str(checkpoint), "--jsonl", str(again), "--workers", "2"]
    assert main(args) == 1
    assert sorted(again.read_text().splitlines()) == sorted(lines)
    assert "2 classified, 1 failed, 1 already in" in capsys.readouterr().err
    done = again.read_text()
    assert main(args) == 0 and again.read_text() == done  # nothing left to do
    only_gif = tmp_path / "gif.csv"
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--glob", "*.gif", "--csv", str(only_gif)]) == 0
    assert [row["path"] for row in csv.DictReader(only_gif.open())] == [str(folder / "c.gif")]
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--csv", str(only_gif), "--top-k", "3"]) == 1
    assert "other columns" in capsys.readouterr().err
