"""Feeding crops to training: whole Zarr chunks, shuffled in a buffer, prefetched.

Random single-crop reads decode a whole chunk each (~100x slower than chunk reads), so an
epoch is planned over *chunks*: every chunk of every slide, in a random order fixed by
``(seed, epoch)``; ``shuffle_chunks`` consecutive chunks (from different slides) are
decoded by ``num_workers`` threads, pooled with the previous leftover, shuffled, and cut
into batches. A background thread keeps ``prefetch`` batches ready. Under DDP each rank
takes every ``world_size``-th chunk of the plan and all ranks run the same number of steps.
Batches are full (``drop_last``): the few cells past the last full batch of an epoch are
skipped that epoch (a different few each epoch).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from wsicell.store import SlideCells


@dataclass(frozen=True)
class Batch:
    crops: np.ndarray  # (B, S, S, 3) uint8
    index: np.ndarray  # (B, 2) int64: (slide number in the loader, cell row in that slide)


@dataclass(frozen=True)
class ChunkRef:
    slide: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


class CropLoader:
    """Epochs of shuffled crop batches from the slides of a store.

    ``batch_size`` is per process. Iterating ``loader.epoch(e)`` twice gives identical
    batches; ``len(loader)`` is the number of steps per epoch (0 if the data is smaller
    than one batch: the caller reports that).
    """

    def __init__(
        self,
        slides: list[SlideCells],
        *,
        batch_size: int,
        seed: int = 0,
        shuffle_chunks: int = 16,
        num_workers: int = 2,
        prefetch: int = 4,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.slides = [s for s in slides if s.n_cells > 0]
        self.arrays = [s.array("crops") for s in self.slides]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle_chunks = shuffle_chunks
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.rank = rank
        self.world_size = world_size
        self.chunks: list[ChunkRef] = []
        for i, (s, arr) in enumerate(zip(self.slides, self.arrays, strict=True)):
            n = min(s.n_cells, arr.shape[0])
            step = arr.chunks[0]
            self.chunks += [ChunkRef(i, a, min(a + step, n)) for a in range(0, n, step)]
        self.n_cells = sum(len(c) for c in self.chunks)
        self.crop_size = int(self.arrays[0].shape[1]) if self.arrays else 0

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank: the smallest rank's share decides)."""
        if not self.chunks:
            return 0
        plan = self._plan_all(0)
        shares = [sum(len(c) for c in plan[r :: self.world_size]) for r in range(self.world_size)]
        return min(shares) // self.batch_size

    def _plan_all(self, epoch: int) -> list[ChunkRef]:
        rng = np.random.default_rng([self.seed, epoch])
        return [self.chunks[i] for i in rng.permutation(len(self.chunks))]

    def plan(self, epoch: int) -> list[ChunkRef]:
        """This rank's chunks for ``epoch``, in reading order."""
        return self._plan_all(epoch)[self.rank :: self.world_size]

    def read(self, ref: ChunkRef) -> np.ndarray:
        return np.asarray(self.arrays[ref.slide][ref.start : ref.stop])  # (n, S, S, 3) uint8

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch`` (deterministic), produced by a background thread."""
        steps = len(self)
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in self._batches(epoch, steps, stop):
                    while not stop.is_set():
                        try:
                            out.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                out.put(None)
            except BaseException as exc:  # re-raised in the consumer
                out.put(exc)

        thread = threading.Thread(target=produce, name=f"crop-loader-{epoch}", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=10)

    def _batches(self, epoch: int, steps: int, stop: threading.Event) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
        plan = self.plan(epoch)
        pending_crops: list[np.ndarray] = []
        pending_index: list[np.ndarray] = []
        emitted = 0
        with ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="zarr-read") as pool:
            groups = [plan[i : i + self.shuffle_chunks] for i in range(0, len(plan), self.shuffle_chunks)]
            futures = [pool.map(self.read, g) for g in groups[:2]]  # read one group ahead
            for gi, group in enumerate(groups):
                if stop.is_set() or emitted >= steps:
                    return
                data = list(futures[gi])
                if gi + 2 < len(groups):
                    futures.append(pool.map(self.read, groups[gi + 2]))
                pending_crops += data
                pending_index += [
                    np.stack([np.full(len(ref), ref.slide), np.arange(ref.start, ref.stop)], 1) for ref in group
                ]
                crops = np.concatenate(pending_crops)
                index = np.concatenate(pending_index).astype(np.int64)
                order = rng.permutation(len(crops))
                crops, index = crops[order], index[order]
                n_full = len(crops) // self.batch_size
                last_group = gi == len(groups) - 1
                for b in range(n_full):
                    if emitted >= steps:
                        return
                    sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
                    yield Batch(crops[sl], index[sl])
                    emitted += 1
                rest = slice(n_full * self.batch_size, len(crops))
                pending_crops = [crops[rest]] if not last_group else []
                pending_index = [index[rest]] if not last_group else []
