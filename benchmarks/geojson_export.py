"""GeoJSON for 1,000,000 nuclei: wsicell's streaming writer vs a naive json.dump, side by side.

Builds (once, cached in benchmarks/_work/) a synthetic cell store of one slide with
1,000,000 nuclei: 32-point elliptical contours over a 100k x 100k px slide, 8 morphology
features, cluster and distance. Then, each in a fresh subprocess (so peak RSS is its own):

- wsicell: ``write_geojson(out, iter_cells(slide), ...)``, the code path of `wsicell map`
  for a slide in the store (chunks of 16,384 cells, shapely validity, orjson);
- naive: the same features built as one Python list of dicts (same ids, same rounding, no
  validity checks), then ``json.dump`` to the file.

Reports seconds, peak RSS (ru_maxrss) and the file size.

    .venv/bin/python benchmarks/geojson_export.py [--n 1000000] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

WORK = Path(__file__).resolve().parent / "_work"
SIZE = (100_000, 100_000)
FEATURES = ["area_um2", "perimeter_um", "eccentricity", "solidity", "major_axis_um", "minor_axis_um",
            "mean_hematoxylin", "mean_eosin"]  # fmt: skip
K = 20


def build(path: Path, n: int) -> None:
    from wsicell.store import CellBatch, CellStore

    store = CellStore.create_or_open(path)
    rng = np.random.default_rng(0)
    writer = store.begin_slide(
        "bench-00000000", attrs={"path": "bench.svs", "name": "bench.svs", "fingerprint": "b" * 64, "mpp": 0.25,
                                 "width": SIZE[0], "height": SIZE[1]},
        crop_size=2, contour_points=32, feature_names=FEATURES,
    )  # fmt: skip
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)[None, :]
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        c = np.column_stack([rng.uniform(20, SIZE[0] - 20, m), rng.uniform(20, SIZE[1] - 20, m)])
        a = rng.uniform(8, 20, (m, 1))
        b = a * rng.uniform(0.5, 1, (m, 1))
        rot = rng.uniform(0, np.pi, (m, 1))
        dx, dy = a * np.cos(t), b * np.sin(t)
        x = c[:, :1] + dx * np.cos(rot) - dy * np.sin(rot)
        y = c[:, 1:] + dx * np.sin(rot) + dy * np.cos(rot)
        contour = np.stack([x, y], -1).astype(np.float32)
        bbox = np.column_stack([x.min(1), y.min(1), x.max(1) + 1, y.max(1) + 1]).astype(np.int32)
        writer.append(CellBatch(np.zeros((m, 2, 2, 3), np.uint8), c.astype(np.float32), contour, bbox,
                                rng.uniform(0, 100, (m, len(FEATURES))).astype(np.float32)))  # fmt: skip
    writer.finish()
    slide = store.slide("bench-00000000")
    labels = slide.create_array("cluster", shape=(n,), dtype="int32", chunks=(16384,))
    labels[:] = rng.integers(0, K, n).astype(np.int32)
    dist = slide.create_array("distance", shape=(n,), dtype="float32", chunks=(16384,))
    dist[:] = rng.uniform(0, 1, n).astype(np.float32)


def run_wsicell(store: Path, out: Path) -> None:
    from wsicell.export.geojson import write_geojson
    from wsicell.export.names import default_styles
    from wsicell.mapping import iter_cells
    from wsicell.store import CellStore

    slide = CellStore.open(store).slide("bench-00000000")
    stats = write_geojson(out, iter_cells(slide), fingerprint="b" * 64, styles=default_styles(K),
                          feature_names=slide.feature_names, size=SIZE, mpp=0.25, force=True)  # fmt: skip
    print(json.dumps({"written": stats.written, "repaired": stats.repaired, "skipped": stats.skipped}))


def run_naive(store: Path, out: Path) -> None:
    from wsicell.export.geojson import cell_uuid
    from wsicell.export.names import default_styles
    from wsicell.store import CellStore

    slide = CellStore.open(store).slide("bench-00000000")
    styles = default_styles(K)
    features = []
    names = slide.feature_names
    for start, contour in slide.iter_chunks("contour"):
        stop = start + len(contour)
        cluster = slide.array("cluster")[start:stop]
        dist = slide.array("distance")[start:stop]
        feats = slide.array("features")[start:stop]
        for i in range(len(contour)):
            ring = np.round(np.concatenate([contour[i], contour[i, :1]]).astype(np.float64), 1).tolist()
            c = int(cluster[i])
            meas = {"cluster": c, "distance": round(float(dist[i]), 4)}
            meas.update({n: round(float(v), 4) for n, v in zip(names, feats[i], strict=True)})
            features.append({
                "type": "Feature", "id": str(uuid.UUID(cell_uuid("b" * 64, start + i))),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"objectType": "detection",
                               "classification": {"name": styles[c].name, "color": list(styles[c].color)},
                               "measurements": meas},
            })  # fmt: skip
    with out.open("w") as fh:
        json.dump({"type": "FeatureCollection", "features": features}, fh)
    print(json.dumps({"written": len(features)}))


def measure(mode: str, store: Path, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(store), str(out)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = after.ru_maxrss / 1024  # MiB (max over children so far)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    row = {"mode": mode, "seconds": seconds, "cpu": cpu, "peak_mib": peak, "mib": out.stat().st_size / 2**20,
           "load": os.getloadavg()[0], **info}  # fmt: skip
    print(f"  {out.name}: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak:.0f} MiB, load {row['load']:.1f}",
          flush=True)  # fmt: skip
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, store, out = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
        (run_wsicell if mode == "wsicell" else run_naive)(store, out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--gz", action="store_true", help="also time a .geojson.gz")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    store = WORK / f"geojson-{args.n}.zarr"
    if not store.exists():
        t0 = time.perf_counter()
        build(store, args.n)
        print(f"built {store} in {time.perf_counter() - t0:.1f} s")
    rows = [measure("wsicell", store, WORK / "bench-wsicell.geojson")]
    if args.gz:
        rows.append({**measure("wsicell", store, WORK / "bench-wsicell.geojson.gz"), "mode": "wsicell .gz"})
    if not args.skip_naive:
        rows.append(measure("naive", store, WORK / "bench-naive.geojson"))
    print(f"\n{args.n:,} nuclei, 33-point rings, {len(FEATURES) + 2} measurements each "
          f"({os.cpu_count()} cores; peak RSS is the max over the subprocesses run so far, in order)")
    print(f"{'writer':<14} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'file MiB':>9} {'features':>10}  load")
    for r in rows:
        print(f"{r['mode']:<14} {r['seconds']:>8.1f} {r['cpu']:>8.1f} {r['peak_mib']:>13.0f} {r['mib']:>9.0f} "
              f"{r['written']:>10,}  {r['load']:.1f}")  # fmt: skip
    for f in WORK.glob("bench-*.geojson*"):
        f.unlink()
    save("geojson_export", [
        {"writer": r["mode"], "wall_s": round(r["seconds"], 1), "cpu_s": round(r["cpu"], 1), "peak_rss_mib": round(r["peak_mib"]),
         "file_mib": round(r["mib"]), "features": r.get("written"), "load": round(r["load"], 1)} for r in rows
    ], notes={"n": args.n, "ring_points": 33, "measurements": len(FEATURES) + 2},
       title="GeoJSON export: streaming writer vs naive json.dump")  # fmt: skip


if __name__ == "__main__":
    main()
