"""Every channel-major mixing kernel against the channels-last gating unit (the reference), in float64:
outputs and gradients of the input, the table and the token bias, plus gradcheck on small shapes (fast mode:
random projections of the Jacobian, so a wrong backward fails it at a fraction of the full check's time)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posmlp_video.models.gating import PositionalGatingUnit, mix_channel_major

# (kind, window, adapt_temporal, (B, T, H, W)) -> the kernel it exercises
CASES = {
    "temporal tiled (frames = 2 windows)": ("temporal", (4,), False, (2, 8, 3, 2)),
    "temporal cropped (frames < window)": ("temporal", (8,), True, (1, 5, 2, 3)),
    "temporal interpolated (frames > window)": ("temporal", (3,), True, (1, 5, 2, 2)),
    "temporal padded (odd frames)": ("temporal", (3,), False, (2, 5, 2, 3)),
    "temporal on a 1 x 1 map (rows)": ("temporal", (4,), False, (2, 4, 1, 1)),
    "spatial whole map": ("spatial", (4, 4), False, (2, 3, 4, 4)),
    "spatial whole map, window larger than the map": ("spatial", (4, 4), False, (1, 2, 3, 3)),
    "spatial tiled": ("spatial", (2, 3), False, (2, 2, 4, 6)),
    "spatial tiled rows, whole width (contiguous)": ("spatial", (2, 5), False, (1, 2, 6, 5)),
    "spatial padded (odd sizes)": ("spatial", (3, 3), False, (2, 2, 5, 4)),
    "joint tiled": ("spatiotemporal", (2, 2, 2), False, (1, 4, 4, 4)),
    "joint whole map": ("spatiotemporal", (2, 3, 3), False, (2, 4, 3, 3)),
    "joint padded (odd sizes)": ("spatiotemporal", (2, 3, 3), False, (1, 3, 4, 5)),
}
DIM, GAMMA = 6, 3


def make_unit(kind: str, window: tuple[int, ...], adapt: bool) -> PositionalGatingUnit:
    unit = PositionalGatingUnit(DIM, kind, window, GAMMA, adapt_temporal=adapt, table_init="trunc_normal").double()
    nn.init.normal_(unit.relative_position_bias_table)  # asymmetric, far from zero: a transposed matrix shows
    nn.init.normal_(unit.token_bias)
    return unit.train()


def to_channel_major(unit: PositionalGatingUnit, x: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 2C) channels-last -> (2C, B*T*H*W): u rows then v rows, each in the unit's channel order."""
    order = unit.channel_order
    u, v = x.reshape(-1, 2 * DIM).chunk(2, -1)
    return torch.cat([u[:, order].t(), v[:, order].t()]).contiguous()


def from_channel_major(unit: PositionalGatingUnit, g: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    out = torch.empty(g.shape[1], DIM, dtype=g.dtype)
    out[:, unit.channel_order] = g.t()
    return out.view(*shape, DIM)


@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_the_channels_last_unit_with_gradients(case):
    kind, window, adapt, (B, T, H, W) = CASES[case]
    unit = make_unit(kind, window, adapt)
    x = torch.randn(B, T, H, W, 2 * DIM, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(B, T, H, W, DIM, dtype=torch.float64)

    expected = unit(x)
    params = [unit.relative_position_bias_table, unit.token_bias]
    ref_grads = torch.autograd.grad((expected * probe).sum(), [x, *params])

    y = to_channel_major(unit, x)
    got = from_channel_major(unit, mix_channel_major([unit], y, (B, T, H, W)), (B, T, H, W))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((got * probe).sum(), [x, *params])
    for name, g, r in zip(("input", "table", "token bias"), grads, ref_grads):
        assert r.abs().sum() > 0, name
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=f"{case}: gradient of the {name}")


class ChannelMajor(nn.Module):
    """The kernel as a module, so gradcheck can pass the table and token bias as inputs (functional_call)."""

    def __init__(self, units: list[PositionalGatingUnit], thw: tuple[int, ...]) -> None:
        super().__init__()
        self.units, self.thw = nn.ModuleList(units), thw

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return mix_channel_major(list(self.units), y, self.thw)


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck(case):
    kind, window, adapt, (B, T, H, W) = CASES[case]
    unit = make_unit(kind, window, adapt)
    module = ChannelMajor([unit], (1, T, H, W))
    y = torch.randn(2 * DIM, T * H * W, dtype=torch.float64, requires_grad=True)
    names = ["units.0.relative_position_bias_table", "units.0.token_bias"]
    params = [p.detach().clone().requires_grad_() for p in (unit.relative_position_bias_table, unit.token_bias)]

    def fn(y, table, bias):
        return torch.func.functional_call(module, dict(zip(names, (table, bias))), (y,))

    assert torch.autograd.gradcheck(fn, (y, *params), fast_mode=True)


def test_two_units_in_one_call_write_their_own_rows():
    """A parallel block's step mixes both branches' slices of one fc1 output in one call."""
    B, T, H, W = 1, 4, 4, 4
    units = [make_unit("temporal", (4,), True), make_unit("spatial", (2, 2), False)]
    y = torch.randn(4 * DIM, B * T * H * W, dtype=torch.float64, requires_grad=True)
    both = mix_channel_major(units, y, (B, T, H, W))
    probe = torch.randn_like(both)
    (both * probe).sum().backward()
    for i, unit in enumerate(units):
        part = y.detach()[2 * DIM * i: 2 * DIM * (i + 1)].requires_grad_()
        alone = mix_channel_major([unit], part, (B, T, H, W))
        torch.testing.assert_close(both[DIM * i: DIM * (i + 1)], alone)
        (alone * probe[DIM * i: DIM * (i + 1)]).sum().backward()
        torch.testing.assert_close(y.grad[2 * DIM * i: 2 * DIM * (i + 1)], part.grad)


@pytest.mark.parametrize("case", ["temporal tiled (frames = 2 windows)", "spatial whole map", "spatial tiled",
                                  "joint padded (odd sizes)"])
def test_inference_kernels_without_autograd_match(case):
    """Without autograd the kernels mix in place (no saved tokens): same outputs."""
    kind, window, adapt, (B, T, H, W) = CASES[case]
    unit = make_unit(kind, window, adapt).eval()
    x = torch.randn(B, T, H, W, 2 * DIM, dtype=torch.float64)
    with torch.no_grad():
        got = from_channel_major(unit, mix_channel_major([unit], to_channel_major(unit, x), (B, T, H, W)),
                                 (B, T, H, W))
        torch.testing.assert_close(got, unit(x), rtol=1e-12, atol=1e-12)


def _saved_bytes(block: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward of one block (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    return sum(storages.values())


@pytest.mark.parametrize("block_type", ["parallel", "sequential", "joint"])
def test_channel_major_training_keeps_no_more_activations_than_channels_last(block_type):
    from posmlp_video.models.posmlp import PosMLPBlock

    block = PosMLPBlock(32, block_type, temporal_window=4, spatial_window=4, gamma=4, adapt_temporal=True).train()
    x = torch.randn(2, 4, 8, 8, 32, requires_grad=True)
    block.layout = "channels_last"
    reference = _saved_bytes(block, x)
    block.layout = "channel_major"
    assert _saved_bytes(block, x) <= reference


def test_grad_checkpointing_and_bf16_autocast_train_through_the_channel_major_layout():
    from posmlp_video.models import create_model

    model = create_model("posmlp_video_xs", num_frames=4, img_size=32, table_init="trunc_normal").train()
    x, y = torch.randn(2, 3, 4, 32, 32), torch.tensor([1, 2])

    def grads(checkpointing: bool, bf16: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.set_grad_checkpointing(checkpointing)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return {n: p.grad.float().clone() for n, p in model.named_parameters()}

    plain, checkpointed, bf16 = grads(False, False), grads(True, False), grads(False, True)
    for name, g in plain.items():
        torch.testing.assert_close(checkpointed[name], g, rtol=1e-4, atol=1e-6, msg=name)
        assert bf16[name].dtype == torch.float32
    tables = [n for n in plain if n.endswith("bias_table")]
    flat = torch.cat([plain[n].flatten() for n in tables])
    flat_bf16 = torch.cat([bf16[n].flatten() for n in tables])
    assert torch.nn.functional.cosine_similarity(flat, flat_bf16, dim=0) > 0.95
