"""Running tile tasks on Dask with bounded memory, results delivered in tile order.

* :class:`ThreadedRunner` — Dask's local threaded scheduler: tiles go in windows of a
  few per worker through ``dask.compute``; the next window computes while the previous
  one is being written.
* :class:`DistributedRunner` — a ``dask.distributed`` scheduler at an address: a sliding
  window of submitted futures, consumed in submission order (the window is the reorder
  buffer: results that finish early wait on their worker, never more than the window).

Either way, at most a few windows of tile results exist at once, and the consumer sees
them in tile order, so the store's content does not depend on the scheduler.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wsicell.errors import WsicellError

CONNECT_TIMEOUT = "20s"
"""How long to wait for a distributed scheduler."""

TILES_PER_WORKER = 4
"""In-flight tiles per worker thread (the memory bound: ~50 MB per 1024-px tile)."""


class ThreadedRunner:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.window = TILES_PER_WORKER * self.workers
        self.description = f"threads x {self.workers}"
        # one pool for the runner's life: per-thread caches (open slides, segmenters) persist
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="wsicell-tile")

    def map_ordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[Any]:
        it = iter(jobs)

        def compute(batch: list[Any]) -> tuple[Any, ...]:
            import dask

            tasks = [dask.delayed(fn, pure=False)(job) for job in batch]
            return dask.compute(*tasks, scheduler="threads", pool=self.pool)

        with ThreadPoolExecutor(1, thread_name_prefix="wsicell-window") as pool:
            batch = list(itertools.islice(it, self.window))
            future = pool.submit(compute, batch) if batch else None
            while future is not None:
                results = future.result()
                batch = list(itertools.islice(it, self.window))
                future = pool.submit(compute, batch) if batch else None
                yield from results

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class DistributedRunner:
    def __init__(self, address: str, *, workers: int | None = None) -> None:
        from distributed import Client

        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise WsicellError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
        threads = sum(self.client.nthreads().values()) or 1
        self.window = TILES_PER_WORKER * (workers or threads)
        self.description = f"dask.distributed {address} ({threads} threads)"

    def map_ordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[Any]:
        it = iter(jobs)
        inflight: deque = deque()
        try:
            for job in itertools.islice(it, self.window):
                inflight.append(self.client.submit(fn, job, pure=False))
            while inflight:
                result = inflight.popleft().result()
                for job in itertools.islice(it, 1):
                    inflight.append(self.client.submit(fn, job, pure=False))
                yield result
        finally:
            for future in inflight:
                future.cancel()

    def close(self) -> None:
        self.client.close()


def make_runner(scheduler: str | None = None, workers: int | None = None) -> ThreadedRunner | DistributedRunner:
    """A distributed runner for a scheduler address, else the local threaded one."""
    if workers is not None and workers < 1:
        raise WsicellError(f"--workers must be >= 1, got {workers}")
    if scheduler:
        return DistributedRunner(scheduler, workers=workers)
    return ThreadedRunner(workers)
