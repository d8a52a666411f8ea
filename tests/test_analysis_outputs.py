"""Overlays, frame strips, mp4s, the pointing game and the complexity table."""

import av
import cv2
import numpy as np
import pytest
import timm
import torch

import posmlp_video  # noqa: F401
from analysis import (
    AnalysisError,
    Attribution,
    align_mask,
    colorize,
    complexity_table,
    format_complexity,
    frame_strip,
    normalize_map,
    overlay,
    overlay_video,
    pointing_game,
)


def toy_attribution(T=3, H=16, W=20):
    values = np.zeros((T, H, W), np.float32)
    values[1, 4:8, 10:14] = 2.0
    values[2, 0, 0] = -1.0
    clip = np.full((T, H, W, 3), 100, np.uint8)
    return Attribution(values, clip, target=0, method="saliency", delta=None, logit_change=1.0, logit=1.0,
                       probability=0.5)


def test_heatmap_scaling_and_colours():
    a = toy_attribution()
    heat = normalize_map(a.values, "abs", percentile=100)
    assert heat.max() == 1.0 and heat[2, 0, 0] == 0.5 and heat[0].max() == 0.0
    assert normalize_map(a.values, "negative", 100)[2, 0, 0] == 1.0
    assert normalize_map(np.zeros((2, 3, 3))).max() == 0.0
    rgb = colorize(heat, "jet")
    assert rgb.shape == (3, 16, 20, 3) and rgb.dtype == np.uint8
    # OpenCV's JET: 0 is dark blue, 1 is dark red (after the BGR -> RGB swap)
    assert rgb[0, 0, 0, 2] > rgb[0, 0, 0, 0] and rgb[1, 5, 11, 0] > rgb[1, 5, 11, 2]
    blended = overlay(a, alpha=0.0)
    np.testing.assert_array_equal(blended, a.clip)
    np.testing.assert_array_equal(overlay(a, alpha=1.0, mode="abs"), colorize(normalize_map(a.values), "jet"))
    with pytest.raises(AnalysisError, match="colormap"):
        colorize(heat, "rainbow")
    with pytest.raises(AnalysisError, match="mode"):
        normalize_map(a.values, "signed")


def test_frame_strip_png_and_browser_mp4(tmp_path):
    a = toy_attribution()
    strip = frame_strip(a, tmp_path / "strip.png", scale=2, gap=2)
    assert strip.shape == (2 * 32 + 2, 3 * 40 + 2 * 2, 3)
    np.testing.assert_array_equal(strip[:32, :40], 100)  # first frame, upscaled
    read = cv2.cvtColor(cv2.imread(str(tmp_path / "strip.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read, strip)
    path = overlay_video(a, tmp_path / "overlay.mp4", fps=4, scale=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert len(frames) == 3 and frames[0].shape == (32, 80, 3)  # frames | overlay, side by side


def test_pointing_game_scores():
    mask = np.zeros((2, 10, 10), bool)
    mask[:, :5] = True
    values = np.where(mask, 1.0, 0.0) + 0.01
    assert pointing_game(values, mask, top_fraction=0.5) == 1.0
    assert pointing_game(-values, mask, top_fraction=0.5, mode="abs") == 1.0
    assert pointing_game(values[:, ::-1], mask, top_fraction=0.5) == 0.0
    mixed = np.zeros((2, 10, 10))
    mixed[0, 0, 0], mixed[0, 9, 9] = 3.0, 1.0  # top 2 pixels: 3 inside, 1 outside
    assert pointing_game(mixed, mask, top_fraction=0.01) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    assert pointing_game(rng.random((2, 10, 10)), mask, 0.2) == pytest.approx(0.5, abs=0.25)
    with pytest.raises(AnalysisError, match="align_mask"):
        pointing_game(values, mask[:, :5])


def test_align_mask_follows_the_preprocessing():
    mask = np.zeros((2, 40, 80), bool)
    mask[:, 10:30, 30:50] = True  # a box in the middle of a wide frame
    meta = dict(input_size=[20, 20], resize_short=20, mean=[0.5] * 3, std=[0.25] * 3)
    aligned = align_mask(mask, meta)
    # short side 40 -> 20 (x0.5): the box becomes rows 5-14, cols 15-24 of 20x40; the centre crop keeps cols 10-29
    assert aligned.shape == (2, 20, 20)
    expected = np.zeros((2, 20, 20), bool)
    expected[:, 5:15, 5:15] = True
    assert (aligned != expected).mean() < 0.03


def test_complexity_table_counts():
    model = timm.create_model("posmlp_video_xs", block_types=["parallel", "sequential", "joint", "temporal"])
    rows = {r["part"]: r for r in complexity_table(model)}
    total = rows["total"]
    assert total["params"] == sum(p.numel() for p in model.parameters())
    top = ["stem", "stage 0", "stage 1", "stage 2", "stage 3", "head"]
    assert sum(rows[p]["params"] for p in top) == total["params"]
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 8, 64, 64))
    assert total["flops"] == counter.get_total_flops() == sum(rows[p]["flops"] for p in top)
    # the stage-0 spatial unit mixes 8 frames x (2 x 2) windows of 8 x 8 tokens, 32 channels: 2 N^2 C per window
    assert rows["stage 0 spatial"]["mixing_flops"] == 2 * 64 * 64 * 32 * (8 * 2 * 2)
    # temporal: 16 x 16 windows of 8 frames
    assert rows["stage 0 temporal"]["mixing_flops"] == 2 * 8 * 8 * 32 * (16 * 16)
    # joint units of stage 2 (map 8 x 4 x 4, one window of 8 x 4 x 4 = 128 tokens, 128 channels), 3 blocks
    assert rows["stage 2 spatiotemporal"]["mixing_flops"] == 3 * 2 * 128 * 128 * 128
    assert rows["stage 2 spatiotemporal"]["mixing_params"] == 3 * (15 * 7 * 7 * 16 + 128)
    assert "stage 3 spatial" not in rows and "stage 1 spatiotemporal" not in rows
    assert total["mixing_flops"] == sum(r["mixing_flops"] for k, r in rows.items() if k.count(" ") == 2
                                        and not k.endswith("downsample"))
    text = format_complexity(list(rows.values()))
    assert "| stage 2 spatiotemporal |" in text and text.count("\n") == len(rows) + 1
    smaller = {r["part"]: r for r in complexity_table(model, num_frames=4, input_size=(32, 32))}
    assert smaller["total"]["params"] == total["params"] and smaller["total"]["flops"] < total["flops"] / 4
