"""``python -m posmlp_video train CONFIG [key=value ...]`` (also under torchrun for several processes)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a YAML recipe, e.g. configs/synthmotion_xs.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.epochs=4 data.train_clips=64 output_dir=runs/x")


def run(args: argparse.Namespace) -> int:
    from posmlp_video.train.config import load_config
    from posmlp_video.train.engine import train

    cfg = load_config(args.config, args.overrides)
    summary = train(cfg)
    if "model" in summary:  # rank 0
        print(json.dumps(summary))
    return 0
