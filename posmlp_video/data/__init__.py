"""Video data pipeline: decode -> sample -> transform, the datasets built on it, and SynthMotion."""

from posmlp_video.data.datasets import DatasetError, FrameFolder, VideoClipDataset, VideoFolder, VideoList
from posmlp_video.data.decode import (
    DecodeBudget,
    VideoClip,
    VideoDecodeError,
    VideoInfo,
    probe_video,
    read_frame_folder,
    read_video,
    write_preview,
)
from posmlp_video.data.encode import write_mp4, write_video
from posmlp_video.data.sampling import ClipSampler, dense_indices, segment_indices
from posmlp_video.data.synthmotion import SynthMotion, write_examples
from posmlp_video.data.transforms import Preprocessed, TrainTransform, eval_views, normalize, preprocess

__all__ = [
    "ClipSampler", "DatasetError", "DecodeBudget", "FrameFolder", "Preprocessed", "SynthMotion", "TrainTransform",
    "VideoClip", "VideoClipDataset", "VideoDecodeError", "VideoFolder", "VideoInfo", "VideoList",
    "dense_indices", "eval_views", "normalize", "preprocess", "probe_video",
    "read_frame_folder", "read_video", "segment_indices", "write_examples", "write_mp4",
    "write_preview", "write_video",
]
