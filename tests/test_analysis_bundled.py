"""Acceptance checks on the bundled checkpoint.

These need ``posmlp_video/weights/posmlp_video_xs_realmotion.safetensors``; without it `load_checkpoint`
raises `CheckpointError` and these tests fail (on purpose: they are acceptance tests, not optional ones).
"""

import numpy as np
import pytest

from analysis import attribute, pointing_game_report
from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.data import SynthMotion


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint()


def clips(meta, num_clips, seed):
    return SynthMotion(num_clips, seed=seed, num_frames=int(meta["num_frames"]), size=tuple(meta["input_size"]))


@pytest.mark.slow
def test_integrated_gradients_completeness_on_bundled_model(bundled):
    model, meta = bundled
    data = clips(meta, 3, seed=2024)
    for i in range(len(data)):
        # 256 Gauss-Legendre steps: on the sharp trained model 128 steps leave |delta| near 8% on some clips
        result = attribute(model, data[i]["video"], "integrated_gradients", meta=meta, steps=256)
        assert result.values.shape == data[i]["video"].shape[:3]
        assert abs(result.logit_change) > 1e-3
        assert abs(result.delta) <= 0.05 * abs(result.logit_change), (i, result.delta, result.logit_change)
        np.testing.assert_allclose(result.values.sum(), result.logit_change + result.delta, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_pointing_game_beats_random_on_synthmotion(bundled):
    model, meta = bundled
    report = pointing_game_report(model, meta, num_clips=16, seed=777, method="integrated_gradients", steps=8)
    print(report.format())
    assert report.mean > report.random_mean + 0.03, report.format()
    assert report.win_rate > 0.5, report.format()


@pytest.mark.slow
@pytest.mark.parametrize("method, options", [("integrated_gradients", dict(steps=8)), ("grad_cam", dict(stage=0)),
                                             ("grad_cam", dict(stage=1))], ids=["ig", "grad_cam0", "grad_cam1"])
def test_pointing_game_beats_random_on_real_pixels(bundled, assets, method, options):
    """On photo cut-outs over photos, attributions still point at the moving object (the issue's acceptance)."""
    model, meta = bundled
    report = pointing_game_report(model, meta, num_clips=16, seed=777, method=method, real_fraction=1.0, **options)
    print(report.format())
    assert report.mean > report.random_mean + 0.03, report.format()
    if method == "integrated_gradients":  # Grad-CAM's coarse maps beat random on average, not on most clips
        assert report.win_rate > 0.5, report.format()


@pytest.mark.slow
def test_readme_analysis_snippets_run(bundled, tmp_path, monkeypatch):
    """The README's analysis section runs as written (its snippets load the bundled checkpoint)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Analysis: learned biases and attributions"):].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    for name in ("spatial.png", "spatial.pdf", "spatial.svg", "stage2.png", "biases.html", "ig.mp4", "ig_strip.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert namespace["curve"].shape == (int(namespace["meta"]["num_frames"]),)
