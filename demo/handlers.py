"""What each button of the app does: thin calls into `posmlp_video` and `analysis`, shaped for Gradio.

Every handler takes the session's checkpoint key (a `gr.State`) last and turns a `PosMLPError` (bad clip,
bad checkpoint, bad selection) into a `gr.Error` with its one-line reason, so the server keeps serving.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from analysis import (
    METHODS,
    attribute,
    format_summary,
    frame_strip,
    get_table,
    overlay_video,
    summary,
    table_stats,
)
from analysis.interactive import temporal_importance_figure, unit_figure
from analysis.plots import figure_bytes, plot_table
from demo.checkpoints import DEFAULT_KEY, CheckpointDir, ModelCache, check_upload
from demo.scratch import Scratch
from posmlp_video.errors import PosMLPError

F = TypeVar("F", bound=Callable[..., Any])
ALL_GROUPS = -1  # the group selector's "all groups"
TOP1 = -1  # the target selector's "the model's top-1 class"
GROUP_COLUMNS = ["group", "locality", "asymmetry", "peak", "spread"]


def user_errors(fn: F) -> F:
    """Show a `PosMLPError` as a `gr.Error` (its one-line reason) instead of a generic failure; anything else
    (a bug, memory) still gets a one-line message naming the action, never a bare "Error"."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except PosMLPError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # the traceback goes to the server log
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise gr.Error(f"{fn.__name__.replace('_', ' ')} failed: {type(err).__name__}"
                           f"{': ' + first if first else ''} (details in the server log)") from err

    return wrapper  # type: ignore[return-value]


def _need_video(video: str | None) -> str:
    if not video:
        raise gr.Error("upload or record a clip first (or pick an example)", print_exception=False)
    return video


def _strip(frames: np.ndarray, min_height: int = 128) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` side by side as one image, small frames enlarged by a whole factor (pixels kept)."""
    scale = max(1, min_height // frames.shape[1])
    return np.concatenate(list(frames), axis=1).repeat(scale, axis=0).repeat(scale, axis=1)


class Handlers:
    """The app's actions over a `ModelCache`, the checkpoint folder and a scratch folder for output files."""

    def __init__(self, models: ModelCache, folder: CheckpointDir, scratch: Scratch) -> None:
        self.models = models
        self.folder = folder
        self.scratch = scratch

    # ------------------------------------------------------------------ classify

    @user_errors
    def classify(self, video: str | None, key: str = DEFAULT_KEY) -> tuple[dict[str, float], dict[str, Any]]:
        """Top-5 ``{label: probability}`` and what the model saw (frames, timings) for the second step."""
        loaded = self.models.get(key)
        prediction = loaded.predictor.predict(_need_video(video), top_k=5, lock=loaded.lock)  # decodes unlocked
        seen = dict(frames=prediction.frames, model_ms=prediction.model_ms, total_ms=prediction.total_ms,
                    device=str(loaded.predictor.device))
        return dict(prediction.top), seen

    @staticmethod
    def show_seen(seen: dict[str, Any] | None) -> tuple[np.ndarray | None, str]:
        """The frame strip and a latency line for the last classification."""
        if not seen:
            return None, ""
        t, h, w = seen["frames"].shape[:3]
        return _strip(seen["frames"]), (
            f"**{seen['total_ms']:.0f} ms** (decode + preprocess {seen['total_ms'] - seen['model_ms']:.0f} ms, "
            f"model {seen['model_ms']:.0f} ms) on **{seen['device']}**; the model saw {t} frames of {h}x{w}"
        )

    # ------------------------------------------------------------------ biases

    @user_errors
    def bias_controls(self, stage: int, block: int, unit: str, group: int, dt: int,
                      key: str = DEFAULT_KEY) -> tuple[Any, ...]:
        """The selectors made consistent with the model: blocks of the stage, units of the block, groups and
        Δt range of the unit; invalid picks fall back to the first valid one."""
        tables = self.models.get(key).tables
        stages = sorted({t.stage for t in tables})
        stage = stage if stage in stages else stages[0]
        blocks = sorted({t.block for t in tables if t.stage == stage})
        block = block if block in blocks else blocks[0]
        units = [t.unit for t in tables if (t.stage, t.block) == (stage, block)]
        unit = unit if unit in units else units[0]
        table = next(t for t in tables if (t.stage, t.block, t.unit) == (stage, block, unit))
        group_choices = [("all groups", ALL_GROUPS)] + [(f"group {g}", g) for g in range(table.groups)]
        group = group if ALL_GROUPS <= group < table.groups else ALL_GROUPS
        joint = table.unit == "spatiotemporal"
        span = max(1, table.window[0] - 1) if joint else 1
        return (gr.Dropdown(choices=stages, value=stage), gr.Dropdown(choices=blocks, value=block),
                gr.Radio(choices=units, value=unit), gr.Dropdown(choices=group_choices, value=group, interactive=joint),
                gr.Slider(minimum=-span, maximum=span, value=int(np.clip(dt, -span, span)), step=1, interactive=joint))

    @user_errors
    def biases(self, stage: int, block: int, unit: str, group: int = ALL_GROUPS, dt: int = 0,
               key: str = DEFAULT_KEY) -> tuple[go.Figure, list[list[Any]]]:
        """The unit's interactive figure and its statistics: one row per channel group, then all groups."""
        loaded = self.models.get(key)
        group = None if group in (None, ALL_GROUPS) else int(group)
        figure = unit_figure(loaded.tables, int(stage), int(block), unit, group, int(dt))
        stats = table_stats(get_table(loaded.tables, int(stage), int(block), unit))
        rows = [[g, _num(stats.group_locality[g]), _num(stats.group_asymmetry[g]), str(tuple(int(v) for v in stats.group_peak[g])),
                 _num(stats.group_spread[g])] for g in range(stats.groups)]
        rows.append(["all", _num(stats.locality), _num(stats.asymmetry), str(stats.peak), _num(stats.spread)])
        return figure, rows

    @user_errors
    def bias_summary(self, key: str = DEFAULT_KEY) -> str:
        """Every unit's statistics as a Markdown table."""
        return format_summary(summary(self.models.get(key).tables))

    @user_errors
    def export_figure(self, stage: int, block: int, unit: str, group: int, dt: int, fmt: str,
                      key: str = DEFAULT_KEY) -> str:
        """The selected unit's matplotlib figure as a PNG, PDF or SVG file to download."""
        table = get_table(self.models.get(key).tables, int(stage), int(block), unit)
        group = None if group in (None, ALL_GROUPS) else int(group)
        path = self.scratch.folder() / f"stage{stage}_block{block}_{unit}.{fmt}"
        path.write_bytes(figure_bytes(plot_table(table, group, int(dt)), fmt))
        return str(path)

    # ------------------------------------------------------------------ attributions

    @user_errors
    def attribute(self, video: str | None, method: str, target: int = TOP1, steps: int = 16,
                  key: str = DEFAULT_KEY) -> tuple[str, np.ndarray, go.Figure, str]:
        """Overlay video, frame strip, temporal importance curve and a summary line for one clip."""
        loaded = self.models.get(key)
        if method not in METHODS:
            raise gr.Error(f"unknown method {method!r}; choose from {', '.join(METHODS)}", print_exception=False)
        options = {"steps": int(steps)} if method == "integrated_gradients" else {}
        clip = loaded.predictor.sample(_need_video(video))
        with loaded.lock:  # Captum hooks the model: keep other requests out meanwhile
            result = attribute(loaded.model, clip, method, None if target in (None, TOP1) else int(target),
                               meta=loaded.meta, **options)
        out = self.scratch.folder()
        video_path = overlay_video(result, out / "overlay.mp4")
        curve = temporal_importance_figure(result.temporal_importance(), f"{result.method}: importance per frame")
        return str(video_path), frame_strip(result), curve, _attribution_text(result)

    # ------------------------------------------------------------------ model and checkpoints

    @user_errors
    def model_info(self, key: str = DEFAULT_KEY) -> tuple[str, str, dict[str, Any], list[list[Any]]]:
        """Complexity table and model card, architecture, metadata and class names of the session's checkpoint."""
        loaded = self.models.get(key)
        meta = {k: v for k, v in loaded.meta.items() if k != "class_names"}
        names = [[i, name] for i, name in enumerate(loaded.predictor.class_names)]
        heading = f"**{loaded.name}** on {loaded.predictor.device}"
        return heading + "\n\n" + loaded.complexity + "\n\n---\n\n" + loaded.card, repr(loaded.model), meta, names

    def targets(self, key: str = DEFAULT_KEY) -> list[tuple[str, int]]:
        """Attribution targets: the predicted class, or any class of the session's checkpoint."""
        names = self.models.get(key).predictor.class_names
        return [("top-1 (predicted)", TOP1)] + [(n, i) for i, n in enumerate(names)]

    def target_choices(self, key: str = DEFAULT_KEY) -> gr.Dropdown:
        """The target selector updated for the session's checkpoint."""
        return gr.Dropdown(choices=self.targets(key), value=TOP1)

    def folder_choices(self) -> gr.Dropdown:
        """The picker, re-listed from ``--checkpoint-dir``."""
        return gr.Dropdown(choices=self.folder.names(), value=None)

    @user_errors
    def pick(self, name: str | None, label_set: str | None) -> tuple[str, str]:
        """Load a checkpoint from the folder by name; returns the new session key and a status line."""
        if not name:
            raise gr.Error("choose a checkpoint from the list", print_exception=False)
        key = self.models.add(self.folder.resolve(name), name, label_set)
        return key, f"Loaded **{key}**"

    @user_errors
    def upload(self, path: str | None, label_set: str | None) -> tuple[str, str]:
        """Load an uploaded checkpoint; returns the new session key and a status line."""
        if not path:
            raise gr.Error("upload a checkpoint file first", print_exception=False)
        file = check_upload(path)
        key = self.models.add(file, f"uploaded {file.name}", label_set)
        return key, f"Loaded **{key}**"

    @staticmethod
    def use_default() -> tuple[str, str]:
        return DEFAULT_KEY, "Using the default checkpoint"


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def _attribution_text(result: Any) -> str:
    target = result.target_name or f"class {result.target}"
    lines = [f"**{result.method}** for **{target}** (p = {result.probability:.3f}, logit {result.logit:.3f})"]
    if result.delta is not None:
        lines.append(f"completeness: sum of attributions - logit change = **{result.delta:.4g}** "
                     f"(logit change {result.logit_change:.4g}, relative {result.relative_delta:.2%})")
    else:
        lines.append(f"completeness delta: not defined for {result.method} (logit change {result.logit_change:.4g})")
    return "\n\n".join(lines)
