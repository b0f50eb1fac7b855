"""SimCLR under DDP (2 Gloo processes on CPU): negatives from the global batch, exact gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.ranks import run_ranks

from wsicell.train.methods.ntxent import nt_xent

pytestmark = pytest.mark.slow  # two processes each

N, D = 6, 5  # per rank


def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2 * N, D, generator=gen), torch.randn(2 * N, D, generator=gen)


def _worker(rank: int) -> dict:
    from wsicell.train.dist import gather_with_grad

    z1, z2 = full_batch()
    mine = slice(rank * N, (rank + 1) * N)
    a = z1[mine].clone().requires_grad_(True)
    b = z2[mine].clone().requires_grad_(True)
    loss = nt_xent(gather_with_grad(a), gather_with_grad(b), temperature=0.1)
    loss.backward()
    return {"loss": loss.item(), "grad_a": a.grad.tolist(), "grad_b": b.grad.tolist()}


def test_gathered_nt_xent_equals_the_global_batch(tmp_path: Path) -> None:
    results = run_ranks(_worker, workdir=tmp_path)
    z1, z2 = (t.clone().requires_grad_(True) for t in full_batch())
    loss = nt_xent(z1, z2, temperature=0.1)
    loss.backward()
    for rank, r in enumerate(results):
        mine = slice(rank * N, (rank + 1) * N)
        assert abs(r["loss"] - loss.item()) < 1e-5  # 2N views of the *global* batch
        # each rank's local gradient is world_size x its share of the global one; DDP's mean
        # over ranks then gives exactly the global batch's parameter gradient
        assert torch.allclose(torch.tensor(r["grad_a"]), 2 * z1.grad[mine], atol=1e-5)
        assert torch.allclose(torch.tensor(r["grad_b"]), 2 * z2.grad[mine], atol=1e-5)


def _sslp_worker(rank: int, store: str) -> dict:
    import numpy as np

    from wsicell.store import CellStore
    from wsicell.train.augment import Augment
    from wsicell.train.config import TrainConfig
    from wsicell.train.methods.config import SSLPConfig
    from wsicell.train.methods.sslp import SSLP

    config = TrainConfig(method="sslp", width=4, crop_size=16, batch_size=20, queue_size=20, projector_dims=(16, 8),
                         sslp=SSLPConfig(clusters=3))  # fmt: skip
    torch.manual_seed(0)
    method = SSLP(config)
    slides = CellStore.open(store).slides()
    method.setup(slides)
    rows = np.arange(rank * 10, rank * 10 + 10)  # each rank its own 10 cells of slide 0
    method.before_step(np.stack([np.zeros(10, np.int64), rows], 1))
    x = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(rank))
    method.loss(method(*method.views(x, augment=Augment(config), generator=torch.Generator().manual_seed(rank))))
    method.after_step()
    method.after_epoch(0)
    return {
        "filled": method.bank.filled.nonzero().squeeze(1).tolist(),
        "vectors": method.bank.vectors[:20].tolist(), "labels": method.bank.labels.tolist(),
    }  # fmt: skip


def test_sslp_bank_and_clusters_agree_across_ranks(tmp_path: Path) -> None:
    import numpy as np

    from wsicell.store import CellBatch, CellStore

    cells = CellStore.create_or_open(tmp_path / "cells.zarr")
    writer = cells.begin_slide("s", attrs={"mpp": 0.5}, crop_size=16, contour_points=4, feature_names=["a"])
    centroid = np.stack([np.arange(30) * 20.0, np.zeros(30)], 1).astype(np.float32)
    writer.append(CellBatch(np.zeros((30, 16, 16, 3), np.uint8), centroid, np.zeros((30, 4, 2), np.float32),
                            np.zeros((30, 4), np.int32), np.zeros((30, 1), np.float32)))  # fmt: skip
    writer.finish(mpp=0.5)
    r0, r1 = run_ranks(_sslp_worker, str(tmp_path / "cells.zarr"), workdir=tmp_path / "ranks")
    assert r0["filled"] == r1["filled"] == list(range(20))  # both ranks wrote both ranks' cells
    assert r0["vectors"] == r1["vectors"]
    assert r0["labels"] == r1["labels"] and set(r0["labels"][:20]) <= {0, 1, 2} and r0["labels"][20:] == [-1] * 10
