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


# --------------------------------------------------------------------------- real pixels


def _turn_degrees(mask: np.ndarray) -> float:
    """Summed best rotation (degrees, positive = clockwise on screen) between consecutive masks."""
    total = 0.0
    for a, b in zip(mask[:-1], mask[1:]):
        if not a.any() or not b.any():
            continue
        cy, cx = np.argwhere(a).mean(axis=0)
        scores = {}
        for theta in range(-60, 61, 3):  # cv2 angles are counter-clockwise on screen
            turned = cv2.warpAffine(a.astype(np.uint8), cv2.getRotationMatrix2D((cx, cy), -theta, 1.0), a.shape[::-1])
            scores[theta] = (turned & b).sum() / max((turned | b).sum(), 1)
        total += max(scores, key=scores.get)
    return total


def motion_holds(label: int, mask: np.ndarray) -> bool:
    """Whether the object masks alone show the class's motion (a looser oracle than `oracle`: cut-outs may
    have several parts, so pieces are not counted; splitting is judged by the pixels' spread)."""
    width = mask.shape[2]
    area = mask.sum(axis=(1, 2)).astype(float)
    family = label // 2
    if family == 4:
        return bool(area[0] == 0 < area[-1]) if label == 8 else bool(area[-1] == 0 < area[0])
    first, last = (0, -1) if label % 2 == 0 else (-1, 0)  # the pair's first class runs forward in time
    if family in (0, 1):
        c0, c1 = (np.argwhere(mask[i]).mean(axis=0) for i in (0, -1))  # (y, x)
        axis = 1 if family == 0 else 0
        move, other = c1[axis] - c0[axis], abs(c1[1 - axis] - c0[1 - axis])
        return abs(move) > 0.15 * width and abs(move) > 2 * other and (move < 0) == (label % 2 == 0)
    if family == 2:
        return area[last] > 1.8 * area[first]
    if family == 5:
        spread = [np.linalg.norm(np.argwhere(m) - np.argwhere(m).mean(axis=0), axis=1).mean() for m in mask]
        return spread[last] > 1.3 * spread[first]
    turn = _turn_degrees(mask)
    return abs(turn) > 45 and (turn > 0) == (label == 6)


def test_motion_check_agrees_with_flat_clips(clips):
    """The loose oracle is itself checked on the flat clips, whose classes the strict oracle confirms."""
    assert all(motion_holds(item["label"], item["mask"]) for item in clips)


@pytest.fixture(scope="module")
def real_clips(assets) -> list[dict]:
    dataset = SynthMotion(96, seed=5, num_frames=8, size=64, real_fraction=1.0, assets=assets)
    return [dataset[i] for i in range(len(dataset))]


def test_real_pixels_show_each_class_motion(real_clips):
    failed = [item["label"] for item in real_clips if not motion_holds(item["label"], item["mask"])]
    assert not [label for label in failed if label not in (6, 7)], failed
    assert len(failed) <= 0.05 * len(real_clips), failed  # a near-symmetric cut-out can hide a turn


def test_real_pixels_are_deterministic_textured_and_sized(real_clips, assets):
    again = SynthMotion(96, seed=5, num_frames=8, size=64, real_fraction=1.0, assets=assets)
    for i in (0, 7, 50):
        assert np.array_equal(again[i]["video"], real_clips[i]["video"])
        assert np.array_equal(again[i]["mask"], real_clips[i]["mask"])
    other = SynthMotion(96, seed=6, num_frames=8, size=64, real_fraction=1.0, assets=assets)
    assert not np.array_equal(other[7]["video"], real_clips[7]["video"])
    for item in real_clips:
        video, mask = item["video"], item["mask"]
        assert video.shape == (8, 64, 64, 3) and video.dtype == np.uint8 and mask.shape == (8, 64, 64)
        visible = mask[mask.any(axis=(1, 2))]
        # objects between about 1% and 60% of the frame's area (10% to 60% of its side, any aspect ratio)
        assert 0.003 < visible.mean() < 0.6
        # photos, not flat colour: many distinct colours outside the object
        background = video[0][~mask[0]]
        assert len(np.unique(background // 8, axis=0)) > 30
    # masks cover what changes: pixels inside the union of the masks change more than those outside
    diffs = [np.abs(np.diff(i["video"].astype(int), axis=0)).mean(-1) for i in real_clips if i["label"] < 2]
    unions = [i["mask"][1:] | i["mask"][:-1] for i in real_clips if i["label"] < 2]
    inside = np.mean([d[u].mean() for d, u in zip(diffs, unions)])
    outside = np.mean([d[~u].mean() for d, u in zip(diffs, unions)])
    assert inside > 2 * outside


def test_mixed_mode_keeps_the_flat_clips_and_mixes_at_the_given_rate(assets):
    flat = SynthMotion(200, seed=3, num_frames=4, size=32)
    mixed = SynthMotion(200, seed=3, num_frames=4, size=32, real_fraction=0.3, assets=assets)
    real = [mixed.is_real(i) for i in range(200)]
    assert 0.2 < np.mean(real) < 0.4
    for i in range(40):
        if not real[i]:  # a flat clip of the mixed set is the flat mode's clip, pixel for pixel
            assert np.array_equal(mixed[i]["video"], flat[i]["video"])
    with pytest.raises(ValueError, match="real_fraction"):
        SynthMotion(4, real_fraction=1.5)
