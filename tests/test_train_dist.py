"""DDP on CPU: 2 processes (Gloo), keys gathered into the queue from both ranks, a short run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.ranks import run_ranks

B = 8  # per rank


def _worker(rank: int, store: str, out: str) -> dict:
    from wsicell.train.augment import Augment
    from wsicell.train.config import TrainConfig
    from wsicell.train.loop import train
    from wsicell.train.method import build_method

    config = TrainConfig(width=4, crop_size=16, batch_size=2 * B, queue_size=4 * B, epochs=1, device="cpu",
                         precision="fp32", threads=1, warmup_epochs=0)  # fmt: skip
    torch.manual_seed(0)
    method = build_method(config)
    x = torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(100 + rank))
    view_q, view_k = method.views(x, augment=Augment(config), generator=torch.Generator().manual_seed(rank))
    method(view_q, view_k)
    with torch.no_grad():
        own = F.normalize(method.projector_k(method.backbone_k(view_k)), dim=1)
    result = {
        "ptr": int(method.queue_ptr),
        "own_slot": [r for r in range(2) if torch.allclose(method.queue[r * B : (r + 1) * B], own, atol=1e-5)],
        "queue_sum": float(method.queue[: 2 * B].sum()),
    }
    run = train(store=store, out=out, config=TrainConfig(**{**vars(config), "batch_size": 128, "queue_size": 256}), progress=False)
    result["run"] = str(run)
    return result


@pytest.mark.slow
def test_two_process_ddp_gathers_keys_from_both_ranks(crop_store: Path, tmp_path: Path) -> None:
    r0, r1 = run_ranks(_worker, str(crop_store), str(tmp_path / "run"), workdir=tmp_path / "ranks")
    assert r0["ptr"] == r1["ptr"] == 2 * B  # one step enqueued the keys of both ranks
    assert r0["own_slot"] == [0] and r1["own_slot"] == [1]  # rank order, each rank's keys present
    assert r0["queue_sum"] == r1["queue_sum"]  # identical queues on both ranks
    from wsicell.train import checkpoint

    state = checkpoint.load(tmp_path / "run" / "last.pt")
    assert state["world_size"] == 2 and state["epoch"] == 1
    # chunks are sharded: rank 0 reads the 700-cell slide, rank 1 the 500-cell one; both
    # ranks run the steps of the smaller share: 500 // 64
    assert state["step"] == 7
    assert int(state["model"]["queue_ptr"]) == (7 * 128) % 256



@pytest.mark.slow
def test_wsicell_train_under_torchrun_exits_cleanly(crop_store: Path, tmp_path: Path) -> None:
    """What torchrun does: RANK/WORLD_SIZE/MASTER_* in the environment, one process per rank.
    Both ranks must exit with 0, never SIGABRT from a Gloo thread outliving the interpreter
    (see wsicell.train.dist.end_process)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "wsicell", "train", "--store", str(crop_store), "--out", str(tmp_path / "run"),
               "--epochs", "1", "--batch-size", "128", "--device", "cpu", "--precision", "fp32", "--quiet",
               "--set", "width=4", "--set", "crop_size=16", "--set", "queue_size=256", "--set", "threads=1",
               "--set", "warmup_epochs=0"]  # fmt: skip
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for rank, (p, (_, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"rank {rank} exited with {p.returncode}:\n{stderr[-3000:]}"
    from wsicell.train import checkpoint

    assert checkpoint.load(tmp_path / "run" / "last.pt")["world_size"] == 2
