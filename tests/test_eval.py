"""``posmlp-video eval``: JSON top-1/top-5 that match an independent count, confusion matrix files, folders."""

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, save_checkpoint
from posmlp_video.cli import main
from posmlp_video.data import SynthMotion, normalize, write_mp4
from posmlp_video.models import create_model

MEAN, STD = [0.45] * 3, [0.225] * 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained 4-frame 32x32 SynthMotion model: its predictions are arbitrary but fixed."""
    torch.manual_seed(3)
    model = create_model("posmlp_video_xs", num_classes=12, num_frames=4, img_size=32)
    with torch.no_grad():
        model.head.weight.normal_(std=1.0)  # spread the scores so top-1 and top-5 differ between clips
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(model.eval(), path, dict(class_names=list(SynthMotion.class_names), num_frames=4,
                                                    input_size=[32, 32], resize_short=32, mean=MEAN, std=STD))


def _eval(capsys, *args: str) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_synthmotion_json_matches_an_independent_count(checkpoint, capsys, tmp_path):
    result = _eval(capsys, "--checkpoint", str(checkpoint), "--data", "synthmotion", "--seed", "7", "--num-clips", "36",
                   "--output", str(tmp_path))
    model = create_model("posmlp_video_xs", num_classes=12, num_frames=4, img_size=32)
    model.load_state_dict(load_file(str(checkpoint)))
    model.eval()
    clips = SynthMotion(36, seed=7, num_frames=4, size=32)
    top1 = top5 = 0
    confusion = [[0] * 12 for _ in range(12)]
    with torch.no_grad():
        for item in clips:
            scores = model(normalize(item["video"], MEAN, STD)[None])[0]
            ranked = scores.argsort(descending=True).tolist()
            top1 += ranked[0] == item["label"]
            top5 += item["label"] in ranked[:5]
            confusion[item["label"]][ranked[0]] += 1
    assert result["clips"] == 36 and result["views"] == 1 and result["seed"] == 7
    assert result["top1"] == pytest.approx(100 * top1 / 36, abs=0.01)
    assert result["top5"] == pytest.approx(100 * top5 / 36, abs=0.01)
    assert 0 < result["top5"] - result["top1"]  # a test that could tell top-1 from top-5
    with open(tmp_path / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == list(SynthMotion.class_names)
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == confusion
    per_class = {name: acc for name, acc in result["per_class_top1"].items()}
    assert per_class[SynthMotion.class_names[0]] == pytest.approx(100 * confusion[0][0] / 3, abs=0.01)
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert (tmp_path / "per_class.csv").is_file()


def test_folder_with_multiple_views(checkpoint, capsys, tmp_path):
    """A class-per-folder dataset: labels follow the checkpoint's class names, clips x crops views averaged."""
    clips = SynthMotion(12, seed=9, num_frames=12, size=(32, 48))
    for item in clips:
        write_mp4(tmp_path / SynthMotion.class_names[item["label"]] / "clip.mp4", item["video"])
    result = _eval(capsys, "--checkpoint", str(checkpoint), "--data", str(tmp_path), "--clips", "2", "--crops", "3")
    assert result["clips"] == 12 and result["views"] == 6 and 0 <= result["top1"] <= result["top5"] <= 100


def test_bad_inputs_are_one_line_errors(checkpoint, capsys, tmp_path):
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nowhere")]) == 1
    assert "no dataset at" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint file" in err and err.count("\n") == 1


def test_bundled_checkpoint_reaches_95_percent_on_unseen_clips(capsys):
    """The issue's target: >= 95% top-1 on clips from a seed it never trained or validated on (0 and 1)."""
    assert BUNDLED_CHECKPOINT.is_file()
    result = _eval(capsys, "--seed", "4242", "--num-clips", "240")
    assert result["top1"] >= 95
    # no class is given up, the time-reversed pairs included
    assert min(result["per_class_top1"].values()) >= 80
