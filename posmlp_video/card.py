"""What a checkpoint knows, stated once: the ``card`` block of its metadata.

A checkpoint's metadata (see `posmlp_video.checkpoint`) may carry ``meta["card"]``, a JSON object that the
app's header, ``predict``, ``python -m posmlp_video card`` and ``MODEL_CARD.md`` all read, so what a model
claims about itself switches with the checkpoint. Every field is optional; readers show what is there:

- ``summary`` (str): one or two sentences: what the model recognises, from what input.
- ``training_data`` (str): what it was trained on (and, as important, what it never saw).
- ``data_sources`` (list of {``name``, ``version``, ``licence``, ``use``}): every asset behind the training
  or evaluation data, with its licence.
- ``recipe`` (str): the command that trained it; ``training`` ({``wall_time_s``, ``machine``}): where.
- ``evaluation`` (list of {``name``, ``n``, ``top1``, ``top5``, optional ``per_class``: {class: {``n``,
  ``top1``}}, optional ``pair_consistency``}): accuracies in percent, each on a named data set.
- ``confidence`` ({``min_prob``, ``how``}): below ``min_prob`` (max softmax probability) a prediction is
  shown as uncertain; ``how`` says where the threshold was measured (see `calibrate_min_prob`).
- ``intended_use`` (str) and ``limits`` (str): what it is for and what it cannot know.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

CARD_KEY = "card"


def card_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's card (an empty dict for checkpoints that carry none, e.g. converted authors' ones)."""
    card = meta.get(CARD_KEY)
    return card if isinstance(card, dict) else {}


def scope_summary(meta: dict[str, Any]) -> str:
    """One short paragraph on what this checkpoint knows: classes, input, training data, real-footage accuracy.

    Built from the metadata only, so it is true of whichever checkpoint is loaded.
    """
    card = card_of(meta)
    names = meta.get("class_names", [])
    h, w = meta.get("input_size", ("?", "?"))
    parts = [card.get("summary") or f"{meta.get('model', 'PosMLP-Video')} checkpoint."]
    parts.append(f"{len(names)} classes; input {meta.get('num_frames', '?')} frames at {h}x{w}.")
    if card.get("training_data"):
        parts.append(f"Trained on: {card['training_data']}")
    for ev in card.get("evaluation", []):
        parts.append(f"{ev['name']}: {ev['top1']:.1f}% top-1 (n={ev['n']}).")
    return " ".join(parts)


def min_prob(meta: dict[str, Any]) -> float | None:
    """The card's calibrated max-probability threshold (``confidence.min_prob``), or None when it has none."""
    value = card_of(meta).get("confidence", {}).get("min_prob")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def is_uncertain(meta: dict[str, Any], top_probability: float) -> bool | None:
    """Whether a prediction falls below the checkpoint's calibrated threshold (None: no threshold to judge by)."""
    threshold = min_prob(meta)
    return None if threshold is None else top_probability < threshold


def calibrate_min_prob(max_probs: Sequence[float], correct: Sequence[bool], target_accuracy: float = 0.9) -> float:
    """Smallest max-probability threshold above which held-out predictions are right >= `target_accuracy`.

    The threshold is the lowest confidence p such that the held-out predictions at least p confident are
    right at least `target_accuracy` of the time, so "uncertain" below it marks where the model was measured
    to be unreliable. 1.0 if no threshold reaches the target.
    """
    if len(max_probs) != len(correct) or not len(max_probs):
        raise ValueError("calibrate_min_prob needs one correctness flag per probability, and at least one")
    pairs = sorted(zip(max_probs, correct), key=lambda p: -p[0])
    best, hits = 1.0, 0
    for i, (p, ok) in enumerate(pairs, 1):
        hits += bool(ok)
        if hits / i >= target_accuracy:
            best = float(p)
    return best


# --------------------------------------------------------------------------- MODEL_CARD.md

CARD_FILE = "MODEL_CARD.md"
UNKNOWN = "unknown (not stated in the checkpoint's metadata)"


def model_flops(model: nn.Module, num_frames: int, input_size: Sequence[int]) -> int:
    """Forward FLOPs of one clip (FlopCounterMode: 2 per multiply-add; elementwise work not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.zeros(1, model.config["in_chans"], num_frames, *(int(s) for s in input_size), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def _or_unknown(value: Any) -> str:
    return str(value).strip() if value not in (None, "", [], {}) else UNKNOWN


def _seq(values: Sequence[Any] | None) -> str:
    return "/".join(str(v) for v in values) if values else "?"


def _evaluation_lines(meta: dict[str, Any], card: dict[str, Any]) -> list[str]:
    lines = []
    if card.get("evaluation"):
        lines += ["| data set | clips | top-1 % | top-5 % |", "|---|---:|---:|---:|"]
        for ev in card["evaluation"]:
            top5 = f"{ev['top5']:.2f}" if ev.get("top5") is not None else "-"
            lines.append(f"| {ev['name']} | {ev['n']} | {ev['top1']:.2f} | {top5} |")
        lines.append("")
        for ev in card["evaluation"]:
            if ev.get("pair_consistency") is not None:
                lines.append(f"- {ev['name']}: pair consistency {ev['pair_consistency']}")
            weakest = sorted((ev.get("per_class") or {}).items(), key=lambda kv: kv[1]["top1"])[:3]
            if weakest:
                shown = ", ".join(f"{name} {row['top1']:.1f}% (n={row['n']})" for name, row in weakest)
                lines.append(f"- {ev['name']}, weakest classes: {shown}")
    if meta.get("val_top1") is not None:
        lines.append(f"- Validation during training (the checkpoint's own validation set): top-1 "
                     f"{meta['val_top1']:.2f}%, top-5 {meta.get('val_top5', float('nan')):.2f}% at epoch "
                     f"{meta.get('epoch', '?')}.")
    return lines or [UNKNOWN]


def model_card_markdown(meta: dict[str, Any], model: nn.Module | None = None) -> str:
    """A MODEL_CARD.md for a checkpoint, from its metadata only: what is not recorded is stated as unknown.

    `model` (built from ``meta["model_kwargs"]`` when None; weights do not matter) gives the parameter
    count and the FLOPs of one clip at the checkpoint's input size.
    """
    from posmlp_video.models import PosMLPVideo

    card = card_of(meta)
    model = model if model is not None else PosMLPVideo(**meta["model_kwargs"])
    kwargs = meta.get("model_kwargs", {})
    names = list(meta.get("class_names", []))
    t, (h, w) = int(meta["num_frames"]), (int(s) for s in meta["input_size"])
    params = sum(p.numel() for p in model.parameters())
    flops = model_flops(model, t, (h, w))
    name = meta.get("model", "posmlp_video")
    out = [f"# Model card: {name}", "", _or_unknown(card.get("summary")), ""]
    out += ["## Architecture", "",
            f"- Model: {name} (PosMLP-Video: positional gating units mixing tokens over time and space)",
            f"- Parameters: {params:,}",
            f"- FLOPs per clip: {flops / 1e9:.3f} GFLOPs ({flops:,}; FlopCounterMode, 2 per multiply-add) "
            f"at {t} x {h} x {w}",
            f"- Stage widths {_seq(kwargs.get('embed_dims'))}, depths {_seq(kwargs.get('depths'))}, spatial "
            f"windows {_seq(kwargs.get('spatial_windows'))}, gating groups {_seq(kwargs.get('gammas'))}, blocks "
            f"{_seq(kwargs.get('block_types'))}", ""]
    out += ["## Input", "",
            f"- {t} frames at {h} x {w} pixels, RGB, shape (batch, 3, {t}, {h}, {w})",
            f"- Sampling: {meta.get('sampling', '?')} (rate {meta.get('sampling_rate', '?')}); short side resized "
            f"to {meta.get('resize_short', '?')}, centre crop {h} x {w}",
            f"- Normalisation: mean {meta.get('mean')}, std {meta.get('std')}", ""]
    out += [f"## Classes ({len(names)})", ""] + [f"{i}. {n}" for i, n in enumerate(names)] + [""]
    sources = card.get("data_sources") or []
    out += ["## Training data", "", _or_unknown(card.get("training_data")), ""]
    if meta.get("source"):
        out += [f"Source of the weights: {meta['source']}.", ""]
    out += ["## Data licences", ""]
    if sources:
        out += ["| data | version | licence | used for |", "|---|---|---|---|"]
        out += [f"| {s.get('name', '?')} | {s.get('version', '?')} | {s.get('licence', UNKNOWN)} | {s.get('use', '?')} |"
                for s in sources]
    else:
        out.append(UNKNOWN)
    out += ["", "## Training recipe", ""]
    if card.get("recipe"):
        out.append(f"`{card['recipe']}`")
    if isinstance(meta.get("recipe"), dict):
        r = meta["recipe"]
        tr, op = r.get("train", {}), r.get("optim", {})
        out.append(f"- Config: {r.get('model', {}).get('name')} from {r.get('model', {}).get('init') or 'scratch'}; "
                   f"data {r.get('data', {}).get('train')}; {tr.get('epochs')} epochs, batch {tr.get('batch_size')}, "
                   f"{op.get('opt')} lr {op.get('lr')} (at batch {op.get('lr_batch_size')}), weight decay "
                   f"{op.get('weight_decay')}, amp {tr.get('amp')}, freeze {tr.get('freeze', 'none')}")
    training = card.get("training") or {}
    if training:
        out.append(f"- Trained in {training.get('wall_time_s', '?')} s on {training.get('machine', '?')}")
    if not (card.get("recipe") or isinstance(meta.get("recipe"), dict) or training):
        out.append(UNKNOWN)
    out += ["", "## Evaluation", ""] + _evaluation_lines(meta, card) + [""]
    threshold = min_prob(meta)
    if threshold is not None:
        out += [f"Predictions below {threshold:.2f} max probability are shown as uncertain "
                f"({card['confidence'].get('how', 'threshold origin not stated')}).", ""]
    out += ["## Intended use", "", _or_unknown(card.get("intended_use")), "",
            "## Limits", "", _or_unknown(card.get("limits")), ""]
    return "\n".join(out)


def write_model_card(checkpoint: str | Path, meta: dict[str, Any], model: nn.Module | None = None) -> Path:
    """Write MODEL_CARD.md beside `checkpoint` (one model per folder) and return its path."""
    from posmlp_video.atomic import atomic_path

    path = Path(checkpoint).with_name(CARD_FILE)
    with atomic_path(path) as tmp:
        tmp.write_text(model_card_markdown(meta, model), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- command line: card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="our .safetensors checkpoint (or an authors' .pth/.pyth)")


def run(args: argparse.Namespace) -> int:
    from posmlp_video.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    print(model_card_markdown(meta, model))
    return 0
