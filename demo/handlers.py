"""What each button of the app does: thin calls into `posmlp_video` and `analysis`, shaped for Gradio.

Every handler takes the session's checkpoint key (a `gr.State`) last and turns a `PosMLPError` (bad clip,
bad checkpoint, bad selection) into a `gr.Error` with its one-line reason, so the server keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from analysis import (
    METHODS,
    attribute,
    format_summary,
    get_table,
    model_mixing_row,
    overlay_video,
    summary,
    table_stats,
)
from analysis.attributions import default_cam_stage
from analysis.interactive import temporal_importance_figure, unit_figure
from analysis.plots import figure_bytes, for_any_background, plot_attribution_strip, plot_mixing, plot_table
from demo.checkpoints import DEFAULT_KEY, CheckpointDir, Loaded, ModelCache, check_upload, key_label
from demo.examples import EXAMPLE_CLASSES
from demo.scratch import Scratch
from demo.teaching import mixing_html
from posmlp_video.card import card_of, is_uncertain, min_prob, scope_summary
from posmlp_video.data import write_preview
from posmlp_video.errors import PosMLPError
from posmlp_video.loading import LABEL_FILES, has_numbered_classes, load_class_names

F = TypeVar("F", bound=Callable[..., Any])
ALL_GROUPS = -1  # the group selector's "all groups"
TOP1 = -1  # the target selector's "the model's top-1 class"
GROUP_COLUMNS = ["group", "locality", "asymmetry", "peak offset", "spread"]
IG_BOUND = 0.05  # completeness error (|delta| / |logit change|) above which integrated gradients reruns
IG_MAX_STEPS = 256  # ... with twice the steps, up to this many
ATTRIBUTION_NICE = 19  # attributions run at this niceness: a Classify arriving meanwhile gets the CPU first


class Cancelled(PosMLPError):
    """An attribution stopped by the Cancel button."""


def _low_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: per thread; the OpenMP workers it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ATTRIBUTION_NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


# One attribution at a time, on its own low-priority thread and on its own model copy (`Loaded.explainer`).
ATTRIBUTIONS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attribution", initializer=_low_priority)


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
                    device=str(loaded.predictor.device), top=prediction.top[0], key=key)
        return dict(prediction.top), seen

    def show_seen(self, seen: dict[str, Any] | None) -> tuple[np.ndarray | None, str, str]:
        """The frame strip, a latency line and the confidence note for the last classification."""
        if not seen:
            return None, "", ""
        t, h, w = seen["frames"].shape[:3]
        timing = (f"**{seen['total_ms']:.0f} ms** (decode + preprocess {seen['total_ms'] - seen['model_ms']:.0f} ms, "
                  f"model {seen['model_ms']:.0f} ms) on **{seen['device']}**; the model saw {t} frames of {h}x{w}")
        return _strip(seen["frames"]), timing, self.confidence_note(seen["top"], seen["key"])

    def confidence_note(self, top: tuple[str, float], key: str = DEFAULT_KEY) -> str:
        """Whether to trust the top prediction, by the checkpoint's calibrated rule (or that it has none)."""
        meta = self.models.get(key).meta
        name, p = top
        uncertain = is_uncertain(meta, p)
        if uncertain is None:
            return (f"Top class **{name}** at {p:.0%}. This checkpoint has **no calibrated confidence threshold**, "
                    f"so the app cannot flag uncertain or out-of-scope clips: it always answers with one of its "
                    f"{len(meta['class_names'])} classes, even for a clip unlike anything it was trained on.")
        threshold = min_prob(meta)
        how = card_of(meta)["confidence"].get("how", "threshold origin not stated")
        if uncertain:
            return (f"⚠️ **Uncertain / possibly out of scope**: the top probability {p:.0%} is below this "
                    f"checkpoint's calibrated threshold {threshold:.0%} ({how}). Do not trust **{name}**; the clip "
                    f"may show none of the classes the model knows.")
        return f"Top probability {p:.0%} is at or above the calibrated threshold {threshold:.0%} ({how})."

    @staticmethod
    def clear_results() -> tuple[None, None, None, str, str]:
        """Empty Classify outputs (top-5, what the model saw, strip, timing, note): shown before every run."""
        return None, None, None, "", ""

    def new_clip(self, path: str | None) -> tuple[Any, ...]:
        """A new clip: an H.264 preview of it, and every Classify output cleared (also when it cannot be read:
        then a warning says why, and Classify will say it again)."""
        preview = None
        if path:
            try:
                preview = str(write_preview(path, self.scratch.folder() / "preview.mp4"))
            except PosMLPError as err:
                gr.Warning(f"no preview: {err}")
        return (preview, *self.clear_results())

    @staticmethod
    def clear_attribution() -> tuple[None, None, None, str]:
        """Empty Attributions outputs (overlay, strip, curve, text)."""
        return None, None, None, ""

    # ------------------------------------------------------------------ header and examples

    def header(self, key: str = DEFAULT_KEY) -> str:
        """What the session's checkpoint knows (from its metadata) and the rule for uncertain predictions."""
        loaded = self.models.get(key)
        meta = loaded.meta
        threshold = min_prob(meta)
        if threshold is None:
            rule = ("**No calibrated confidence threshold** in this checkpoint: predictions are shown as they come, "
                    "and none is flagged as uncertain.")
        else:
            how = card_of(meta)["confidence"].get("how", "threshold origin not stated")
            rule = (f"A prediction whose top probability is below **{threshold:.0%}** is marked *uncertain / "
                    f"possibly out of scope* ({how}).")
        classes = ", ".join(meta["class_names"][:12]) + (" ..." if len(meta["class_names"]) > 12 else "")
        naming = f"{hint}\n\n" if (hint := naming_hint(loaded)) else ""
        return (f"**Checkpoint {loaded.name}.** {scope_summary(meta)}\n\n{rule}\n\n{naming}"
                f"<details><summary>Classes</summary>{classes}</details>")

    def examples_visible(self, key: str = DEFAULT_KEY) -> tuple[Any, Any]:
        """Show the SynthMotion examples only for a checkpoint that knows SynthMotion's classes."""
        names = set(self.models.get(key).predictor.class_names)
        visible = set(EXAMPLE_CLASSES) <= names
        return gr.Column(visible=visible), gr.Column(visible=visible)

    # ------------------------------------------------------------------ biases

    @user_errors
    def bias_controls(self, stage: int, block: int, unit: str, group: int, dt: int,
                      key: str = DEFAULT_KEY) -> tuple[Any, ...]:
        """The selectors made consistent with the model: blocks of the stage, units of the block, groups and
        Δt range of the unit; invalid picks fall back to the first valid one."""
        stages, blocks, units, table = self._unit_choices(stage, block, unit, key)
        group_choices = [("all groups", ALL_GROUPS)] + [(f"group {g}", g) for g in range(table.groups)]
        group = group if group is not None and ALL_GROUPS <= group < table.groups else ALL_GROUPS
        joint = table.unit == "spatiotemporal"
        span = max(1, table.window[0] - 1) if joint else 1
        return (gr.Dropdown(choices=stages, value=table.stage), gr.Dropdown(choices=blocks, value=table.block),
                gr.Radio(choices=units, value=table.unit), gr.Dropdown(choices=group_choices, value=group),
                gr.Slider(minimum=-span, maximum=span, value=int(np.clip(dt or 0, -span, span)), step=1,
                          interactive=joint))

    def _unit_choices(self, stage: int, block: int, unit: str, key: str) -> tuple[list[int], list[int], list[str], Any]:
        """Stages, blocks of the stage, units of the block and the picked unit's table; stale or custom values
        (a fast user can send a block from the previous stage) fall back to the first valid one."""
        tables = self.models.get(key).tables
        stages = sorted({t.stage for t in tables})
        stage = stage if stage in stages else stages[0]
        blocks = sorted({t.block for t in tables if t.stage == stage})
        block = block if block in blocks else blocks[0]
        units = [t.unit for t in tables if (t.stage, t.block) == (stage, block)]
        unit = unit if unit in units else units[0]
        return stages, blocks, units, get_table(tables, stage, block, unit)

    @user_errors
    def biases(self, stage: int, block: int, unit: str, group: int = ALL_GROUPS, dt: int = 0,
               key: str = DEFAULT_KEY) -> tuple[go.Figure, list[list[Any]]]:
        """The unit's interactive figure and its statistics: one row per channel group, then all groups."""
        loaded = self.models.get(key)
        group = None if group in (None, ALL_GROUPS) else int(group)
        figure = unit_figure(loaded.tables, int(stage), int(block), unit, group, int(dt))
        stats = table_stats(get_table(loaded.tables, int(stage), int(block), unit))
        axes = get_table(loaded.tables, int(stage), int(block), unit).axes
        rows = [[g, _num(stats.group_locality[g]), _num(stats.group_asymmetry[g]), _offset(axes, stats.group_peak[g]),
                 _num(stats.group_spread[g])] for g in range(stats.groups)]
        rows.append(["all", _num(stats.locality), _num(stats.asymmetry), _offset(axes, stats.peak), _num(stats.spread)])
        return figure, rows

    def show_biases(self, stage: int, block: int, unit: str, group: int, dt: int,
                    key: str = DEFAULT_KEY) -> tuple[go.Figure, list[list[Any]], list[Any], None]:
        """The plot and statistics, the selection they show (Export draws exactly that), and no stale export."""
        figure, rows = self.biases(stage, block, unit, group, dt, key)
        return figure, rows, [stage, block, unit, group, dt], None

    @user_errors
    def bias_summary(self, key: str = DEFAULT_KEY) -> str:
        """Every unit's statistics as a Markdown table."""
        return format_summary(summary(self.models.get(key).tables))

    @user_errors
    def export_figure(self, stage: int, block: int, unit: str, group: int, dt: int, fmt: str,
                      key: str = DEFAULT_KEY) -> str:
        """The unit's figure as a PNG, PDF or SVG file: the same unit, group and Δt as the plot."""
        table = get_table(self.models.get(key).tables, int(stage), int(block), unit)
        group = None if group in (None, ALL_GROUPS) else int(group)
        name = f"stage{stage}_block{block}_{unit}" + (f"_group{group}" if group is not None else "")
        name += f"_dt{int(dt)}" if unit == "spatiotemporal" and group is None else ""
        path = self.scratch.folder() / f"{name}.{fmt}"
        path.write_bytes(figure_bytes(plot_table(table, group, int(dt)), fmt))
        return str(path)

    def export_shown(self, shown: list[Any] | None, fmt: str, key: str = DEFAULT_KEY) -> str:
        """Export the selection the plot shows (not the controls' current values, which may be ahead of it)."""
        if not shown:
            raise gr.Error("nothing is shown yet: pick a unit first", print_exception=False)
        return self.export_figure(*shown, fmt, key)

    # ------------------------------------------------------------------ attributions

    async def attribute(self, video: str | None, method: str, target: int = TOP1, steps: int = 16,
                        stage: int | None = None, key: str = DEFAULT_KEY,
                        progress: gr.Progress = gr.Progress()) -> tuple[str, str, go.Figure, str]:  # noqa: B008
        """Overlay video, signed frame strip, per-frame importance and a summary for one clip.

        Runs on the checkpoint's attribution copy in the low-priority attribution thread; the progress bar
        counts the model's forward passes (IG batches, occlusion windows); Cancel stops it at the next pass.
        """
        loaded = self.models.get(key)
        if method not in METHODS:
            raise gr.Error(f"unknown method {method!r}; choose from {', '.join(METHODS)}", print_exception=False)
        options: dict[str, Any] = {}
        if method == "integrated_gradients":
            options.update(steps=int(steps), max_error=IG_BOUND, max_steps=IG_MAX_STEPS)
        elif method == "grad_cam":
            options["stage"] = int(stage) if stage is not None else default_cam_stage(loaded.cam_sizes)
        state = dict(done=0, total=0)
        stop = threading.Event()

        def report(done: int, total: int) -> None:
            state.update(done=done, total=total)
            if stop.is_set():
                raise Cancelled("attribution cancelled")

        def work() -> tuple[Any, np.ndarray | None]:
            clip, times = loaded.predictor.sample_timed(_need_video(video))
            with loaded.explain_lock:
                return attribute(loaded.explainer, clip, method, None if target in (None, TOP1) else int(target),
                                 meta=loaded.meta, progress=report, **options), times

        future = asyncio.get_running_loop().run_in_executor(ATTRIBUTIONS, work)
        try:
            while not future.done():
                if state["total"]:
                    progress((state["done"], state["total"]), desc=f"{method}: forward passes", unit="passes")
                else:
                    progress(None, desc=f"{method}: decoding the clip, waiting for the model copy")
                await asyncio.wait([future], timeout=0.25)
            result, times = future.result()
        except asyncio.CancelledError:
            stop.set()  # the worker stops at its next forward pass
            raise
        except gr.Error:
            raise
        except PosMLPError as err:
            raise gr.Error(str(err), print_exception=False) from None
        out = self.scratch.folder()
        video_path = overlay_video(result, out / "overlay.mp4")
        strip = out / "attribution_strip.png"
        strip.write_bytes(figure_bytes(for_any_background(plot_attribution_strip(result, times=times)), "png", dpi=110))
        curve = temporal_importance_figure(result.temporal_importance(), f"{result.method}: importance per frame",
                                           times)
        text = _attribution_text(result)
        if result.relative_delta is not None and result.relative_delta > IG_BOUND:
            gr.Warning(f"completeness error {result.relative_delta:.0%} > {IG_BOUND:.0%} even at {IG_MAX_STEPS} steps")
        return str(video_path), str(strip), curve, text

    def cam_stages(self, key: str = DEFAULT_KEY) -> tuple[list[tuple[str, int]], int, str]:
        """The Grad-CAM stages of the session's checkpoint (labelled with their map sizes, measured by a forward
        pass of the model), the default one, and the rule that chose it in words (the selector's info)."""
        sizes = self.models.get(key).cam_sizes
        choices = [(f"stage {i}: {t} x {h} x {w} map" + (" (cannot localise)" if h * w == 1 else ""), i)
                   for i, (t, h, w) in enumerate(sizes)]
        default = default_cam_stage(sizes)
        info = (f"default: the deepest stage whose map is still larger than 1 x 1, here stage {default} (deeper "
                f"stages are more specific to the class; a 1 x 1 map cannot say where)")
        return choices, default, info

    def cam_choices(self, key: str = DEFAULT_KEY) -> gr.Dropdown:
        """The Grad-CAM stage selector updated for the session's checkpoint."""
        choices, default, info = self.cam_stages(key)
        return gr.Dropdown(choices=choices, value=default, info=info)

    # ------------------------------------------------------------------ how relative positions mix tokens

    @user_errors
    def mixing_controls(self, stage: int, block: int, unit: str, group: int, query: str,
                        key: str = DEFAULT_KEY) -> tuple[Any, ...]:
        """Selectors made consistent with the model (as for the bias plot), the query clipped into the window."""
        stages, blocks, units, table = self._unit_choices(stage, block, unit, key)
        groups = [(f"group {g}", g) for g in range(table.groups)]
        group = group if group is not None and 0 <= group < table.groups else 0
        coords = _parse_query(query, table.window)
        return (gr.Dropdown(choices=stages, value=table.stage), gr.Dropdown(choices=blocks, value=table.block),
                gr.Radio(choices=units, value=table.unit), gr.Dropdown(choices=groups, value=group),
                ", ".join(map(str, coords)))

    def _mixing_row(self, stage: int, block: int, unit: str, group: int, query: str, key: str) -> Any:
        loaded = self.models.get(key)
        window = get_table(loaded.tables, int(stage), int(block), unit).window
        return model_mixing_row(loaded.model, int(stage), int(block), unit, int(group), _parse_query(query, window))

    @user_errors
    def mixing(self, stage: int, block: int, unit: str, group: int, query: str, key: str = DEFAULT_KEY) -> str:
        """The teaching view: the query's mixing weights beside the offset table (HTML)."""
        return mixing_html(self._mixing_row(stage, block, unit, group, query, key))

    @user_errors
    def export_mixing(self, stage: int, block: int, unit: str, group: int, query: str, fmt: str,
                      key: str = DEFAULT_KEY) -> str:
        """The teaching view as a matplotlib figure file (PNG, PDF or SVG)."""
        row = self._mixing_row(stage, block, unit, group, query, key)
        path = self.scratch.folder() / f"mixing_stage{stage}_block{block}_{unit}_group{group}.{fmt}"
        path.write_bytes(figure_bytes(plot_mixing(row), fmt))
        return str(path)

    @staticmethod
    def pick_query(evt: gr.EventData) -> str:
        """The key token clicked in the teaching view becomes the query."""
        return str(evt.query)

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

    def folder_choices(self, current: str | None = None) -> gr.Dropdown:
        """The picker re-listed from ``--checkpoint-dir`` (files added or removed since the page loaded), keeping
        the current choice while it is still there."""
        names = self.folder.names()
        return gr.Dropdown(choices=names, value=current if current in names else None)

    @user_errors
    def pick(self, name: str | None, label_set: str | None) -> tuple[str, str]:
        """Load a checkpoint from the folder by name; returns the new session key and a status line."""
        if not name:
            raise gr.Error("choose a checkpoint from the list", print_exception=False)
        key = self.models.add(self.folder.resolve(name), name, label_set)
        return key, self.loaded_status(key)

    @user_errors
    def upload(self, path: str | None, label_set: str | None, request: gr.Request | None = None) -> tuple[str, str]:
        """Load an uploaded checkpoint as the uploading session's own; returns its key and a status line."""
        if not path:
            raise gr.Error("upload a checkpoint file first", print_exception=False)
        file = check_upload(path)
        session = request.session_hash if request is not None else None
        key = self.models.add(file, f"uploaded {file.name}", label_set, session=session)
        return key, self.loaded_status(key)

    def loaded_status(self, key: str) -> str:
        """The status line after a load: the key, and for classes without names, how to name them."""
        loaded = self.models.get(key)
        hint = naming_hint(loaded)
        return f"Loaded **{key_label(key)}**" + (f". {hint}" if hint else "")

    @staticmethod
    def use_default() -> tuple[str, str]:
        return DEFAULT_KEY, "Using the default checkpoint"


def naming_hint(loaded: Loaded) -> str:
    """For a checkpoint whose classes are only numbered: which shipped class lists fit its class count (if any),
    and the ``convert --labels`` command that attaches names ("" when its classes have names)."""
    if not has_numbered_classes(loaded.predictor.class_names):
        return ""
    count = len(loaded.predictor.class_names)
    sizes = {name: len(load_class_names(name)) for name in LABEL_FILES}
    fits = [name for name, size in sizes.items() if size == count]
    lists = ", ".join(f"{name} {size}" for name, size in sizes.items())
    shipped = (f"The {' or '.join(fits)} list has {count} names: choose it when loading. Or name" if fits else
               f"No shipped class list has {count} names ({lists}). To name")
    source = loaded.name.removeprefix("uploaded ")
    return (f"⚠️ **Its {count} classes are numbered** (class 0 ... class {count - 1}): the checkpoint carries no "
            f"class names. {shipped} them: `python -m posmlp_video convert {source} named.safetensors --labels "
            f"names.txt` (a text file with one class name per line, in the head's order), then load named.safetensors.")


def _num(value: float) -> float | str:
    """A statistic for the table: rounded, or "n/a" where it is undefined (e.g. a flat table's locality)."""
    return "n/a" if math.isnan(value) else round(float(value), 4)


def _offset(axes: str, peak: Any) -> str:
    """A peak offset as "Δh=0, Δw=1" instead of a Python tuple."""
    values = np.atleast_1d(np.asarray(peak)).astype(int).tolist()
    return ", ".join(f"Δ{a}={v}" for a, v in zip(axes, values))


def _parse_query(text: str | None, window: tuple[int, ...]) -> tuple[int, ...]:
    """Query coordinates typed as "2, 3" (one per window axis), clipped into the window; the centre if empty."""
    parts = [p for p in str(text or "").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        coords = [int(p) for p in parts]
    except ValueError:
        raise gr.Error(f"query token {text!r}: give {len(window)} whole numbers, e.g. "
                       f"{', '.join(str(w // 2) for w in window)}", print_exception=False) from None
    if len(coords) != len(window):
        coords = [w // 2 for w in window]
    return tuple(int(np.clip(c, 0, w - 1)) for c, w in zip(coords, window))


def _attribution_text(result: Any) -> str:
    target = result.target_name or f"class {result.target}"
    where = f" on stage {result.options['stage']}" if "stage" in result.options else ""
    lines = [f"**{result.method}**{where} for **{target}** (p = {result.probability:.3f}, logit {result.logit:.3f})"]
    if result.delta is not None:
        lines.append(f"completeness: sum of attributions - logit change = **{result.delta:.4g}** "
                     f"(logit change {result.logit_change:.4g}, relative {result.relative_delta:.2%})")
        runs = " → ".join(f"{steps} ({error:.1%})" for steps, error in result.tries)
        lines.append(f"steps used: **{result.options['steps']}**; runs (steps, completeness error): {runs}. The steps "
                     f"are doubled (up to {IG_MAX_STEPS}) until the error is at most {IG_BOUND:.0%}.")
        if result.relative_delta > IG_BOUND:
            lines.append(f"⚠️ the completeness error {result.relative_delta:.1%} is still above {IG_BOUND:.0%} at "
                         f"{result.options['steps']} steps: the map does not fully add up to the logit change.")
    else:
        lines.append(f"completeness delta: not defined for {result.method} (logit change {result.logit_change:.4g})")
    return "\n\n".join(lines)
