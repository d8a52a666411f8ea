"""The training loop: one process, or many under torchrun with DistributedDataParallel.

Read top to bottom: set up the process group, data, model, optimizer, scheduler, loss, EMA; resume from
``output_dir/last.pt`` when it exists; then per epoch train, validate, checkpoint (best.pt, then last.pt,
then one line of metrics.jsonl); finally export the best weights to our inference format
(``output_dir/model.safetensors``). Rank 0 does all file I/O and shows the progress bars.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, random_seed
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from posmlp_video.atomic import disk_errors, remove_stale_temps
from posmlp_video.bounds import check_model_kwargs
from posmlp_video.card import write_model_card
from posmlp_video.checkpoint import read_meta, resize_state_dict, save_checkpoint
from posmlp_video.convert import from_official
from posmlp_video.errors import CheckpointError, PosMLPError
from posmlp_video.evaluate import autocast, evaluate_model
from posmlp_video.fast import BF16_EMULATED, cpu_has_fast_bf16
from posmlp_video.loading import load_state_dict_checked
from posmlp_video.models import VARIANTS, PosMLPVideo, create_model
from posmlp_video.train.checkpointing import (
    load_resume_state,
    load_training_state,
    previous_path,
    rng_state,
    save_training_state,
    set_rng_state,
    write_text_atomic,
)
from posmlp_video.train.config import Config, check_values, config_to_dict, save_config
from posmlp_video.train.data import build_datasets, input_meta
from posmlp_video.train.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    broadcast_object,
    cleanup,
    init_distributed,
)

HEAD = ("head", "head_drop")  # what a linear probe trains (train.freeze=backbone)


def _backbone(model: PosMLPVideo) -> list[nn.Module]:
    """The model's top-level modules other than the classifier (`HEAD`)."""
    return [child for name, child in model.named_children() if name not in HEAD]


def freeze_backbone(model: PosMLPVideo) -> None:
    """Stop gradients to everything but the classifier (a linear probe on the loaded features)."""
    for child in _backbone(model):
        child.requires_grad_(False)


def backbone_eval(model: PosMLPVideo) -> None:
    """Put everything but the classifier in eval mode: a frozen backbone keeps its BatchNorm statistics and
    runs without drop path, so its output is exactly what the loaded weights compute."""
    for child in _backbone(model):
        child.eval()


def tensorboard_writer(out: Path) -> Any:
    """A SummaryWriter logging to ``out/tensorboard`` (a clear error when tensorboard is not installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise PosMLPError("train.tensorboard=true needs tensorboard: pip install 'posmlp-video[tensorboard]'") from None
    return SummaryWriter(str(out / "tensorboard"))


def check_config(cfg: Config, device: torch.device) -> None:
    """Reject settings that cannot work before any data is generated or model built."""
    check_values(cfg)
    if cfg.train.amp == "fp16" and device.type != "cuda":
        raise PosMLPError("train.amp=fp16 needs CUDA; use bf16 on the CPU")
    if cfg.train.amp == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        warnings.warn(f"train.amp=bf16: {BF16_EMULATED}", stacklevel=2)
    if (cfg.aug.mixup > 0 or cfg.aug.cutmix > 0) and cfg.train.batch_size % 2:
        raise PosMLPError("mixup/cutmix pair each clip with another: train.batch_size must be even")
    if cfg.model.name not in VARIANTS:
        raise PosMLPError(f"model.name {cfg.model.name!r} is not a variant; choose from {', '.join(sorted(VARIANTS))}")
    # the network on the meta device (shapes only): bad kwargs and sizes fail here, before any data is made
    sketch = check_model_kwargs({**VARIANTS[cfg.model.name], **model_kwargs(cfg, num_classes=1)}, "model.kwargs")
    params = sum(p.numel() * p.element_size() for p in sketch.parameters())
    available = (torch.cuda.get_device_properties(device).total_memory if device.type == "cuda"
                 else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    if 4 * params > available:  # weights, gradients and AdamW's two moments
        raise PosMLPError(f"the model has {params / 4 / 1e6:,.0f}M parameters: training needs about "
                          f"{4 * params / 2**30:.1f} GiB for weights, gradients and optimizer state, more than the "
                          f"{available / 2**30:.1f} GiB of {device.type} memory")
    check_output_dir(Path(cfg.output_dir))


def check_output_dir(out: Path) -> None:
    """``output_dir`` must be a folder we can write (or one we can create), and hold no folder named last.pt."""
    if out.exists() and not out.is_dir():
        raise PosMLPError(f"output_dir {out} exists and is not a folder")
    try:  # create it and write a probe file: the only test that also holds for root and read-only mounts
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as err:
        raise PosMLPError(f"output_dir {out} is not a writable folder ({err.strerror or err})") from None
    if (out / "last.pt").exists() and not (out / "last.pt").is_file():
        raise PosMLPError(f"{out / 'last.pt'} is not a file (a folder?): move it away; nothing was changed")


def model_kwargs(cfg: Config, num_classes: int) -> dict[str, Any]:
    """The constructor kwargs of the configured model for `num_classes` classes."""
    return {**cfg.model.kwargs, "num_classes": num_classes, "num_frames": cfg.data.num_frames,
            "img_size": cfg.data.input_size, "drop_path_rate": cfg.model.drop_path_rate}


def init_weights(model: PosMLPVideo, path: str | Path) -> None:
    """Load starting weights into `model`: ours (.safetensors), the authors' (.pth/.pyth), or a num_frames=1
    image model of the same architecture. Position tables are resized to the model's windows (inflating
    T=1 to video) and the classifier is reset when the number of classes differs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to initialise from at {path}")
    if path.suffix == ".safetensors":
        read_meta(path)  # a clear error for safetensors files that are not ours
        state = load_file(str(path))
    else:
        state = from_official(path).state_dict()
    state = resize_state_dict(state, model)
    own = model.state_dict()
    for key in ("head.weight", "head.bias"):
        if key in state and key in own and state[key].shape != own[key].shape:
            state[key] = own[key]  # different classes: keep the freshly initialised head
    load_state_dict_checked(model, state)


def build_model(cfg: Config, num_classes: int) -> PosMLPVideo:
    """The configured variant for `num_classes` classes, initialised from ``model.init`` when set."""
    try:
        model = create_model(cfg.model.name, **model_kwargs(cfg, num_classes))
    except (TypeError, ValueError) as err:
        raise PosMLPError(f"cannot build {cfg.model.name}: {err}") from None
    if cfg.model.init:
        init_weights(model, cfg.model.init)
    return model


def train_one_epoch(cfg: Config, ddp_model: nn.Module, model: nn.Module, loader: DataLoader,
                    optimizer: torch.optim.Optimizer, scheduler: Any, criterion: nn.Module, mixup: Mixup | None,
                    ema: ModelEmaV3 | None, scaler: torch.amp.GradScaler, device: torch.device, num_updates: int,
                    desc: str, progress: bool, writer: Any = None) -> tuple[float, int, int]:
    """One pass over `loader`; returns (mean loss over all processes, optimizer steps so far, clips seen here).

    `writer` (a TensorBoard SummaryWriter, rank 0) gets this process's loss and the lr at every optimizer step.
    """
    ddp_model.train()
    if cfg.train.freeze == "backbone":
        backbone_eval(model)
    accum = cfg.train.accum_steps
    steps = len(loader) // accum * accum  # an incomplete accumulation at the end is dropped
    loss_sum, clips = torch.zeros((), device=device), 0
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(total=steps, desc=desc, leave=False, disable=not progress)
    for i, (videos, labels) in enumerate(loader):
        if i == steps:
            break
        videos, labels = videos.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        targets = labels
        if mixup is not None:  # cutmix boxes the last two dims: view (B, C, T, H, W) as (B, C*T, H, W)
            b, c, t, h, w = videos.shape
            videos, targets = mixup(videos.reshape(b, c * t, h, w), labels)
            videos = videos.view(b, c, t, h, w)
        step_now = (i + 1) % accum == 0
        no_sync = getattr(ddp_model, "no_sync", None)
        with no_sync() if no_sync is not None and not step_now else nullcontext():
            with autocast(device, cfg.train.amp):
                loss = criterion(ddp_model(videos), targets)
            # every process learns of a NaN/inf anywhere (one flag summed), so all stop together
            if all_reduce_sum((~torch.isfinite(loss.detach())).float()).item():
                raise PosMLPError(f"the training loss became NaN or infinite at step {num_updates + 1} ({desc}, "
                                  f"batch {i + 1}): stopped; last.pt keeps the last good state (lower optim.lr, "
                                  "set optim.clip_grad, or check the data)")
            scaler.scale(loss / accum).backward()
        if step_now:
            if cfg.optim.clip_grad is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            scheduler.step_update(num_updates)
            if ema is not None:
                ema.update(model, step=num_updates)
            if writer is not None:
                writer.add_scalar("train/loss", loss.item(), num_updates)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], num_updates)
        loss_sum += loss.detach().float() * len(labels)
        clips += len(labels)
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    totals = all_reduce_sum(torch.stack([loss_sum, torch.tensor(float(clips), device=device)]))
    return float(totals[0] / totals[1].clamp(min=1)), num_updates, clips


def export(cfg: Config, model: PosMLPVideo, class_names: list[str], out: Path) -> Path:
    """Write the best checkpoint's weights (EMA when enabled) as ``out/model.safetensors`` (and to ``export_to``),
    each with a MODEL_CARD.md beside it."""
    best = load_training_state(out / "best.pt")
    plain = PosMLPVideo(**model.config)  # plain BatchNorm even when trained with SyncBatchNorm
    plain.load_state_dict(best["ema"] if best.get("ema") is not None else best["model"])
    record = best["history"][-1]
    meta = {**input_meta(cfg.data), "model": cfg.model.name, "class_names": class_names,
            "val_top1": record["val_top1"], "val_top5": record["val_top5"], "epoch": record["epoch"],
            "recipe": config_to_dict(cfg)}
    path = save_checkpoint(plain, out / "model.safetensors", meta)
    write_model_card(path, meta, plain)
    if cfg.export_to:
        write_model_card(save_checkpoint(plain, cfg.export_to, meta), meta, plain)
    return path


def train(cfg: Config) -> dict[str, Any]:
    """Run (or resume) the training `cfg` describes; returns the best validation record and output paths."""
    dist = init_distributed(cfg.train.device)
    try:
        return _train(cfg, dist)
    finally:
        cleanup()


def _train(cfg: Config, dist: DistInfo) -> dict[str, Any]:
    device, main = dist.device, dist.is_main
    check_config(cfg, device)
    out = Path(cfg.output_dir)
    if main:
        with disk_errors(out):
            out.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(out)  # left by a process killed while writing
            save_config(cfg, out / "config.yaml")
    random_seed(cfg.train.seed, dist.rank)

    # data: training shards via DistributedSampler; validation split rank::world_size, counts summed
    data = build_datasets(cfg.data, cfg.aug)
    num_classes = len(data.class_names)
    if dist.distributed:
        train_sampler = DistributedSampler(data.train, dist.world_size, dist.rank, shuffle=True,
                                           seed=cfg.train.seed, drop_last=True)
    else:
        train_sampler = RandomSampler(data.train)
    pin = device.type == "cuda"
    train_loader = DataLoader(data.train, cfg.train.batch_size, sampler=train_sampler, drop_last=True,
                              num_workers=cfg.data.num_workers, pin_memory=pin)
    val_loader = DataLoader(Subset(data.val, range(dist.rank, len(data.val), dist.world_size)), cfg.train.batch_size,
                            num_workers=cfg.data.num_workers, pin_memory=pin)
    updates_per_epoch = len(train_loader) // cfg.train.accum_steps
    if updates_per_epoch < 1:
        raise PosMLPError(f"{len(data.train)} training clips make no full step of {cfg.train.batch_size} x "
                          f"{cfg.train.accum_steps} clips per process on {dist.world_size} process(es)")

    # model, optimizer (no weight decay on norms, biases, position tables, token biases), schedule, loss
    model = build_model(cfg, num_classes)
    if cfg.model.sync_bn and dist.distributed:
        if device.type != "cuda":
            raise PosMLPError("model.sync_bn needs CUDA devices (torch's SyncBatchNorm has no CPU implementation)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.train.freeze == "backbone":
        freeze_backbone(model)
    model.to(device)
    model.set_grad_checkpointing(cfg.model.grad_checkpointing)
    global_batch = cfg.train.batch_size * cfg.train.accum_steps * dist.world_size
    lr = cfg.optim.lr * global_batch / cfg.optim.lr_batch_size
    optimizer = create_optimizer_v2(model, cfg.optim.opt, lr=lr, weight_decay=cfg.optim.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, "cosine", num_epochs=cfg.train.epochs, warmup_epochs=cfg.optim.warmup_epochs,
        warmup_lr=cfg.optim.warmup_lr, min_lr=cfg.optim.min_lr, step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    ema = ModelEmaV3(model, decay=cfg.train.ema_decay, use_warmup=True) if cfg.train.ema else None
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")
    a = cfg.aug
    mixup = None
    if a.mixup > 0 or a.cutmix > 0:
        mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob, switch_prob=a.mixup_switch_prob,
                      label_smoothing=a.label_smoothing, num_classes=num_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif a.label_smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(a.label_smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    # resume from the last complete checkpoint (rank 0 reads it, every rank gets a copy)
    start_epoch, num_updates, history = 0, 0, []
    state = broadcast_object(load_resume_state(out) if main else None)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
        start_epoch, num_updates, history = state["epoch"], state["num_updates"], state["history"]
        if len(state["rng"]) == dist.world_size:
            set_rng_state(state["rng"][dist.rank])
        else:  # a different number of processes: fresh per-rank streams, still reproducible
            random_seed(cfg.train.seed + 1000 * start_epoch, dist.rank)
    if main:  # metrics.jsonl = exactly the epochs in the checkpoint (drops lines of an epoch cut short)
        write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        if state is not None:
            print(f"resuming {out} after epoch {start_epoch}", flush=True)
    best_top1 = max((r["val_top1"] for r in history), default=-1.0)

    ddp_model: nn.Module = model
    if dist.distributed:
        ddp_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.model.compile:
        ddp_model = torch.compile(ddp_model)

    writer = tensorboard_writer(out) if cfg.train.tensorboard and main else None
    for epoch in range(start_epoch, cfg.train.epochs):
        if isinstance(train_sampler, DistributedSampler):
            train_sampler.set_epoch(epoch)
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(epoch)
        start = time.perf_counter()
        train_loss, num_updates, clips = train_one_epoch(
            cfg, ddp_model, model, train_loader, optimizer, scheduler, criterion, mixup, ema, scaler, device,
            num_updates, f"epoch {epoch + 1}/{cfg.train.epochs}", main, writer,
        )
        train_time = time.perf_counter() - start
        result = evaluate_model(ema.module if ema is not None else model, val_loader, data.class_names, device,
                                cfg.train.amp, progress=main)
        record = dict(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"], train_loss=round(train_loss, 5),
                      val_top1=round(result.top1, 3), val_top5=round(result.top5, 3),
                      clips_per_s=round(clips * dist.world_size / train_time, 2), world_size=dist.world_size,
                      epoch_time_s=round(time.perf_counter() - start, 2))
        history.append(record)
        rngs = all_gather_objects(rng_state())
        if main:
            state = dict(
                model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(), ema=ema.module.state_dict() if ema is not None else None,
                epoch=epoch + 1, num_updates=num_updates, history=history, rng=rngs, class_names=data.class_names,
                config=config_to_dict(cfg),
            )
            if record["val_top1"] > best_top1:  # best first: a kill between the two writes re-runs this epoch
                save_training_state(state, out / "best.pt")
            save_training_state(state, out / "last.pt", backup=previous_path(out / "last.pt"))
            with disk_errors(out / "metrics.jsonl"), open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            print(f"epoch {record['epoch']}/{cfg.train.epochs}  loss {train_loss:.4f}  val top-1 {result.top1:.2f}%  "
                  f"top-5 {result.top5:.2f}%  {record['clips_per_s']:.1f} clips/s  {record['epoch_time_s']:.0f} s",
                  flush=True)
        if writer is not None:  # per epoch, and flushed: a run killed later keeps every finished epoch
            for key in ("train_loss", "val_top1", "val_top5", "clips_per_s", "epoch_time_s"):
                writer.add_scalar(f"epoch/{key}", record[key], record["epoch"])
            writer.flush()
        best_top1 = max(best_top1, record["val_top1"])

    if writer is not None:
        writer.close()
    summary = dict(best=max(history, key=lambda r: r["val_top1"]), output_dir=str(out))
    if main:
        summary["model"] = str(export(cfg, model, data.class_names, out))
    return summary
