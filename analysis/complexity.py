"""Parameters and FLOPs per stage and per unit kind, counted by torch's `FlopCounterMode` on a real forward.

FLOPs count multiply-adds as 2 (torch's convention) for matmuls, convolutions and the gating units' einsum
(the token mixing); elementwise work (norms, GELU, gating products) is not counted, as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from analysis.biases import branches
from analysis.errors import AnalysisError

COLUMNS = ("part", "params", "flops", "mixing_params", "mixing_flops")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def complexity_table(model: nn.Module, num_frames: int | None = None,
                     input_size: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Rows ``{part, params, flops, mixing_params, mixing_flops}`` for one clip of the model's input size.

    Parts: ``stem``, then per stage ``stage i`` (everything in it), ``stage i downsample`` and one row per
    unit kind present (``stage i temporal`` / ``spatial`` / ``spatiotemporal``: all branches of that kind,
    with the gating units' own tables and token mixing in the ``mixing_*`` columns), then ``head`` (final
    norm and classifier) and ``total``.
    """
    stages = getattr(model, "stages", None)
    if stages is None:
        raise AnalysisError(f"{type(model).__name__} is not a PosMLP-Video model (no .stages)")
    T = int(num_frames or model.num_frames)
    H, W = (int(s) for s in (input_size or model.img_size))
    x = torch.zeros(1, model.config["in_chans"], T, H, W)
    root = type(model).__name__
    was_training = model.training
    model.eval()
    layout = model.stages[0].blocks[0].layout
    model.set_layout("channels_last")  # each branch and gate runs as its own module, so FLOPs are attributed to it
    try:
        with FlopCounterMode(display=False, depth=None) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        model.set_layout(layout)
    counts = counter.get_flop_counts()

    def flops(name: str) -> int:
        return int(sum(counts.get(f"{root}.{name}" if name else root, {}).values()))

    total_mixing = [0, 0]
    rows = [dict(part="stem", params=_params(model.stem), flops=flops("stem"), mixing_params=0, mixing_flops=0)]
    per_stage: list[dict[str, dict[str, int]]] = [{} for _ in stages]
    for i, j, attr, branch in branches(model):
        row = per_stage[i].setdefault(branch.gate.kind, dict(params=0, flops=0, mixing_params=0, mixing_flops=0))
        name = f"stages.{i}.blocks.{j}.{attr}"
        row["params"] += _params(branch)
        row["flops"] += flops(name)
        row["mixing_params"] += _params(branch.gate)
        row["mixing_flops"] += flops(f"{name}.gate")
    for i, (stage, units) in enumerate(zip(stages, per_stage)):
        mixing = [sum(u[k] for u in units.values()) for k in ("mixing_params", "mixing_flops")]
        total_mixing = [a + b for a, b in zip(total_mixing, mixing)]
        rows.append(dict(part=f"stage {i}", params=_params(stage), flops=flops(f"stages.{i}"),
                         mixing_params=mixing[0], mixing_flops=mixing[1]))
        if _params(stage.downsample) or flops(f"stages.{i}.downsample"):  # stage 0 has none: no all-zero row
            rows.append(dict(part=f"stage {i} downsample", params=_params(stage.downsample),
                             flops=flops(f"stages.{i}.downsample"), mixing_params=0, mixing_flops=0))
        rows += [dict(part=f"stage {i} {kind}", **row) for kind, row in units.items()]
    rows.append(dict(part="head", params=_params(model.norm) + _params(model.head), flops=flops("head"),
                     mixing_params=0, mixing_flops=0))
    rows.append(dict(part="total", params=_params(model), flops=counter.get_total_flops(),
                     mixing_params=total_mixing[0], mixing_flops=total_mixing[1]))
    return rows


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def format_complexity(rows: list[dict[str, Any]]) -> str:
    """The complexity rows as a Markdown table with human-readable counts (for the app's model tab)."""
    lines = ["| part | params | FLOPs | mixing params | mixing FLOPs |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['part']} | {_human(r['params'])} | {_human(r['flops'])} | {_human(r['mixing_params'])} | "
              f"{_human(r['mixing_flops'])} |" for r in rows]
    return "\n".join(lines)
