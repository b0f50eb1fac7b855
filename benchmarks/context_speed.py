"""Tissue context at slide scale: `write_slide_context` on one slide of N cells x 512-d,
side by side with what `wsicell cluster` already does to every cell (nearest-centroid
assignment, k = 20), with the peak memory of the process.

The slide is synthetic but laid out like an extracted one: nuclei at the density of tissue
(~10,000 per mm^2 at 0.25 µm/px, as in CoNSeP), rows written tile row by tile row (1024-px tiles), as
`wsicell extract` writes them, and 512-d float16 embeddings in 4,096-row chunks.

    .venv/bin/python benchmarks/context_speed.py [--n 1000000] [--radius 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.cluster.context import Context, write_slide_context
from wsicell.cluster.model import ClusterModel
from wsicell.cluster.run import assign_slide
from wsicell.store import CellBatch, CellStore

MPP = 0.25
DENSITY_PER_MM2 = 10_000
TILE = 1024
DIM = 512


def build(path: Path, n: int) -> CellStore:
    """One slide of ``n`` cells in tile-row order, with random 512-d embeddings."""
    side_px = int(np.sqrt(n / DENSITY_PER_MM2) * 1000 / MPP)  # square slide, level-0 px
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, side_px, size=(n, 2)).astype(np.float32)
    tile = (xy[:, 1] // TILE).astype(np.int64) * (side_px // TILE + 1) + (xy[:, 0] // TILE).astype(np.int64)
    order = np.lexsort((xy[:, 0], xy[:, 1], tile))  # by tile (row-major), then y, x within a tile
    xy = xy[order]
    store = CellStore.create_or_open(path)
    writer = store.begin_slide(
        "s", attrs={"path": "synthetic.svs", "name": "synthetic", "fingerprint": "0" * 64, "mpp": MPP,
                    "width": side_px, "height": side_px},
        crop_size=8, contour_points=4, feature_names=["area_um2"],
    )  # fmt: skip
    square = np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], np.float32)
    for a in range(0, n, 65_536):
        b = min(a + 65_536, n)
        m = b - a
        writer.append(CellBatch(
            np.zeros((m, 8, 8, 3), np.uint8), xy[a:b], xy[a:b, None, :] + square[None],
            np.column_stack([xy[a:b] - 3, xy[a:b] + 4]).astype(np.int32), np.ones((m, 1), np.float32),
        ))  # fmt: skip
    writer.finish()
    slide = store.slide("s")
    emb = slide.create_array("embedding", shape=(n, DIM), dtype="float16", chunks=(4096, DIM), attrs={"model_sha256": "x"})
    for a in range(0, n, 65_536):
        b = min(a + 65_536, n)
        emb[a:b] = rng.normal(size=(b - a, DIM)).astype(np.float16)
    return store


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--radius", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="Build the store here and keep it (default: a temporary folder).")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="context-speed-")) if args.keep is None else args.keep
    path = folder / "cells.zarr"
    try:
        t0 = time.perf_counter()
        store = build(path, args.n)
        print(f"built {args.n:,} cells x {DIM}-d in {time.perf_counter() - t0:.1f} s; peak RSS {peak_mb():,.0f} MB")
        slide = CellStore.open(path, mode="r+").slide("s")
        base_rss = peak_mb()

        t0 = time.perf_counter()
        write_slide_context(slide, Context(radius_um=args.radius))
        context_s = time.perf_counter() - t0
        context_rss = peak_mb()
        neighbours = DENSITY_PER_MM2 * np.pi * (args.radius / 1000) ** 2

        centroids = np.random.default_rng(1).normal(size=(20, DIM)).astype(np.float32)
        model = ClusterModel("kmeans", centroids / np.linalg.norm(centroids, axis=1, keepdims=True), spherical=True)
        t0 = time.perf_counter()
        assign_slide(slide, model.assigner(), k=20, batch_size=65_536, created="bench", array="embedding")
        assign_s = time.perf_counter() - t0

        a, b, c = os.getloadavg()
        print(f"\n{args.n:,} cells, radius {args.radius:g} µm (~{neighbours:.0f} neighbours per cell), "
              f"{args.threads} thread(s), load {a:.1f} {b:.1f} {c:.1f}")  # fmt: skip
        print("| step | seconds | cells/s | peak RSS |")
        print("|---|---|---|---|")
        print(f"| context embeddings (write_slide_context) | {context_s:.1f} | {args.n / context_s:,.0f} | {context_rss:,.0f} MB |")
        print(f"| nearest-centroid assignment, k = 20 | {assign_s:.1f} | {args.n / assign_s:,.0f} | {peak_mb():,.0f} MB |")
        print(f"\ncontext / assignment time: {context_s / assign_s:.2f}x; RSS before context: {base_rss:,.0f} MB")
        save("context_speed", [
            {"step": "context embeddings (write_slide_context)", "seconds": round(context_s, 1),
             "cells_per_s": round(args.n / context_s), "peak_rss_mb": round(context_rss)},
            {"step": "nearest-centroid assignment, k = 20", "seconds": round(assign_s, 1),
             "cells_per_s": round(args.n / assign_s), "peak_rss_mb": round(peak_mb())},
        ], notes={"n": args.n, "radius_um": args.radius, "neighbours_per_cell": round(neighbours), "threads": args.threads,
                  "context_over_assignment": round(context_s / assign_s, 2), "rss_before_context_mb": round(base_rss)},
           title="tissue context at slide scale vs nearest-centroid assignment")  # fmt: skip
        del store
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
