"""Data-parallel helpers for ``torchrun`` (gloo on CPU, NCCL on GPU).

Gradients are averaged with one coalesced all-reduce per optimiser step (after gradient
accumulation), so every rank applies the same update and the weights stay identical.
Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: Global rank.
        world: Number of processes.
        local_rank: Rank on this node (GPU index).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and reports progress."""
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from the ``torchrun`` environment (1 process if unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(info: DistInfo, device: torch.device) -> bool:
    """Join the process group (NCCL for CUDA, gloo otherwise); return True if one is in use."""
    if info.world <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=info.rank, world_size=info.world)
    return True


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Copy rank 0's trainable parameters to every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for p in model.parameters():
        if p.requires_grad:
            dist.broadcast(p.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks in place.

    A grad missing on some ranks counts as zeros there; a grad missing on every rank stays
    None (so AdamW skips that parameter, as it does in a single process).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    present = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.int32, device=params[0].device
    )
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    params = [p for p, used in zip(params, present.tolist(), strict=True) if used]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, v in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(v)


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of scalar metrics over ranks (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def barrier() -> None:
    """Wait for all ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's value of a boolean (e.g. "stop now") on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
