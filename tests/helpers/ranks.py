"""Run a function in N processes joined by a Gloo process group, deterministically.

Why a helper: a process that simply returns after its last collective can die with SIGABRT
("terminate called without an active exception") at interpreter exit. Gloo's worker threads
drop their last reference to a finished collective *after* the caller has seen it complete;
that drop may free tensors owned by Python objects and so take the GIL. If it happens while
the interpreter is finalising (likely on a busy machine, where that thread runs late),
CPython ends the thread with ``pthread_exit`` inside a ``noexcept`` C++ destructor and the
C++ runtime calls ``std::terminate``. So each rank here: runs the function, writes its JSON
result (fsynced, renamed into place), waits at a barrier so no rank leaves while another is
mid-collective, flushes its output, then leaves with ``os._exit(0)``: no interpreter
finalisation, hence no teardown race. A failure still raises in the rank, and
``torch.multiprocessing.spawn`` reports its traceback and stops the other ranks.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from wsicell.train.dist import end_process

COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=300)  # a hang fails (a busy 2-core machine needs < 60 s)


def run_ranks(worker: Callable[..., dict[str, Any]], *args: Any, workdir: Path, world_size: int = 2) -> list[dict[str, Any]]:
    """``worker(rank, *args)`` in ``world_size`` processes (Gloo, CPU); their results in rank order.

    ``worker`` must be a module-level function (it is pickled by name) returning a
    JSON-serialisable dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    init_file = workdir / "gloo-init"
    init_file.unlink(missing_ok=True)
    mp.spawn(_rank_main, args=(worker, args, world_size, str(init_file), str(workdir)), nprocs=world_size, join=True)
    return [json.loads((workdir / f"rank{rank}.json").read_text()) for rank in range(world_size)]


def _rank_main(rank: int, worker: Callable[..., dict[str, Any]], args: tuple, world_size: int, init_file: str, workdir: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=COLLECTIVE_TIMEOUT
    )
    result = worker(rank, *args)
    path = Path(workdir, f"rank{rank}.json")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        json.dump(result, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    torch_dist.barrier()  # every rank is past its last collective
    end_process(0)  # flush, os._exit: no interpreter finalisation
