"""Time-reversal test on SynthMotion: does a model tell a clip from the same clip played backwards?

SynthMotion's classes come in pairs (``2k``, ``2k + 1``) where one is the other played backwards, so a clip
``x`` of class ``c`` reversed in time is a clip of class ``c ^ 1``. A model that ignores frame order gives
``x`` and its reversal the same scores and can get at most one of the two right: its *pair accuracy* (both
right) is 0 and its *pair choice* (picking the right class of the pair, judged on both clips) is exactly 50%.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from posmlp_video.data import SynthMotion, preprocess


@dataclass(frozen=True)
class ReversalReport:
    """Predictions on `num_clips` clips and on the same clips reversed in time.

    labels: true classes of the forward clips (the reversed clip's class is ``labels ^ 1``).
    logits, reversed_logits: ``(N, classes)`` model outputs on the forward and the reversed clips.
    """

    labels: np.ndarray
    logits: np.ndarray
    reversed_logits: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(1)

    @property
    def reversed_predictions(self) -> np.ndarray:
        return self.reversed_logits.argmax(1)

    @property
    def top1(self) -> float:
        """Accuracy on the forward clips, in percent."""
        return 100.0 * float((self.predictions == self.labels).mean())

    @property
    def reversed_top1(self) -> float:
        """Accuracy on the reversed clips (true class ``label ^ 1``), in percent."""
        return 100.0 * float((self.reversed_predictions == (self.labels ^ 1)).mean())

    @property
    def pair_accuracy(self) -> float:
        """Share of clips where both the clip and its reversal are classified right, in percent."""
        both = (self.predictions == self.labels) & (self.reversed_predictions == (self.labels ^ 1))
        return 100.0 * float(both.mean())

    @property
    def pair_choice(self) -> float:
        """Within each clip's pair of classes, how often the right one scores higher (forward and reversed
        clips pooled), in percent: 50% for a model blind to frame order."""
        idx = np.arange(len(self.labels))
        fwd = self.logits[idx, self.labels] > self.logits[idx, self.labels ^ 1]
        rev = self.reversed_logits[idx, self.labels ^ 1] > self.reversed_logits[idx, self.labels]
        return 100.0 * float(np.concatenate([fwd, rev]).mean())

    @property
    def max_logit_change(self) -> float:
        """The largest |logit(x) - logit(reversed x)| over clips and classes (0 for an order-blind model)."""
        return float(np.abs(self.logits - self.reversed_logits).max())

    def row(self) -> dict[str, float]:
        """The report as one table row."""
        return dict(clips=len(self.labels), top1=self.top1, reversed_top1=self.reversed_top1,
                    pair_accuracy=self.pair_accuracy, pair_choice=self.pair_choice,
                    max_logit_change=self.max_logit_change)


@torch.no_grad()
def time_reversal_report(model: nn.Module, meta: Mapping[str, Any], num_clips: int = 96, seed: int = 1000,
                         batch_size: int = 16) -> ReversalReport:
    """Classify `num_clips` SynthMotion clips of `seed` (generated at the model's input size, preprocessed
    as `meta` says) forwards and backwards."""
    data = SynthMotion(num_clips, seed=seed, num_frames=int(meta["num_frames"]),
                       size=tuple(int(s) for s in meta["input_size"]))
    was_training = model.training
    model.eval()
    labels, logits, reversed_logits = [], [], []
    try:
        for start in range(0, num_clips, batch_size):
            items = [data[i] for i in range(start, min(start + batch_size, num_clips))]
            forward = torch.stack([preprocess(item["video"], meta).tensor for item in items])
            backward = torch.stack([preprocess(np.ascontiguousarray(item["video"][::-1]), meta).tensor
                                    for item in items])
            out = model(torch.cat([forward, backward])).float()
            logits.append(out[: len(items)].numpy())
            reversed_logits.append(out[len(items):].numpy())
            labels += [item["label"] for item in items]
    finally:
        model.train(was_training)
    return ReversalReport(np.array(labels), np.concatenate(logits), np.concatenate(reversed_logits))
