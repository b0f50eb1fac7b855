"""k-means of 1,000,000 x 512 embeddings: FAISS (wsicell's code path) vs scikit-learn
MiniBatchKMeans, side by side on the same data, with the time and the objective reached.

Objective (the same for both): the sum over ALL points of the squared L2 distance to the
nearest centroid, computed by one exact FAISS search after training.

Wall seconds and process CPU seconds are both printed: on this shared 2-core machine other
jobs take most of the CPU, so wall time overstates what an idle machine would take; CPU
seconds / 2 is closer to the idle wall time when both cores are used.

Data: float32 embeddings with structure: ``k`` Gaussian clusters of unequal sizes whose
means lie on a 32-d subspace of R^512, plus isotropic noise (like real embeddings: a few
dominant directions, overlapping clusters).

    .venv/bin/python benchmarks/cluster_kmeans.py [--n 1000000] [--dim 512] [--k 20]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.cluster.kmeans import make_index, train_kmeans


def synthetic(n: int, dim: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 32)))[0].T.astype(np.float32)  # (32, dim)
    means = (rng.normal(size=(k, 32)) * 1.0).astype(np.float32) @ basis  # (k, dim)
    weights = rng.dirichlet(np.full(k, 2.0))
    labels = rng.choice(k, size=n, p=weights).astype(np.int32)
    x = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 temporaries of 4 GB
        stop = min(start + 100_000, n)
        x[start:stop] = means[labels[start:stop]] + rng.normal(0, 0.35, (stop - start, dim)).astype(np.float32)
    return x, labels


def objective(x: np.ndarray, centroids: np.ndarray) -> float:
    index = make_index(np.ascontiguousarray(centroids, np.float32))
    total = 0.0
    for start in range(0, len(x), 200_000):
        d, _ = index.search(x[start : start + 200_000], 1)
        total += float(d.astype(np.float64).sum())
    return total


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} {b:.1f} {c:.1f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--sample", type=int, default=200_000, help="wsicell's default training sample")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    import faiss
    import sklearn

    print(f"faiss {faiss.__version__}, scikit-learn {sklearn.__version__}, {faiss.omp_get_max_threads()} threads")
    t0 = time.perf_counter()
    x, _ = synthetic(args.n, args.dim, args.k)
    print(f"data: {args.n:,} x {args.dim} float32 ({x.nbytes / 2**30:.1f} GiB), k = {args.k}, "
          f"made in {time.perf_counter() - t0:.1f} s; {load()}")  # fmt: skip
    rows = []

    def record(name: str, wall0: float, cpu0: float, centroids: np.ndarray) -> None:
        obj = objective(x, centroids)  # assigns every point: timed, as `wsicell cluster` does it
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rows.append((name, wall, cpu, obj, load()))
        print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU; {load()}", flush=True)

    w, c = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(0)
    sample = x[np.sort(rng.choice(len(x), size=min(args.sample, len(x)), replace=False))]
    part = train_kmeans(sample, k=args.k, iterations=args.iterations, restarts=1, seed=0, spherical=False)
    del sample
    record(f"FAISS, {min(args.sample, args.n):,} sample + assign all", w, c, part.centroids)

    w, c = time.perf_counter(), time.process_time()
    full = train_kmeans(x, k=args.k, iterations=args.iterations, restarts=1, seed=0, spherical=False)
    record("FAISS, all points + assign all", w, c, full.centroids)

    if not args.skip_sklearn:
        from sklearn.cluster import MiniBatchKMeans

        w, c = time.perf_counter(), time.process_time()
        mb = MiniBatchKMeans(n_clusters=args.k, batch_size=4096, n_init=1, max_iter=args.iterations,
                             random_state=0).fit(x)  # fmt: skip
        record("sklearn MiniBatchKMeans (batch 4096)", w, c, mb.cluster_centers_)

    best = min(r[3] for r in rows)
    print(f"\n{'method':<42} {'wall s':>8} {'CPU s':>8} {'objective':>16} {'vs best':>8}  load")
    for name, wall, cpu, obj, ld in rows:
        print(f"{name:<42} {wall:>8.1f} {cpu:>8.1f} {obj:>16,.0f} {obj / best:>8.4f}  {ld}")
    print("(objective: sum over all points of the squared distance to the nearest centroid; "
          "times include that final assignment of all points)")
    save("cluster_kmeans", [
        {"method": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "objective": round(obj), "vs_best": round(obj / best, 4),
         "load": ld} for name, wall, cpu, obj, ld in rows
    ], notes={"n": args.n, "dim": args.dim, "k": args.k, "iterations": args.iterations, "sample": args.sample},
       title="k-means: FAISS on a sample vs all points vs scikit-learn")  # fmt: skip


if __name__ == "__main__":
    main()
