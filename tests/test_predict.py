"""`predict`: the Predictor API on files and arrays, and the command line's output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from video_corpus import BROKEN, GOOD

from posmlp_video.checkpoint import save_checkpoint
from posmlp_video.cli import main
from posmlp_video.data.decode import VideoDecodeError
from posmlp_video.data.synthmotion import CLASS_NAMES, SynthMotion
from posmlp_video.data.transforms import preprocess
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
    assert f"{video}  (" in out and out.splitlines()[-3].endswith("uncertain")  # an untrained model is unsure
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
