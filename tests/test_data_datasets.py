"""VideoFolder / VideoList datasets through a multi-worker DataLoader, and annotation-file errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from video_corpus import frame_pattern, read_index

from posmlp_video.data import DatasetError, VideoDecodeError, VideoFolder, VideoList
from posmlp_video.data.sampling import ClipSampler
from posmlp_video.data.transforms import preprocess

META = {"input_size": [32, 32], "resize_short": 32, "mean": [0.45] * 3, "std": [0.225] * 3}


def _eval_transform(clip: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
    return preprocess(clip, META).tensor, label


@pytest.fixture()
def folder_dataset_root(tmp_path, video_corpus):
    for class_name, names in {"jumping": ["h264_mp4", "vp9_webm"], "waving": ["mjpeg_avi", "gif"]}.items():
        (tmp_path / class_name).mkdir()
        for name in names:
            (tmp_path / class_name / video_corpus[name].name).symlink_to(video_corpus[name])
    (tmp_path / "waving" / "README.txt").write_text("not a video")
    return tmp_path


def test_video_folder_through_dataloader_workers(folder_dataset_root):
    dataset = VideoFolder(folder_dataset_root, ClipSampler(4), transform=_eval_transform, short_side=32)
    assert dataset.class_names == ["jumping", "waving"]
    assert [(p.name, label) for p, label in dataset.samples] == [
        ("h264.mp4", 0), ("vp9.webm", 0), ("animated.gif", 1), ("mjpeg.avi", 1)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [b["video"].shape for b in batches] == [(2, 3, 4, 32, 32)] * 2
    assert torch.cat([b["label"] for b in batches]).tolist() == [0, 0, 1, 1]


def test_multi_clip_items_are_stacked(folder_dataset_root):
    dataset = VideoFolder(folder_dataset_root, ClipSampler(4, "dense", rate=2, num_clips=2),
                          transform=_eval_transform)
    assert dataset[0]["video"].shape == (2, 3, 4, 32, 32)
    raw = VideoFolder(folder_dataset_root, ClipSampler(4, num_clips=2))[0]["video"]
    assert raw.shape == (2, 4, 240, 320, 3) and raw.dtype == np.uint8


def test_training_sampling_follows_torch_seed(folder_dataset_root):
    dataset = VideoFolder(folder_dataset_root, ClipSampler(8, train=True))
    torch.manual_seed(0)
    first = [read_index(f) for f in dataset[0]["video"]]
    torch.manual_seed(0)
    assert [read_index(f) for f in dataset[0]["video"]] == first
    assert all(45 * i // 8 <= index < 45 * (i + 1) / 8 for i, index in enumerate(first))  # one per segment


def test_video_list_reads_videos_and_ssv1_frame_folders(tmp_path, video_corpus):
    frames = tmp_path / "frames" / "1234"
    frames.mkdir(parents=True)
    for i in range(10):
        cv2.imwrite(str(frames / f"{i + 1:05d}.jpg"), cv2.cvtColor(frame_pattern(i, 64, 48), cv2.COLOR_RGB2BGR))
    (tmp_path / "list.txt").write_text(
        f"{video_corpus['h264_mp4']} 2\n\n{video_corpus['vp9_webm']},0\nframes/1234 10 1\n")
    dataset = VideoList(tmp_path / "list.txt", ClipSampler(5), class_names=["a", "b", "c"])
    assert [label for _, label in dataset.samples] == [2, 0, 1]
    item = dataset[2]
    assert item["label"] == 1 and item["video"].shape == (5, 48, 64, 3)
    assert [read_index(f) for f in item["video"]] == [1, 3, 5, 7, 9]
    assert dataset[0]["video"].shape == (5, 240, 320, 3)


@pytest.mark.parametrize("line, message", [
    ("video.mp4", "line 1: expected 'path label'"),
    ("video.mp4 seven", "line 1: expected"),
    ("video.mp4 5", "label 5 is out of range for 3 classes"),
    ("frames 0 1", "at least one frame"),
])
def test_bad_annotation_lines_name_the_line(tmp_path, line, message):
    (tmp_path / "list.txt").write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        VideoList(tmp_path / "list.txt", ClipSampler(4), class_names=["a", "b", "c"])


def test_missing_inputs_give_clear_errors(tmp_path, video_corpus):
    with pytest.raises(DatasetError, match="not found"):
        VideoFolder(tmp_path / "nope", ClipSampler(4))
    with pytest.raises(DatasetError, match="cannot read annotation file"):
        VideoList(tmp_path / "nope.txt", ClipSampler(4))
    (tmp_path / "list.txt").write_text(f"{video_corpus['empty']} 0\n")
    with pytest.raises(VideoDecodeError, match=r"empty\.mp4: empty file"):
        VideoList(tmp_path / "list.txt", ClipSampler(4))[0]
