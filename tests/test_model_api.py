"""Shapes, gradients and the timm model API for every variant and block type."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import group_parameters
from timm.optim import param_groups_weight_decay

import posmlp_video  # noqa: F401
from posmlp_video.models import BLOCK_TYPES, VARIANTS
from posmlp_video.models.gating import PositionalGatingUnit


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("block_type", BLOCK_TYPES)
def test_shapes_and_every_table_gets_a_gradient(variant, block_type):
    # odd sizes: 3 frames (model built for 4), 40x56 input -> stage maps 10x14, 5x7, 3x4, 2x2. Built for 4 frames,
    # not the variant's 16: the paths are the same (the temporal window adapts to the clip, spatial windows are
    # the variant's), but a joint unit's (N x N) index over a 16 x 14 x 14 window alone is 79 MB and seconds to build
    model = timm.create_model(variant, num_classes=5, block_types=block_type, num_frames=4)
    x = torch.randn(2, 3, 3, 40, 56)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.square().sum().backward()
    units = [m for m in model.modules() if isinstance(m, PositionalGatingUnit)]
    expected_kinds = {"parallel": {"temporal", "spatial"}, "sequential": {"temporal", "spatial"},
                      "joint": {"spatiotemporal"}, "spatial": {"spatial"}, "temporal": {"temporal"}}[block_type]
    assert {u.kind for u in units} == expected_kinds
    for unit in units:
        for p in (unit.relative_position_bias_table, unit.token_bias):
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_per_stage_block_types_and_tiled_temporal_windows():
    model = timm.create_model("posmlp_video_xs", block_types=["sequential", "joint", "parallel", "temporal"],
                              temporal_windows=[4, 4, 8, 8])
    assert [s.blocks[0].block_type for s in model.stages] == ["sequential", "joint", "parallel", "temporal"]
    assert model.stages[0].blocks[0].temporal.gate.adapt_temporal is False
    assert model.stages[2].blocks[0].temporal.gate.adapt_temporal is True
    assert model(torch.randn(1, 3, 10, 64, 64)).shape == (1, 12)
    with pytest.raises(ValueError, match="one value per stage"):
        timm.create_model("posmlp_video_xs", block_types=["parallel", "joint"])
    with pytest.raises(ValueError, match="block_type"):
        timm.create_model("posmlp_video_xs", block_types="diagonal")


def test_forward_intermediates_features_and_head():
    model = timm.create_model("posmlp_video_xs").eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        only = model.forward_intermediates(x, intermediates_only=True)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    assert [tuple(t.shape) for t in only] == [(2, 32, 8, 16, 16), (2, 64, 8, 8, 8), (2, 128, 8, 4, 4), (2, 256, 8, 2, 2)]
    torch.testing.assert_close(final, feats)
    torch.testing.assert_close(inter[-1], feats)
    assert pooled.shape == (2, 256)
    torch.testing.assert_close(model.head(pooled), logits)
    # the head is LayerNorm -> mean over all tokens -> Linear
    tokens = model.norm(feats.flatten(2).transpose(1, 2))
    torch.testing.assert_close(model.head(tokens.mean(1)), logits)
    assert len(model.forward_intermediates(x, indices=2, intermediates_only=True)) == 2
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.randn(2, 8, 64, 64))


def test_features_only_through_timm():
    model = timm.create_model("posmlp_video_xs", features_only=True, out_indices=(1, 3))
    outs = model(torch.randn(1, 3, 4, 64, 64))
    assert [o.shape[1] for o in outs] == model.feature_info.channels() == [64, 256]


def test_reset_classifier_and_no_weight_decay_and_group_matcher():
    model = timm.create_model("posmlp_video_xs")
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 8, 64, 64)).shape == (1, 7) and model.config["num_classes"] == 7
    nwd = model.no_weight_decay()
    tables = {n for n, _ in model.named_parameters() if "relative_position_bias_table" in n or "token_bias" in n}
    assert nwd == tables and len(tables) == 2 * 2 * sum(model.config["depths"])
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=nwd)
    decayed = {id(p) for p in groups[1]["params"]}
    assert all(id(p) not in decayed for n, p in model.named_parameters() if n in tables)
    layers = group_parameters(model, model.group_matcher())
    assert sum(len(v) for v in layers.values()) == len(list(model.parameters()))


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(1)
    a = timm.create_model("posmlp_video_xs", table_init="trunc_normal")
    b = timm.create_model("posmlp_video_xs", table_init="trunc_normal")
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 8, 64, 64)
    a(x).sum().backward()
    b(x).sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=n)


def test_default_init_tables_zero_and_linear_trunc_normal():
    model = timm.create_model("posmlp_video_xs")
    for unit in (m for m in model.modules() if isinstance(m, PositionalGatingUnit)):
        assert unit.relative_position_bias_table.abs().sum() == 0 and unit.token_bias.abs().sum() == 0
    fc = model.stages[3].blocks[0].spatial.fc1
    # timm's trunc_normal_(std=.02) truncates at +-2 (absolute), as in the authors' code: effectively N(0, .02)
    assert fc.bias.abs().sum() == 0 and abs(fc.weight.std().item() - 0.02) < 0.001
    assert model.stages[0].blocks[0].spatial.norm.weight.eq(1).all()
    other = timm.create_model("posmlp_video_xs", table_init="trunc_normal")
    assert other.stages[0].blocks[0].spatial.gate.relative_position_bias_table.abs().sum() > 0


def test_drop_path_rises_linearly():
    model = timm.create_model("posmlp_video_s", drop_path_rate=0.1)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.1, 19))


@pytest.mark.parametrize("block_type", ["parallel", "joint"])
def test_sized_on_meta_then_materialised_computes_the_same_function(block_type):
    """The usual large-model route: build on ``meta``, ``to_empty``, load the weights. The index and channel
    order are not in the state dict, so they are rebuilt on the new device (not left uninitialised), and units
    with one window keep sharing one index there too."""
    torch.manual_seed(0)
    reference = timm.create_model("posmlp_video_xs", block_types=block_type).eval()
    with torch.device("meta"):
        model = timm.create_model("posmlp_video_xs", block_types=block_type)
    model = model.to_empty(device="cpu").eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    gates = [m for m in model.modules() if isinstance(m, PositionalGatingUnit)]
    by_window = {}
    for gate in gates:
        assert gate.relative_position_index is by_window.setdefault(gate.window, gate.relative_position_index)
    assert len(by_window) < len(gates)  # some units do share
