"""Study outputs at scale: `wsicell summarize` and `wsicell export --anndata` over 1M cells.

Builds (once, kept in benchmarks/_work/study/ unless --rebuild) a synthetic-but-realistic
clustered store: SLIDES slides of N / SLIDES nuclei each, laid out like extracted ones
(tissue at 10,000 nuclei per mm² as in CoNSeP, in irregular tissue regions covering part of
the slide, 0.25 µm/px, rows in tile-row order as `wsicell extract` writes them), the 30
morphology features of the real segmenter, 512-d float16 embeddings (the backbone's size),
and k = 12 clusters laid out in spatial domains (nests, infiltrates, stroma: 70 % of the
cells of a domain take its cluster) so the enrichment has structure to find.

Then each command's library call runs in a fresh subprocess (peak RSS is its own), timed:

- summarize: ``summarize_store`` + ``summary_table`` + ``write_table`` (CSV), enrichment
  within 20 µm with 200 permutations, and the composition picture;
- summarize-exact: the same with the enrichment's exact permutation moments (``--permutations 0``);
- export: ``export_anndata`` to an .h5ad, then a backed read-back of its shape.

    .venv/bin/python benchmarks/study_outputs.py [--n 1000000] [--slides 4] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

WORK = Path(__file__).resolve().parent / "_work" / "study"
MPP = 0.25
DENSITY_PER_MM2 = 10_000
TISSUE_SHARE = 0.45  # of the slide's area
TILE = 1024
DIM = 512
K = 12


def build(path: Path, n: int, slides: int) -> None:
    from wsicell.cluster.run import write_centroids
    from wsicell.segment.cells import FEATURE_NAMES
    from wsicell.store import CellBatch, CellStore

    if path.exists():
        shutil.rmtree(path)
    store = CellStore.create_or_open(path)
    rng = np.random.default_rng(0)
    created = "benchmark"
    per = n // slides
    for si in range(slides):
        m = per if si < slides - 1 else n - per * (slides - 1)
        tissue_mm2 = m / DENSITY_PER_MM2
        side = int(np.sqrt(tissue_mm2 / TISSUE_SHARE) * 1000 / MPP)  # square slide, level-0 px
        # tissue regions: 40 discs, domains: 300 seeds each with a dominant cluster
        discs = np.column_stack([rng.uniform(0, side, 40), rng.uniform(0, side, 40)])
        radius = np.sqrt(TISSUE_SHARE * side**2 / 40 / np.pi) * 1.25
        xy = np.zeros((0, 2))
        while len(xy) < m:
            cand = rng.uniform(0, side, (m, 2))
            near = np.min(np.linalg.norm(cand[:, None] - discs[None, :10], axis=2), 1) < radius
            for a in range(10, 40, 10):
                near |= np.min(np.linalg.norm(cand[:, None] - discs[None, a : a + 10], axis=2), 1) < radius
            xy = np.concatenate([xy, cand[near]])[:m]
        seeds = np.column_stack([rng.uniform(0, side, 300), rng.uniform(0, side, 300)])
        from scipy.spatial import cKDTree

        domain = cKDTree(seeds).query(xy)[1]
        dominant = rng.integers(0, K, 300)[domain]
        labels = np.where(rng.random(m) < 0.7, dominant, rng.integers(0, K, m)).astype(np.int32)
        tile = (xy[:, 1] // TILE).astype(np.int64) * (side // TILE + 1) + (xy[:, 0] // TILE).astype(np.int64)
        order = np.lexsort((xy[:, 0], xy[:, 1], tile))
        xy, labels = xy[order].astype(np.float32), labels[order]
        sid = f"bench{si}-{si:08d}"
        writer = store.begin_slide(
            sid, attrs={"path": f"bench{si}.svs", "name": f"bench{si}.svs", "fingerprint": f"{si:064d}", "mpp": MPP,
                        "width": side, "height": side, "tissue_area_mm2": tissue_mm2},
            crop_size=2, contour_points=4, feature_names=list(FEATURE_NAMES),
        )  # fmt: skip
        square = np.array([[-12, -12], [12, -12], [12, 12], [-12, 12]], np.float32)
        for a in range(0, m, 65_536):
            b = min(a + 65_536, m)
            feats = rng.gamma(4.0, 1.0, (b - a, len(FEATURE_NAMES))).astype(np.float32)
            feats[:, 0] = rng.normal(30 + 3 * labels[a:b], 6)  # area_um2 depends on the type
            writer.append(CellBatch(np.zeros((b - a, 2, 2, 3), np.uint8), xy[a:b], xy[a:b, None] + square[None],
                                    np.column_stack([xy[a:b] - 12, xy[a:b] + 13]).astype(np.int32), feats))  # fmt: skip
        writer.finish()
        s = store.slide(sid)
        emb = s.create_array("embedding", shape=(m, DIM), dtype="float16", chunks=(4096, DIM))
        for a in range(0, m, 65_536):
            b = min(a + 65_536, m)
            emb[a:b] = rng.normal(size=(b - a, DIM)).astype(np.float16)
        cl = s.create_array("cluster", shape=(m,), dtype="int32", chunks=(16384,), attrs={"clustering": created})
        cl[:] = labels
        di = s.create_array("distance", shape=(m,), dtype="float32", chunks=(16384,), attrs={"clustering": created})
        di[:] = rng.uniform(0, 1, m).astype(np.float32)
    store.root.attrs["embedding_model"] = {"run": "benchmark"}
    write_centroids(store, rng.normal(size=(K, DIM)).astype(np.float32),
                    {"k": K, "seed": 0, "metric": "cosine", "created": created, "model": {"run": "benchmark"},
                     "context": None, "complete": True})  # fmt: skip


def peak_mb() -> float:
    """This process's peak RSS: VmHWM (reset by exec, unlike ru_maxrss, which keeps the forking
    parent's high-water mark, e.g. the store builder's), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(step: str, store: Path, out: Path) -> None:
    t0 = time.perf_counter()
    if step.startswith("summarize"):
        from wsicell.export.picture import save_png
        from wsicell.study.composition import composition_picture
        from wsicell.study.summary import SummaryConfig, summarize_store, summary_table, write_table

        perms = 0 if step == "summarize-exact" else 200
        summary = summarize_store(store, config=SummaryConfig(radius_um=20.0, n_perms=perms))
        table = summary_table(summary)
        write_table(table, out, force=True)
        image = composition_picture([s.name for s in summary.slides], summary.counts(), styles=summary.styles)
        save_png(image, out.with_suffix(".png"), force=True)
        pairs = sum(s.enrichment.n_pairs for s in summary.slides)
        info = {"rows": len(table), "pairs": pairs, "z_diag_mean": float(np.nanmean([np.diag(s.enrichment.zscore).mean() for s in summary.slides]))}
    else:
        import h5py
        from anndata.io import read_elem

        from wsicell.study.h5ad import export_anndata

        result = export_anndata(store, out, force=True)
        seconds, peak, cpu = time.perf_counter() - t0, peak_mb(), cpu_s()  # the export alone; then a read-back
        with h5py.File(out, "r") as f:
            obs = read_elem(f["obs"])
            info = {"cells": result.n_cells, "obs": list(obs.shape), "X": list(f["X"].shape),
                    "X_wsicell": list(f["obsm/X_wsicell"].shape), "mb": round(out.stat().st_size / 1e6)}  # fmt: skip
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_mb": peak, **info}))
        return
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": cpu_s(), "peak_mb": peak_mb(), **info}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--slides", type=int, default=4)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--run", choices=["summarize", "summarize-exact", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.store, args.out)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    store = WORK / f"cells-{args.n}-{args.slides}.zarr"
    if args.rebuild or not (store / "clustering").exists():
        t0 = time.perf_counter()
        build(store, args.n, args.slides)
        print(f"built {args.n:,} cells in {args.slides} slides in {time.perf_counter() - t0:.0f} s")
    rows = []
    steps = (("summarize", WORK / "study.csv"), ("summarize-exact", WORK / "study-exact.csv"),
             ("export", WORK / "study.h5ad"))
    for step, out in steps:
        proc = subprocess.run([sys.executable, __file__, "--run", step, "--store", str(store), "--out", str(out)],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        rows.append((step, json.loads(proc.stdout.strip().splitlines()[-1])))
    a, b, c = os.getloadavg()
    print(f"\n{args.n:,} cells in {args.slides} slides, 512-d embeddings, k = {K}; load {a:.1f} {b:.1f} {c:.1f}")
    print("| command | wall s | CPU s | peak RSS | notes |")
    print("|---|---|---|---|---|")
    for step, r in rows:
        notes = {k: v for k, v in r.items() if k not in ("seconds", "cpu_s", "peak_mb")}
        print(f"| {step} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['peak_mb']:,.0f} MB | {notes} |")
    (WORK / "study.h5ad").unlink(missing_ok=True)
    save("study_outputs", [{"command": step, "wall_s": round(r["seconds"], 1), "cpu_s": round(r["cpu_s"], 1),
                            "peak_rss_mb": round(r["peak_mb"]), **{k: v for k, v in r.items() if k not in ("seconds", "cpu_s", "peak_mb")}}
                           for step, r in rows],
         notes={"n": args.n, "slides": args.slides, "k": K}, title="study outputs: summarize and h5ad export")  # fmt: skip


if __name__ == "__main__":
    main()
