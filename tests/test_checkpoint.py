"""Our safetensors checkpoints, loading at a new frame count, and clear errors for bad checkpoints."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import posmlp_video  # noqa: F401
from posmlp_video.checkpoint import load_checkpoint, read_meta, save_checkpoint
from posmlp_video.convert import from_official
from posmlp_video.errors import CheckpointError
from posmlp_video.loading import load_class_names

ROOT = Path(__file__).resolve().parents[1]


def _meta(n: int) -> dict:
    return dict(class_names=[f"c{i}" for i in range(n)], num_frames=8, input_size=[64, 64])


def _trained_like_xs(**kwargs) -> torch.nn.Module:
    model = timm.create_model("posmlp_video_xs", table_init="trunc_normal", **kwargs)
    for m in model.modules():
        if hasattr(m, "token_bias"):
            torch.nn.init.normal_(m.token_bias, std=0.1)
    return model.eval()


def test_round_trip_keeps_outputs_and_meta(tmp_path):
    model = _trained_like_xs(block_types=["sequential", "joint", "parallel", "spatial"])
    path = save_checkpoint(model, tmp_path / "m.safetensors", {**_meta(12), "note": "hello"})
    loaded, meta = load_checkpoint(path)
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert meta["class_names"] == [f"c{i}" for i in range(12)] and meta["note"] == "hello"
    assert meta["model_kwargs"] == model.config and meta["sampling"] == "segment" and len(meta["mean"]) == 3
    assert read_meta(path) == meta
    assert not loaded.training
    assert list(tmp_path.iterdir()) == [path]  # the temp file was renamed, nothing left behind


def test_timm_create_model_reads_our_checkpoint(tmp_path):
    model = _trained_like_xs()
    path = save_checkpoint(model, tmp_path / "m.safetensors", _meta(12))
    again = timm.create_model("posmlp_video_xs", checkpoint_path=str(path)).eval()
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_loading_at_more_frames_resizes_temporal_tables(tmp_path):
    model = _trained_like_xs()
    path = save_checkpoint(model, tmp_path / "m.safetensors", _meta(12))
    longer, meta = load_checkpoint(path, num_frames=16)
    assert meta["num_frames"] == 16 and longer.num_frames == 16
    old = model.stages[0].blocks[0].temporal.gate
    new = longer.stages[0].blocks[0].temporal.gate
    assert new.relative_position_bias_table.shape == (31, old.gamma) and new.token_bias.shape == (16,)
    # offset 0 (centre row) and the extreme offsets keep their values
    torch.testing.assert_close(new.relative_position_bias_table[[0, 15, 30]], old.relative_position_bias_table[[0, 7, 14]])
    assert longer(torch.randn(1, 3, 16, 64, 64)).shape == (1, 12)


def test_save_requires_meta_that_matches_the_model(tmp_path):
    model = _trained_like_xs()
    with pytest.raises(ValueError, match="needs"):
        save_checkpoint(model, tmp_path / "m.safetensors", {"class_names": ["a"] * 12})
    with pytest.raises(ValueError, match="class names"):
        save_checkpoint(model, tmp_path / "m.safetensors", _meta(3))


def test_class_name_sets_ship_with_the_package():
    assert len(load_class_names("ssv1")) == len(load_class_names("ssv2")) == 174
    assert len(load_class_names("K400")) == 400
    with pytest.raises(CheckpointError, match="no label set"):
        load_class_names("imagenet")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize(
    "writer,message",
    [
        (lambda p: p.write_bytes(b""), "not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(b"\x00garbage" * 100), "not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(pickle.dumps({"model": _Evil()})), "not a PyTorch checkpoint"),
        (lambda p: torch.save([1, 2, 3], p), "expected a dict"),
        (lambda p: torch.save({"model_state": {"head.weight": torch.zeros(2, 2)}}, p), "not a 4-stage PosMLP-Video"),
        (lambda p: torch.save({"model_state": {"x": "y"}}, p), "not a tensor"),
    ],
)
def test_from_official_errors_are_one_clear_line(tmp_path, writer, message):
    path = tmp_path / "bad.pth"
    writer(path)
    with pytest.raises(CheckpointError, match=message) as info:
        from_official(path)
    assert "\n" not in str(info.value)


def test_from_official_names_the_offending_key(official_small):
    state = dict(official_small["checkpoint"]["model_state"])
    state["blocks2.0.fc.encoder.fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"'blocks2\.0\.fc\.encoder\.fc1\.weight' \(our 'stages\.1\.blocks\.0\.spatial\.fc1"):
        from_official(state)
    state = dict(official_small["checkpoint"]["model_state"])
    state["blocks9.0.fc.encoder.fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match="unexpected key 'blocks9.0.fc.encoder.fc1.weight'"):
        from_official(state)
    wrong_cfg = {**official_small["checkpoint"], "cfg": official_small["checkpoint"]["cfg"].replace("NUM_CLASSES: 10", "NUM_CLASSES: 12")}
    with pytest.raises(CheckpointError, match="cfg says num_classes=12 but the weights have num_classes=10"):
        from_official(wrong_cfg)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        from_official(Path("/nonexistent/model.pyth"))


def test_convert_cli_and_loading_an_authors_file(tmp_path, official_small):
    src = tmp_path / "theirs.pyth"
    torch.save(official_small["checkpoint"], src)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"action {i}" for i in range(10)))
    out = tmp_path / "ours.safetensors"
    run = subprocess.run([sys.executable, "-m", "posmlp_video", "convert", str(src), str(out), "--labels", str(labels)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    model, meta = load_checkpoint(out)
    assert meta["class_names"][3] == "action 3" and meta["num_frames"] == 4 and meta["input_size"] == [64, 64]
    card = (tmp_path / "MODEL_CARD.md").read_text()  # written beside the converted checkpoint
    assert "## Classes (10)" in card and "9. action 9" in card and "Source of the weights: authors' checkpoint" in card
    with torch.no_grad():
        torch.testing.assert_close(model(official_small["input"]), official_small["logits"], rtol=1e-5, atol=1e-5)
    # an authors' file loads directly too, with class names given by the caller
    direct, meta2 = load_checkpoint(src, class_names=[str(i) for i in range(10)])
    assert meta2["class_names"][9] == "9" and meta2["mean"] == [0.45] * 3
    bad = subprocess.run([sys.executable, "-m", "posmlp_video", "convert", str(labels), str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "not a PyTorch checkpoint" in bad.stderr


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "x.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "x.safetensors")
