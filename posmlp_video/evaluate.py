"""Multi-view evaluation: top-1 / top-5, per-class accuracy and the confusion matrix.

``python -m posmlp_video eval [--checkpoint CKPT] --data synthmotion --seed S --num-clips N --json`` prints
one JSON line with ``top1`` and ``top5`` in percent. ``--data`` also takes a class-per-folder directory or
an annotation file; every video is scored as the mean softmax of its clips x crops views. The preprocessing
(frames, sampling, size, normalisation) comes from the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from posmlp_video.errors import PosMLPError
from posmlp_video.train.distributed import all_reduce_sum
from posmlp_video.views import mean_softmax


@dataclass
class EvalResult:
    """Counts from one evaluation; rows of `confusion` are true classes, columns predictions."""

    confusion: torch.Tensor
    top5_hits: torch.Tensor  # per true class: clips whose class is among the 5 best scores
    class_names: list[str]
    scores: torch.Tensor | None = None  # (N, classes) mean softmax per item in loader order, when kept
    labels: torch.Tensor | None = None  # (N,) their true classes, when kept

    @property
    def top5_correct(self) -> int:
        return int(self.top5_hits.sum())

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        """Top-1 accuracy in percent."""
        return 100.0 * float(self.confusion.diagonal().sum()) / max(self.count, 1)

    @property
    def top5(self) -> float:
        """Top-5 accuracy in percent."""
        return 100.0 * self.top5_correct / max(self.count, 1)

    def per_class(self) -> dict[str, float | None]:
        """Top-1 accuracy in percent of each class (None for classes with no sample)."""
        support = self.confusion.sum(1)
        return {name: (100.0 * float(self.confusion[i, i]) / int(support[i]) if support[i] else None)
                for i, name in enumerate(self.class_names)}

    def per_class_table(self) -> dict[str, dict[str, float | int]]:
        """``{class: {"n", "top1", "top5"}}`` (percent) for every class with at least one clip."""
        support = self.confusion.sum(1)
        return {name: {"n": int(support[i]), "top1": round(100.0 * float(self.confusion[i, i]) / int(support[i]), 2),
                       "top5": round(100.0 * float(self.top5_hits[i]) / int(support[i]), 2)}
                for i, name in enumerate(self.class_names) if support[i]}

    def save(self, folder: str | Path) -> None:
        """Write confusion_matrix.csv (counts), confusion_matrix.png and per_class.csv into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "confusion_matrix.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *self.class_names])
            for name, row in zip(self.class_names, self.confusion.tolist()):
                writer.writerow([name, *row])
        with open(folder / "per_class.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["class", "clips", "top1"])
            for (name, acc), n in zip(self.per_class().items(), self.confusion.sum(1).tolist()):
                writer.writerow([name, n, "" if acc is None else f"{acc:.2f}"])
        plot_confusion(self.confusion, self.class_names, folder / "confusion_matrix.png")


def plot_confusion(confusion: torch.Tensor, class_names: list[str], path: str | Path) -> None:
    """Row-normalised confusion matrix as a PNG (counts written in the cells for up to 30 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp(min=1)
    side = min(4 + 0.45 * n, 40)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), class_names, fontsize=8)
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def autocast(device: torch.device, amp: str) -> Any:
    """The autocast context for train.amp ("none", "bf16", "fp16")."""
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader: torch.utils.data.DataLoader, class_names: list[str],
                   device: torch.device, amp: str = "none", progress: bool = False,
                   keep_scores: bool = False) -> EvalResult:
    """Score every item of `loader` ((B, V, 3, T, H, W) views or (B, 3, T, H, W) clips) by its mean softmax.

    Counts are summed over all processes, so with a sharded loader every rank gets the full result;
    `keep_scores` keeps this process's per-item scores (e.g. for pair consistency or calibration).
    """
    model.eval()
    n = len(class_names)
    confusion = torch.zeros(n, n, dtype=torch.int64, device=device)
    top5 = torch.zeros(n, dtype=torch.int64, device=device)
    kept = []
    for videos, labels in tqdm(loader, desc="eval", leave=False, disable=not progress):
        if videos.ndim == 5:
            videos = videos.unsqueeze(1)
        b, v = videos.shape[:2]
        videos, labels = videos.to(device, non_blocking=True), labels.to(device)
        with autocast(device, amp):
            logits = model(videos.flatten(0, 1))
        scores = mean_softmax(logits, v)
        confusion += torch.bincount(labels * n + scores.argmax(1), minlength=n * n).view(n, n)
        hits = (scores.topk(min(5, n), dim=1).indices == labels[:, None]).any(1)
        top5 += torch.bincount(labels[hits], minlength=n)
        if keep_scores:
            kept.append((scores.cpu(), labels.cpu()))
    all_reduce_sum(confusion)
    all_reduce_sum(top5)
    scores_kept, labels_kept = (torch.cat(part) for part in zip(*kept)) if kept else (None, None)
    return EvalResult(confusion.cpu(), top5.cpu(), list(class_names), scores_kept, labels_kept)


def pair_consistency(predictions: Sequence[int], pairs: Sequence[int], reverse_pairs: Mapping[int, int]) -> float:
    """Percent of (clip, time-reversed clip) pairs predicted as a time-reversed pair of classes.

    ``pairs[i]`` is the index of clip i's reversal; a pair counts once. A model that ignores frame order
    predicts the same class for both clips and scores 0.
    """
    done = [(i, j) for i, j in enumerate(pairs) if i < j]
    if not done:
        raise PosMLPError("no (clip, reversal) pairs to score")
    agree = sum(reverse_pairs[int(predictions[i])] == int(predictions[j]) for i, j in done)
    return 100.0 * agree / len(done)


# --- command line ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="our .safetensors or an authors' .pth/.pyth (default: the bundled checkpoint)")
    parser.add_argument("--data", default="synthmotion",
                        help="'synthmotion' (flat shapes), 'synthmotion-real' (photo cut-outs), 'real' or "
                             "'real-heldout' (people walking in vtest.avi; needs 'assets fetch'), a "
                             "class-per-folder directory or an annotation file")
    parser.add_argument("--seed", type=int, default=1000, help="SynthMotion seed (default 1000, never trained on)")
    parser.add_argument("--num-clips", type=int, default=600, help="SynthMotion clips to draw")
    parser.add_argument("--clips", type=int, default=1, help="temporal views per video")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="spatial views per clip")
    parser.add_argument("--labels", default=None, help="class names for numeric annotation files: ssv1, ssv2, k400 or a file")
    parser.add_argument("--root", default=None, help="base folder of relative paths in an annotation file")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--output", default=None, help="folder for confusion_matrix.csv/.png and per_class.csv")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def run(args: argparse.Namespace) -> int:
    from posmlp_video.checkpoint import load_checkpoint
    from posmlp_video.loading import load_class_names
    from posmlp_video.train.data import eval_dataset
    from posmlp_video.train.distributed import resolve_device

    if args.num_clips < 1 or args.clips < 1 or args.batch_size < 1:
        raise PosMLPError("--num-clips, --clips and --batch-size must be at least 1")
    device = resolve_device(args.device)
    class_names = load_class_names(args.labels) if args.labels else None
    model, meta = load_checkpoint(args.checkpoint, class_names=class_names, device=device)
    dataset, names = eval_dataset(args.data, meta, num_clips=args.num_clips, seed=args.seed, test_clips=args.clips,
                                  test_crops=args.crops, root=args.root, class_names=meta["class_names"])
    if len(names) != model.num_classes:
        raise PosMLPError(f"{args.data} has {len(names)} classes but the checkpoint predicts {model.num_classes}")
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
    pairs = getattr(dataset, "pairs", None)  # real footage sets: index of each clip's time reversal
    result = evaluate_model(model, loader, names, device, progress=not args.json and sys.stderr.isatty(),
                            keep_scores=pairs is not None)
    if args.output:
        result.save(args.output)
    summary = {"checkpoint": str(args.checkpoint or "bundled"), "data": args.data, "clips": result.count,
               "views": args.clips * args.crops, "top1": round(result.top1, 2), "top5": round(result.top5, 2)}
    if args.data.startswith("synthmotion"):
        summary["seed"] = args.seed
    if pairs is not None:
        from posmlp_video.data.synthmotion import REVERSE_PAIRS

        summary["pair_consistency"] = round(pair_consistency(result.scores.argmax(1).tolist(), pairs,
                                                             REVERSE_PAIRS), 2)
    if args.json:
        print(json.dumps({**summary, "per_class_top1": result.per_class(), "per_class": result.per_class_table()}))
    else:
        print(f"{summary['clips']} clips, {summary['views']} view(s) each: top-1 {result.top1:.2f}%  "
              f"top-5 {result.top5:.2f}%")
        if pairs is not None:
            print(f"pair consistency (a clip and its time reversal predicted as a reversed pair): "
                  f"{summary['pair_consistency']:.2f}%")
        table = result.per_class_table()
        print(f"  {'top-1':>7}  {'top-5':>7}  {'clips':>5}  class")
        for name in names:
            row = table.get(name)
            print(f"  {'-':>7}  {'':>7}  {'0':>5}  {name}" if row is None else
                  f"  {row['top1']:6.2f}%  {row['top5']:6.2f}%  {row['n']:5d}  {name}")
    return 0
