"""Distributed helpers that also work without ``torch.distributed`` (world size 1).

Training under ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; ``init_from_env`` joins
the process group (NCCL on CUDA, Gloo on CPU) and ``shutdown`` leaves it. Everything else
degrades to a no-op.

Ending matters: a process whose process group is still alive when the interpreter exits can
die with SIGABRT ("terminate called without an active exception") after a successful run.
Gloo's worker threads release a finished collective's tensors after the caller has moved
on; that release takes the GIL, and a thread asking for the GIL while the interpreter is
finalising is ended by ``pthread_exit`` inside a C++ destructor, which calls
``std::terminate``. The busier the machine, the later those threads run. Destroying the
group would join them, but the group outlives ``destroy_process_group`` as soon as
DistributedDataParallel has been built on it (torch keeps references to it). So a
distributed process leaves the group (``shutdown``) and then ends with ``end_process``:
output flushed, no interpreter finalisation, no race. ``gather_with_grad`` is written here
rather than taken from ``torch.distributed.nn``, whose functions capture the world group as
a default argument when imported after ``init_process_group``.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init_from_env(device_type: str) -> bool:
    """Join the process group described by torchrun's environment; False when not under it."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return True


def shutdown() -> None:
    """Leave the process group once every rank is done with it.

    Call it on the success path only, where ``init_from_env`` joined the group: a rank that
    failed must not wait in a barrier for ranks that will never reach it."""
    if not is_distributed():
        return
    dist.barrier()
    dist.destroy_process_group()


def end_process(code: int = 0) -> NoReturn:
    """End a distributed process whose work is done and saved: flush, then ``os._exit``.

    Skips interpreter finalisation, where Gloo's threads can abort the process (see above)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (NxD) from every rank in rank order -> (world*N)xD. No gradient."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward returns to each rank the summed gradient of its own slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on every rank's slice
        n = grad.shape[0] // world_size()
        return grad[rank() * n : (rank() + 1) * n]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (NxD) of every rank concatenated in rank order, gradients flowing back to each rank."""
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


def all_reduce_mean(value: float, device: torch.device) -> float:
    """The mean of a Python float across ranks (for logging)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world_size()
