"""SimCLR under DDP (2 Gloo processes on CPU): negatives from the global batch, exact gradients."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from wsicell.train.methods.ntxent import nt_xent

N, D = 6, 5  # per rank


def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2 * N, D, generator=gen), torch.randn(2 * N, D, generator=gen)


def _worker(rank: int, init_file: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    from wsicell.train.methods.simclr import gather_with_grad

    z1, z2 = full_batch()
    mine = slice(rank * N, (rank + 1) * N)
    a = z1[mine].clone().requires_grad_(True)
    b = z2[mine].clone().requires_grad_(True)
    loss = nt_xent(gather_with_grad(a), gather_with_grad(b), temperature=0.1)
    loss.backward()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"loss": loss.item(), "grad_a": a.grad.tolist(), "grad_b": b.grad.tolist()}))
    torch_dist.destroy_process_group()


def test_gathered_nt_xent_equals_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    z1, z2 = (t.clone().requires_grad_(True) for t in full_batch())
    loss = nt_xent(z1, z2, temperature=0.1)
    loss.backward()
    for rank in range(2):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        mine = slice(rank * N, (rank + 1) * N)
        assert abs(r["loss"] - loss.item()) < 1e-5  # 2N views of the *global* batch
        # each rank's local gradient is world_size x its share of the global one; DDP's mean
        # over ranks then gives exactly the global batch's parameter gradient
        assert torch.allclose(torch.tensor(r["grad_a"]), 2 * z1.grad[mine], atol=1e-5)
        assert torch.allclose(torch.tensor(r["grad_b"]), 2 * z2.grad[mine], atol=1e-5)
