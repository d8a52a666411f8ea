"""Crafted checkpoints (a corpus generated here, small files; bounds lowered where the real case is large).

Each one must be refused with its one-line reason before a model is built, quickly, through the Python API
and the CLI (exit 1, one line on stderr, no traceback, never PyTorch's advice to use ``weights_only=False``).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from posmlp_video import bounds
from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, META_KEY, load_checkpoint, read_meta
from posmlp_video.cli import main
from posmlp_video.convert import from_official
from posmlp_video.errors import CheckpointError

ROOT = Path(__file__).parents[1]
BUDGET_S = 5.0  # every refusal here, including reading the file


def _bundled() -> tuple[dict, dict[str, torch.Tensor]]:
    return read_meta(BUNDLED_CHECKPOINT), load_file(str(BUNDLED_CHECKPOINT))


def ours(meta_edit=None, state_edit=None, raw_meta: str | None = None):
    """A writer for a .safetensors file: the bundled checkpoint with its metadata and/or tensors edited."""

    def write(path: Path) -> Path:
        meta, state = _bundled()
        if meta_edit is not None:
            meta_edit(meta)
        if state_edit is not None:
            state_edit(state)
        save_file(state, str(path), metadata={META_KEY: raw_meta if raw_meta is not None else json.dumps(meta)})
        return path

    return write


def kw(**changes):
    return lambda meta: meta["model_kwargs"].update(changes)


def setitem(**changes):
    return lambda meta: meta.update(changes)


def poison(value: float):
    def edit(state):
        key = "head.weight"
        state[key] = state[key].clone()
        state[key][0, 0] = value

    return edit


def retype(dtype: torch.dtype):
    def edit(state):
        state["head.weight"] = state["head.weight"].to(dtype)

    return edit


def authors(edit=None, cfg: str | None = None, raw: bytes | None = None, replace: tuple[str, str] = ("", "")):
    """A writer for an authors'-layout .pyth built from the reference checkpoint."""

    def write(path: Path) -> Path:
        if raw is not None:
            path.write_bytes(raw)
            return path
        checkpoint = dict(torch.load(ROOT / "tests" / "data" / "official_small.pt", weights_only=True)["checkpoint"])
        checkpoint["model_state"] = dict(checkpoint["model_state"])
        if edit is not None:
            edit(checkpoint["model_state"])
        checkpoint["cfg"] = (cfg if cfg is not None else checkpoint["cfg"]).replace(*replace)
        torch.save(checkpoint, path)
        return path

    return write


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/posmlp-hostile-unpickled"),))


def _png() -> bytes:
    return cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


def png_file(path: Path) -> Path:
    path.write_bytes(_png())
    return path


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

# id -> (writer, suffix, lowered limits, the reason the error must give)
CASES = {
    "num_classes_1e9": (ours(kw(num_classes=10**9)), ".safetensors", {}, "num_classes=1000000000 is out of bounds"),
    "num_frames_1e6": (ours(setitem(num_frames=10**6)), ".safetensors", {}, "num_frames=1000000 is out of bounds"),
    "kwargs_frames_1e6": (ours(kw(num_frames=10**6)), ".safetensors", {}, "num_frames=1000000 is out of bounds"),
    "input_size_1e5": (ours(setitem(input_size=[10**5, 10**5])), ".safetensors", {}, "input_size=100000 is out of bounds"),
    "depths_1e6": (ours(kw(depths=[10**6, 1, 1, 1])), ".safetensors", {}, "depths=1000000 is out of bounds"),
    "dims_mismatch": (ours(kw(embed_dims=[64, 64, 128, 256])), ".safetensors", {}, "but the metadata builds"),
    "huge_window": (ours(kw(spatial_windows=[1000, 8, 4, 2])), ".safetensors", {}, "tokens; at most 4096"),
    "model_too_big": (ours(), ".safetensors", {"max_model_bytes": 1 << 20}, "would need"),
    "too_many_classes": (ours(setitem(class_names=[f"c{i}" for i in range(50)])), ".safetensors",
                         {"max_classes": 20}, "50 class names (at most 20)"),
    "empty_class_list": (ours(setitem(class_names=[])), ".safetensors", {}, "class list is empty"),
    "class_count_mismatch": (ours(setitem(class_names=["a", "b"])), ".safetensors", {},
                             "2 class names its metadata for a"),
    "newline_class_name": (ours(lambda m: m["class_names"].__setitem__(0, "ok\nposmlp-video: forged")),
                           ".safetensors", {}, "is not a non-empty printable string"),
    "std_zero": (ours(setitem(std=[0, 0, 0])), ".safetensors", {}, "std=[0, 0, 0] must be positive"),
    "sampling_bad": (ours(setitem(sampling="everything")), ".safetensors", {}, "must be segment or dense"),
    "no_model_kwargs": (ours(lambda m: m.pop("model_kwargs")), ".safetensors", {}, "model_kwargs must be a mapping"),
    "unknown_kwarg": (ours(kw(evil=1)), ".safetensors", {}, "cannot build the model"),
    "meta_not_json": (ours(raw_meta="{not json"), ".safetensors", {}, "metadata is not valid JSON"),
    "meta_a_list": (ours(raw_meta="[1, 2]"), ".safetensors", {}, "must be a JSON object"),
    "meta_too_big": (ours(setitem(pad="x" * 20000)), ".safetensors", {"max_meta_bytes": 16384}, "bytes of metadata"),
    "nan_weight": (ours(state_edit=poison(float("nan"))), ".safetensors", {}, "holds NaN or infinite values"),
    "inf_weight": (ours(state_edit=poison(float("inf"))), ".safetensors", {}, "holds NaN or infinite values"),
    "int8_weight": (ours(state_edit=retype(torch.int8)), ".safetensors", {}, "has dtype I8, expected a floating"),
    "bool_weight": (ours(state_edit=retype(torch.bool)), ".safetensors", {}, "has dtype BOOL, expected a floating"),
    "extra_weight": (ours(state_edit=lambda s: s.__setitem__("extra", torch.zeros(3))), ".safetensors", {},
                     "has weight 'extra'"),
    "missing_weight": (ours(state_edit=lambda s: s.pop("head.bias")), ".safetensors", {}, "lacks weight 'head.bias'"),
    "png_as_safetensors": (png_file, ".safetensors", {}, "not a readable safetensors"),
    "png_as_pth": (png_file, ".pth", {}, "not a PyTorch checkpoint"),
    "pickle_payload": (authors(raw=pickle.dumps({"model_state": Payload()})), ".pth", {}, "not a PyTorch checkpoint"),
    "torch_saved_payload": (lambda p: torch.save({"model_state": {"x": Payload()}}, p) or p, ".pth", {},
                            "pickled Python objects: refused"),
    "billion_laughs_cfg": (authors(cfg=BILLION_LAUGHS), ".pyth", {}, "anchors/aliases: refused"),
    "huge_cfg": (authors(cfg="DATA: {}\n" + "# pad\n" * 20000), ".pyth", {}, "characters (at most 65,536)"),
    "cfg_bad_types": (authors(cfg="DATA: 7\nMODEL: [1]\n"), ".pyth", {}, "cfg"),
    "stride0_bomb": (authors(lambda s: s.__setitem__("head.weight", torch.zeros(1).expand(10**6, 128))), ".pyth", {},
                     "claims shape (1000000, 128)"),
    "authors_int8": (authors(lambda s: s.__setitem__("head.weight", s["head.weight"].to(torch.int8))), ".pyth", {},
                     "has dtype int8, expected a floating"),
    "authors_nan": (authors(lambda s: s["head.bias"].fill_(float("nan"))), ".pyth", {}, "NaN or infinite"),
    "authors_many_classes": (authors(lambda s: s.update({"head.weight": torch.zeros(30, 128),
                                                         "head.bias": torch.zeros(30)}),
                                     replace=("NUM_CLASSES: 10", "NUM_CLASSES: 30")), ".pyth", {"max_classes": 20}, "num_classes=30 is out of bounds"),
}


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_checkpoint_is_refused_in_one_line(case, tmp_path, monkeypatch, capsys, clip):
    writer, suffix, lowered, reason = CASES[case]
    for name, value in lowered.items():
        monkeypatch.setattr(bounds.LIMITS, name, value)
    path = writer(tmp_path / f"{case}{suffix}")
    marker = Path("/tmp/posmlp-hostile-unpickled")
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, class_names=None if suffix == ".safetensors" else [f"c{i}" for i in range(10)])
    assert time.perf_counter() - start < BUDGET_S
    message = str(err.value)
    assert reason in message and "\n" not in message and "weights_only=False" not in message
    # the same file through the command line: exit 1, exactly one line on stderr
    code = main(["predict", "--checkpoint", str(path), str(clip)])
    out, stderr = capsys.readouterr()
    assert code == 1 and stderr.count("\n") == 1 and reason in stderr and "Traceback" not in stderr
    assert not marker.exists()  # no pickle payload ever ran


def test_bounds_are_loose_enough_for_real_checkpoints(official_small):
    """The bundled checkpoint and the authors' layout load; bounds only refuse what is out of them."""
    model, meta = load_checkpoint()
    assert meta["model_kwargs"]["num_classes"] == len(meta["class_names"]) == model.num_classes
    assert from_official(official_small["checkpoint"]).num_classes == 10
    # the meta-device size estimate is the real model's size
    real = bounds.model_bytes(model)
    assert bounds.model_bytes(bounds.check_model_kwargs(meta["model_kwargs"], "bundled")) == real
    assert real > BUNDLED_CHECKPOINT.stat().st_size * 0.9  # weights dominate; buffers are small here


def test_half_precision_weights_still_load(tmp_path):
    meta, state = _bundled()
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(tmp_path / "h.safetensors"),
              metadata={META_KEY: json.dumps(meta)})
    model, _ = load_checkpoint(tmp_path / "h.safetensors")
    assert model.head.weight.dtype == torch.float32
    torch.testing.assert_close(model.head.weight, state["head.weight"].half().float())


def test_scores_that_overflow_are_an_error_not_nan(clip):
    """Finite weights can still overflow float32 (logits inf, softmax NaN): refused, never reported as scores."""
    from posmlp_video.errors import PosMLPError
    from posmlp_video.predict import Predictor

    model, meta = load_checkpoint()
    with torch.no_grad():
        model.head.weight.fill_(3e38)
    with pytest.raises(PosMLPError, match="NaN or infinite"):
        Predictor(model, meta).predict(clip)


@pytest.mark.slow
def test_predict_cli_never_prints_nan_and_a_png_checkpoint_gives_one_line(tmp_path, clip):
    """Real processes: a PNG passed as a checkpoint, and a good run whose JSON must parse strictly."""
    png = tmp_path / "photo.pth"
    png.write_bytes(_png())
    run = subprocess.run([sys.executable, "-m", "posmlp_video", "predict", "--checkpoint", str(png), str(clip)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "weights_only" not in run.stderr and "Traceback" not in run.stderr and "not a PyTorch checkpoint" in run.stderr
    good = subprocess.run([sys.executable, "-m", "posmlp_video", "predict", "--json", str(clip)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert good.returncode == 0, good.stderr
    record = json.loads(good.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert all(np.isfinite(p["score"]) for p in record["predictions"])
