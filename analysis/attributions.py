"""Captum attributions for video clips, aligned with the frames the model actually saw.

`attribute` takes a uint8 clip ``(T, H, W, 3)`` and the checkpoint's metadata (``meta=``: the same dict
`posmlp_video.checkpoint.load_checkpoint` returns; we pass it explicitly rather than attaching it to the
model, so any model with any preprocessing can be explained), preprocesses with the data pipeline's
`posmlp_video.data.preprocess` (short-side resize, centre crop, normalise) and returns an `Attribution`
whose ``values`` are ``(T, H, W)`` over ``clip``, the uint8 frames as the model saw them.

Channels are reduced per method: integrated gradients sums them (so values add up to the logit change,
minus Captum's convergence delta), saliency takes the largest |gradient| (Simonyan et al.), occlusion takes
the mean (every channel of a patch gets the same score). Baselines: ``"mean"`` (all zeros after
normalisation, i.e. the dataset's mean colour), ``"black"`` (black frames), or a uint8 clip of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from torch import nn

from analysis.errors import AnalysisError
from posmlp_video.data import preprocess

METHODS = ("integrated_gradients", "saliency", "occlusion", "frame_occlusion", "grad_cam")
IG_STEPS = 32  # integrated-gradients steps unless `steps` is given
BASELINES = ("mean", "black")
_SMOOTHING = ("noise_tunnel", "nt_stdev", "nt_samples_batch_size")
OPTIONS = {
    "integrated_gradients": ("steps", "internal_batch_size", "ig_method", "max_error", "max_steps", *_SMOOTHING),
    "saliency": _SMOOTHING,
    "occlusion": ("patch", "stride", "perturbations_per_eval"),
    "frame_occlusion": ("perturbations_per_eval",),
    "grad_cam": ("stage",),
}


@dataclass(frozen=True)
class Attribution:
    """An attribution map over a clip.

    Attributes:
        values: float32 ``(T, H, W)``, aligned pixel for pixel with `clip`.
        clip: uint8 ``(T, H, W, 3)``, the frames as the model saw them (after resize and crop).
        target: the explained class; `target_name` its name when the metadata has class names.
        method: one of `METHODS` (``+noise_tunnel`` when smoothed).
        delta: Captum's convergence delta (integrated gradients only; with a noise tunnel the mean over
            samples), else None: ``sum(values) - logit_change``.
        logit_change: F(x) - F(baseline) for the target logit.
        logit, probability: the target's logit and softmax probability on the clip.
        options: the options the method ran with (steps, patch, stage, ...; for integrated gradients with
            ``max_error``, the steps of the last run).
        tries: integrated gradients with ``max_error``: ``(steps, relative_delta)`` of every run, this one last.
    """

    values: np.ndarray
    clip: np.ndarray
    target: int
    method: str
    delta: float | None
    logit_change: float
    logit: float
    probability: float
    target_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tries: tuple[tuple[int, float], ...] = ()

    def temporal_importance(self) -> np.ndarray:
        """``(T,)`` per-frame sums of `values` (for integrated gradients: each frame's share of the logit change)."""
        return self.values.sum(axis=(1, 2))

    @property
    def relative_delta(self) -> float | None:
        """|delta| / |logit_change|: the completeness error as a fraction (None without a delta)."""
        return None if self.delta is None else _relative(self.delta, self.logit_change)


def _relative(delta: float, logit_change: float) -> float:
    """|delta| / |logit_change| (0 when both are 0, infinite when only the change is)."""
    if not logit_change:
        return 0.0 if not delta else math.inf
    return abs(delta) / abs(logit_change)


def check_clip(video: np.ndarray) -> np.ndarray:
    """`video` if it is a uint8 ``(T, H, W, 3)`` array, else a one-line `AnalysisError`."""
    if not isinstance(video, np.ndarray):
        raise AnalysisError(f"expected a uint8 numpy clip (T, H, W, 3), got {type(video).__name__}")
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or min(video.shape) == 0:
        raise AnalysisError(f"expected a uint8 clip (T, H, W, 3), got {video.dtype} array of shape {video.shape}")
    return video


def prepare(video: np.ndarray, meta: Mapping[str, Any] | None) -> tuple[torch.Tensor, np.ndarray]:
    """The model input ``(1, 3, T, H, W)`` and the uint8 frames it was made from, via the data pipeline."""
    check_clip(video)
    if meta is None:
        raise AnalysisError("attribute needs meta= (the checkpoint metadata from load_checkpoint) to preprocess")
    missing = [k for k in ("input_size", "resize_short", "mean", "std") if k not in meta]
    if missing:
        raise AnalysisError(f"meta lacks {', '.join(missing)}: pass the meta that load_checkpoint returned")
    try:
        out = preprocess(video, meta)
    except ValueError as err:
        raise AnalysisError(f"cannot preprocess the clip: {err}") from None
    return out.tensor[None], out.frames


def _baseline(baseline: str | np.ndarray, x: torch.Tensor, video: np.ndarray, meta: Mapping[str, Any]) -> torch.Tensor:
    if isinstance(baseline, np.ndarray):
        if baseline.shape != video.shape:
            raise AnalysisError(f"a baseline clip must have the clip's shape {video.shape}, got {baseline.shape}")
        return prepare(baseline, meta)[0]
    if baseline == "mean":
        return torch.zeros_like(x)
    if baseline == "black":
        return prepare(np.zeros_like(video), meta)[0]
    raise AnalysisError(f"unknown baseline {baseline!r}; use 'mean', 'black' or a uint8 clip")


def _positive(options: dict[str, Any], name: str, default: int) -> int:
    """Pop an integer option that must be >= 1."""
    value = options.pop(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AnalysisError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != 3 or min(values) < 1:
        raise AnalysisError(f"{name} must be a positive int or (t, h, w), got {value!r}")
    return values


def _stage_tap(model: nn.Module, stage: int) -> tuple[nn.Module, Any]:
    """An identity module fed stage `stage`'s output as (B, C, T, H, W), for Captum's layer hooks.

    The stages run channels-last; a forward hook permutes the stage output to channels-first, passes it
    through the tap (where LayerGradCam records activations and gradients) and permutes it back.
    """
    stages = getattr(model, "stages", None)
    if stages is None:
        raise AnalysisError(f"grad_cam needs a PosMLP-Video model with .stages, got {type(model).__name__}")
    if not isinstance(stage, int) or not -len(stages) <= stage < len(stages):
        raise AnalysisError(f"stage {stage!r} out of range: the model has stages 0..{len(stages) - 1}")
    tap = nn.Identity()

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return tap(output.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)

    return tap, stages[stage].register_forward_hook(hook)


def evaluations(method: str, shape: Sequence[int], **options: Any) -> int:
    """How many forward passes `attribute` makes for `method` on a clip of model input ``(T, H, W)`` (one
    progress step each): the first pass for the logits, then Captum's batches or occlusion windows."""
    T, H, W = shape
    smooth = int(options.get("noise_tunnel") or 0)
    if method == "integrated_gradients":
        steps, batch = int(options.get("steps", IG_STEPS)), int(options.get("internal_batch_size", 8))
        per_sample = math.ceil(steps / batch) + 2  # the path in batches, then F(x) and F(baseline) for the delta
        if smooth:
            return 1 + smooth * math.ceil(steps / batch) + 2 * smooth
        return 1 + per_sample
    if method == "saliency":
        return 1 + (smooth or 1)
    if method == "grad_cam":
        return 2
    if method == "frame_occlusion":
        patch = stride = (1, H, W)
    else:
        patch = _triple(options.get("patch", (2, 16, 16)), "patch")
        stride = _triple(options.get("stride", patch), "stride")
    windows = math.prod(max(0, math.ceil((n - p) / s)) + 1 for n, p, s in zip((T, H, W), patch, stride))
    return 2 + math.ceil(windows / int(options.get("perturbations_per_eval", 4)))


def cam_stages(model: nn.Module, meta: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """The ``(T, H, W)`` map of every stage's output for the checkpoint's input: what Grad-CAM can resolve."""
    stages = getattr(model, "stages", None)
    if stages is None:
        raise AnalysisError(f"grad_cam needs a PosMLP-Video model with .stages, got {type(model).__name__}")
    sizes: list[tuple[int, int, int]] = []
    handles = [stage.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:4]))) for stage in stages]
    device = next(model.parameters(), torch.empty(0)).device
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, int(meta["num_frames"]), *meta["input_size"], device=device))
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def default_cam_stage(sizes: Sequence[tuple[int, int, int]]) -> int:
    """The deepest stage whose map is larger than 1 x 1 (a 1 x 1 map cannot say where), else the first."""
    return max((i for i, (_, h, w) in enumerate(sizes) if h * w > 1), default=0)


def _run(method: str, model: nn.Module, x: torch.Tensor, base: torch.Tensor, target: int,
         options: dict[str, Any]) -> tuple[torch.Tensor, float | None]:
    """(attribution (T, H, W), delta or None) for one method; `options` is consumed."""
    nt_samples = _positive(options, "noise_tunnel", 1) if options.get("noise_tunnel") else 0
    options.pop("noise_tunnel", None)
    nt_stdev = float(options.pop("nt_stdev", 0.1))
    smooth = {}
    if nt_samples:
        smooth = dict(nt_type="smoothgrad", nt_samples=nt_samples, stdevs=nt_stdev,
                      nt_samples_batch_size=_positive(options, "nt_samples_batch_size", 1))

    def maybe_smoothed(algorithm: Any) -> Any:
        return NoiseTunnel(algorithm) if nt_samples else algorithm

    if method == "integrated_gradients":
        steps = _positive(options, "steps", IG_STEPS)
        batch = _positive(options, "internal_batch_size", 8)
        ig_method = options.pop("ig_method", "gausslegendre")
        attr, delta = maybe_smoothed(IntegratedGradients(model)).attribute(
            x, baselines=base, target=target, n_steps=steps, method=ig_method, internal_batch_size=batch,
            return_convergence_delta=True, **smooth)
        return attr[0].sum(0), float(delta.float().mean())
    if method == "saliency":
        attr = maybe_smoothed(Saliency(model)).attribute(x, target=target, **smooth)
        return attr[0].abs().amax(0), None
    if method in ("occlusion", "frame_occlusion"):
        _, _, T, H, W = x.shape
        if method == "occlusion":
            patch = _triple(options.pop("patch", (2, 16, 16)), "patch")
            stride = _triple(options.pop("stride", patch), "stride")
        else:
            patch = stride = (1, H, W)
        attr = Occlusion(model).attribute(
            x, sliding_window_shapes=(3, *patch), strides=(3, *stride), baselines=base, target=target,
            perturbations_per_eval=_positive(options, "perturbations_per_eval", 4))
        values = attr[0].mean(0)
        # one score per frame, spread evenly so that a frame's values sum to its logit drop
        return (values / (H * W) if method == "frame_occlusion" else values), None
    if method == "grad_cam":
        tap, handle = _stage_tap(model, options.pop("stage", -1))
        try:
            cam = LayerGradCam(model, tap).attribute(x, target=target, relu_attributions=True)
        finally:
            handle.remove()
        return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="trilinear")[0, 0], None
    raise AssertionError(method)  # attribute() validated the method


def attribute(
    model: nn.Module,
    video: np.ndarray,
    method: str = "integrated_gradients",
    target: int | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    baseline: str | np.ndarray = "mean",
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Attribution:
    """Explain one clip's prediction with a Captum method; `target=None` explains the top-1 class.

    Methods and their options:
        integrated_gradients: ``steps`` (32), ``internal_batch_size`` (8: memory stays bounded),
            ``ig_method`` ("gausslegendre").
        saliency: no options.
        occlusion: ``patch`` (t, h, w) = (2, 16, 16), ``stride`` (= patch), ``perturbations_per_eval`` (4).
        frame_occlusion: occludes whole frames: a per-frame importance curve; ``perturbations_per_eval``.
        grad_cam: ``stage`` (-1, the last): Grad-CAM on that stage's output, upsampled to (T, H, W).
        integrated_gradients and saliency also take ``noise_tunnel=n`` (SmoothGrad over n noisy copies,
        ``nt_stdev`` = 0.1 in normalised units).
        integrated_gradients with ``max_error`` (e.g. 0.05): while the completeness error `relative_delta` is
            above it, run again with twice the steps, up to ``max_steps`` (256); `Attribution.tries` lists
            every run. Gauss-Legendre points of different counts do not nest, so each run starts afresh.

    `progress(done, total)` is called after every forward pass of the model (``total`` from `evaluations`,
    raised by each further run with ``max_error``); an exception it raises stops the attribution there (the
    app's cancel button).
    """
    if method not in METHODS:
        raise AnalysisError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(OPTIONS[method]))
    if unknown:
        raise AnalysisError(f"unknown option(s) for {method}: {', '.join(unknown)} (it takes {', '.join(OPTIONS[method])})")
    x, frames = prepare(video, meta)
    base = _baseline(baseline, x, video, meta)
    device = next(model.parameters(), torch.empty(0)).device
    x, base = x.to(device), base.to(device)
    options = dict(options)
    max_error, max_steps = _error_bound(options)
    recorded = dict(options, baseline=baseline if isinstance(baseline, str) else "clip")
    was_training = model.training
    model.eval()
    handle = None
    total, done = [evaluations(method, x.shape[2:], **options)], [0]
    if progress is not None:

        def step(*_: Any) -> None:
            done[0] += 1
            progress(min(done[0], total[0]), total[0])

        handle = model.register_forward_hook(step)
    try:
        with torch.no_grad():
            logits = model(torch.cat([x, base]))
        num_classes = logits.shape[1]
        if target is None:
            target = int(logits[0].argmax())
        elif not isinstance(target, (int, np.integer)) or not 0 <= target < num_classes:
            raise AnalysisError(f"target {target!r} out of range: the model has classes 0..{num_classes - 1}")
        target = int(target)
        x.requires_grad_(method in ("integrated_gradients", "saliency", "grad_cam"))
        change = float(logits[0, target] - logits[1, target])
        values, delta = _run(method, model, x, base, target, dict(options))
        tries = []
        if max_error is not None:
            steps = int(options.get("steps", IG_STEPS))
            tries.append((steps, _relative(delta, change)))
            while tries[-1][1] > max_error and steps < max_steps:
                steps = options["steps"] = min(2 * steps, max_steps)
                total[0] += evaluations(method, x.shape[2:], **options) - 1  # the logits pass is not repeated
                values, delta = _run(method, model, x, base, target, dict(options))
                tries.append((steps, _relative(delta, change)))
            recorded["steps"] = steps
    finally:
        model.train(was_training)
        if handle is not None:
            handle.remove()
    names = (meta or {}).get("class_names")
    return Attribution(
        values=values.detach().float().cpu().numpy(), clip=frames, target=target,
        method=method + ("+noise_tunnel" if recorded.get("noise_tunnel") else ""), delta=delta,
        logit_change=change, logit=float(logits[0, target]), probability=float(logits[0].softmax(0)[target]),
        target_name=names[target] if names and target < len(names) else None, options=recorded, tries=tuple(tries),
    )


def _error_bound(options: dict[str, Any]) -> tuple[float | None, int]:
    """Pop and check integrated gradients' ``max_error`` (None: one run) and ``max_steps`` (default 256)."""
    max_error = options.pop("max_error", None)
    max_steps = _positive(options, "max_steps", 256)
    if max_error is not None and (isinstance(max_error, bool) or not isinstance(max_error, (int, float))
                                  or not 0 < max_error < math.inf):
        raise AnalysisError(f"max_error must be a positive number (a fraction, e.g. 0.05), got {max_error!r}")
    return max_error, max_steps
