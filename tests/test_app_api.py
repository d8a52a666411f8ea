"""The app driven over HTTP with `gradio_client`, against answers computed independently in-process.

Needs the bundled checkpoint (posmlp_video/weights/posmlp_video_xs_realmotion.safetensors): without it the
`app_server` fixture errors.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import statistics
import threading
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from video_corpus import BROKEN, HOSTILE_REASONS, LOWERED_BUDGET

from analysis import attribute, get_table, relative_position_biases, table_stats
from demo.checkpoints import DEFAULT_KEY, CheckpointDir, ModelCache, check_upload
from demo.handlers import IG_BOUND, IG_MAX_STEPS, Handlers
from demo.scratch import Scratch
from posmlp_video.assets import sha256_file
from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint, save_checkpoint
from posmlp_video.data import probe_video, write_mp4
from posmlp_video.errors import CheckpointError
from posmlp_video.loading import load_class_names
from posmlp_video.predict import Predictor


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The bundled model, loaded independently of the app."""
    return Predictor.from_checkpoint()


def _top5(result: dict) -> list[tuple[str, float]]:
    return [(c["label"], c["confidence"]) for c in result["confidences"]]


def test_classify_returns_the_models_own_top5(client, app_server, predictor):
    for path in app_server.examples[:3]:
        result = client.predict(handle_file(str(path)), api_name="/classify")
        top = _top5(result)
        expected = predictor.predict(path, top_k=5).top
        assert len(top) == 5 and sum(p for _, p in top) <= 1 + 1e-6
        assert all(label in predictor.class_names for label, _ in top)
        assert result["label"] == expected[0][0] == top[0][0]
        np.testing.assert_allclose([p for _, p in top], [p for _, p in expected], atol=1e-5)
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_bad_uploads_get_a_one_line_reason_and_the_server_keeps_serving(client, app_server, video_corpus, name,
                                                                        predictor):
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(video_corpus[name])), api_name="/classify")
    message = str(err.value)
    assert BROKEN[name][1] in message and "\n" not in message.strip()
    good = app_server.examples[0]
    assert client.predict(handle_file(str(good)), api_name="/classify")["label"] == predictor.predict(good).top[0][0]


@pytest.mark.parametrize("name", sorted(HOSTILE_REASONS))
def test_hostile_uploads_get_a_one_line_reason_and_the_server_keeps_serving(client, app_server, hostile_corpus, name,
                                                                            predictor, monkeypatch):
    """Playlists naming a video on the server are refused (not classified); absurd sizes answered at once,
    floods of frames when the (lowered) budget runs out. (Memory over the whole corpus: test_app_hostile.py.)"""
    for variable, value in LOWERED_BUDGET.items():  # the in-process server reads its budget at each call
        monkeypatch.setenv(variable, value)
    reason = HOSTILE_REASONS[name]
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(hostile_corpus[name])), api_name="/classify")
    assert reason in str(err.value) and "\n" not in str(err.value).strip()
    good = app_server.examples[0]
    assert client.predict(handle_file(str(good)), api_name="/classify")["label"] == predictor.predict(good).top[0][0]


def test_classify_decodes_outside_the_model_lock(tmp_path, video_corpus, monkeypatch):
    """A slow file must not stall other sessions: the model's lock is taken for the forward pass only."""
    from posmlp_video import views as views_module

    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(None), Scratch(tmp_path / "out"))
    lock = handlers.models.get(DEFAULT_KEY).lock
    held = []
    decode = views_module.read_video

    def read_video(*args, **kwargs):
        held.append(lock.locked())
        return decode(*args, **kwargs)

    monkeypatch.setattr(views_module, "read_video", read_video)
    label, _ = handlers.classify(str(video_corpus["h264_mp4"]))
    assert held == [False] and len(label) == 5


def test_a_long_hd_clip_is_bounded_by_the_decoder(client, video_corpus, predictor):
    for name in ("long_90s_mp4", "hd1080_mp4"):
        result = client.predict(handle_file(str(video_corpus[name])), api_name="/classify")
        assert result["label"] == predictor.predict(video_corpus[name]).top[0][0]


def test_eight_concurrent_clients_are_all_answered(app_server, predictor, video_corpus):
    paths = [*app_server.examples[:6], video_corpus["empty"], video_corpus["text_as_mp4"]]
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = Client(app_server.url, verbose=False).predict(handle_file(str(paths[i])), api_name="/classify")
        except AppError as err:
            results[i] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == list(range(8))
    for i, path in enumerate(paths[:6]):
        assert results[i]["label"] == predictor.predict(path).top[0][0]
    assert BROKEN["empty"][1] in str(results[6]) and BROKEN["text_as_mp4"][1] in str(results[7])


def test_classify_is_not_held_up_by_a_running_attribution(app_server, client):
    """Classify latency while an integrated-gradients attribution runs stays within 2x of idle (median of 5).

    The attribution runs on its own model copy in a lower-priority thread, so Classify neither waits for a
    lock nor loses the CPU to it. Idle is measured before and after the attribution, and the larger taken, so
    that load from outside this test that rises during it (a shared CI machine) is not read as a hold-up.
    """
    from gradio_client.utils import Status

    clip = str(app_server.examples[0])

    def classify_seconds() -> float:
        start = time.perf_counter()
        client.predict(handle_file(clip), api_name="/classify")
        return time.perf_counter() - start

    classify_seconds()  # warm up
    idle = statistics.median(classify_seconds() for _ in range(5))
    job = Client(app_server.url, verbose=False).submit(handle_file(str(app_server.examples[1])),
                                                       "integrated_gradients", -1, 128, api_name="/attribute")
    deadline = time.monotonic() + 120
    while job.status().code != Status.PROGRESS and not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)  # until the attribution reports its first forward passes
    busy = [classify_seconds() for _ in range(5)]
    still_running = not job.done()
    text = job.result(timeout=600)[3]
    idle_after = statistics.median(classify_seconds() for _ in range(5))
    print(f"classify: idle median {idle:.3f} s before, {idle_after:.3f} s after, during attribution "
          f"{statistics.median(busy):.3f} s ({busy})")
    assert still_running, "the attribution ended before the measurement did: make it longer"
    assert "integrated_gradients" in text
    assert statistics.median(busy) <= 2 * max(idle, idle_after)


def test_biases_endpoint_shows_each_unit_kind_with_its_statistics(client, predictor):
    tables = relative_position_biases(predictor.model)
    for kind in dict.fromkeys(t.unit for t in tables):
        table = next(t for t in tables if t.unit == kind)
        plot, stats = client.predict(table.stage, table.block, kind, -1, 0, api_name="/biases")
        figure = json.loads(plot["plot"])
        assert plot["type"] == "plotly" and kind in figure["layout"]["title"]["text"]
        trace_type = "scatter" if kind == "temporal" else "heatmap"
        assert {trace["type"] for trace in figure["data"]} == {trace_type}
        expected = table_stats(get_table(tables, table.stage, table.block, kind))
        rows = stats["data"]
        assert len(rows) == table.groups + 1 and rows[-1][0] == "all"
        for g, row in enumerate(rows[:-1]):
            assert row[0] == g
            if not math.isnan(expected.group_locality[g]):
                assert row[1] == pytest.approx(expected.group_locality[g], abs=1e-4)


def test_biases_endpoint_rejects_a_missing_unit_with_a_reason(client, predictor):
    tables = relative_position_biases(predictor.model)
    stage = tables[0].stage
    blocks = {t.block for t in tables if t.stage == stage}
    missing = next(b for b in range(8) if b not in blocks and any(t.block == b for t in tables))
    with pytest.raises(AppError, match="no gating unit"):
        client.predict(stage, missing, tables[0].unit, -1, 0, api_name="/biases")


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_bias_figures_download_in_each_format(client, fmt, magic):
    path = client.predict(0, 0, "spatial", -1, 0, fmt, api_name="/export_figure")
    with open(path, "rb") as f:
        assert f.read(5).startswith(magic)


def test_attribute_explains_the_top1_with_a_playable_overlay(client, app_server):
    model, meta = load_checkpoint()
    path = app_server.examples[1]
    overlay, strip, curve, text = client.predict(handle_file(str(path)), "integrated_gradients", -1, 8,
                                                 api_name="/attribute")
    predictor = Predictor(model, meta)
    expected = attribute(model, predictor.sample(path), "integrated_gradients", meta=meta, steps=8,
                         max_error=IG_BOUND, max_steps=IG_MAX_STEPS)
    assert expected.target == meta["class_names"].index(predictor.predict(path).top[0][0])
    assert f"**{expected.target_name}**" in text
    assert f"**{expected.delta:.4g}**" in text and f"steps used: **{expected.options['steps']}**" in text
    info = probe_video(overlay)
    assert info.codec == "h264" and info.num_frames == meta["num_frames"]
    image = cv2.imread(strip)
    assert image is not None and image.shape[0] >= 2 * meta["input_size"][0]
    bars = json.loads(curve["plot"])["data"][0]
    assert bars["type"] == "bar"


def test_attribute_takes_a_chosen_target_and_other_methods(client, app_server):
    meta = load_checkpoint()[1]
    _, _, _, text = client.predict(handle_file(str(app_server.examples[2])), "saliency", 3, 8, api_name="/attribute")
    assert f"**{meta['class_names'][3]}**" in text and "not defined for saliency" in text
    with pytest.raises(AppError, match="method"):
        client.predict(handle_file(str(app_server.examples[2])), "no_such_method", -1, 8, api_name="/attribute")


# ---------------------------------------------------------------------- checkpoint policy (no server)


def test_checkpoint_folder_lists_and_resolves_only_files_inside(tmp_path):
    root, outside = tmp_path / "ckpts", tmp_path / "outside.safetensors"
    (root / "sub").mkdir(parents=True)
    for path in (root / "a.safetensors", root / "sub" / "b.pth", root / "notes.txt", outside):
        path.write_bytes(b"x")
    (root / "out.safetensors").symlink_to(outside)
    (root / "escape").symlink_to(tmp_path)
    folder = CheckpointDir(root)
    assert folder.names() == ["a.safetensors", "sub/b.pth"]
    assert folder.resolve("sub/b.pth") == (root / "sub" / "b.pth").resolve()
    for name in ("../outside.safetensors", str(outside), "out.safetensors", "escape/outside.safetensors",
                 "notes.txt", "sub/../../outside.safetensors"):
        with pytest.raises(CheckpointError, match="no checkpoint named"):
            folder.resolve(name)
    with pytest.raises(CheckpointError, match="no checkpoint named"):
        CheckpointDir(None).resolve("a.safetensors")


class _Evil:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_uploaded_checkpoints_are_checked_before_use(tmp_path, official_small):
    models = ModelCache(None, "cpu")
    with pytest.raises(CheckpointError, match="upload a"):
        check_upload(tmp_path / "model.pkl")
    fake = tmp_path / "fake.safetensors"
    fake.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        models.add(fake, fake.name)
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model_state": _Evil(str(marker))}))
    with pytest.raises(CheckpointError):
        models.add(evil, evil.name, "ssv2")
    assert not marker.exists()  # loaded with weights_only=True: the payload never ran
    authors = tmp_path / "authors.pyth"
    torch.save(official_small["checkpoint"], authors)
    with pytest.raises(CheckpointError, match="choose its class list"):
        models.add(authors, authors.name)


def test_picking_the_same_unchanged_file_again_does_not_hash_it_again(tmp_path, monkeypatch):
    """A checkpoint's key holds its content hash; the file is read for it once per (real path, size, mtime)."""
    import demo.checkpoints

    hashed = []
    monkeypatch.setattr(demo.checkpoints, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    models = ModelCache(None, "cpu")
    file = tmp_path / "model.safetensors"
    file.write_bytes(BUNDLED_CHECKPOINT.read_bytes())
    key = models.add(file, file.name)
    assert key == f"model.safetensors [{sha256_file(BUNDLED_CHECKPOINT)[:12]}]" and len(hashed) == 1
    assert models.add(file, file.name) == key and len(hashed) == 1  # picked again: not read again
    (tmp_path / "link.safetensors").symlink_to(file)
    assert models.add(tmp_path / "link.safetensors", file.name) == key and len(hashed) == 1  # same real file
    later = file.stat().st_mtime_ns + 10**9
    os.utime(file, ns=(later, later))  # touched, same bytes: hashed again, same key
    assert models.add(file, file.name) == key and len(hashed) == 2
    model, meta = load_checkpoint(file)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    save_checkpoint(model, file, meta)
    os.utime(file, ns=(later + 10**9, later + 10**9))  # a new mtime even on a coarse-grained file system
    changed = models.add(file, file.name)
    assert changed == f"model.safetensors [{sha256_file(file)[:12]}]" != key and len(hashed) == 3


def test_an_authors_checkpoint_upload_gets_the_chosen_class_list(tmp_path, official_small, app_server):
    """A .pyth in the authors' layout (weights_only-loadable), re-headed for SSv1's 174 classes."""
    checkpoint = dict(official_small["checkpoint"])
    state = dict(checkpoint["model_state"])
    state["head.weight"], state["head.bias"] = torch.randn(174, state["head.weight"].shape[1]), torch.zeros(174)
    checkpoint.update(model_state=state, cfg=checkpoint["cfg"].replace("NUM_CLASSES: 10", "NUM_CLASSES: 174"))
    upload = tmp_path / "SSV1_small.pyth"
    torch.save(checkpoint, upload)
    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(None), Scratch(tmp_path / "out"))
    key, status = handlers.upload(str(upload), "ssv1")
    assert key.startswith("uploaded SSV1_small.pyth [") and key.endswith("] [ssv1]") and key in status
    label, seen = handlers.classify(str(app_server.examples[0]), key)
    ssv1 = load_class_names("ssv1")
    expected = Predictor(*load_checkpoint(upload, class_names=ssv1)).predict(app_server.examples[0]).top
    assert list(label) == [name for name, _ in expected] and set(label) <= set(ssv1)
    assert seen["frames"].shape[0] == 4  # the config's NUM_FRAMES


def test_an_authors_checkpoint_of_an_unlisted_class_count_gets_numbered_classes_and_the_naming_command(
        tmp_path, official_small, app_server, monkeypatch):
    """A tiny authors' checkpoint with 10 classes (no shipped list has 10) loads with numbered classes, and the
    header and status give a `convert --labels` command that, run as shown, names them."""
    from posmlp_video.cli import main

    authors = tmp_path / "tiny_authors.pyth"
    torch.save(official_small["checkpoint"], authors)
    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(None), Scratch(tmp_path / "out"))
    for label_set in ("ssv2", "numbered"):  # a list of another length, or none: numbered either way
        key, status = handlers.upload(str(authors), label_set)
        assert key.endswith(f"] [{label_set}]") and "Its 10 classes are numbered" in status
    label, _ = handlers.classify(str(app_server.examples[0]), key)
    assert len(label) == 5 and set(label) <= {f"class {i}" for i in range(10)}
    header = handlers.header(key)
    assert "Its 10 classes are numbered" in header and "No shipped class list has 10 names" in header
    assert "numbered" not in handlers.header()  # the bundled checkpoint has names
    command = re.search(r"`python -m posmlp_video (convert [^`]+)`", header).group(1)
    (tmp_path / "names.txt").write_text("".join(f"motion {i}\n" for i in range(10)))
    monkeypatch.chdir(tmp_path)
    assert main(command.split()) == 0
    named = Predictor.from_checkpoint(tmp_path / "named.safetensors")
    assert named.class_names == [f"motion {i}" for i in range(10)]
    assert "numbered" not in handlers.loaded_status(handlers.upload(str(tmp_path / "named.safetensors"), None)[0])
    assert main(["convert", authors.name, "plain.safetensors"]) == 0  # ours, converted without names
    key, status = handlers.upload(str(tmp_path / "plain.safetensors"), None)
    assert "Its 10 classes are numbered" in status
    command = re.search(r"`python -m posmlp_video (convert [^`]+)`", status).group(1)
    (tmp_path / "named.safetensors").unlink()
    assert command.startswith("convert plain.safetensors ") and main(command.split()) == 0  # works on ours too
    assert Predictor.from_checkpoint(tmp_path / "named.safetensors").class_names[3] == "motion 3"


def test_the_picker_follows_the_folder_and_a_removed_pick_is_one_line(tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(folder), Scratch(tmp_path / "out"))
    assert handlers.folder_choices().choices == []
    model, meta = load_checkpoint()
    save_checkpoint(model, folder / "late.safetensors", meta)  # added after the handlers started
    update = handlers.folder_choices("late.safetensors")
    assert [value for _, value in update.choices] == ["late.safetensors"] and update.value == "late.safetensors"
    (folder / "late.safetensors").unlink()
    with pytest.raises(gr.Error) as err:
        handlers.pick("late.safetensors", None)
    assert "no checkpoint named 'late.safetensors'" in err.value.message and "\n" not in err.value.message
    update = handlers.folder_choices("late.safetensors")
    assert update.choices == [] and update.value is None


def test_attribution_strip_and_curve_carry_the_frames_times(tmp_path, monkeypatch):
    """A 10 fps clip: the strip's columns and the curve's bars are labelled with the sampled frames' times."""
    import asyncio

    import demo.handlers as handlers_module

    frames = np.ascontiguousarray(np.broadcast_to((np.arange(40, dtype=np.uint8) * 6)[:, None, None, None],
                                                  (40, 96, 128, 3)))
    path = write_mp4(tmp_path / "counting.mp4", frames, fps=10.0)
    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(None), Scratch(tmp_path / "out"))
    titles = []
    draw = handlers_module.plot_attribution_strip

    def spy(*args, **kwargs):
        figure = draw(*args, **kwargs)
        titles.extend(ax.get_title() for ax in figure.axes if ax.get_title().startswith("frame"))
        return figure

    monkeypatch.setattr(handlers_module, "plot_attribution_strip", spy)
    _, _, curve, _ = asyncio.run(handlers.attribute(str(path), "saliency"))
    clip = handlers.models.get(DEFAULT_KEY).predictor.sample(path)
    times = np.round(clip.reshape(len(clip), -1).mean(1) / 6) / 10.0  # grey level 6 i is frame i, at i / 10 s
    assert titles == [f"frame {t}\n{s:.2f} s" for t, s in enumerate(times)]
    np.testing.assert_allclose(curve.data[0].customdata, times, atol=1e-6)


def test_model_tab_and_checkpoint_switch(tmp_path, predictor):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    model, meta = load_checkpoint()
    torch.nn.init.normal_(model.head.weight)
    save_checkpoint(model, folder / "other.safetensors", {**meta, "class_names": [f"c{i}" for i in range(model.num_classes)]})
    handlers = Handlers(ModelCache(None, "cpu"), CheckpointDir(folder), Scratch(tmp_path / "out"))
    complexity, architecture, shown_meta, names = handlers.model_info()
    assert "| total |" in complexity and "(stages): ModuleList" in architecture
    assert "# Model card: posmlp_video_xs" in complexity and f"## Classes ({len(meta['class_names'])})" in complexity
    assert shown_meta["num_frames"] == meta["num_frames"] and "class_names" not in shown_meta
    assert [n for _, n in names] == predictor.class_names
    key, status = handlers.pick("other.safetensors", None)
    assert key.startswith("other.safetensors [") and key in status
    label, _ = handlers.classify(str(_first_example(tmp_path)), key)
    assert set(label) <= {f"c{i}" for i in range(model.num_classes)} and len(label) == 5
    assert re.search(r"c\d+", handlers.model_info(key)[3][0][1])


def _first_example(tmp_path):
    from demo.examples import render_examples

    return render_examples(tmp_path / "examples")[0]


def test_readme_client_example_runs(app_server, capsys, predictor):
    """The README's gradio_client example, run against the test server on one of the example clips."""
    section = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split("## The demo app")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    clip = app_server.examples[5]
    code = code.replace("http://127.0.0.1:7860/", app_server.url).replace('"clip.mp4"', repr(str(clip)))
    exec(compile(code, "README.md", "exec"), {})
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Loaded as API")]
    top = predictor.predict(clip).top
    assert printed[:5] == [f"{p:.3f}  {name}" for name, p in top]
    assert "completeness" in "\n".join(printed[5:])


def test_server_config_and_command_line(app_server, tmp_path, capsys):
    import app as entry

    assert app_server.app.server_name == "127.0.0.1" and app_server.app.share is False
    assert app_server.app.max_file_size == 512 * 1024 * 1024
    assert entry.main(["--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    lines = capsys.readouterr().err.splitlines()  # what it is loading, then the one-line reason
    assert lines[0] == "app.py: loading checkpoint missing.safetensors ..."
    assert lines[1].startswith("app.py: error: no checkpoint file at") and len(lines) == 2
