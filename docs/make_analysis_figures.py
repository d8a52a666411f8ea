"""Regenerate the README's analysis figures and numbers from a checkpoint (default: the bundled one).

    python -m docs.make_analysis_figures [--checkpoint PATH] [--out docs/figures] [--clips 24]

Writes small PNGs under ``--out`` and prints the bias summary table, the complexity table, one clip's
integrated-gradients completeness and the pointing game against random maps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import (
    attribute,
    complexity_table,
    format_complexity,
    format_summary,
    frame_strip,
    plots,
    pointing_game_report,
    relative_position_biases,
    summary,
)
from posmlp_video.checkpoint import load_checkpoint
from posmlp_video.data import SynthMotion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--clips", type=int, default=24, help="clips for the pointing game (0: skip it)")
    args = parser.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    tables = relative_position_biases(model)
    print(format_summary(summary(tables)), "\n")
    print(format_complexity(complexity_table(model)), "\n")

    temporal = [t for t in tables if t.unit == "temporal"]
    spatial = [t for t in tables if t.unit == "spatial"]
    if temporal:
        plots.save_figure(plots.plot_table(temporal[-1]), args.out / "temporal_curves.png", dpi=100)
    if spatial:
        plots.save_figure(plots.plot_table(spatial[0]), args.out / "spatial_groups.png", dpi=100)

    clip = SynthMotion(1, seed=4242, num_frames=int(meta["num_frames"]), size=tuple(meta["input_size"]))[0]
    result = attribute(model, clip["video"], "integrated_gradients", clip["label"], meta=meta, steps=32)
    frame_strip(result, args.out / "ig_strip.png", scale=1)
    plots.save_figure(plots.plot_temporal_importance(result.temporal_importance(), f"IG per frame: {result.target_name}"),
                      args.out / "ig_temporal.png", dpi=100)
    print(f"IG on one clip: target {result.target_name!r}, logit change {result.logit_change:.3f}, "
          f"delta {result.delta:.2e} ({result.relative_delta:.2%})")
    games = (("integrated_gradients", dict(steps=8)), ("grad_cam", dict(stage=0)), ("grad_cam", dict(stage=1)))
    for real_fraction, data in ((0.0, "flat shapes"), (1.0, "real pixels")):
        for method, options in games if args.clips > 0 else ():
            report = pointing_game_report(model, meta, num_clips=args.clips, seed=777, method=method,
                                          real_fraction=real_fraction, **options)
            stage = f" stage {options['stage']}" if "stage" in options else ""
            print(f"[{data}{stage}] {report.format()}")


if __name__ == "__main__":
    main()
