"""The checkpoint card: calibration rule, summary built from metadata, metadata updates."""

from __future__ import annotations

import pytest
import torch

from posmlp_video.card import calibrate_min_prob, card_of, scope_summary
from posmlp_video.checkpoint import load_checkpoint, read_meta, save_checkpoint, update_meta
from posmlp_video.models import create_model


def test_calibrate_min_prob_hand_computed() -> None:
    # sorted: .9 ok, .8 ok, .7 wrong, .6 ok, .5 wrong -> running accuracy 1, 1, 2/3, 3/4, 3/5
    probs, ok = [0.5, 0.9, 0.7, 0.6, 0.8], [False, True, False, True, True]
    assert calibrate_min_prob(probs, ok, 0.75) == pytest.approx(0.6)
    assert calibrate_min_prob(probs, ok, 0.9) == pytest.approx(0.8)
    assert calibrate_min_prob([0.9, 0.8], [False, False], 0.5) == 1.0
    with pytest.raises(ValueError):
        calibrate_min_prob([0.5], [True, False])


def test_summary_and_update_meta(tmp_path) -> None:
    model = create_model("posmlp_video_xs", num_classes=3, img_size=32, num_frames=4)
    path = save_checkpoint(model, tmp_path / "m.safetensors",
                           dict(class_names=["a", "b", "c"], num_frames=4, input_size=[32, 32]))
    assert card_of(read_meta(path)) == {}
    assert "3 classes; input 4 frames at 32x32." in scope_summary(read_meta(path))
    card = {"summary": "Knows three letters.", "evaluation": [{"name": "letters", "n": 10, "top1": 80.0}]}
    update_meta(path, {"card": card})
    reloaded, meta = load_checkpoint(path)
    assert meta["card"] == card
    assert scope_summary(meta).startswith("Knows three letters.") and "letters: 80.0% top-1 (n=10)." in scope_summary(meta)
    for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
