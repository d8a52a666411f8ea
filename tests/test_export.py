"""Export: ONNX and torch.export files compute what the PyTorch model computes on real decoded clips."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint
from posmlp_video.cli import main
from posmlp_video.export import MAX_REL_ERROR, ExportError, onnx_runner, parity, parity_clips, program_runner

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint(BUNDLED_CHECKPOINT)


def _relative_error(got: np.ndarray, want: torch.Tensor) -> float:
    want = want.numpy().astype(np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.slow
def test_onnx_export_matches_pytorch_on_decoded_clips(tmp_path, bundled, video_corpus, capsys):
    model, meta = bundled
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(BUNDLED_CHECKPOINT.read_bytes())
    videos = [str(video_corpus[name]) for name in ("h264_mp4", "vp9_webm", "rotated_portrait_mp4", "gif")]
    assert main(["export", str(checkpoint), "--videos", *videos]) == 0
    printed = capsys.readouterr().out
    assert "ONNX opset 18" in printed and "parity with PyTorch on 4 video(s), batch 4" in printed
    assert (tmp_path / "MODEL_CARD.md").is_file()

    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [18]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    expected = [3, int(meta["num_frames"]), *map(int, meta["input_size"])]
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == expected  # dynamic batch, fixed T/H/W
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["posmlp_video"])["class_names"] == meta["class_names"]

    # independently of the command: decoded SynthMotion mp4s and the corpus clips, batch 1 and batch 5
    run = onnx_runner(tmp_path / "model.onnx")
    synth, _ = parity_clips(meta, count=3)
    real, _ = parity_clips(meta, videos[:2])
    for batch in (synth[:1], torch.cat([synth, real])):
        with torch.no_grad():
            want = model(batch)
        got = run(batch.numpy())
        assert got.shape == (len(batch), 12)
        assert _relative_error(got, want) <= MAX_REL_ERROR
        assert (got.argmax(1) == want.argmax(1).numpy()).all()


@pytest.mark.slow
def test_torch_export_program_matches_pytorch(tmp_path, bundled, capsys):
    model, meta = bundled
    out = tmp_path / "xs.pt2"
    assert main(["export", str(BUNDLED_CHECKPOINT), "--format", "torch-export", "--output", str(out)]) == 0
    assert "parity with PyTorch on 3 SynthMotion clips" in capsys.readouterr().out
    inputs, _ = parity_clips(meta, count=3)
    with torch.no_grad():
        assert _relative_error(program_runner(out)(inputs.numpy()), model(inputs)) <= MAX_REL_ERROR
        assert _relative_error(program_runner(out)(inputs[:1].numpy()), model(inputs[:1])) <= MAX_REL_ERROR


def test_parity_measures_the_error_it_reports(bundled):
    model, meta = bundled
    inputs = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        logits = model(inputs).numpy().astype(np.float64)
    scale = float(np.abs(logits).max())
    off = parity(lambda x: logits + 1e-3 * scale, model, inputs)  # every logit shifted by 1e-3 of the largest
    assert off.max_rel == pytest.approx(1e-3, rel=1e-4) and off.max_abs == pytest.approx(1e-3 * scale, rel=1e-4)
    assert off.top1_agree == 2 and off.clips == 2
    swapped = parity(lambda x: -logits, model, inputs)
    assert swapped.top1_agree == 0
    with pytest.raises(ExportError, match="shape"):
        parity(lambda x: logits[:, :3], model, inputs)


def test_export_refuses_to_overwrite_the_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "m.onnx"
    checkpoint.write_bytes(b"an ONNX file the user wants to keep")
    assert main(["export", str(checkpoint), "--output", str(checkpoint)]) == 1
    assert "would overwrite the checkpoint" in capsys.readouterr().err
    assert checkpoint.read_bytes() == b"an ONNX file the user wants to keep"
