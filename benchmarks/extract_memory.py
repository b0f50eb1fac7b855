"""Peak memory of `wsicell extract` on a small and a large slide (it must not grow with size).

Builds (once, cached in benchmarks/_work/) a 30,720 x 30,720 px real-content pyramidal TIFF
at 0.5 µm/px mosaicked from the sample slide (see benchmarks/slides.py; mpp from its TIFF
resolution tags, no --slide-mpp), then runs `wsicell extract` on the sample slide and on the
mosaic in a subprocess each, polling the RSS of the process tree with psutil.

    .venv/bin/python -m pip install -e '.[bench]'   # psutil, imagecodecs
    .venv/bin/python benchmarks/extract_memory.py [--side 30720] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import psutil

import wsicell
from wsicell.store import CellStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import save  # noqa: E402
from slides import WORK, mosaic_slide  # noqa: E402


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def run_extract(slide: Path, workers: int, segmenter: str | None) -> dict:
    store = WORK / f"mem-{slide.stem}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-c", "from wsicell.cli import main; main()", "extract", str(slide),
           "--store", str(store), "--quiet", "--workers", str(workers)]  # fmt: skip
    if segmenter:
        config = WORK / f"mem-{segmenter}.yaml"
        if segmenter in ("hvnet", "hvnet-fine"):
            config.write_text(f"segment:\n  method: {segmenter}\n")
        else:
            config.write_text(f"segment:\n  method: watershed\n  foreground: {segmenter}\n")
        cmd += ["--config", str(config)]
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc))
        time.sleep(0.2)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"extract failed on {slide} (exit {proc.returncode})")
    [s] = CellStore.open(store).slides()
    a = s.attrs
    size_mb = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**20
    return {"segmenter": segmenter or "default", "slide": slide.name, "size": f"{a['width']} x {a['height']}", "tiles": a["n_tiles"],
            "cells": s.n_cells, "seconds": seconds, "peak_rss_mb": peak / 2**20, "store_mb": size_mb}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--side", type=int, default=30720)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--segmenters", nargs="+", default=["cnn", "hvnet"],
                    choices=["hvnet", "hvnet-fine", "cnn", "classifier", "haematoxylin"],
                    help="hvnet, hvnet-fine or a watershed foreground")  # fmt: skip
    args = ap.parse_args()
    big = mosaic_slide(args.side)
    load0 = os.getloadavg()
    rows = []
    for segmenter in args.segmenters:
        rows += [run_extract(Path(str(wsicell.SAMPLE_SLIDE)), args.workers, segmenter),
                 run_extract(big, args.workers, segmenter)]  # fmt: skip
    print(f"workers: {args.workers}")
    load1 = os.getloadavg()
    print(f"\nload average before {load0[0]:.1f}, after {load1[0]:.1f} (2 cores, shared machine)")
    print("| segmenter | slide | level-0 size | tissue tiles | cells | wall s | peak RSS (MB) | store (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['segmenter']} | {r['slide']} | {r['size']} | {r['tiles']} | {r['cells']:,} | {r['seconds']:.0f} | "
              f"{r['peak_rss_mb']:.0f} | {r['store_mb']:.0f} |")  # fmt: skip
    for small, large in zip(rows[::2], rows[1::2], strict=True):
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        print(f"{small['segmenter']}: peak RSS large / small: {ratio:.2f} (pixels x {(args.side**2) / (2220 * 2967):.0f}); "
              f"target < 2048 MB: {'met' if large['peak_rss_mb'] < 2048 else 'MISSED'}")  # fmt: skip
    name = "extract_memory" + ("" if sorted(args.segmenters) == ["cnn", "hvnet"] else "-" + "-".join(args.segmenters))
    save(name, [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
         notes={"workers": args.workers, "side_px": args.side, "target_peak_rss_mb": 2048},
         title="extraction peak memory, small slide vs large mosaic")  # fmt: skip


if __name__ == "__main__":
    main()
