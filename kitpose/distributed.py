"""DDP under ``torchrun``, and a sampler whose order depends only on (seed, epoch).

``torchrun --nproc_per_node=N kitpose run RECIPE`` sets ``WORLD_SIZE``/``RANK``;
kitpose then joins the process group (gloo on CPU, nccl on CUDA). The sampler
gives each rank a disjoint share of one permutation and can start mid-epoch, which
is what makes an interrupted run resume to the same result.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device: torch.device, timeout_s: float | None = None) -> bool:
    """Join the process group when launched by torchrun; returns whether distributed.

    ``timeout_s`` bounds every collective: a rank that is alive but stuck fails the job
    after that long instead of gloo's 30-minute default.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=float(timeout_s)) if timeout_s else None
    dist.init_process_group(backend=backend, timeout=timeout)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is set on any rank (every rank gets the same answer)."""
    if world_size() == 1:
        return flag
    box = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        box = box.cuda()
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


def share_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), so that evaluation on any
    rank scores the model rank 0 saves; parameters already agree after each step."""
    if world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


class EpochSampler(torch.utils.data.Sampler[int]):
    """One permutation per (seed, epoch), split across ranks, optionally started mid-epoch.

    With ``shuffle=False`` the order is 0..n-1. Each rank takes every world-th index of
    the order. ``pad=True`` (training) first repeats the head of the order until it divides
    by the world size, as ``DistributedSampler`` does, so every rank takes the same number
    of gradient steps; evaluation leaves it unpadded (uneven shards) so that no sample is
    scored twice.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int, batch_size: int = 1,
                 drop_last: bool = False, rank: int = 0, world: int = 1, pad: bool = True) -> None:
        self.size, self.shuffle, self.seed, self.pad = size, shuffle, seed, pad
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world = rank, world
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        if self.world > 1:
            total = -(-self.size // self.world) * self.world
            if self.pad and total > self.size:
                order = order + order[: total - self.size]
            order = order[self.rank::self.world]
        if self.drop_last:
            order = order[: len(order) // self.batch_size * self.batch_size]
        return order

    def _count(self) -> int:
        """How many indices this rank takes per epoch: arithmetic, no permutation drawn."""
        if self.world > 1:
            n = -(-self.size // self.world) if self.pad else len(range(self.rank, self.size, self.world))
        else:
            n = self.size
        return n // self.batch_size * self.batch_size if self.drop_last else n

    def batches_per_epoch(self) -> int:
        return -(-self._count() // self.batch_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return max(0, self._count() - self.start_batch * self.batch_size)
