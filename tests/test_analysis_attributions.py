"""Attributions on toy models whose important region is known, Grad-CAM against a plain-autograd version,
and clear errors for bad input."""

import numpy as np
import pytest
import timm
import torch
from torch import nn

import posmlp_video  # noqa: F401
from analysis import AnalysisError, attribute

T, H, W = 4, 32, 32
META = dict(input_size=[H, W], resize_short=H, mean=[0.5] * 3, std=[0.25] * 3, class_names=["region", "none"])
REGION = (slice(2, 4), slice(8, 16), slice(16, 24))  # frames 2-3, rows 8-15, columns 16-23


class RegionModel(nn.Module):
    """Logit 0 = sum of tanh over REGION of the input (all channels); logit 1 = a constant."""

    def forward(self, x):
        region = x[(slice(None), slice(None), *REGION)]
        return torch.stack([torch.tanh(region).sum(dim=(1, 2, 3, 4)), torch.full_like(x[:, 0, 0, 0, 0], -1.0)], 1)


class FrameModel(nn.Module):
    """Logit 0 = mean of frame 1 times 3 frame 3: only frames 1 and 3 matter, frame 3 three times as much."""

    def forward(self, x):
        score = x[:, :, 1].mean(dim=(1, 2, 3)) + 3 * x[:, :, 3].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], 1)


def bright_clip(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(150, 256, size=(T, H, W, 3), dtype=np.uint8)


def in_region():
    inside = np.zeros((T, H, W), bool)
    inside[REGION] = True
    return inside


def test_occlusion_finds_the_known_region():
    result = attribute(RegionModel(), bright_clip(), "occlusion", meta=META, patch=(2, 8, 8))
    assert result.values.shape == (T, H, W) and result.target == 0 and result.target_name == "region"
    inside = in_region()
    assert np.all(result.values[inside] > 0) and np.all(result.values[~inside] == 0)
    # occluding the region with the baseline (zeros) removes exactly the logit change
    assert result.values[inside].mean() == pytest.approx(result.logit_change, rel=1e-5)
    assert result.delta is None and result.clip.dtype == np.uint8 and result.clip.shape == (T, H, W, 3)


def test_integrated_gradients_complete_and_local():
    result = attribute(RegionModel(), bright_clip(), "integrated_gradients", meta=META, steps=16,
                       internal_batch_size=4)
    inside = in_region()
    assert np.all(result.values[~inside] == 0) and np.all(result.values[inside] > 0)
    assert abs(result.values.sum() - result.logit_change - result.delta) < 1e-3  # Captum's delta definition
    assert result.relative_delta < 0.01
    assert result.temporal_importance().tolist()[:2] == [0.0, 0.0]
    smoothed = attribute(RegionModel(), bright_clip(), target=0, meta=META, steps=4, noise_tunnel=2, nt_stdev=0.05)
    assert smoothed.method == "integrated_gradients+noise_tunnel" and smoothed.delta is not None
    assert np.abs(smoothed.values[~inside]).max() == 0


def test_saliency_and_black_baseline():
    result = attribute(RegionModel(), bright_clip(), "saliency", meta=META, baseline="black")
    inside = in_region()
    assert np.all(result.values[~inside] == 0) and np.all(result.values[inside] > 0)
    black = (0 - 0.5) / 0.25  # a black pixel after normalisation
    x = (bright_clip()[REGION[0], REGION[1], REGION[2]] / 255.0 - 0.5) / 0.25
    expected = np.tanh(x).sum() - np.tanh(black) * x.size
    assert result.logit_change == pytest.approx(expected, rel=1e-4)


def test_frame_occlusion_gives_a_per_frame_curve():
    clip = bright_clip()
    result = attribute(FrameModel(), clip, "frame_occlusion", meta=META)
    curve = result.temporal_importance()
    x = (clip / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(curve, [0, x[1].mean(), 0, 3 * x[3].mean()], rtol=1e-4, atol=1e-6)
    assert int(np.argmax(curve)) == 3
    assert np.ptp(result.values[3]) < 1e-6  # one score per frame, spread evenly


def test_grad_cam_matches_plain_autograd():
    torch.manual_seed(0)
    model = timm.create_model("posmlp_video_xs", num_classes=3, table_init="trunc_normal").eval()
    meta = dict(META, input_size=[32, 32], resize_short=32, class_names=None)
    clip = bright_clip(1)
    result = attribute(model, clip, "grad_cam", target=2, meta=meta, stage=2)
    # independent Grad-CAM: stage output A (channels-last), weights = mean gradient over T,H,W, ReLU, upsample
    x = torch.from_numpy(((clip / 255.0 - 0.5) / 0.25).astype(np.float32)).permute(3, 0, 1, 2)[None]
    saved = {}
    handle = model.stages[2].register_forward_hook(lambda m, i, o: saved.setdefault("a", o))
    logit = model(x)[0, 2]
    handle.remove()
    (grad,) = torch.autograd.grad(logit, saved["a"])
    cam = torch.relu((grad.mean(dim=(1, 2, 3), keepdim=True) * saved["a"]).sum(-1))[:, None]
    cam = nn.functional.interpolate(cam, size=(T, H, W), mode="trilinear")[0, 0]
    np.testing.assert_allclose(result.values, cam.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert result.values.shape == (T, H, W) and result.values.max() > 0
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_bad_input_gives_one_line_errors():
    model = RegionModel()
    clip = bright_clip()
    cases = [
        (dict(video=clip, method="lime"), "unknown attribution method 'lime'"),
        (dict(video=clip.astype(np.float32)), "expected a uint8 clip"),
        (dict(video=clip[0]), "expected a uint8 clip"),
        (dict(video=clip.tolist()), "expected a uint8 numpy clip"),
        (dict(video=clip, target=5), "target 5 out of range"),
        (dict(video=clip, baseline="white"), "unknown baseline"),
        (dict(video=clip, method="saliency", steps=3), "unknown option"),
        (dict(video=clip, method="occlusion", patch=(0, 8, 8)), "patch must be"),
        (dict(video=clip, steps=0), "steps must be a positive integer"),
        (dict(video=clip, method="occlusion", noise_tunnel=2), "unknown option.*noise_tunnel"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AnalysisError, match=message) as info:
            attribute(model, meta=META, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(AnalysisError, match="needs meta="):
        attribute(model, clip)
    with pytest.raises(AnalysisError, match="grad_cam needs a PosMLP-Video"):
        attribute(model, clip, "grad_cam", meta=META)
    xs = timm.create_model("posmlp_video_xs", num_classes=2)
    with pytest.raises(AnalysisError, match="stage 4 out of range"):
        attribute(xs, clip, "grad_cam", meta=META, stage=4)


class SteepModel(nn.Module):
    """Logit 0 = sum over REGION of sigmoid(150 (x - 0.5)): on a uniform clip every pixel's integrand is one
    narrow peak at the same point of the path, which 16 integration points miss. Counts its forward calls."""

    calls = 0

    def forward(self, x):
        self.calls += 1
        region = x[(slice(None), slice(None), *REGION)]
        return torch.stack([torch.sigmoid(150 * (region - 0.5)).sum(dim=(1, 2, 3, 4)),
                            torch.zeros_like(x[:, 0, 0, 0, 0])], 1)


UNIFORM = np.full((T, H, W, 3), 200, np.uint8)


def _completeness_error(values: np.ndarray) -> float:
    """|sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)| on UNIFORM, f computed here (baseline 0)."""
    x = (200 / 255 - 0.5) / 0.25
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    change = in_region().sum() * 3 * (sigmoid(150 * (x - 0.5)) - sigmoid(150 * (0 - 0.5)))
    return abs(values.sum() - change) / abs(change)


def test_integrated_gradients_doubles_the_steps_until_complete():
    options = dict(meta=META, steps=16, internal_batch_size=16)
    once = attribute(SteepModel(), UNIFORM, **options)
    assert _completeness_error(once.values) > 0.2 and once.tries == ()  # the app's default 16 steps miss
    model, seen = SteepModel(), []
    result = attribute(model, UNIFORM, **options, max_error=0.05, max_steps=256,
                       progress=lambda done, total: seen.append((done, total)))
    steps = [s for s, _ in result.tries]
    assert steps == [16 * 2 ** i for i in range(len(steps))] and len(steps) >= 3
    assert result.options["steps"] == steps[-1] and result.relative_delta <= 0.05
    assert all(error > 0.05 for _, error in result.tries[:-1])
    assert _completeness_error(result.values) <= 0.05  # independent of Captum's delta
    assert _completeness_error(result.values) == pytest.approx(result.relative_delta, abs=1e-3)
    # progress counted every real forward pass: the logits once, then each run's batches and its two ends
    assert model.calls == 1 + sum(-(-s // 16) + 2 for s in steps)
    assert [done for done, _ in seen] == list(range(1, model.calls + 1)) and seen[-1] == (model.calls, model.calls)
    capped = attribute(SteepModel(), UNIFORM, **options, max_error=0.05, max_steps=32)
    assert [s for s, _ in capped.tries] == [16, 32] and capped.options["steps"] == 32  # stops at the cap

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:  # the app's Cancel, at the first pass of the second run
        if done == 1 + (1 + 2) + 1:
            raise Stop

    model = SteepModel()
    with pytest.raises(Stop):
        attribute(model, UNIFORM, **options, max_error=0.05, progress=stop)
    assert model.calls == 5 and not model._forward_hooks
    with pytest.raises(AnalysisError, match="max_error must be a positive number"):
        attribute(SteepModel(), UNIFORM, meta=META, max_error=0)
