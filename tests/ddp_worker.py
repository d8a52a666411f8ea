"""Run by test_train_ddp.py under ``torchrun --nproc-per-node 2`` (gloo, CPU); rank 0 writes findings as JSON.

Checks our DDP path: DistributedSampler shards, DDP gradients against one process on the same global batch,
and parameters after steps of the engine's ``train_one_epoch`` on every rank.
"""

import json
import sys

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import random_seed
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from posmlp_video.models import create_model
from posmlp_video.train.config import load_config
from posmlp_video.train.distributed import all_gather_objects, cleanup, init_distributed
from posmlp_video.train.engine import train_one_epoch


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    return create_model("posmlp_video_xs", num_classes=12, num_frames=4, img_size=32)


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    findings: dict = {"world_size": dist.world_size}

    # 1. shards: what each rank's DistributedSampler yields for one epoch
    sampler = DistributedSampler(range(21), shuffle=True, seed=0, drop_last=True)
    sampler.set_epoch(3)
    findings["shards"] = all_gather_objects(list(sampler))

    # 2. gradients: DDP over 2 x 4 clips vs one process on the same 8 clips. Without SyncBatchNorm (CUDA only)
    # each device normalises its own 4 clips, so the single process takes the two halves as micro-batches.
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 4, 32, 32, generator=g), torch.randint(0, 12, (8,), generator=g)
    model = tiny_model()
    ddp = DistributedDataParallel(model)
    mine = slice(4 * dist.rank, 4 * dist.rank + 4)
    F.cross_entropy(ddp(x[mine]), y[mine]).backward()
    reference = tiny_model()
    for half in (slice(0, 4), slice(4, 8)):
        (F.cross_entropy(reference(x[half]), y[half]) / 2).backward()
    ref_grads = dict(reference.named_parameters())
    findings["max_grad_diff"] = max(float((p.grad - ref_grads[n].grad).abs().max()) for n, p in model.named_parameters())
    findings["max_grad"] = max(float(p.grad.abs().max()) for p in reference.parameters())
    alone = tiny_model()  # sanity: this rank's own gradient (no all-reduce) is not the global one
    F.cross_entropy(alone(x[mine]), y[mine]).backward()
    findings["max_local_grad_diff"] = max(float((p.grad - ref_grads[n].grad).abs().max())
                                          for n, p in alone.named_parameters())

    # 3. the engine's epoch loop under DDP: every rank ends with the same parameters
    cfg = load_config(None, ["train.batch_size=4", "optim.clip_grad=1.0", "train.accum_steps=2"])
    data = TensorDataset(torch.randn(32, 3, 4, 32, 32, generator=g), torch.randint(0, 12, (32,), generator=g))
    loader = DataLoader(data, 4, sampler=DistributedSampler(data, seed=0, drop_last=True), drop_last=True)
    model = tiny_model()
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    ddp = DistributedDataParallel(model)
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    scheduler, _ = create_scheduler_v2(optimizer, "cosine", num_epochs=1, step_on_epochs=False, updates_per_epoch=2)
    random_seed(0, dist.rank)  # per-rank streams, as in the engine
    loss, updates, clips = train_one_epoch(cfg, ddp, model, loader, optimizer, scheduler, torch.nn.CrossEntropyLoss(),
                                           None, None, torch.amp.GradScaler("cpu", enabled=False),
                                           torch.device("cpu"), 0, "ddp", False)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    everyone = all_gather_objects(params)
    findings["updates"], findings["clips_per_rank"], findings["loss"] = updates, clips, loss
    findings["params_moved"] = float((params - start).abs().max())
    findings["max_param_diff_across_ranks"] = max(float((p - everyone[0]).abs().max()) for p in everyone)
    if dist.is_main:
        with open(out, "w") as f:
            json.dump(findings, f)
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
