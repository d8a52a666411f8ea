"""SynthMotion: determinism, balance, masks that cover what moves, and time-reversal / mirror pairs.

The pair tests use a hand-written motion oracle that reads only the masks (centroid, area, pieces,
orientation), so they check the generator against an independent description of each class.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posmlp_video.data.decode import read_video
from posmlp_video.data.synthmotion import CLASS_NAMES, FLIP_PAIRS, REVERSE_PAIRS, SynthMotion, write_examples


def _orientation(mask: np.ndarray) -> float:
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    return 0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])


def oracle(mask: np.ndarray) -> int:
    """Class of a clip from its object masks alone (y points down, so a growing angle turns clockwise)."""
    areas = mask.sum(axis=(1, 2))
    if areas[0] == 0 and areas[-1] > 0:
        return 8  # appearing
    if areas[0] > 0 and areas[-1] == 0:
        return 9  # disappearing
    pieces = [cv2.connectedComponents(m.astype(np.uint8))[0] - 1 for m in (mask[0], mask[-1])]
    if pieces == [1, 2]:
        return 10
    if pieces == [2, 1]:
        return 11
    if areas[-1] > 1.8 * areas[0]:
        return 4
    if areas[0] > 1.8 * areas[-1]:
        return 5
    ys, xs = zip(*(np.argwhere(m).mean(axis=0) for m in (mask[0], mask[-1])), strict=True)
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    if max(abs(dx), abs(dy)) > 0.15 * mask.shape[2]:
        if abs(dx) > abs(dy):
            return 0 if dx < 0 else 1
        return 2 if dy < 0 else 3
    turns = np.diff([_orientation(m) for m in mask])
    turns = (turns + np.pi / 2) % np.pi - np.pi / 2  # orientation is defined modulo 180 degrees
    return 6 if turns.sum() > 0 else 7


@pytest.fixture(scope="module")
def clips() -> list[dict]:
    dataset = SynthMotion(48, seed=5, num_frames=8, size=64)
    return [dataset[i] for i in range(len(dataset))]


def test_classes_are_twelve_reversal_pairs():
    assert len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 12
    assert all(REVERSE_PAIRS[REVERSE_PAIRS[c]] == c != REVERSE_PAIRS[c] for c in range(12))
    assert SynthMotion.class_names == CLASS_NAMES


def test_items_have_the_promised_types_and_shapes():
    item = SynthMotion(3, seed=0, num_frames=5, size=(40, 72))[2]
    assert item["video"].dtype == np.uint8 and item["video"].shape == (5, 40, 72, 3)
    assert item["mask"].dtype == bool and item["mask"].shape == (5, 40, 72)
    assert item["label"] == 2


def test_deterministic_per_seed_and_index():
    a, b = SynthMotion(30, seed=1), SynthMotion(30, seed=1)
    assert np.array_equal(a[17]["video"], b[17]["video"]) and np.array_equal(a[17]["mask"], b[17]["mask"])
    assert not np.array_equal(a[17]["video"], SynthMotion(30, seed=2)[17]["video"])
    assert not np.array_equal(a[5]["video"][0], a[17]["video"][0])  # same class, different scene


def test_classes_are_balanced():
    labels = [SynthMotion(120, seed=0)[i]["label"] for i in range(120)]
    assert np.bincount(labels).tolist() == [10] * 12


def test_oracle_reads_every_clip_as_its_label(clips):
    assert [oracle(c["mask"]) for c in clips] == [c["label"] for c in clips]


def test_reversed_clip_is_its_pair(clips):
    assert [oracle(c["mask"][::-1]) for c in clips] == [REVERSE_PAIRS[c["label"]] for c in clips]


def test_mirrored_clip_follows_flip_pairs(clips):
    assert [oracle(c["mask"][:, :, ::-1]) for c in clips] == [FLIP_PAIRS.get(c["label"], c["label"]) for c in clips]


def test_mask_covers_everything_that_changes(clips):
    for clip in clips:
        video, mask = clip["video"].astype(int), clip["mask"]
        for t in range(len(video) - 1):
            changed = np.abs(video[t + 1] - video[t]).max(axis=-1) > 60  # well above camera noise
            near_object = cv2.dilate((mask[t] | mask[t + 1]).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            assert not (changed & ~near_object).any(), f"clip label {clip['label']} changes outside its mask"


def test_object_is_visible_and_not_the_whole_frame(clips):
    for clip in clips:
        video, mask = clip["video"].astype(float), clip["mask"]
        fully_visible = {8: len(mask) - 1, 9: 0}  # a fading object is opaque only at one end
        t = fully_visible.get(clip["label"], int(mask.sum(axis=(1, 2)).argmax()))
        assert 0.005 < mask[t].mean() < 0.4
        inside = video[t][cv2.erode(mask[t].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0].mean(axis=0)
        ring = cv2.dilate(mask[t].astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        outside = video[t][ring & ~mask[t]].mean(axis=0)
        assert np.abs(inside - outside).max() > 25, f"clip label {clip['label']} blends into its background"


def test_any_frame_count_and_size():
    for frames, size in [(1, 16), (3, (24, 48)), (16, (96, 64))]:
        item = SynthMotion(12, seed=3, num_frames=frames, size=size)[11]
        height, width = (size, size) if isinstance(size, int) else size
        assert item["video"].shape == (frames, height, width, 3)


def test_transform_is_applied_and_mask_kept():
    def halve(video, label):
        return video[:, ::2, ::2], label + 100

    item = SynthMotion(2, seed=0, transform=halve)[1]
    assert item["video"].shape == (8, 32, 32, 3) and item["label"] == 101 and item["mask"].shape == (8, 64, 64)


def test_write_examples_makes_decodable_mp4s(tmp_path):
    paths = write_examples(tmp_path, num_frames=6, size=48)
    assert len(paths) == 12 and paths[0].name == "00_moving-something-from-right-to-left_0.mp4"
    clip = read_video(paths[3])
    assert clip.frames.shape == (6, 48, 48, 3)
    expected = SynthMotion(12, seed=0, num_frames=6, size=48)[3]["video"]
    assert np.abs(clip.frames.astype(int) - expected).mean() < 8  # lossy, but the same clip
