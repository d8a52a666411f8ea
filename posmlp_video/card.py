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

from collections.abc import Sequence
from typing import Any

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
