"""Typed YAML configs with dotted overrides: values typed, typos and bad values rejected in one line."""

from pathlib import Path

import pytest
import yaml

from posmlp_video.cli import main
from posmlp_video.train.config import Config, ConfigError, load_config, save_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_overrides_are_typed_and_nested():
    cfg = load_config(ROOT / "configs" / "synthmotion_xs.yaml",
                      ["train.epochs=4", "data.train_clips=64", "optim.lr=4e-4", "output_dir=runs/x",
                       "optim.clip_grad=null", "aug.scale=[0.5, 1]", "model.kwargs={block_types: joint}",
                       "train.ema=true"])
    assert cfg.train.epochs == 4 and isinstance(cfg.train.epochs, int)
    assert cfg.data.train_clips == 64
    assert cfg.optim.lr == pytest.approx(4e-4) and isinstance(cfg.optim.lr, float)  # YAML reads "4e-4" as a string
    assert cfg.output_dir == "runs/x"
    assert cfg.optim.clip_grad is None
    assert cfg.aug.scale == [0.5, 1.0] and all(isinstance(v, float) for v in cfg.aug.scale)
    assert cfg.model.kwargs == {"block_types": "joint"}
    assert cfg.train.ema is True
    # untouched values come from the file, then from the dataclass defaults
    assert cfg.data.val_seed == yaml.safe_load((ROOT / "configs" / "synthmotion_xs.yaml").read_text())["data"]["val_seed"]
    assert cfg.data.test_crops == Config().data.test_crops


@pytest.mark.parametrize("override, message", [
    ("train.epoch=4", "unknown config key 'train.epoch'"),
    ("trian.epochs=4", "unknown config key 'trian'"),
    ("train.epochs", "bad override"),
    ("=4", "bad override"),
    ("train..epochs=4", "bad override"),
    ("train.epochs=four", "train.epochs must be an integer"),
    ("train.epochs=2.5", "train.epochs must be an integer"),
    ("train.ema=maybe", "train.ema must be true or false"),
    ("aug.scale=0.5", "aug.scale must be a list"),
    ("train=3", "train must be a mapping"),
    ("output_dir.x=3", "'output_dir' is not a section"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        load_config(ROOT / "configs" / "synthmotion_xs.yaml", [override])
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("optim:\n  lrr: 1.0\n")
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load_and_round_trip(path, tmp_path):
    cfg = load_config(path)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_recipes_follow_the_paper():
    """The SS and K400 recipes carry the authors' published settings."""
    names = {p.stem for p in CONFIGS}
    assert {"synthmotion_xs", "ssv1_s16", "ssv2_s16", "k400_s16"} <= names
    for name, lr, warmup, hflip, clips, crops in [("ssv1_s16", 4e-4, 5, False, 1, 3), ("ssv2_s16", 4e-4, 5, False, 1, 3),
                                                  ("k400_s16", 2e-4, 10, True, 4, 1)]:
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert (cfg.optim.opt, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", lr, 0.05)
        assert (cfg.optim.warmup_epochs, cfg.optim.warmup_lr, cfg.optim.min_lr, cfg.train.epochs) == (warmup, 1e-6, 1e-6, 60)
        assert (cfg.aug.randaugment_m, cfg.aug.randaugment_n) == (7, 4)
        assert (cfg.aug.mixup, cfg.aug.cutmix, cfg.aug.label_smoothing, cfg.aug.random_erasing) == (0.8, 1.0, 0.1, 0.25)
        assert cfg.model.drop_path_rate == 0.1 and cfg.aug.hflip is hflip
        assert (cfg.data.num_frames, cfg.data.input_size, cfg.data.test_clips, cfg.data.test_crops) == (16, 224, clips, crops)


def test_cli_reports_config_errors_in_one_line(capsys):
    assert main(["train", str(ROOT / "configs" / "synthmotion_xs.yaml"), "train.epoch=4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("posmlp-video train: error: unknown config key 'train.epoch'") and "\n" not in err
