"""Features for other models: ``python -m posmlp_video features FILES... --stage -1 --pool mean --out feats.npy``.

A stage's output (``forward_intermediates``; stage -1 is ``forward_features``), mean-pooled over T x H x W or
kept whole, or with ``--pre-logits`` the head's input (final norm, mean over tokens). Each video's features
are the mean over its ``--clips x --crops`` views, sampled and preprocessed as ``eval`` and ``predict`` do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from posmlp_video.errors import PosMLPError, one_line
from posmlp_video.models import PosMLPVideo

POOLS = ("mean", "none")


@torch.inference_mode()
def extract_features(model: PosMLPVideo, views: torch.Tensor, stage: int = -1, pool: str = "mean",
                     pre_logits: bool = False) -> torch.Tensor:
    """Features of one video from its views ``(V, 3, T, H, W)``, averaged over the views.

    ``(C,)`` with ``pool="mean"`` or ``pre_logits``; ``(C, T', H', W')`` of stage ``stage`` with ``pool="none"``.
    """
    if pool not in POOLS:
        raise PosMLPError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if not -len(model.stages) <= stage < len(model.stages):
        raise PosMLPError(f"stage must be in -{len(model.stages)}..{len(model.stages) - 1}, got {stage}")
    views = views.to(next(model.parameters()).device)
    if pre_logits:
        return model.forward_head(model.forward_features(views), pre_logits=True).mean(0).cpu()
    (maps,) = model.forward_intermediates(views, indices=[stage % len(model.stages)], stop_early=True,
                                         intermediates_only=True)
    return (maps.mean(dim=(2, 3, 4)) if pool == "mean" else maps).mean(0).cpu()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posmlp_video.predict import add_input_arguments, add_view_arguments

    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files or images, or folders of them")
    parser.add_argument("--checkpoint", type=Path, help="our .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("--out", type=Path, required=True,
                        help="a .npy file (one row per input, plus a .txt beside it naming each row's file) "
                             "or a folder (one <file name>.npy per input)")
    parser.add_argument("--stage", type=int, default=-1, help="which stage's output, 0..3 or -1 for the last")
    parser.add_argument("--pool", default="mean", choices=POOLS,
                        help="mean over T x H x W (C,), or none: the whole map (C, T, H, W)")
    parser.add_argument("--pre-logits", action="store_true",
                        help="the head's input instead: final norm, then the mean over tokens (C,)")
    add_view_arguments(parser)
    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Write every input's features; inputs that fail are named on stderr and left out (exit 1)."""
    from posmlp_video.checkpoint import load_checkpoint
    from posmlp_video.predict import decoded_views, expand_inputs
    from posmlp_video.views import check_views

    check_views(args.clips, args.crops)
    if args.pre_logits and (args.stage != -1 or args.pool != "mean"):
        raise PosMLPError("--pre-logits is the head's input: leave --stage and --pool at their defaults")
    model, meta = load_checkpoint(args.checkpoint)
    stacked = args.out.suffix.lower() == ".npy"
    if not stacked:
        args.out.mkdir(parents=True, exist_ok=True)
    paths = list(expand_inputs(args.paths, args.glob))
    if not stacked:
        names = [Path(p).name for p in paths]
        if len(set(names)) < len(names):
            raise PosMLPError("two inputs share a file name: give --out a .npy file instead of a folder")
    rows, kept, failed, shape = [], [], 0, None
    for path, views in decoded_views(paths, meta, args.clips, args.crops, args.workers, "features", progress=True):
        if isinstance(views, str):
            failed += 1
            print(f"posmlp-video features: error: {one_line(path)}: {views}", file=sys.stderr, flush=True)
            continue
        feats = extract_features(model, views.tensor, args.stage, args.pool, args.pre_logits).numpy()
        shape = feats.shape
        if stacked:
            rows.append(feats)
            kept.append(path)
        else:
            np.save(args.out / f"{Path(path).name}.npy", feats)
    if stacked and rows:
        np.save(args.out, np.stack(rows))
        args.out.with_suffix(".txt").write_text("".join(f"{one_line(p)}\n" for p in kept), encoding="utf-8")
    shown = "" if shape is None else f" {(len(rows), *shape)}" if stacked else f" {shape} each"
    print(f"{len(paths) - failed} files -> {args.out}{shown}" + (f", {failed} failed" if failed else ""),
          file=sys.stderr)
    return 1 if failed else 0
