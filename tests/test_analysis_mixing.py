"""The teaching view's numbers: one query's row of a gating unit's mixing matrix, read from the model's own
table through its index, against independent constructions; attribution progress steps and Grad-CAM stages."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from analysis import AnalysisError, attribute, unit_table  # noqa: E402
from analysis.attributions import cam_stages, default_cam_stage, evaluations  # noqa: E402
from analysis.mixing import get_unit, mixing_row, model_mixing_row  # noqa: E402
from analysis.plots import plot_mixing  # noqa: E402
from posmlp_video.models import PosMLPVideo  # noqa: E402
from posmlp_video.models.gating import PositionalGatingUnit  # noqa: E402


def _unit(kind: str, window: tuple[int, ...], gamma: int = 3) -> PositionalGatingUnit:
    return PositionalGatingUnit(2 * gamma, kind, window, gamma, table_init="trunc_normal").eval()


@pytest.mark.parametrize("kind,window,query", [("temporal", (5,), (3,)), ("spatial", (4, 3), (1, 2)),
                                               ("spatiotemporal", (2, 3, 3), (1, 0, 2))])
def test_row_is_the_units_own_mixing_row(kind, window, query):
    gate = _unit(kind, window)
    row = mixing_row(gate, 2, query)
    m = int(np.ravel_multi_index(query, window))
    with torch.no_grad():
        runtime = gate.mixing_weights()[0][2, m].numpy()  # what the unit multiplies tokens by
    np.testing.assert_allclose(row.weights.ravel(), runtime, rtol=0, atol=0)
    np.testing.assert_allclose(row.matrix, unit_table(gate).matrix()[2])  # built without the index
    for key in np.ndindex(*window):
        offset = tuple(q - k for q, k in zip(query, key))
        assert tuple(row.offsets[key]) == offset
        assert row.weights[key] == row.table[row.table_cell(key)] == unit_table(gate).value(offset, 2)
    with pytest.raises(AnalysisError, match="outside"):
        mixing_row(gate, 0, tuple(w for w in window))


def test_hand_computed_cells_and_toeplitz():
    row = mixing_row(_unit("spatial", (8, 8)), 1, (2, 3))
    assert row.table_cell((5, 1)) == (2 - 5 + 7, 3 - 1 + 7) == (4, 9)  # offset (-3, 2) shifted by w - 1 = 7
    assert row.query_token == 2 * 8 + 3
    temporal = mixing_row(_unit("temporal", (6,)), 0, (4,))
    matrix = temporal.matrix
    for d in range(-5, 6):  # constant along every diagonal: the weight depends on Δt only
        assert np.ptp(np.diagonal(matrix, offset=d)) == 0
    np.testing.assert_array_equal(matrix[4], temporal.weights)
    assert temporal.table_cell((0,)) == (4 + 5,)


def test_model_lookup_and_figures():
    model = PosMLPVideo(num_classes=3, num_frames=4, img_size=32, embed_dims=(8, 16, 16, 16), depths=(1, 1, 1, 1),
                        spatial_windows=(4, 4, 2, 2), gammas=(2, 2, 2, 2), table_init="trunc_normal")
    gate = get_unit(model, 1, 0, "spatial")
    assert gate is model.stages[1].blocks[0].spatial.gate
    with pytest.raises(AnalysisError, match="no gating unit"):
        get_unit(model, 9, 0, "spatial")
    row = model_mixing_row(model, 0, 0, "spatial", 1, (1, 2))
    fig = plot_mixing(row, key=(3, 0))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), row.weights)
    temporal = model_mixing_row(model, 0, 0, "temporal", 0, (2,))
    fig = plot_mixing(temporal, key=(1,))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), temporal.matrix)
    heights = [bar.get_height() for bar in fig.axes[1].patches[: 2 * 4 - 1]]
    np.testing.assert_allclose(heights, temporal.table)


def test_progress_counts_every_forward_pass_and_can_stop_it(one_thread):
    model = PosMLPVideo(num_classes=3, num_frames=4, img_size=32, embed_dims=(8, 16, 16, 16), depths=(1, 1, 1, 1),
                        spatial_windows=(4, 4, 2, 2), gammas=(2, 2, 2, 2)).eval()
    meta = dict(input_size=(32, 32), resize_short=32, mean=[0.45] * 3, std=[0.225] * 3, num_frames=4)
    clip = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    cases = [("integrated_gradients", dict(steps=10, internal_batch_size=4)), ("saliency", {}),
             ("occlusion", dict(patch=(2, 16, 16))), ("frame_occlusion", {}), ("grad_cam", dict(stage=1))]
    for method, options in cases:
        seen = []
        attribute(model, clip, method, meta=meta, progress=lambda d, t, seen=seen: seen.append((d, t)), **options)
        total = evaluations(method, (4, 32, 32), **options)
        assert seen == [(i, total) for i in range(1, total + 1)], method
    assert evaluations("occlusion", (4, 32, 32), patch=(2, 16, 16)) == 2 + 2 * 2 * 2 // 4  # 8 windows, 4 per pass

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        attribute(model, clip, "integrated_gradients", meta=meta, progress=stop, steps=16, internal_batch_size=2)
    assert not model._forward_hooks  # the progress hook is gone after a stop
    sizes = cam_stages(model, meta)
    assert sizes == [(4, 8, 8), (4, 4, 4), (4, 2, 2), (4, 1, 1)]
    assert default_cam_stage(sizes) == 2 and default_cam_stage([(4, 1, 1)]) == 0
