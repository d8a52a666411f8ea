"""Segment and dense frame sampling: hand-computed indices, coverage, looping and seeding."""

from __future__ import annotations

import numpy as np
import pytest

from posmlp_video.data.sampling import ClipSampler, dense_indices, segment_indices


def test_segment_test_mode_takes_segment_centres():
    # 100 frames, 8 segments of 12.5: centres 6.25, 18.75, ... floored.
    assert segment_indices(100, 8).tolist() == [[6, 18, 31, 43, 56, 68, 81, 93]]
    assert segment_indices(8, 8).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]


def test_segment_short_video_holds_frames_in_order():
    assert segment_indices(3, 8).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]
    assert segment_indices(1, 4).tolist() == [[0, 0, 0, 0]]


def test_segment_two_test_clips_use_quarter_offsets():
    # offsets 0.25 and 0.75 of each 10-frame segment
    assert segment_indices(40, 4, num_clips=2).tolist() == [[2, 12, 22, 32], [7, 17, 27, 37]]


def test_segment_training_draws_one_frame_inside_each_segment():
    rng = np.random.default_rng(0)
    draws = np.concatenate([segment_indices(80, 8, train=True, rng=rng) for _ in range(200)])
    segment_of = draws // 10
    assert (segment_of == np.arange(8)).all()
    assert len(np.unique(draws)) == 80  # every frame of the video can be chosen


def test_dense_test_clip_is_centred_and_strided():
    # span (8 - 1) * 2 + 1 = 15 of 25 frames: start (25 - 15) // 2 = 5.
    assert dense_indices(25, 8, 2).tolist() == [[5, 7, 9, 11, 13, 15, 17, 19]]


def test_dense_multi_clip_starts_cover_the_video():
    clips = dense_indices(100, 4, 3, num_clips=3)  # span 10, starts 0, 45, 90
    assert clips.tolist() == [[0, 3, 6, 9], [45, 48, 51, 54], [90, 93, 96, 99]]


def test_dense_short_video_loops():
    assert dense_indices(5, 4, 2).tolist() == [[0, 2, 4, 1]]


def test_dense_training_start_stays_inside():
    rng = np.random.default_rng(1)
    starts = [dense_indices(30, 4, 4, train=True, rng=rng)[0, 0] for _ in range(300)]
    assert min(starts) == 0 and max(starts) == 30 - 13


def test_same_seed_same_clip_and_sampler_from_meta():
    meta = {"num_frames": 8, "sampling": "dense", "sampling_rate": 4}
    sampler = ClipSampler.from_meta(meta, train=True)
    assert (sampler.mode, sampler.rate, sampler.num_frames) == ("dense", 4, 8)
    a = sampler(300, np.random.default_rng(7))
    b = sampler(300, np.random.default_rng(7))
    c = sampler(300, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="sampling mode"):
        ClipSampler(8, "uniform")
    with pytest.raises(ValueError, match="at least one frame"):
        segment_indices(0, 8)
    with pytest.raises(ValueError, match="rate"):
        dense_indices(10, 4, 0)
