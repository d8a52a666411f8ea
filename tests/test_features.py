"""`features`: shapes per stage and pooling, equality with forward_features / forward_head, the .npy outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.cli import main
from posmlp_video.errors import PosMLPError
from posmlp_video.features import extract_features
from posmlp_video.views import load_views


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint()


def _close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> bool:
    """Largest absolute difference within ``rel`` times the expected tensor's largest magnitude (float32 scale)."""
    return actual.shape == expected.shape and float((actual - expected).abs().max()) <= rel * float(expected.abs().max())


def test_equal_to_forward_features_and_the_head_input(bundled, video_corpus):
    model, meta = bundled
    views = load_views(video_corpus["h264_mp4"], meta).tensor  # one view (1, 3, T, H, W)
    with torch.inference_mode():
        maps = model.forward_features(views)
        head_input = model.forward_head(maps, pre_logits=True)
    # the same operations on the same batch: equal to float32 rounding (bit-identical on our CPU)
    assert _close(extract_features(model, views, -1, "none"), maps[0], 1e-6)
    assert _close(extract_features(model, views, 3, "mean"), maps[0].mean(dim=(1, 2, 3)), 1e-6)
    assert _close(extract_features(model, views, pre_logits=True), head_input[0], 1e-6)
    with torch.inference_mode():  # the head on the pre-logits features gives the model's logits
        assert _close(model.head(extract_features(model, views, pre_logits=True)), model(views)[0], 1e-6)
    dims, size = model.config["embed_dims"], views.shape[-1] // 4  # the stem downsamples by 4, each stage by 2
    for stage in range(4):
        assert extract_features(model, views, stage, "none").shape == (dims[stage], 8, size >> stage, size >> stage)
        assert extract_features(model, views, stage, "mean").shape == (dims[stage],)
    six = load_views(video_corpus["h264_mp4"], meta, clips=2, crops=3).tensor
    per_view = torch.stack([extract_features(model, v[None]) for v in six])
    # six views in one batch against one at a time: batch-size-dependent kernels (6.9e-7 relative on our CPU)
    assert _close(extract_features(model, six), per_view.mean(0), 5e-6)
    with pytest.raises(PosMLPError, match="stage must be in"):
        extract_features(model, views, 4)


def test_cli_writes_one_array_or_one_file_per_input(bundled, video_corpus, tmp_path, capsys):
    model, meta = bundled
    inputs = [str(video_corpus[name]) for name in ("h264_mp4", "random_bytes", "gif")]
    out = tmp_path / "feats.npy"
    assert main(["features", *inputs, "--out", str(out), "--stage", "-1", "--pool", "mean"]) == 1
    feats = np.load(out)
    assert feats.shape == (2, 256)
    assert out.with_suffix(".txt").read_text().splitlines() == [inputs[0], inputs[2]]
    expected = extract_features(model, load_views(inputs[2], meta).tensor).numpy()
    assert np.abs(feats[1] - expected).max() <= 1e-6 * np.abs(expected).max()
    assert "random.mp4" in capsys.readouterr().err
    folder = tmp_path / "per_file"
    assert main(["features", inputs[0], inputs[2], "--out", str(folder), "--pre-logits", "--clips", "2"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["animated.gif.npy", "h264.mp4.npy"]
    assert np.load(folder / "h264.mp4.npy").shape == (256,)
    assert main(["features", inputs[0], "--out", str(out), "--pre-logits", "--stage", "1"]) == 1
