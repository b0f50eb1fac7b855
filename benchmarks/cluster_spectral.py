"""`wsicell cluster`'s two algorithms side by side on 1,000,000 joined cell vectors: the time to
fit (spectral: k-NN graph + eigenvectors + k-means of the coordinates on a 50,000-cell
sample; k-means: FAISS on a 200,000-cell sample) and to assign every cell (spectral: a vote
among the 15 nearest sampled cells, searched with an IVF index, or exactly with --exact-vote;
k-means: the nearest centroid), and the agreement of each with the generating clusters (ARI).

Data: 61-d vectors (32 embedding components + 29 measurements, the shape `wsicell cluster`
clusters) drawn from ``k`` overlapping Gaussian clusters of unequal sizes on a 16-d subspace.
Wall and process CPU seconds are printed (the machine is shared; CPU / 2 ~ idle wall time).

    .venv/bin/python benchmarks/cluster_spectral.py [--n 1000000] [--k 8]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON
from sklearn.metrics import adjusted_rand_score

from wsicell.cluster.model import fit_model


def synthetic(n: int, k: int, dim: int = 61, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 16)))[0].T.astype(np.float32)  # (16, dim)
    means = rng.normal(size=(k, 16)).astype(np.float32) @ basis
    labels = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 2.0))).astype(np.int32)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, 100_000):
        b = min(a + 100_000, n)
        x[a:b] = means[labels[a:b]] + rng.normal(0, 0.3, (b - a, dim)).astype(np.float32)
    return x, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--exact-vote", action="store_true", help="search the 50,000 sampled cells exactly")
    args = parser.parse_args()
    if args.exact_vote:
        import wsicell.cluster.spectral as spectral

        spectral.EXACT_VOTE_CELLS = 10**9
    x, truth = synthetic(args.n, args.k)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(args.n, size=min(200_000, args.n), replace=False))
    rows = []
    for algorithm in ("kmeans", "spectral"):
        w0, c0 = time.perf_counter(), time.process_time()
        model, _ = fit_model(x[sample], k=args.k, algorithm=algorithm, spherical=False, seed=0, iterations=25,
                             restarts=1, neighbours=15, graph_sample_size=50_000)  # fmt: skip
        w1, c1 = time.perf_counter(), time.process_time()
        assign = model.assigner()
        labels = np.concatenate([assign(x[a : a + 65_536])[0] for a in range(0, args.n, 65_536)])
        w2, c2 = time.perf_counter(), time.process_time()
        rows.append({
            "algorithm": algorithm, "n": args.n, "k": args.k, "fit_wall_s": round(w1 - w0, 1), "fit_cpu_s": round(c1 - c0, 1),
            "assign_wall_s": round(w2 - w1, 1), "assign_cpu_s": round(c2 - c1, 1),
            "ari": round(float(adjusted_rand_score(truth, labels)), 4), "load": round(os.getloadavg()[0], 1),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| algorithm | fit (wall / CPU s) | assign {args.n:,} cells (wall / CPU s) | ARI vs truth |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['algorithm']} | {r['fit_wall_s']} / {r['fit_cpu_s']} | {r['assign_wall_s']} / {r['assign_cpu_s']} | {r['ari']:.3f} |")
    save("cluster_spectral", rows, notes={"n": args.n, "k": args.k, "exact_vote": args.exact_vote},
         title="spectral vs k-means: fit and assignment time, ARI on synthetic clusters")


if __name__ == "__main__":
    main()
