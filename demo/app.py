"""The Gradio Blocks of the app: a checkpoint bar and tabs (Classify, Biases, Attributions, How positions mix,
Timeline, Model).

Named API endpoints for `gradio_client`: ``/classify`` (video -> label dict), ``/biases`` (stage, block,
unit, group, Δt -> plotly figure, per-group statistics) and ``/attribute`` (video, method, target, steps ->
overlay video, frame strip, importance curve, summary), ``/timeline`` (video, window s, stride s -> plot,
segments). API calls use the default checkpoint; a browser session can switch to another one (its key lives in
a `gr.State`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from analysis import METHODS  # noqa: E402
from analysis.plots import FORMATS  # noqa: E402
from demo.checkpoints import DEFAULT_KEY, LABEL_SETS, SUFFIXES, CheckpointDir, ModelCache  # noqa: E402
from demo.examples import example_class, render_examples  # noqa: E402
from demo.guard import UploadGuard, remove_on_exit  # noqa: E402
from demo.handlers import ALL_GROUPS, GROUP_COLUMNS, IG_BOUND, IG_MAX_STEPS, TOP1, Handlers  # noqa: E402
from demo.scratch import Scratch  # noqa: E402
from demo.teaching import CSS as MIXING_CSS  # noqa: E402
from demo.teaching import JS_ON_LOAD as MIXING_JS  # noqa: E402
from demo.timeline import timeline_tab  # noqa: E402

MAX_FILE_SIZE = 512 << 20  # bytes: clips and the authors' checkpoints (S16 on K400 is ~400 MB)
DELETE_CACHE = (600, 3600)  # every 10 min, delete uploads and outputs older than an hour
LAUNCH_ATTEMPTS = 3
QUEUE_SIZE = 64  # requests waiting beyond this are refused rather than piling up
PREVIEW_PX = 260  # the preview's height: a portrait clip does not push the results below the fold
CLIP_LABEL = "clip: a video (mp4, avi, mkv, webm, ...), an animated GIF or a still image"
EXAMPLES_LABEL = "SynthMotion examples: click one to classify it (each is labelled with its true class)"
CLASSIFY_API = ("Classify one clip (video, GIF or image file) with the default checkpoint: the top-5 classes "
                "and their probabilities, as a Label.")
BIASES_API = ("The learned relative-position biases of one gating unit (stage, block, unit, channel group or -1 "
              "for all, Δt slice): a plotly figure and per-group statistics.")
EXPORT_API = "The same unit's figure as a png, pdf or svg file."
ATTRIBUTE_API = ("Explain the prediction for one clip (method, target class or -1 for the top-1, integrated-gradient "
                 "steps to start with, Grad-CAM stage): overlay video, frame strip image, per-frame importance plot, summary.")
CANCELLED = "**Attribution cancelled.** Nothing was kept; press Explain to run it again."
MIXING_INTRO = (
    "Inside a window, a gating unit mixes tokens with one learned weight per **offset** (query - key) and channel "
    "group: the weight the query gives a key is read from the offset table at the key's offset. Pick a unit, a "
    "group and a **query token**; the left grid shows the weight of every key token (one row of the N x N mixing "
    "matrix; for a temporal unit the whole T x T matrix, Toeplitz because the weight depends only on Δt), the right "
    "grid the table it was read from. **Hover** a key token to see its offset highlighted in the table; **click** "
    "one to make it the query. The unit also adds a token bias (shown) and multiplies the result by the gate's "
    "other half.")
# Clip inputs take any file (no file_types filter): the decoder, not the browser's MIME guess, decides, and
# says in one line why a file cannot be read.
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
    # Gradio's uploads and cache live in the first app's work folder, so they go with it. Set once per
    # process: Gradio reads it at every upload, so a later build_app (even one that fails) must not move it
    os.environ.setdefault("GRADIO_TEMP_DIR", str(work / "gradio"))
    _say(f"loading checkpoint {Path(checkpoint).name if checkpoint else 'bundled'} ...")
    models = ModelCache(checkpoint, device or default_device())
    h = Handlers(models, CheckpointDir(checkpoint_dir), Scratch(work / "outputs"))
    _say("rendering the example clips ...")
    examples = [[str(p)] for p in render_examples(work / "examples")]
    example_labels = [f"{example_class(p[0])}" for p in examples]
    default = models.get(DEFAULT_KEY)
    limit = max(1, os.cpu_count() or 1)
    _say("building the page ...")

    with gr.Blocks(title="PosMLP-Video", delete_cache=DELETE_CACHE, analytics_enabled=False) as app:
        key = gr.State(DEFAULT_KEY)
        gr.Markdown("# PosMLP-Video\nClassify clips, explore the learned relative-position biases, "
                    "and see which pixels and frames a prediction rests on.")
        header = gr.Markdown(h.header(DEFAULT_KEY), elem_id="model-header")

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
                label_set = gr.Radio(list(LABEL_SETS), value="ssv2", label="class list (authors' .pth/.pyth only)",
                                     info="numbered: class 0, class 1, ... (also used when the list's length does not "
                                          "match the checkpoint's classes)")
                load_upload = gr.Button("Load upload", size="sm", elem_id="ckpt-load-upload")
            back = gr.Button("Back to the default checkpoint", size="sm")

        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                with gr.Row():
                    with gr.Column():
                        clip = gr.File(label=CLIP_LABEL, type="filepath", height=120,
                                       elem_id="classify-input")
                        classify = gr.Button("Classify", variant="primary", elem_id="classify-button")
                        preview = gr.Video(label="your clip (H.264 preview)", interactive=False, height=PREVIEW_PX,
                                           autoplay=True, loop=True, elem_id="classify-preview")
                        with gr.Accordion("record with the webcam", open=False):
                            webcam = gr.Video(sources=["webcam"], include_audio=False, label="webcam",
                                              height=PREVIEW_PX)
                        with gr.Column() as examples_box:
                            samples = gr.Examples(examples, inputs=[clip], example_labels=example_labels,
                                                  label=EXAMPLES_LABEL, examples_per_page=12)
                    with gr.Column():
                        note = gr.Markdown(elem_id="classify-note")
                        label = gr.Label(num_top_classes=5, label="top-5", elem_id="classify-label")
                        timing = gr.Markdown(elem_id="classify-timing")
                strip = gr.Image(label="the frames the model saw (after resize and crop)", interactive=False,
                                 elem_id="classify-strip")
                seen = gr.State()

            with gr.Tab("Biases", id="biases"):
                # Choices cover the whole default model (the API validates against them); a browser session
                # narrows them to the picked stage/block/unit on load and on every change. Custom values are
                # allowed so that a stale pick (a fast user) reaches the handler, which falls back to a valid one.
                tables = default.tables
                first = tables[0]
                max_span = max([t.window[0] - 1 for t in tables if t.unit == "spatiotemporal"] + [1])
                with gr.Row():
                    stage = gr.Dropdown(sorted({t.stage for t in tables}), value=first.stage, label="stage",
                                        allow_custom_value=True, elem_id="bias-stage")
                    block = gr.Dropdown(sorted({t.block for t in tables}), value=first.block, label="block",
                                        allow_custom_value=True, elem_id="bias-block")
                    unit = gr.Radio(list(dict.fromkeys(t.unit for t in tables)), value=first.unit, label="unit",
                                    elem_id="bias-unit")
                    group = gr.Dropdown([("all groups", ALL_GROUPS)] + [(f"group {g}", g) for g in
                                                                        range(max(t.groups for t in tables))],
                                        value=ALL_GROUPS, label="channel group", allow_custom_value=True,
                                        info="one group: that group alone, enlarged (spatiotemporal: its Δt slices)",
                                        elem_id="bias-group")
                    dt = gr.Slider(-max_span, max_span, value=0, step=1, label="Δt slice (spatiotemporal units)",
                                   elem_id="bias-dt")
                plot = gr.Plot(label="learned relative-position biases", elem_id="bias-plot")
                stats = gr.Dataframe(headers=GROUP_COLUMNS, label="statistics per channel group", interactive=False)
                with gr.Row():
                    fmt = gr.Radio(list(FORMATS), value="png", label="figure format")
                    export = gr.Button("Export the figure shown", size="sm", elem_id="bias-export")
                    figure_file = gr.File(label="figure", interactive=False, elem_id="bias-file")
                shown = gr.State()
                with gr.Accordion("All units: summary statistics", open=False):
                    all_units = gr.Markdown()

            with gr.Tab("Attributions", id="attributions"):
                with gr.Row():
                    with gr.Column():
                        attr_clip = gr.File(label=CLIP_LABEL, type="filepath", height=120,
                                            elem_id="attr-input")
                        method = gr.Dropdown(list(METHODS), value="integrated_gradients", label="method",
                                             elem_id="attr-method")
                        target = gr.Dropdown(h.targets(DEFAULT_KEY), value=TOP1, label="target class")
                        steps = gr.Slider(4, 128, value=16, step=4, label="steps to start with (integrated gradients)",
                                          elem_id="attr-steps",
                                          info=f"while the completeness error |sum of attributions - logit change| "
                                               f"/ |logit change| is above {IG_BOUND:.0%}, the run is repeated with "
                                               f"twice the steps (up to {IG_MAX_STEPS})")
                        cam_stages, cam_default, cam_info = h.cam_stages(DEFAULT_KEY)
                        cam_stage = gr.Dropdown(cam_stages, value=cam_default, label="Grad-CAM stage",
                                                visible=False, elem_id="attr-cam-stage", info=cam_info)
                        with gr.Row():
                            explain = gr.Button("Explain", variant="primary", elem_id="attr-button")
                            cancel = gr.Button("Cancel", variant="stop", visible=False, elem_id="attr-cancel")
                        with gr.Column() as attr_examples_box:
                            gr.Examples(examples, inputs=[attr_clip], example_labels=example_labels,
                                        label="SynthMotion examples (label = true class)", examples_per_page=12)
                    with gr.Column():
                        overlay = gr.Video(label="attribution overlay (left: frames, right: overlay)",
                                           interactive=False, autoplay=True, loop=True, elem_id="attr-overlay")
                        attr_text = gr.Markdown(label="summary", elem_id="attr-text")
                attr_strip = gr.Image(label="frames (top) and signed attributions (bottom)", interactive=False,
                                      elem_id="attr-strip")
                curve = gr.Plot(label="importance per frame")

            with gr.Tab("How positions mix", id="mixing"):
                gr.Markdown(MIXING_INTRO)
                with gr.Row():
                    m_stage = gr.Dropdown(sorted({t.stage for t in tables}), value=first.stage, label="stage",
                                          allow_custom_value=True)
                    m_block = gr.Dropdown(sorted({t.block for t in tables}), value=first.block, label="block",
                                          allow_custom_value=True)
                    m_unit = gr.Radio(list(dict.fromkeys(t.unit for t in tables)), value=first.unit, label="unit",
                                      elem_id="mix-unit")
                    m_group = gr.Dropdown([(f"group {g}", g) for g in range(max(t.groups for t in tables))], value=0,
                                          label="channel group", allow_custom_value=True)
                    m_query = gr.Textbox(label="query token", info="coordinates in the window, e.g. 2, 3 "
                                         "(or click a key token); Enter to apply", elem_id="mix-query")
                mix_view = gr.HTML(label="mixing weights", css_template=MIXING_CSS, js_on_load=MIXING_JS,
                                   elem_id="mix-view")
                with gr.Row():
                    m_fmt = gr.Radio(list(FORMATS), value="png", label="figure format")
                    m_export = gr.Button("Export as a figure", size="sm", elem_id="mix-export")
                    m_file = gr.File(label="figure", interactive=False, elem_id="mix-file")

            timeline_tab(models, key, examples)

            with gr.Tab("Model", id="model"):
                complexity = gr.Markdown(elem_id="model-complexity")
                with gr.Row():
                    meta = gr.JSON(label="checkpoint metadata")
                    names = gr.Dataframe(headers=["index", "class"], label="class names", interactive=False)
                with gr.Accordion("Architecture", open=False):
                    architecture = gr.Code(language=None, label="modules")

        # Classify: every output is emptied first (so an error never leaves the last clip's results), then the
        # API step returns the label dict; the strip, timing and confidence note follow privately.
        results = [label, seen, strip, timing, note]
        classify.click(h.clear_results, None, results, api_visibility="private", show_progress="hidden").then(
            h.classify, [clip, key], [label, seen], api_name="classify", api_description=CLASSIFY_API).success(
            h.show_seen, [seen], [strip, timing, note], api_visibility="private")
        fresh = dict(inputs=[clip], outputs=[preview, *results], api_visibility="private")
        clip.upload(h.new_clip, **fresh)
        clip.clear(h.new_clip, **fresh)
        webcam.stop_recording(lambda v: v, [webcam], [clip], api_visibility="private").then(h.new_clip, **fresh)
        samples.load_input_event.then(h.new_clip, **fresh).then(
            h.classify, [clip, key], [label, seen], api_visibility="private").success(
            h.show_seen, [seen], [strip, timing, note], api_visibility="private")
        clip.change(lambda v: v, [clip], [attr_clip], api_visibility="private")

        # Biases: every control change redraws (the slider on any change: drag, keys, number box); the
        # selection drawn is remembered, and Export draws exactly that one. /biases serves API callers.
        selection = [stage, block, unit, group, dt]
        redraw = dict(inputs=[*selection, key], outputs=[plot, stats, shown, figure_file], api_visibility="private",
                      trigger_mode="always_last")
        gr.on([stage.input, block.input, unit.input, group.input], h.bias_controls, [*selection, key], selection,
              api_visibility="private", trigger_mode="always_last").success(h.show_biases, **redraw)
        dt.change(h.show_biases, **redraw)
        export.click(h.export_shown, [shown, fmt, key], [figure_file], api_visibility="private")
        api_only = gr.Button(visible=False)
        api_only.click(h.biases, [*selection, key], [plot, stats], api_name="biases", api_description=BIASES_API)
        api_only.click(h.export_figure, [*selection, fmt, key], [figure_file], api_name="export_figure",
                       api_description=EXPORT_API)

        # Attributions: the button is disabled and Cancel shown while one runs; Cancel stops it at the next
        # forward pass. Outputs are emptied on a new clip and before every run.
        attr_outputs = [overlay, attr_strip, curve, attr_text]
        method.change(lambda m: (gr.Slider(visible=m == "integrated_gradients"), gr.Dropdown(visible=m == "grad_cam")),
                      [method], [steps, cam_stage], api_visibility="private")
        attr_clip.change(h.clear_attribution, None, attr_outputs, api_visibility="private")
        def idle() -> tuple[gr.Button, gr.Button]:  # updates made at event time (here they would render)
            return gr.Button(interactive=True), gr.Button(visible=False)

        running = explain.click(lambda: (gr.Button(interactive=False), gr.Button(visible=True)), None,
                                [explain, cancel], api_visibility="private", show_progress="hidden").then(
            h.clear_attribution, None, attr_outputs, api_visibility="private", show_progress="hidden").then(
            h.attribute, [attr_clip, method, target, steps, cam_stage, key], attr_outputs, api_name="attribute",
            api_description=ATTRIBUTE_API, concurrency_limit=1, concurrency_id="attribute")
        running.then(idle, None, [explain, cancel], api_visibility="private", show_progress="hidden")
        cancel.click(lambda: (*idle(), CANCELLED), None, [explain, cancel, attr_text], cancels=[running],
                     api_visibility="private")

        # How positions mix: controls (or a click on a key token) pick the unit, group and query.
        mix_sel = [m_stage, m_block, m_unit, m_group, m_query]
        gr.on([m_stage.input, m_block.input, m_unit.input, m_group.input, m_query.submit], h.mixing_controls,
              [*mix_sel, key], mix_sel, api_visibility="private", trigger_mode="always_last").success(
            h.mixing, [*mix_sel, key], [mix_view], api_visibility="private")
        mix_view.click(h.pick_query, None, [m_query], api_visibility="private").success(
            h.mixing, [*mix_sel, key], [mix_view], api_visibility="private")
        m_export.click(h.export_mixing, [*mix_sel, m_fmt, key], [m_file], api_visibility="private")

        # Whenever the session's checkpoint changes (and on page load): refresh everything derived from it.
        def refresh_all(event: gr.events.Dependency) -> None:
            private = dict(api_visibility="private")
            event.success(h.bias_controls, [*selection, key], selection, **private).success(
                h.show_biases, [*selection, key], [plot, stats, shown, figure_file], **private).success(
                h.bias_summary, [key], [all_units], **private)
            event.success(h.header, [key], [header], **private).success(
                h.examples_visible, [key], [examples_box, attr_examples_box], **private).success(
                h.target_choices, [key], [target], **private).success(
                h.cam_choices, [key], [cam_stage], **private)
            event.success(h.mixing_controls, [*mix_sel, key], mix_sel, **private).success(
                h.mixing, [*mix_sel, key], [mix_view], **private)
            event.success(h.model_info, [key], [complexity, architecture, meta, names], **private)

        refresh_all(app.load(lambda: None, api_visibility="private"))
        # The picker lists the folder as it is now: on page load, on Refresh, and after a pick that failed (a
        # file removed since the list was made gets a one-line error, and leaves the list).
        relist = dict(fn=h.folder_choices, inputs=[picker], outputs=[picker], api_visibility="private")
        app.load(**relist)
        refresh.click(**relist)
        picked = pick.click(h.pick, [picker, label_set], [key, status], api_visibility="private")
        refresh_all(picked)
        picked.failure(**relist)
        refresh_all(load_upload.click(h.upload, [upload, label_set], [key, status], api_visibility="private"))
        refresh_all(back.click(h.use_default, None, [key, status], api_visibility="private"))

    # api_open=False: Gradio's direct REST routes (/gradio_api/run/...) would run any handler, hidden ones
    # included, beside the queue (no size limit, no concurrency limit); every call goes through the queue.
    app.queue(default_concurrency_limit=limit, max_size=QUEUE_SIZE, api_open=False)
    return app


def _say(message: str) -> None:
    """A start-up line on stderr, so the minute before the server answers is not silent."""
    print(f"app.py: {message}", file=sys.stderr, flush=True)


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, max_file_size: int = MAX_FILE_SIZE,
           **kwargs) -> None:
    """Serve `app` on `host:port` (loopback by default), without share links or server-side rendering.

    Gradio's own banner (which suggests share links) is silenced; one line says where the app is. Uploads above
    `max_file_size` bytes are refused: at once when the request announces its size, else by Gradio as the bytes
    arrive; partial uploads of clients that disconnect are deleted.
    """
    guard = Middleware(UploadGuard, max_bytes=max_file_size, upload_dir=os.environ["GRADIO_TEMP_DIR"])
    kwargs.setdefault("quiet", True)
    block = not kwargs.pop("prevent_thread_lock", False)
    for attempt in range(LAUNCH_ATTEMPTS):
        try:
            app.launch(server_name=host, server_port=port, share=False, max_file_size=max_file_size, ssr_mode=False,
                       theme=THEME, footer_links=["api"], prevent_thread_lock=True,
                       app_kwargs={"middleware": [guard]}, **kwargs)
            break
        except ValueError as err:
            # Gradio gives its own server 3 s to answer the first page; on a busy machine that can time out
            # (it then asks for a share link). The page is warm the second time: close and start again.
            app.close()
            if "localhost is not accessible" not in str(err) or attempt == LAUNCH_ATTEMPTS - 1:
                raise
            _say("the server was slow to answer its first request; starting it again ...")
    _say(f"serving on http://{host}:{port}/ (Ctrl+C to stop; no share link)")
    if block:
        app.block_thread()
