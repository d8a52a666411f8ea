"""The converted authors' model reproduces their outputs; their S16 keys load strictly."""

from __future__ import annotations

import json

import pytest
import timm
import torch

import posmlp_video  # noqa: F401  (registers the variants)
from posmlp_video.convert import convert_state_dict, from_official, infer_config
from tests.conftest import DATA


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("layout,grad", [("channels_last", False), ("channel_major", False), ("channel_major", True)])
def test_reference_logits_and_every_stage(official_small, layout, grad):
    """Through the channels-last definition, the channel-major plain path and the training path (autograd)."""
    model = from_official(official_small["checkpoint"])
    model.set_layout(layout)
    x = official_small["input"].clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        logits = model(x)
        stages = model.forward_intermediates(x, intermediates_only=True, output_fmt="NTHWC")
    if grad:
        logits.sum().backward()
        assert x.grad is not None and all(p.grad is not None for p in model.parameters() if p.requires_grad)
        logits, stages = logits.detach(), [s.detach() for s in stages]
    assert rel_err(logits, official_small["logits"]) <= 1e-5
    assert len(stages) == len(official_small["stages"]) == 4
    for ours, (name, theirs) in zip(stages, official_small["stages"].items()):
        assert ours.shape == theirs.shape, name
        assert rel_err(ours, theirs) <= 1e-5, name


def test_reference_config_is_read_from_cfg_and_matches_shapes(official_small):
    model = from_official(official_small["checkpoint"])
    cfg = official_small["config"]
    assert model.config["embed_dims"] == cfg["dims"]
    assert model.config["depths"] == cfg["layers"]
    assert model.config["spatial_windows"] == cfg["win"]
    assert model.config["gammas"] == cfg["gamma"]
    assert model.num_frames == cfg["frames"] and model.num_classes == cfg["classes"]
    assert not model.training


def test_reference_without_cfg_infers_the_architecture(official_small):
    raw = {f"module.{k}": v for k, v in official_small["checkpoint"]["model_state"].items()}
    for layout in (raw, {"model": raw}, {"state_dict": raw}):
        model = from_official(layout)
        with torch.no_grad():
            assert rel_err(model(official_small["input"]), official_small["logits"]) <= 1e-5


def test_s16_keys_convert_and_load_strictly():
    spec = json.loads((DATA / "official_s16_keys.json").read_text())
    state = {k: torch.zeros(shape) for k, shape in spec["keys"].items()}
    assert infer_config(state) == dict(
        num_classes=174, in_chans=3, num_frames=16, embed_dims=[72, 144, 288, 576], depths=[3, 4, 9, 3],
        spatial_windows=[14, 14, 14, 7], gammas=[8, 16, 32, 64],
    )
    model = timm.create_model("posmlp_video_s", num_classes=174)
    model.load_state_dict(convert_state_dict(state), strict=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == spec["params"] == 13_509_537
    # every authors' parameter/buffer maps to exactly one of ours (index buffers are rebuilt)
    kept = [k for k in spec["keys"] if not k.endswith("relative_position_index")]
    assert len(convert_state_dict(state)) == len(kept) == len(model.state_dict())


@pytest.mark.slow
def test_s16_flops_match_the_authors_count():
    from torch.utils.flop_counter import FlopCounterMode

    model = timm.create_model("posmlp_video_s").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 16, 224, 224))
    assert counter.get_total_flops() / 1e9 == pytest.approx(80.34, abs=0.01)
