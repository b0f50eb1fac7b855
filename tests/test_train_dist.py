"""DDP on CPU: 2 processes (Gloo), keys gathered into the queue from both ranks, a short run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F

B = 8  # per rank


def _worker(rank: int, init_file: str, store: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
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
    Path(out).parent.joinpath(f"rank{rank}.json").write_text(json.dumps(result))
    torch_dist.barrier()  # no rank tears gloo down while the other is mid-collective
    torch_dist.destroy_process_group()


def test_two_process_ddp_gathers_keys_from_both_ranks(crop_store: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(crop_store), str(tmp_path / "run")), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
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
