"""The crop loader: whole chunks, deterministic per (seed, epoch), full batches, DDP shards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from wsicell.store import CellStore
from wsicell.train.data import CropLoader


def loader(store: Path, **kw) -> CropLoader:
    slides = CellStore.open(store).slides()
    return CropLoader(slides, **{"batch_size": 100, "seed": 3, "shuffle_chunks": 2, **kw})


def test_epoch_is_deterministic_and_shuffled(crop_store: Path) -> None:
    a = [b.index.copy() for b in loader(crop_store).epoch(0)]
    b = [b.index.copy() for b in loader(crop_store).epoch(0)]
    c = [b.index.copy() for b in loader(crop_store).epoch(1)]
    assert len(a) == 12  # 1200 cells // 100
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    first = a[0]
    assert len(np.unique(first[:, 0])) == 2  # one batch mixes both slides


def test_batches_are_real_rows_without_repeats(crop_store: Path) -> None:
    ld = loader(crop_store)
    seen = set()
    arrays = [s.array("crops") for s in CellStore.open(crop_store).slides()]
    for batch in ld.epoch(0):
        assert batch.crops.shape == (100, 32, 32, 3) and batch.crops.dtype == np.uint8
        for (slide, row), crop in zip(batch.index[:5], batch.crops[:5], strict=True):
            assert np.array_equal(arrays[slide][int(row)], crop)
        seen.update(map(tuple, batch.index.tolist()))
    assert len(seen) == 1200  # every cell once (1200 is a multiple of 100)


def test_drop_last_and_too_large_batch(crop_store: Path) -> None:
    assert len(loader(crop_store, batch_size=512)) == 2
    assert len(loader(crop_store, batch_size=5000)) == 0


def test_ranks_get_disjoint_shards_and_equal_steps(crop_store: Path) -> None:
    shards = [loader(crop_store, batch_size=50, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) > 0
    rows = [set(map(tuple, np.concatenate([b.index for b in s.epoch(0)]).tolist())) for s in shards]
    assert rows[0].isdisjoint(rows[1])
    assert len(rows[0]) == len(rows[1]) == 50 * len(shards[0])


def test_stopping_early_ends_the_thread(crop_store: Path) -> None:
    def loader_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(("crop-loader", "zarr-read"))]

    assert loader_threads() == []
    it = loader(crop_store, prefetch=1).epoch(0)
    next(it)
    time.sleep(0.5)  # the producer fills the queue and blocks on it
    assert "crop-loader-0" in loader_threads()
    start = time.perf_counter()
    it.close()
    assert time.perf_counter() - start < 5  # woken by the stop event, not the join's 10 s timeout
    assert loader_threads() == []  # the producer and its chunk readers are gone
