"""The app's Timeline tab: top classes over time in a long clip, and the segment at a chosen time.

Built by :func:`timeline_tab` inside the app's ``gr.Tabs``; the work is ``posmlp_video.timeline`` (the same as
``python -m posmlp_video timeline``). API endpoint ``/timeline``: (video, window s, stride s) -> plot, segments.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from analysis.plots import NEUTRAL, for_any_background
from demo.checkpoints import DEFAULT_KEY, ModelCache
from demo.handlers import _need_video, user_errors
from posmlp_video.timeline import Timeline, compute_timeline

SEGMENT_COLUMNS = ["start (s)", "end (s)", "class", "mean probability"]


class TimelineHandlers:
    """Compute a clip's timeline with the session's checkpoint; show it, and what is happening at a time."""

    def __init__(self, models: ModelCache) -> None:
        self.models = models

    @user_errors
    def timeline(self, video: str | None, window: float = 2.0, stride: float = 0.5,
                 key: str = DEFAULT_KEY) -> tuple[Any, list[list[Any]], Timeline, Any]:
        """(plot, segment rows, the timeline itself (kept in a ``gr.State`` for later cursor moves: stored by
        reference, not re-serialised), the cursor slider fitted to the clip)."""
        if not window > 0 or not stride > 0:
            raise gr.Error("window and stride must be positive", print_exception=False)
        loaded = self.models.get(key)
        timeline = compute_timeline(loaded.model, loaded.meta, _need_video(video), float(window), float(stride),
                                    lock=loaded.lock)
        rows = [[round(s.start, 2), round(s.end, 2), s.label, round(s.score, 3)] for s in timeline.segments()]
        cursor = gr.Slider(0, round(timeline.duration, 2), value=0, step=min(float(stride), 0.5), interactive=True)
        return self.figure(timeline, 0.0), rows, timeline, cursor

    @staticmethod
    def figure(timeline: Timeline | None, time: float) -> Any:
        """The plot with the cursor drawn at ``time`` seconds."""
        if timeline is None:
            return None
        figure = for_any_background(timeline.figure())  # no white block on the dark theme
        figure.axes[0].axvline(float(time), color=NEUTRAL, linewidth=1)
        return figure

    @staticmethod
    def at(timeline: Timeline | None, time: float) -> str:
        """The segment holding ``time`` and the top classes of the window centred nearest it, as Markdown."""
        if timeline is None:
            return "Run a timeline first."
        window, segment = timeline.at(float(time))
        lines = [f"**{time:.2f} s**: " + (f"segment {segment.start:.2f}-{segment.end:.2f} s, **{segment.label}** "
                                          f"(mean {segment.score:.3f})" if segment else "no segment")]
        lines.append(f"window {timeline.starts[window]:.2f}-{timeline.ends[window]:.2f} s: " + ", ".join(
            f"{name} {p:.3f}" for name, p in timeline.window_top(window)))
        return "  \n".join(lines)


def timeline_tab(models: ModelCache, key: gr.State, examples: list[list[str]]) -> None:
    """Add the Timeline tab (call inside ``gr.Tabs``) and wire its events."""
    h = TimelineHandlers(models)
    with gr.Tab("Timeline", id="timeline"):
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(sources=["upload"], label="long clip", elem_id="timeline-video")
                with gr.Row():
                    window = gr.Number(2.0, minimum=0.1, label="window (s)")
                    stride = gr.Number(0.5, minimum=0.1, label="stride (s)")
                run = gr.Button("Timeline", variant="primary", elem_id="timeline-button")
                gr.Examples(examples, inputs=[video], label="SynthMotion examples", examples_per_page=12)
            with gr.Column(scale=2):
                plot = gr.Plot(label="top classes over time (band: segments)", elem_id="timeline-plot")
                cursor = gr.Slider(0, 1, value=0, step=0.5, label="time (s): the segment under the cursor",
                                   elem_id="timeline-cursor")
                here = gr.Markdown(elem_id="timeline-at")
        segments = gr.Dataframe(headers=SEGMENT_COLUMNS, label="segments", interactive=False)
        state = gr.State()
    run.click(h.timeline, [video, window, stride, key], [plot, segments, state, cursor], api_name="timeline",
              concurrency_limit=1, concurrency_id="timeline").success(
        h.at, [state, cursor], [here], api_visibility="private")
    cursor.release(h.figure, [state, cursor], [plot], api_visibility="private").success(
        h.at, [state, cursor], [here], api_visibility="private")
