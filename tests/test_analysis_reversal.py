"""The time-reversal report: an order-blind model gets no pair right; metrics match hand-made logits."""

import numpy as np
import pytest
import torch

from analysis.reversal import ReversalReport, time_reversal_report
from posmlp_video.models import create_model

META = dict(num_frames=4, input_size=[32, 32], resize_short=32, mean=[0.45] * 3, std=[0.225] * 3)
TINY = dict(embed_dims=(8, 16, 32, 64), depths=(1, 1, 1, 1), spatial_windows=(8, 4, 2, 1), gammas=(2, 2, 4, 4),
            num_frames=4, img_size=32)


def test_spatial_only_model_is_blind_to_frame_order():
    model = create_model("posmlp_video_xs", block_types="spatial", **TINY)
    report = time_reversal_report(model, META, num_clips=12, batch_size=6)
    assert report.labels.tolist() == list(range(12))
    assert report.max_logit_change < 1e-6  # float rounding only
    assert report.pair_accuracy == 0.0
    assert report.pair_choice == pytest.approx(50.0)
    assert report.top1 + report.reversed_top1 <= 100.0 + 1e-9


def test_temporal_model_sees_frame_order():
    model = create_model("posmlp_video_xs", block_types="temporal", **TINY)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0, 0.5)
    report = time_reversal_report(model, META, num_clips=4)
    assert report.max_logit_change > 1e-5  # the random head keeps logits small
    assert model.training  # the mode it came in with is restored


def test_metrics_on_known_logits():
    labels = np.array([0, 3])
    logits = np.zeros((2, 12))
    rev = np.zeros((2, 12))
    logits[0, 0], rev[0, 1] = 2, 2  # clip 0: both right
    logits[1, 3], rev[1, 3] = 2, 2  # clip 1: forward right, reversed wrong (class 2 expected)
    r = ReversalReport(labels, logits, rev)
    assert (r.top1, r.reversed_top1, r.pair_accuracy) == (100.0, 50.0, 50.0)
    assert r.pair_choice == 75.0 and r.max_logit_change == 2.0
