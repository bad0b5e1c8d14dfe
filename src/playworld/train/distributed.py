"""Distributed data parallel set-up: plain PyTorch DDP under `torchrun`, nothing home-made.

`torchrun --nproc_per_node=N -m playworld.cli train ...` sets WORLD_SIZE/RANK/LOCAL_RANK; we then
join the process group (gloo on CPU, NCCL on GPU), wrap the network in DistributedDataParallel and
shard batches by rank. Only rank 0 writes files. A single process needs none of this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from playworld.errors import PlayworldError


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(device: str | None) -> torch.device:
    """'cpu', 'cuda', 'cuda:1' or None (= cuda when available, else cpu)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PlayworldError("--device cuda was asked for but no CUDA GPU is available", "use --device cpu")
    return dev


def setup(device: str | None = None) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    dev = pick_device(device)
    if world_size <= 1:
        return Dist(0, 1, 0, dev)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world_size, local_rank, dev)


def any_rank(flags: list[bool], d: Dist) -> list[bool]:
    """Element-wise OR of boolean flags over all ranks, so every rank takes the same decision."""
    if not d.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
