"""`import posmlp_video as pv`: the everyday names, imported lazily; no import circle between the checkpoint modules."""

import json
import subprocess
import sys

import pytest

import posmlp_video as pv
from posmlp_video import checkpoint, convert, predict
from posmlp_video.data import decode

HEAVY = ["av", "cv2", "matplotlib", "gradio", "onnxruntime", "posmlp_video.checkpoint", "posmlp_video.convert",
         "posmlp_video.predict", "posmlp_video.data", "posmlp_video.evaluate", "posmlp_video.train"]


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_short_names_are_the_real_objects():
    assert pv.load_checkpoint is checkpoint.load_checkpoint
    assert pv.save_checkpoint is checkpoint.save_checkpoint
    assert pv.from_official is convert.from_official
    assert pv.Predictor is predict.Predictor
    assert pv.read_video is decode.read_video
    assert pv.create_model("posmlp_video_xs", num_classes=3).num_classes == 3
    assert {"load_checkpoint", "Predictor", "read_video"} <= set(dir(pv)) and "Predictor" in pv.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pv.nope  # noqa: B018


def test_import_pulls_in_no_heavy_module():
    loaded = set(_loaded_after("import posmlp_video"))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "timm" in loaded  # the variants are still registered with timm on import
    assert "posmlp_video.checkpoint" in _loaded_after("import posmlp_video as pv; pv.load_checkpoint")


def test_convert_does_not_import_checkpoint():
    """The authors'-format loader and the shared helpers stand alone (checkpoint.py builds on them, not vice versa)."""
    assert "posmlp_video.checkpoint" not in _loaded_after("import posmlp_video.convert")
    assert not {"posmlp_video.checkpoint", "posmlp_video.convert"} & set(_loaded_after("import posmlp_video.loading"))
