"""Export a checkpoint for deployment, and check the export against PyTorch on real clips.

``python -m posmlp_video export model.safetensors --format onnx`` writes ``model.onnx`` (ONNX opset 18, via
torch's ``torch.export``-based exporter, the default since torch 2.9): input ``video`` float32
``(batch, 3, T, H, W)`` with a dynamic batch and T/H/W fixed from the checkpoint's metadata, output ``logits``
``(batch, classes)``; the checkpoint's metadata (class names, preprocessing) is stored in the file's
``metadata_props["posmlp_video"]``. ``--format torch-export`` writes a ``torch.export`` program (``.pt2``, load
it with ``torch.export.load(path).module()``), also with a dynamic batch.

Each export is run on clips decoded and preprocessed exactly as ``predict`` does (the given videos, or
SynthMotion clips written as H.264 mp4 with PyAV), at a batch size other than the one it was traced with, and
compared with the PyTorch model: the maximum absolute logit error, the relative error (that maximum over
the largest logit magnitude) and top-1 agreement are printed, and a relative error above 1e-4 is an error.

TorchScript is not offered: ``torch.jit.script`` cannot compile the model (its Python type hints use
``...``), and ``torch.jit.trace``/``script`` are deprecated in torch 2.14 in favour of ``torch.export``,
which ``--format torch-export`` is.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posmlp_video.atomic import atomic_path
from posmlp_video.errors import PosMLPError

FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}
OPSET = 18  # the opset torch 2.14's ONNX exporter implements natively (onnxscript's torchlib)
MAX_REL_ERROR = 1e-4  # float32 parity bound
TRACE_BATCH = 2  # example batch the graph is captured with; parity runs at another size
META_PROP = "posmlp_video"
INSTALL_HINT = "pip install 'posmlp-video[export]' (onnx, onnxscript, onnxruntime)"

Runner = Callable[[np.ndarray], np.ndarray]


class ExportError(PosMLPError):
    """An export cannot be written, or it does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class Parity:
    """How far an exported model's logits are from PyTorch's on the same inputs."""

    clips: int
    max_abs: float  # max |exported - torch| over all logits
    max_rel: float  # max_abs / max |torch|
    top1_agree: int  # clips whose top-1 class is the same

    def line(self) -> str:
        return (f"max abs err {self.max_abs:.2e}, max rel err {self.max_rel:.2e} (bound {MAX_REL_ERROR:.0e}), "
                f"top-1 agreement {self.top1_agree}/{self.clips}")


def _capture_input(model: torch.nn.Module, meta: dict[str, Any]) -> torch.Tensor:
    """A random ``(TRACE_BATCH, 3, T, H, W)`` batch to capture `model`'s graph with, already run once through it
    in eval mode: that builds the gating units' cached indices (they are not buffers) before capture."""
    h, w = (int(s) for s in meta["input_size"])
    x = torch.randn(TRACE_BATCH, 3, int(meta["num_frames"]), h, w)
    with torch.no_grad():
        model.eval()(x)
    return x


def _batch_dim() -> dict[int, Any]:
    return {0: torch.export.Dim("batch", min=1, max=1024)}


def export_onnx(model: torch.nn.Module, meta: dict[str, Any], path: str | Path, opset: int = OPSET) -> Path:
    """Write `model` as ONNX (dynamic batch, T/H/W from `meta`, weights inside the file) with `meta` attached."""
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx packages: {INSTALL_HINT}") from None
    x = _capture_input(model, meta)
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.onnx.export(model, (x,), str(tmp), input_names=["video"], output_names=["logits"],
                              opset_version=opset, dynamo=True, dynamic_shapes=(_batch_dim(),),
                              external_data=False, verbose=False)
        except ImportError:
            raise ExportError(f"ONNX export needs onnxscript: {INSTALL_HINT}") from None
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {META_PROP: json.dumps(meta)})
        onnx.save(proto, str(tmp))
    return path


def export_program(model: torch.nn.Module, meta: dict[str, Any], path: str | Path) -> Path:
    """Write a ``torch.export`` program of `model` (dynamic batch) with `meta` as the extra file posmlp_video.json."""
    x = _capture_input(model, meta)
    program = torch.export.export(model, (x,), dynamic_shapes=(_batch_dim(),))
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer; the temporary file has neither
    torch.export.save(program, buffer, extra_files={f"{META_PROP}.json": json.dumps(meta)})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def onnx_runner(path: str | Path, threads: int | None = None) -> Runner:
    """An onnxruntime CPU session of an exported model as ``float32 (B, 3, T, H, W) -> logits``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(f"running ONNX models needs onnxruntime: {INSTALL_HINT}") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["logits"], {"video": np.ascontiguousarray(x, np.float32)})[0]


def program_runner(path: str | Path) -> Runner:
    """A saved ``torch.export`` program as ``float32 (B, 3, T, H, W) -> logits``."""
    module = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


RUNNERS: dict[str, Callable[[Path], Runner]] = {"onnx": onnx_runner, "torch-export": program_runner}


def parity(run: Runner, model: torch.nn.Module, inputs: torch.Tensor) -> Parity:
    """Compare ``run(inputs)`` with ``model(inputs)`` (one batch of preprocessed clips)."""
    with torch.no_grad():
        reference = model.eval()(inputs).numpy().astype(np.float64)
    got = np.asarray(run(inputs.numpy()), np.float64)
    if got.shape != reference.shape:
        raise ExportError(f"the export returned logits of shape {got.shape}, PyTorch {reference.shape}")
    max_abs = float(np.abs(got - reference).max())
    agree = int((got.argmax(-1) == reference.argmax(-1)).sum())
    return Parity(len(inputs), max_abs, max_abs / float(np.abs(reference).max()), agree)


def parity_clips(meta: dict[str, Any], videos: Sequence[str | Path] = (), count: int = 3) -> tuple[torch.Tensor, str]:
    """Model inputs (N, 3, T, H, W) made from video files by ``predict``'s own path (``views.load_views``: one
    clip, centre crop), and what they are. Without `videos`, `count` SynthMotion clips are written as H.264 mp4
    (PyAV) and decoded back.
    """
    from posmlp_video.views import load_views

    if videos:
        return torch.cat([load_views(v, meta).tensor for v in videos]), f"{len(videos)} video(s)"
    from posmlp_video.data.encode import write_mp4
    from posmlp_video.data.synthmotion import SynthMotion

    h, w = (int(s) for s in meta["input_size"])
    clips = SynthMotion(count, seed=0, num_frames=int(meta["num_frames"]), size=(h, w))
    with tempfile.TemporaryDirectory() as folder:
        paths = [write_mp4(Path(folder) / f"clip{i}.mp4", clips[i]["video"]) for i in range(count)]
        inputs = torch.cat([load_views(p, meta).tensor for p in paths])
    return inputs, f"{count} SynthMotion clips written as mp4 with PyAV and decoded"


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="our .safetensors checkpoint (or an authors' .pth/.pyth)")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx",
                        help="onnx (onnxruntime and other ONNX runtimes) or torch-export (.pt2); default onnx")
    parser.add_argument("--output", type=Path,
                        help="where to write (default: the checkpoint's path with .onnx / .pt2); a MODEL_CARD.md "
                             "is written beside it")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--videos", nargs="+", default=(), metavar="VIDEO",
                        help="check parity on these videos (default: 3 SynthMotion clips written as mp4)")


def run(args: argparse.Namespace) -> int:
    """Export, check parity on real clips, write the model card; exit 1 if parity fails."""
    from posmlp_video.card import write_model_card
    from posmlp_video.checkpoint import load_checkpoint

    output = args.output or args.checkpoint.with_suffix(FORMATS[args.format])
    if output.resolve() == args.checkpoint.resolve():
        raise ExportError(f"--output {output} would overwrite the checkpoint")
    model, meta = load_checkpoint(args.checkpoint)
    if args.format == "onnx":
        export_onnx(model, meta, output, args.opset)
        what = f"ONNX opset {args.opset}"
    else:
        export_program(model, meta, output)
        what = "torch.export program"
    h, w = meta["input_size"]
    print(f"wrote {output} ({what}; input 'video' float32 (batch, 3, {meta['num_frames']}, {h}, {w}), batch "
          f"dynamic; output 'logits' (batch, {model.num_classes}))")
    inputs, source = parity_clips(meta, args.videos)
    result = parity(RUNNERS[args.format](output), model, inputs)
    print(f"parity with PyTorch on {source}, batch {len(inputs)}: {result.line()}")
    print(f"wrote {write_model_card(output, meta, model)}")
    if not result.max_rel <= MAX_REL_ERROR:
        raise ExportError(f"the export differs from PyTorch: max rel err {result.max_rel:.2e} > {MAX_REL_ERROR:.0e}")
    return 0
