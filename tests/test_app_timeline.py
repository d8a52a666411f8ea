"""The app's Timeline tab: its handlers in-process (against compute_timeline) and its /timeline endpoint."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file

from demo.checkpoints import DEFAULT_KEY, ModelCache
from demo.timeline import TimelineHandlers
from posmlp_video.data.encode import write_mp4
from posmlp_video.data.synthmotion import CLASS_NAMES, render_clip
from posmlp_video.timeline import Timeline, compute_timeline


@pytest.fixture(scope="module")
def two_motions(tmp_path_factory):
    """Right-to-left for 4 s, then up for 4 s (8 fps)."""
    clips = [render_clip(np.random.default_rng([5, i]), label, 32, 64, 64)[0] for i, label in enumerate([0, 2])]
    return write_mp4(tmp_path_factory.mktemp("timeline") / "two.mp4", np.concatenate(clips), fps=8)


def test_handlers_show_the_timeline_and_the_segment_under_the_cursor(two_motions, monkeypatch):
    """The tab keeps the Timeline itself in its state: a cursor move builds no new one (so its segments and
    class ranking, cached on it, are not computed again)."""
    models = ModelCache(None, "cpu")
    h = TimelineHandlers(models)
    figure, rows, state, cursor = h.timeline(str(two_motions), 2.0, 0.5, DEFAULT_KEY)
    loaded = models.get(DEFAULT_KEY)
    expected = compute_timeline(loaded.model, loaded.meta, two_motions, 2.0, 0.5)
    assert [row[2] for row in rows] == [s.label for s in expected.segments()]
    assert rows[0][2] == CLASS_NAMES[0] and rows[-1][2] == CLASS_NAMES[2]
    assert isinstance(state, Timeline) and np.array_equal(state.probabilities, expected.probabilities)
    assert cursor.maximum == pytest.approx(8.0) and len(state.starts) == len(expected.starts) == 13
    assert len(figure.axes[0].lines) == 5 + 1  # the top-5 classes and the cursor
    built = []
    monkeypatch.setattr(Timeline, "__post_init__", lambda self: built.append(self))
    assert len(h.figure(state, 3.0).axes[0].lines) == 5 + 1
    text = h.at(state, 1.0)
    assert f"**{CLASS_NAMES[0]}**" in text and "window 0.00-2.00 s" in text
    assert f"**{CLASS_NAMES[2]}**" in h.at(state, 6.5)
    assert h.at(None, 1.0) == "Run a timeline first." and h.figure(None, 1.0) is None and not built


def test_timeline_endpoint(client, two_motions):
    plot, segments, cursor = client.predict(handle_file(str(two_motions)), 2.0, 0.5, api_name="/timeline")
    labels = [row[2] for row in segments["data"]]
    assert labels[0] == CLASS_NAMES[0] and labels[-1] == CLASS_NAMES[2] and plot is not None
    assert cursor["maximum"] == pytest.approx(8.0)  # the cursor slider spans the clip
