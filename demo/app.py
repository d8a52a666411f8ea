"""The Gradio Blocks of the app: a checkpoint bar and four tabs (Classify, Biases, Attributions, Model).

Named API endpoints for `gradio_client`: ``/classify`` (video -> label dict), ``/biases`` (stage, block,
unit, group, Δt -> plotly figure, per-group statistics) and ``/attribute`` (video, method, target, steps ->
overlay video, frame strip, importance curve, summary). API calls use the default checkpoint; a browser
session can switch to another one (its key lives in a `gr.State`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from analysis import METHODS  # noqa: E402
from analysis.plots import FORMATS  # noqa: E402
from demo.checkpoints import DEFAULT_KEY, LABEL_SETS, SUFFIXES, CheckpointDir, ModelCache  # noqa: E402
from demo.examples import render_examples  # noqa: E402
from demo.guard import UploadGuard, remove_on_exit  # noqa: E402
from demo.handlers import ALL_GROUPS, GROUP_COLUMNS, TOP1, Handlers  # noqa: E402
from demo.scratch import Scratch  # noqa: E402

MAX_FILE_SIZE = 512 << 20  # bytes: clips and the authors' checkpoints (S16 on K400 is ~400 MB)
DELETE_CACHE = (600, 3600)  # every 10 min, delete uploads and outputs older than an hour
QUEUE_SIZE = 64  # requests waiting beyond this are refused rather than piling up
# One system-font theme: the page loads nothing from the internet (no Google Fonts).
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def default_device() -> str:
    """The GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_app(checkpoint: str | Path | None = None, checkpoint_dir: str | Path | None = None,
              device: str | None = None) -> gr.Blocks:
    """The app for `checkpoint` (default: the bundled one), with a picker over `checkpoint_dir`.

    Loads the checkpoint and renders the example clips now, so a bad checkpoint fails before serving.
    """
    work = Path(tempfile.mkdtemp(prefix="posmlp-app-"))
    remove_on_exit(work)  # also on SIGTERM
    # Gradio's uploads and cache live in the work folder too (one app per process), so they go with it
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    models = ModelCache(checkpoint, device or default_device())
    h = Handlers(models, CheckpointDir(checkpoint_dir), Scratch(work / "outputs"))
    examples = [[str(p)] for p in render_examples(work / "examples")]
    default = models.get(DEFAULT_KEY)
    limit = max(1, os.cpu_count() or 1)

    with gr.Blocks(title="PosMLP-Video", delete_cache=DELETE_CACHE, analytics_enabled=False) as app:
        key = gr.State(DEFAULT_KEY)
        gr.Markdown("# PosMLP-Video\nClassify clips, explore the learned relative-position biases, "
                    "and see which pixels and frames a prediction rests on.")

        with gr.Accordion("Checkpoint", open=False):
            status = gr.Markdown(f"Using the default checkpoint **{default.name}** on {default.predictor.device}",
                                 elem_id="ckpt-status")
            with gr.Row():
                picker = gr.Dropdown(h.folder.names(), value=None, label="checkpoint in --checkpoint-dir",
                                     info="only files inside the folder the server was started with", elem_id="ckpt-picker")
                refresh = gr.Button("Refresh list", size="sm")
                pick = gr.Button("Load picked", size="sm", elem_id="ckpt-pick")
            with gr.Row():
                upload = gr.File(label="or upload a checkpoint", file_types=list(SUFFIXES), type="filepath",
                                 elem_id="ckpt-upload")
                label_set = gr.Radio(list(LABEL_SETS), value="ssv2", label="class list (authors' .pth/.pyth only)")
                load_upload = gr.Button("Load upload", size="sm", elem_id="ckpt-load-upload")
            back = gr.Button("Back to the default checkpoint", size="sm")

        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                with gr.Row():
                    with gr.Column():
                        video = gr.Video(sources=["upload", "webcam"], include_audio=True, label="clip",
                                         elem_id="classify-video")
                        classify = gr.Button("Classify", variant="primary", elem_id="classify-button")
                        gr.Examples(examples, inputs=[video], label="SynthMotion examples", examples_per_page=12)
                    with gr.Column():
                        label = gr.Label(num_top_classes=5, label="top-5", elem_id="classify-label")
                        timing = gr.Markdown(elem_id="classify-timing")
                strip = gr.Image(label="the frames the model saw (after resize and crop)", interactive=False,
                                 elem_id="classify-strip")
                seen = gr.State()

            with gr.Tab("Biases", id="biases"):
                # Choices cover the whole default model (the API validates against them); a browser session
                # narrows them to the picked stage/block/unit on load and on every change.
                tables = default.tables
                first = tables[0]
                max_span = max([t.window[0] - 1 for t in tables if t.unit == "spatiotemporal"] + [1])
                with gr.Row():
                    stage = gr.Dropdown(sorted({t.stage for t in tables}), value=first.stage, label="stage")
                    block = gr.Dropdown(sorted({t.block for t in tables}), value=first.block, label="block")
                    unit = gr.Radio(list(dict.fromkeys(t.unit for t in tables)), value=first.unit, label="unit",
                                    elem_id="bias-unit")
                    group = gr.Dropdown([("all groups", ALL_GROUPS)] + [(f"group {g}", g) for g in
                                                                        range(max(t.groups for t in tables))],
                                        value=ALL_GROUPS, label="channel group",
                                        info="spatiotemporal units: one group's Δt slices")
                    dt = gr.Slider(-max_span, max_span, value=0, step=1, label="Δt slice (spatiotemporal units)")
                plot = gr.Plot(label="learned relative-position biases", elem_id="bias-plot")
                stats = gr.Dataframe(headers=GROUP_COLUMNS, label="statistics per channel group", interactive=False)
                with gr.Row():
                    fmt = gr.Radio(list(FORMATS), value="png", label="figure format")
                    export = gr.Button("Export figure", size="sm")
                    figure_file = gr.File(label="figure", interactive=False)
                with gr.Accordion("All units: summary statistics", open=False):
                    all_units = gr.Markdown()

            with gr.Tab("Attributions", id="attributions"):
                with gr.Row():
                    with gr.Column():
                        attr_video = gr.Video(sources=["upload", "webcam"], include_audio=True, label="clip",
                                              elem_id="attr-video")
                        method = gr.Dropdown(list(METHODS), value="integrated_gradients", label="method")
                        target = gr.Dropdown(h.targets(DEFAULT_KEY), value=TOP1, label="target class")
                        steps = gr.Slider(4, 64, value=16, step=4, label="steps (integrated gradients)")
                        explain = gr.Button("Explain", variant="primary", elem_id="attr-button")
                        gr.Examples(examples, inputs=[attr_video], label="SynthMotion examples", examples_per_page=12)
                    with gr.Column():
                        overlay = gr.Video(label="attribution overlay (left: frames, right: overlay)",
                                           interactive=False, autoplay=True, loop=True, elem_id="attr-overlay")
                        attr_text = gr.Markdown(elem_id="attr-text")
                attr_strip = gr.Image(label="frames and overlays", interactive=False)
                curve = gr.Plot(label="temporal importance")

            with gr.Tab("Model", id="model"):
                complexity = gr.Markdown(elem_id="model-complexity")
                with gr.Row():
                    meta = gr.JSON(label="checkpoint metadata")
                    names = gr.Dataframe(headers=["index", "class"], label="class names", interactive=False)
                with gr.Accordion("Architecture", open=False):
                    architecture = gr.Code(language=None, label="modules")

        # Classify: the API endpoint returns the label dict only; the strip and timings follow privately.
        classify.click(h.classify, [video, key], [label, seen], api_name="classify").success(
            h.show_seen, [seen], [strip, timing], api_visibility="private")
        video.change(lambda v: v, [video], [attr_video], api_visibility="private")

        selection = [stage, block, unit, group, dt]
        gr.on([stage.input, block.input, unit.input, group.input, dt.release], h.bias_controls,
              [*selection, key], selection, api_visibility="private").success(
            h.biases, [*selection, key], [plot, stats], api_name="biases")
        export.click(h.export_figure, [*selection, fmt, key], [figure_file], api_name="export_figure")

        method.change(lambda m: gr.Slider(interactive=m == "integrated_gradients"), [method], [steps],
                      api_visibility="private")
        explain.click(h.attribute, [attr_video, method, target, steps, key],
                      [overlay, attr_strip, curve, attr_text], api_name="attribute", concurrency_limit=1,
                      concurrency_id="attribute")

        # Whenever the session's checkpoint changes (and on page load): refresh everything derived from it.
        def refresh_all(event: gr.events.Dependency) -> None:
            event.success(h.bias_controls, [*selection, key], selection, api_visibility="private").success(
                h.biases, [*selection, key], [plot, stats], api_visibility="private").success(
                h.bias_summary, [key], [all_units], api_visibility="private").success(
                h.model_info, [key], [complexity, architecture, meta, names], api_visibility="private").success(
                h.target_choices, [key], [target], api_visibility="private")

        refresh_all(app.load(lambda: None, api_visibility="private"))
        refresh.click(h.folder_choices, None, [picker], api_visibility="private")
        refresh_all(pick.click(h.pick, [picker, label_set], [key, status], api_visibility="private"))
        refresh_all(load_upload.click(h.upload, [upload, label_set], [key, status], api_visibility="private"))
        refresh_all(back.click(h.use_default, None, [key, status], api_visibility="private"))

    app.queue(default_concurrency_limit=limit, max_size=QUEUE_SIZE)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, max_file_size: int = MAX_FILE_SIZE,
           **kwargs) -> None:
    """Serve `app` on `host:port` (loopback by default), without share links or server-side rendering.

    Uploads above `max_file_size` bytes are refused: at once when the request announces its size, else by
    Gradio as the bytes arrive; partial uploads of clients that disconnect are deleted.
    """
    guard = Middleware(UploadGuard, max_bytes=max_file_size, upload_dir=os.environ["GRADIO_TEMP_DIR"])
    app.launch(server_name=host, server_port=port, share=False, max_file_size=max_file_size, ssr_mode=False,
               theme=THEME, footer_links=["api"], app_kwargs={"middleware": [guard]}, **kwargs)
