"""Training on several processes: torchrun's environment read, and its process group joined for a training."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from torchrun's environment (single process when absent)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                    int(os.environ.get("WORLD_SIZE", 1)))


@contextmanager
def distributed(device: str = "auto") -> Iterator[DistInfo]:
    """Join the torchrun process group for the duration of a training (no-op for one process).

    NCCL on CUDA GPUs, gloo otherwise; each rank uses the GPU of its local rank.
    """
    d = dist_info()
    if d.world <= 1 or dist.is_initialized():
        yield d
        return
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    ok = False
    try:
        yield d
        ok = True
    finally:
        if ok:
            dist.barrier()  # leave together: a rank that exits early makes gloo abort its peers
        dist.destroy_process_group()
