"""Figures render for every unit kind, show the right numbers, and are written as PNG/PDF/SVG."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis import AnalysisError, BiasTable, interactive, plots  # noqa: E402

WINDOWS = {"temporal": (4,), "spatial": (3, 3), "spatiotemporal": (3, 2, 3)}
MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<svg"}


def make_table(unit, groups=3, seed=0, block=0):
    window = WINDOWS[unit]
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(groups, *[2 * w - 1 for w in window])).astype(np.float32)
    return BiasTable(1, block, unit, window, values, np.zeros(int(np.prod(window)), np.float32))


@pytest.mark.parametrize("unit", list(WINDOWS))
def test_matplotlib_figures_render_and_save(unit, tmp_path):
    table = make_table(unit)
    fig = plots.plot_table(table)
    paths = plots.save_figure(fig, tmp_path / unit, formats=["png", "pdf", "svg"])
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
    for p in paths:
        assert MAGIC[p.suffix[1:]] in p.read_bytes()[:400]
    assert plots.figure_bytes(fig, "svg").lstrip().startswith((b"<?xml", b"<svg"))
    if unit == "temporal":
        lines = [line for line in fig.axes[0].lines if len(line.get_xdata()) == 7]
        assert len(lines) == 3
        np.testing.assert_array_equal(lines[1].get_xdata(), np.arange(-3, 4))
        np.testing.assert_allclose(lines[1].get_ydata(), table.table[1])
    else:
        image = fig.axes[2].images[0]  # group 2 (spatiotemporal: at Δt = 0)
        expected = table.table[2] if unit == "spatial" else table.table[2, 2]
        np.testing.assert_allclose(image.get_array(), expected)
        top = np.abs(table.spatial_slice(0)).max()
        assert image.norm.vcenter == 0 and image.norm.vmin == pytest.approx(-top)
        left, right, bottom, top_edge = image.get_extent()
        assert (left, right) == (-table.window[-1] + 0.5, table.window[-1] - 0.5)  # offsets centred on 0
        assert fig.axes[0].get_xlabel() == "Δw" and fig.axes[0].get_ylabel() == "Δh"


def test_joint_slices_stage_grid_and_difference(tmp_path):
    joint = make_table("spatiotemporal", groups=2)
    fig = plots.plot_table(joint, group=1)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5  # Δt = -2 .. 2
    np.testing.assert_allclose(panels[0].images[0].get_array(), joint.table[1, 0])
    assert panels[0].get_title() == "Δt = -2"
    tables = [make_table("spatial", seed=s, block=s) for s in range(2)] + [make_table("temporal", block=0)]
    grid = plots.plot_stage_grid(tables, stage=1, unit="spatial")
    assert sum(1 for ax in grid.axes if ax.images) == 2 * 3
    assert plots.save_figure(plots.plot_stage_grid(tables, 1, "temporal"), tmp_path / "t.png")[0].stat().st_size > 0
    before, after = make_table("spatial", seed=1), make_table("spatial", seed=2)
    diff_fig = plots.plot_difference(after, before, group=2)
    np.testing.assert_allclose(diff_fig.axes[2].images[0].get_array(), after.table[2] - before.table[2])
    plots.plot_difference(make_table("temporal", seed=2), make_table("temporal", seed=1))
    with pytest.raises(AnalysisError, match="group 5 out of range"):
        plots.plot_joint_slices(joint, group=5)
    with pytest.raises(AnalysisError, match="dt=3"):
        plots.plot_group_grid(joint, dt=3)
    with pytest.raises(AnalysisError, match="format"):
        plots.save_figure(grid, tmp_path / "x", formats=["jpg"])


def _cells(trace) -> list[tuple[float, np.ndarray]]:
    z, custom = np.asarray(trace.z, dtype=float), np.asarray(trace.customdata, dtype=float)
    return [(z[r, c], custom[r, c].astype(int)) for r, c in np.ndindex(z.shape)]


def test_plotly_hover_shows_offset_value_group():
    spatial = make_table("spatial", groups=3)
    fig = interactive.bias_heatmap(spatial)
    assert len(fig.data) == 3 and [a.text for a in fig.layout.annotations] == ["group 0", "group 1", "group 2"]
    # every drawn cell carries (group, Δt, Δh, Δw) matching the table value it shows, on offset-valued axes
    for g, trace in enumerate(fig.data):
        assert list(trace.x) == list(spatial.offsets(1)) and list(trace.y) == list(spatial.offsets(0))
        cells = _cells(trace)
        assert len(cells) == spatial.table[g].size
        for value, (group, _dt, dh, dw) in cells:
            assert group == g and value == pytest.approx(spatial.value((dh, dw), g))
    assert "group" in fig.data[0].hovertemplate and "Δh" in fig.data[0].hovertemplate
    assert fig.layout.coloraxis.cmid == 0 and fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax
    assert fig.layout.xaxis3.title.text == "Δw" and fig.layout.yaxis.title.text == "Δh"
    assert sum(1 for s in fig.layout.shapes if s.x0 == s.x1 == 0) == 3  # offset 0 marked in each panel
    zoom = interactive.bias_heatmap(spatial, group=2)
    assert len(zoom.data) == 1 and [v for v, _ in _cells(zoom.data[0])] == pytest.approx(spatial.table[2].ravel())
    assert zoom.layout.height > fig.layout.height
    joint = make_table("spatiotemporal", groups=2)
    slices = interactive.unit_figure([joint], 1, 0, "spatiotemporal", group=1).data
    assert len(slices) == 2 * joint.window[0] - 1
    for trace in slices:
        for value, (g, dt, dh, dw) in _cells(trace):
            assert g == 1 and value == pytest.approx(joint.value((dt, dh, dw), 1))
    one = interactive.unit_figure([make_table("temporal")], 1, 0, "temporal", group=1)
    assert len(one.data) == 1 and list(one.data[0].y) == pytest.approx(make_table("temporal").table[1])
    curves = interactive.unit_figure([make_table("temporal")], 1, 0, "temporal")
    assert len(curves.data) == 3 and list(curves.data[2].y) == pytest.approx(make_table("temporal").table[2])


def test_plotly_explorer_dropdown_selects_each_unit():
    tables = [make_table("temporal"), make_table("spatial", block=1), make_table("spatiotemporal", block=2)]
    fig = interactive.bias_explorer(tables)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [t.name for t in tables]
    assert len(fig.data) == 3 + 1 + 1
    assert buttons[1].args[0]["visible"] == [False, False, False, True, False]
    assert [bool(t.visible) for t in fig.data] == [True, True, True, False, False]
    fig.to_html(include_plotlyjs=False)


def test_temporal_importance_figures():
    curve = np.array([0.5, -0.25, 2.0, 0.0])
    fig = plots.plot_temporal_importance(curve, title="IG per frame")
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == pytest.approx(curve.tolist())
    assert fig.axes[0].get_title() == "IG per frame"
    assert plots.figure_bytes(fig, "pdf").startswith(b"%PDF")
    bar = interactive.temporal_importance_figure(curve).data[0]
    assert list(bar.y) == pytest.approx(curve.tolist()) and list(bar.x) == [0, 1, 2, 3]


def test_a_figure_for_any_background_is_transparent_with_mid_grey_text():
    import io

    from PIL import Image

    plain = plots.plot_temporal_importance(np.array([1.0, -0.5, 2.0]), title="importance")
    before = np.asarray(Image.open(io.BytesIO(plots.figure_bytes(plain, "png"))).convert("RGBA"))
    assert before[0, 0].tolist() == [255, 255, 255, 255]  # matplotlib's default: a white block
    fig = plots.for_any_background(plain)
    pixels = np.asarray(Image.open(io.BytesIO(plots.figure_bytes(fig, "png"))).convert("RGBA"))
    assert pixels[0, 0, 3] == 0 and pixels[-1, -1, 3] == 0  # transparent around and inside the axes
    opaque = pixels[pixels[..., 3] == 255][:, :3].astype(int)
    grey = opaque[(opaque.max(1) - opaque.min(1)) == 0]  # the achromatic ones: text, ticks, frame, zero line
    assert (grey[:, 0] == 128).sum() > 100  # text and ticks in mid-grey (#808080)
    assert not ((grey[:, 0] < 64) | (grey[:, 0] > 230)).any()  # no black text, no white background
