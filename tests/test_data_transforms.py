"""Eval preprocessing (resize, crops, normalisation) and training augmentation (shared draws, label-aware flip)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posmlp_video.data.synthmotion import FLIP_PAIRS
from posmlp_video.data.transforms import (
    TrainTransform,
    crop_views,
    eval_views,
    normalize,
    preprocess,
    resize_to_cover,
)

META = {"input_size": [32, 32], "resize_short": 40, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.5]}


def _gradient_clip(t: int = 4, h: int = 60, w: int = 100) -> np.ndarray:
    """Red grows with x, green with y, blue is the frame number: positions stay traceable after crops."""
    clip = np.empty((t, h, w, 3), np.uint8)
    clip[..., 0] = np.linspace(0, 255, w)[None, None, :]
    clip[..., 1] = np.linspace(0, 255, h)[None, :, None]
    clip[..., 2] = (np.arange(t) * 50)[:, None, None]
    return clip


def test_preprocess_resizes_short_side_crops_centre_and_normalises():
    clip = _gradient_clip()
    view = preprocess(clip, META)
    assert view.frames.shape == (4, 32, 32, 3) and view.frames.dtype == np.uint8
    assert view.tensor.shape == (3, 4, 32, 32) and view.tensor.dtype == torch.float32
    # 60x100 -> 40x67; the centre crop keeps the middle of the red ramp.
    assert abs(int(view.frames[0, 16, 16, 0]) - 128) <= 6
    expected = (view.frames[2, 5, 7] / 255.0 - np.array(META["mean"])) / np.array(META["std"])
    assert torch.allclose(view.tensor[:, 2, 5, 7], torch.tensor(expected, dtype=torch.float32), atol=1e-5)


def test_resize_covers_a_non_square_crop():
    clip = _gradient_clip(h=60, w=80)
    resized = resize_to_cover(clip, 32, (32, 64))  # short side 32 would give 32x43 < 64 wide
    assert resized.shape[1:3] == (48, 64)


def test_three_crops_span_the_long_side():
    clip = _gradient_clip(h=40, w=100)
    left, centre, right = crop_views(clip, (40, 40), 3)
    assert left[0, 0, 0, 0] == 0 and right[0, 0, -1, 0] == 255
    assert centre[0, 0, 0, 0] == clip[0, 0, 30, 0]
    portrait = crop_views(clip.transpose(0, 2, 1, 3), (40, 40), 3)
    assert [v[0, 0, 0, 0] for v in portrait] == [clip[0, 0, x, 0] for x in (0, 30, 60)]
    assert eval_views(clip, {**META, "resize_short": 40}).shape == (3, 3, 4, 32, 32)


def test_normalize_layout():
    frames = np.zeros((2, 3, 5, 3), np.uint8)
    frames[1, 2, 4] = (255, 0, 51)
    out = normalize(frames, [0, 0, 0], [1, 1, 1])
    assert out.shape == (3, 2, 3, 5)
    assert out[:, 1, 2, 4].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_train_transform_uses_one_draw_for_all_frames():
    torch.manual_seed(0)
    still = np.repeat(_gradient_clip(t=1), 6, axis=0)  # six identical frames
    transform = TrainTransform((24, 24), [0.5] * 3, [0.25] * 3)
    video, label = transform(still, 3)
    assert video.shape == (3, 6, 24, 24) and label == 3
    assert torch.equal(video[:, 0], video[:, 5])


def test_train_transform_is_reproducible_with_torch_seed():
    clip = _gradient_clip()
    transform = TrainTransform((24, 24), [0.5] * 3, [0.25] * 3, flip_pairs=FLIP_PAIRS)
    torch.manual_seed(3)
    a = transform(clip, 0)
    torch.manual_seed(3)
    b = transform(clip, 0)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


def test_flip_pairs_swap_direction_labels_and_can_disable_flips():
    clip = _gradient_clip()
    pairs = {0: 1, 1: 0, 2: None}
    transform = TrainTransform((32, 32), [0, 0, 0], [1, 1, 1], scale=(1, 1), ratio=(1, 1), jitter=(0, 0, 0, 0),
                               flip_pairs=pairs)
    torch.manual_seed(0)
    seen = {0: set(), 2: set(), 5: set()}
    for _ in range(40):
        for label in seen:
            video, new_label = transform(clip, label)
            red_rises = bool(video[0, 0, 16, -1] > video[0, 0, 16, 0])  # unflipped: red grows to the right
            seen[label].add((new_label, red_rises))
    assert seen[0] == {(0, True), (1, False)}  # mirrored exactly when relabelled
    assert seen[2] == {(2, True)}  # never mirrored
    assert seen[5] == {(5, True), (5, False)}  # mirrored, label kept


def test_no_flip_pairs_means_no_flip_and_asymmetric_pairs_are_refused():
    transform = TrainTransform((8, 8), [0] * 3, [1] * 3)
    assert all(transform.flip_label(0) == (0, False) for _ in range(20))
    with pytest.raises(ValueError, match="symmetric"):
        TrainTransform((8, 8), [0] * 3, [1] * 3, flip_pairs={0: 1})


def test_bad_clip_is_refused():
    with pytest.raises(ValueError, match="uint8 clip"):
        preprocess(np.zeros((4, 8, 8, 3), np.float32), META)
