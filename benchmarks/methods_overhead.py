"""What SSLP's positive bookkeeping costs per step, next to NT-Xent (CPU, one thread).

Neighbours of the CoNSeP train split (real centroids, 15 µm, 8 nearest); a bank of random
unit rows with 32 k-means clusters; timing of ``sslp_targets`` + the multi-positive loss
(forward + backward) against ``nt_xent`` on the same projections, for batch sizes 256/512.

    .venv/bin/python benchmarks/methods_overhead.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.evaluate.dataset import build_split_store
from wsicell.neighbours import store_neighbours
from wsicell.store import CellStore
from wsicell.train.methods.memory_bank import MemoryBank
from wsicell.train.methods.multipos import multi_positive_loss
from wsicell.train.methods.ntxent import nt_xent
from wsicell.train.methods.sslp_positives import sslp_targets

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def time_batch(b: int, neighbours, bank: MemoryBank) -> str:
    index = torch.from_numpy(np.random.default_rng(0).choice(neighbours.n_cells, size=b, replace=False))
    z1 = torch.randn(b, 64, requires_grad=True)
    z2 = torch.randn(b, 64, requires_grad=True)

    def targets():
        return sslp_targets(index, neighbours=neighbours, labels=bank.labels, filled=bank.filled)

    def multi() -> None:
        t = targets()
        anchors = torch.cat([z1, z2])
        candidates = torch.cat([anchors, bank.vectors[t.bank_index]])
        multi_positive_loss(anchors, candidates, t.weights, excluded=t.excluded).backward()

    def plain() -> None:
        nt_xent(z1, z2).backward()

    e = len(targets().bank_index)
    return {"batch": b, "bank_rows": e, "targets_ms": round(median_ms(targets), 1), "multi_positive_ms": round(median_ms(multi), 1),
            "ntxent_ms": round(median_ms(plain), 1)}  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    dataset = ROOT.parent / "shared" / "data" / "consep-tiles"
    store_path = build_split_store(dataset=dataset, split="train", out=ROOT / "out" / "bench" / "consep-train.zarr", progress=False)
    slides = CellStore.open(store_path).slides()
    t0 = time.perf_counter()
    neighbours = store_neighbours(slides, radius_um=15.0, max_neighbours=8)
    search_s = time.perf_counter() - t0
    n = neighbours.n_cells
    print(f"neighbour search: {n} cells, {neighbours.counts().mean():.2f} neighbours/cell, {search_s * 1000:.0f} ms")
    bank = MemoryBank(n, 64)
    bank.update(torch.arange(n), torch.randn(n, 64))
    t0 = time.perf_counter()
    bank.cluster(32)
    kmeans_ms = 1000 * (time.perf_counter() - t0)
    print(f"bank k-means (k=32, {n} x 64): {kmeans_ms:.0f} ms")
    print(f"{'batch':>6} {'E bank rows':>12} {'targets ms':>11} {'multi-pos ms':>13} {'NT-Xent ms':>11}")
    rows = []
    for b in (256, 512):
        rows.append(time_batch(b, neighbours, bank))
        r = rows[-1]
        print(f"{b:>6} {r['bank_rows']:>12} {r['targets_ms']:>11.1f} {r['multi_positive_ms']:>13.1f} {r['ntxent_ms']:>11.1f}")
    print(f"load average: {os.getloadavg()[0]:.1f} (2 cores shared with other jobs: figures are noisy)")
    save("methods_overhead", rows, notes={"cells": n, "neighbours_per_cell": round(float(neighbours.counts().mean()), 2),
                                          "neighbour_search_ms": round(search_s * 1000), "bank_kmeans_ms": round(kmeans_ms)},
         title="SSLP overhead per step: targets, multi-positive loss vs NT-Xent")  # fmt: skip


if __name__ == "__main__":
    main()
