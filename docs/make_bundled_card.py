"""Measure a checkpoint on flat, real-pixel and real footage sets and write its card (``meta["card"]``).

    python -m docs.make_bundled_card [--checkpoint PATH] [--run runs/realmotion_xs_bundled] [--write]

Evaluates on SynthMotion flat and real-pixel clips of seed 1000 (never trained or validated on), the real
footage set ``real`` and the separate ``real-heldout`` set; calibrates the confidence threshold on the
held-out clips of the first three (``real-heldout`` stays a pure check); prints the figures as JSON and, with
``--write``, stores them in the checkpoint's card with `update_meta` (weights untouched). Training wall time
comes from the run folder's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from posmlp_video.assets import sources
from posmlp_video.card import calibrate_min_prob
from posmlp_video.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint, update_meta
from posmlp_video.data.synthmotion import REVERSE_PAIRS
from posmlp_video.evaluate import evaluate_model, pair_consistency
from posmlp_video.train.data import eval_dataset

SETS = (
    ("synthmotion", "SynthMotion flat shapes, seed 1000 (unseen)"),
    ("synthmotion-real", "SynthMotion real pixels, seed 1000 (unseen)"),
    ("real", "Real footage: people walking in vtest.avi, frames 0-389 (never trained on)"),
    ("real-heldout", "Real footage held out: vtest.avi frames 410-794 (never trained on or tuned with)"),
)
CALIBRATION = ("synthmotion", "synthmotion-real", "real")


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "CPU")
    return f"{torch.get_num_threads()}-thread PyTorch {torch.__version__.split('+')[0]} on {cpu} (2 cores, shared)"


def measure(path: Path, clips: int = 600) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(evaluation entries for the card, confidence block) of the checkpoint at `path`; `clips` SynthMotion
    clips per synthetic set (the real sets are used whole)."""
    model, meta = load_checkpoint(path)
    entries, probs, correct = [], [], []
    for source, name in SETS:
        dataset, names = eval_dataset(source, meta, num_clips=clips, seed=1000)
        loader = torch.utils.data.DataLoader(dataset, batch_size=16)
        result = evaluate_model(model, loader, names, torch.device("cpu"), keep_scores=True)
        entry: dict[str, Any] = dict(name=name, data=source, n=result.count, top1=round(result.top1, 2),
                                     top5=round(result.top5, 2), per_class=result.per_class_table())
        predictions = result.scores.argmax(1)
        if hasattr(dataset, "pairs"):
            entry["pair_consistency"] = round(pair_consistency(predictions.tolist(), dataset.pairs, REVERSE_PAIRS), 2)
        entries.append(entry)
        if source in CALIBRATION:
            probs += result.scores.max(1).values.tolist()
            correct += (predictions == result.labels).tolist()
        print(json.dumps({k: v for k, v in entry.items() if k != "per_class"}), flush=True)
    min_prob = calibrate_min_prob(probs, correct, target_accuracy=0.9)
    how = (f"lowest max-probability above which {len(probs)} held-out clips (flat and real-pixel SynthMotion of "
           "seed 1000, and the 'real' footage set) were right at least 90% of the time")
    return entries, dict(min_prob=round(min_prob, 3), how=how)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_CHECKPOINT)
    parser.add_argument("--run", type=Path, default=Path("runs/realmotion_xs_bundled"),
                        help="the training run's folder (for its wall time)")
    parser.add_argument("--clips", type=int, default=600, help="clips per synthetic set (default 600)")
    parser.add_argument("--write", action="store_true", help="store the card in the checkpoint's metadata")
    args = parser.parse_args()
    torch.set_num_threads(2)
    evaluation, confidence = measure(args.checkpoint, args.clips)
    history = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()]
    wall = sum(record["epoch_time_s"] for record in history)
    by_name = {entry["data"]: entry for entry in evaluation}
    card = dict(
        summary=("Recognises 12 class-agnostic motions (moving left/right/up/down, growing/shrinking, turning "
                 "clockwise/counter-clockwise, appearing/disappearing, splitting/merging) in 8-frame clips at "
                 "64x64, from real pixels as well as flat shapes."),
        training_data=("SynthMotion clips generated on the fly: 70% real-pixel (photographic Tux Paint cut-outs "
                       "moving over OpenCV and scikit-image sample photos, with camera drift, lighting change, "
                       "blur, noise and JPEG blocking), 30% flat shapes; no frame of real video."),
        data_sources=sources(),
        recipe=("python -m posmlp_video assets fetch && python -m posmlp_video train configs/synthmotion_xs.yaml && "
                "OMP_NUM_THREADS=2 python -m posmlp_video train configs/realmotion_xs.yaml"),
        training=dict(wall_time_s=round(wall), machine=_machine(), epochs=len(history)),
        evaluation=evaluation,
        confidence=confidence,
        intended_use=("Demonstrating and analysing PosMLP-Video (attributions, position biases, time reversal) "
                      "on short clips with one dominant motion; a teaching and testing model, not a product."),
        limits=("Knows only the 12 motions: no objects, people or actions (a person waving has no class). Real "
                f"footage was measured only on people walking left or right in one static-camera clip "
                f"({by_name['real']['top1']:.1f}% and {by_name['real-heldout']['top1']:.1f}% top-1 on two disjoint "
                "time ranges); other real motions are untested. Input is 8 frames at 64x64: small or slow "
                "motions vanish; camera motion can read as object motion."),
    )
    print(json.dumps({"training": card["training"], "confidence": confidence}))
    if args.write:
        update_meta(args.checkpoint, {"card": card})
        print(f"card written to {args.checkpoint}")


if __name__ == "__main__":
    main()
