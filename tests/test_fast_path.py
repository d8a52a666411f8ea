"""The inference fast path computes what the model computes (checked, not timed: see benchmarks/models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.convert import from_official
from posmlp_video.data.synthmotion import SynthMotion
from posmlp_video.fast import optimize_for_inference
from posmlp_video.models import create_model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    """16 normalised SynthMotion clips at the XS model's input (8 x 64 x 64)."""
    data = SynthMotion(16, seed=7, num_frames=8, size=64)
    video = torch.from_numpy(np.stack([data[i]["video"] for i in range(len(data))]))
    return (video.permute(0, 4, 1, 2, 3).float() / 255 - 0.45) / 0.225


def test_faithful_fast_path_matches_the_authors_reference(official_small):
    model = from_official(official_small["checkpoint"])
    fast = optimize_for_inference(model)
    assert rel_err(fast(official_small["input"]), official_small["logits"]) <= 1e-5


@pytest.mark.parametrize("block_types", ["parallel", ("joint", "sequential", "temporal", "spatial")])
def test_fp32_fast_path_matches_the_model(block_types, clips):
    # temporal windows smaller than the clip (tiling), larger (interpolated) and padded maps (72 x 80)
    model = create_model("posmlp_video_xs", block_types=block_types, temporal_windows=(4, 8, 3, 8),
                         table_init="trunc_normal").eval()
    x = torch.nn.functional.interpolate(clips[:4], size=(10, 72, 80))
    with torch.no_grad():
        expected = model(x)
    got = optimize_for_inference(model)(x)
    assert rel_err(got, expected) <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.filterwarnings("ignore:this CPU lacks the AVX-512")
def test_bf16_agrees_with_fp32(clips):
    model = create_model("posmlp_video_xs", table_init="trunc_normal").eval()
    with torch.no_grad():
        expected = model(clips)
    got = optimize_for_inference(model, dtype=torch.bfloat16)(clips)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # an untrained model's logits are nearly tied, so a loose agreement bound; the benchmark reports the real one
    assert rel_err(got, expected) <= 0.05
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.75


@pytest.mark.parametrize("native", [True, False])
def test_bf16_warns_only_where_the_cpu_lacks_bf16_kernels(native, monkeypatch, recwarn):
    import posmlp_video.fast as fast

    monkeypatch.setattr(fast, "cpu_has_fast_bf16", lambda: native)
    model = create_model("posmlp_video_xs")
    optimize_for_inference(model)  # float32 never warns
    optimize_for_inference(model, dtype=torch.bfloat16)
    messages = [str(w.message) for w in recwarn]
    assert any("bf16 runs on slow fallback paths" in m for m in messages) != native


def test_cpu_bf16_detection_agrees_with_the_cpu_flags():
    from pathlib import Path

    from posmlp_video.fast import cpu_has_fast_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or "flags" not in cpuinfo.read_text():
        pytest.skip("no x86 CPU flags to compare with")
    flags = set(cpuinfo.read_text().split())

    # oneDNN's bf16 kernels need AVX-512 (BW, VL, DQ); an AVX2-only CPU must be reported as slow
    if "avx512bw" not in flags:
        assert not cpu_has_fast_bf16()
    if {"avx512bw", "avx512vl", "avx512dq"} <= flags:
        assert cpu_has_fast_bf16()


def test_fast_copy_leaves_the_model_alone_and_runs_without_autograd():
    model = create_model("posmlp_video_xs").train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not fast(torch.randn(1, 3, 8, 64, 64)).requires_grad


def test_cached_mixing_matrices_follow_parameter_updates():
    model = create_model("posmlp_video_xs", table_init="trunc_normal").eval()
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.stages[0].blocks[0].spatial.gate.relative_position_bias_table.add_(0.5)
        after = model(x)
        model.load_state_dict(create_model("posmlp_video_xs", table_init="trunc_normal").state_dict())
        reloaded = model(x)
    assert not torch.allclose(before, after)
    fresh = create_model("posmlp_video_xs", table_init="trunc_normal").eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(reloaded, fresh(x))
    # training mode never uses the cache: gradients reach every table
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.endswith("bias_table"))


def test_a_model_built_under_inference_mode_runs():
    with torch.inference_mode():
        model = create_model("posmlp_video_xs").eval()
        x = torch.randn(1, 3, 8, 64, 64)
        torch.testing.assert_close(optimize_for_inference(model)(x), model(x), rtol=1e-4, atol=1e-5)


def test_bundled_checkpoint_fast_path_and_channel_major_agree_with_the_channels_last_model(clips):
    """The bundled XS model mixes whole 8 x 8, 4 x 4 and 2 x 2 maps (stages 2-4) and tiles 16 x 16 (stage 1): the
    channel-major layout (training, plain inference) and the fast path against the channels-last definition."""
    model, _ = load_checkpoint()
    model.eval()
    x = clips[:8]
    with torch.no_grad():
        model.set_layout("channels_last")
        expected = model(x)
        model.set_layout("channel_major")
        plain = model(x)
    assert rel_err(plain, expected) <= 1e-5
    fast = optimize_for_inference(model)(x)
    assert rel_err(fast, expected) <= 1e-5
    assert torch.equal(fast.argmax(1), expected.argmax(1))
