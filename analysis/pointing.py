"""The pointing game on SynthMotion: how much of the top-attributed mass falls on the acting object.

A score of 1 means all of the top-attributed mass lies on the object's pixels; a random map scores about the
object's share of the pixels, which is the baseline every method must beat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from analysis.attributions import Attribution, attribute
from analysis.errors import AnalysisError
from posmlp_video.data import SynthMotion, preprocess


def align_mask(mask: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """Map a raw clip's bool ``(T, H, W)`` mask through the model's preprocessing (resize and crop).

    The mask rides through the data pipeline's `preprocess` as a grey clip, so it gets exactly the frames'
    geometry, and is thresholded at half intensity.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise AnalysisError(f"expected a (T, H, W) mask, got shape {mask.shape}")
    grey = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
    return preprocess(grey, meta).frames[..., 0] >= 128


def pointing_game(attribution: Attribution | np.ndarray, mask: np.ndarray, top_fraction: float = 0.1,
                  mode: str = "abs") -> float:
    """Fraction of the top-`top_fraction` attribution mass (largest values over the clip) inside `mask`.

    `attribution` is an `Attribution` or a ``(T, H, W)`` map; `mask` must have the same shape (use
    `align_mask` for a raw clip's mask). `mode` "abs" ranks by |value|, "positive" by evidence for the class.
    """
    values = attribution.values if isinstance(attribution, Attribution) else np.asarray(attribution)
    mask = np.asarray(mask, dtype=bool)
    if values.shape != mask.shape:
        raise AnalysisError(f"mask {mask.shape} does not match the attribution {values.shape}; use align_mask")
    if not 0 < top_fraction <= 1:
        raise AnalysisError(f"top_fraction must be in (0, 1], got {top_fraction}")
    if mode not in ("abs", "positive"):
        raise AnalysisError(f"unknown mode {mode!r}; use 'abs' or 'positive'")
    score = np.abs(values) if mode == "abs" else np.maximum(values, 0)
    flat, inside = score.reshape(-1).astype(np.float64), mask.reshape(-1)
    k = max(1, int(round(top_fraction * flat.size)))
    top = np.argpartition(-flat, k - 1)[:k]
    mass = flat[top].sum()
    if mass <= 0:
        return float(inside[top].mean())  # no mass at all: count the top pixels instead
    return float(flat[top][inside[top]].sum() / mass)


@dataclass(frozen=True)
class PointingReport:
    """Pointing-game scores over many clips, for a method and for random maps on the same masks."""

    method: str
    scores: np.ndarray
    random_scores: np.ndarray
    labels: np.ndarray
    targets: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def random_mean(self) -> float:
        return float(self.random_scores.mean())

    @property
    def win_rate(self) -> float:
        """Share of clips where the method beats the random map."""
        return float((self.scores > self.random_scores).mean())

    def format(self) -> str:
        """A one-line summary, e.g. for the README or a notebook."""
        return (f"{self.method}: pointing game {self.mean:.3f} vs random {self.random_mean:.3f} over "
                f"{len(self.scores)} clips (beats random on {self.win_rate:.0%})")


def pointing_game_report(model: nn.Module, meta: Mapping[str, Any], num_clips: int = 24, seed: int = 1000,
                         method: str = "integrated_gradients", top_fraction: float = 0.1, random_draws: int = 8,
                         true_label: bool = True, real_fraction: float = 0.0, **options: Any) -> PointingReport:
    """Run the pointing game on `num_clips` fresh SynthMotion clips built for the model's input.

    Explains the true label (or the prediction with ``true_label=False``); the random baseline averages
    `random_draws` uniform random maps per clip on the same masks. ``real_fraction=1`` plays it on
    real-pixel clips (photo cut-outs over photos). `options` go to `attribute`.
    """
    data = SynthMotion(num_clips, seed=seed, num_frames=int(meta["num_frames"]), size=tuple(meta["input_size"]),
                       real_fraction=real_fraction)
    rng = np.random.default_rng(seed)
    scores, baseline, labels, targets = [], [], [], []
    for i in range(num_clips):
        item = data[i]
        result = attribute(model, item["video"], method, item["label"] if true_label else None, meta=meta,
                           **options)
        mask = align_mask(item["mask"], meta)
        scores.append(pointing_game(result, mask, top_fraction))
        baseline.append(np.mean([pointing_game(rng.random(mask.shape), mask, top_fraction)
                                 for _ in range(random_draws)]))
        labels.append(item["label"])
        targets.append(result.target)
    return PointingReport(method, np.array(scores), np.array(baseline), np.array(labels), np.array(targets))
