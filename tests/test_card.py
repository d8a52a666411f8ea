"""The checkpoint card: calibration rule, summary built from metadata, metadata updates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posmlp_video.card import (
    UNKNOWN,
    calibrate_min_prob,
    card_of,
    model_card_markdown,
    scope_summary,
    write_model_card,
)
from posmlp_video.checkpoint import load_checkpoint, read_meta, save_checkpoint, update_meta
from posmlp_video.models import create_model

ROOT = Path(__file__).resolve().parents[1]


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


def _section(markdown: str, title: str) -> list[str]:
    """The non-empty lines of one ``## title`` section."""
    body = markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def test_model_card_states_true_facts_and_unknowns(tmp_path) -> None:
    from analysis.complexity import complexity_table  # an independent FLOP count (per part, then total)

    names = ["wave", "clap", "jump"]
    model = create_model("posmlp_video_xs", num_classes=3, img_size=32, num_frames=4)
    path = save_checkpoint(model, tmp_path / "m.safetensors", dict(class_names=names, num_frames=4, input_size=[32, 32]))
    bare = model_card_markdown(read_meta(path))
    params = sum(p.numel() for p in model.parameters())
    assert f"- Parameters: {params:,}\n" in bare
    assert f"({complexity_table(model)[-1]['flops']:,}; FlopCounterMode" in bare
    assert _section(bare, "Classes (3)") == ["0. wave", "1. clap", "2. jump"]
    assert "shape (batch, 3, 4, 32, 32)" in bare
    for title in ("Training data", "Data licences", "Training recipe", "Evaluation", "Intended use", "Limits"):
        assert _section(bare, title) == [UNKNOWN], title  # nothing recorded: nothing claimed

    card = {"summary": "Knows three gestures.", "training_data": "300 clips of my hands.",
            "data_sources": [{"name": "my clips", "version": "1", "licence": "CC-BY-4.0", "use": "train"}],
            "recipe": "python -m posmlp_video train configs/finetune_folder.yaml",
            "evaluation": [{"name": "held-out", "n": 30, "top1": 90.0, "top5": 100.0}],
            "intended_use": "Demo of gestures.", "limits": "Only my hands."}
    meta = update_meta(path, {"card": card, "val_top1": 87.5, "val_top5": 100.0, "epoch": 3})
    full = model_card_markdown(meta)
    assert full.splitlines()[2] == "Knows three gestures."
    assert _section(full, "Training data") == ["300 clips of my hands."]
    assert "| my clips | 1 | CC-BY-4.0 | train |" in _section(full, "Data licences")
    assert "| held-out | 30 | 90.00 | 100.00 |" in _section(full, "Evaluation")
    assert any("top-1 87.50%" in line and "epoch 3" in line for line in _section(full, "Evaluation"))
    assert _section(full, "Limits") == ["Only my hands."] and UNKNOWN not in full

    written = write_model_card(path, meta)
    assert written == tmp_path / "MODEL_CARD.md" and written.read_text() == full
    cli = subprocess.run([sys.executable, "-m", "posmlp_video", "card", str(path)], capture_output=True, text=True,
                         cwd=ROOT)
    assert cli.returncode == 0 and cli.stdout.rstrip("\n") == full.rstrip("\n")
