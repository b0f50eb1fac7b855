"""Extraction throughput vs raw OpenSlide reading, on the same tissue tiles, in one run.

On a region of the mosaic slide (benchmarks/slides.py): the tissue tiles extraction would
process are (1) read raw with OpenSlide (`read_region` of each tile core at level 0, RGBA ->
RGB: the floor any extractor pays), with 1 and 2 threads; (2) extracted end to end
(`extract_slides`: tissue detection, resampled reads with overlap, segmentation, crops,
features, Zarr writes) with 1 and 2 workers, once per segmenter (``--segmenters``: the
HV-net, ``hvnet``, with its full-resolution branch, ``hvnet-fine``, and the watershed with a
foreground, e.g. ``cnn``; default ``cnn hvnet``, side by side in one run), then once per
extraction config file (``--configs``: its segmentation settings, e.g. the presets). Throughput is
tissue megapixels per second (the tiles' core area at the working resolution ``--mpp``) and
cells per second.

    .venv/bin/python benchmarks/extract_speed.py [--side 30720] [--region 8192] [--precision fp32]
    .venv/bin/python benchmarks/extract_speed.py --segmenters hvnet hvnet-fine --mpp 0.25   # as for 40x slides
    .venv/bin/python benchmarks/extract_speed.py --side 8192 --segmenters hvnet \
        --configs configs/extract-balanced.yaml configs/extract-quality.yaml     # the presets beside the default
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.config import load_config
from wsicell.extract import ExtractConfig, extract_slides
from wsicell.extract.pipeline import working_extent
from wsicell.io.slide import open_slide
from wsicell.io.tiling import core_bounds_level0, tile_grid, tiles_over_tissue
from wsicell.io.tissue import detect_tissue
from wsicell.segment import make_segmenter
from wsicell.segment.config import SegmentConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slides import WORK, mosaic_slide  # noqa: E402

WINDOW_ORIGIN = 2048  # level-0 x = y of the region's corner (inside the tissue of the mosaic)


def raw_read(path: Path, boxes: list[tuple[int, int, int, int]], threads: int) -> tuple[float, float]:
    """Wall and CPU seconds to read every box (level 0) with OpenSlide, RGBA -> RGB, on ``threads`` threads."""
    import openslide

    slides = [openslide.OpenSlide(str(path)) for _ in range(threads)]

    def work(i: int) -> int:
        osr = slides[i % threads]
        total = 0
        for x0, y0, x1, y1 in boxes[i::threads]:
            rgb = np.asarray(osr.read_region((x0, y0), 0, (x1 - x0, y1 - y0)))[..., :3].copy()
            total += rgb.shape[0]
        return total

    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return time.perf_counter() - t0, time.process_time() - c0


def stage_breakdown(path: Path, tiles: list, config: ExtractConfig, n: int = 6) -> dict[str, float]:
    """CPU seconds per tile of each stage, one thread, on ``n`` tissue tiles spread over the list."""
    from wsicell.segment import cells_from_labels

    seg = make_segmenter(config.segment)
    pick = [tiles[i] for i in np.linspace(0, len(tiles) - 1, min(n, len(tiles))).round().astype(int)]
    totals = {"read + resample": 0.0, "segment": 0.0, "cells (crops, contours, features)": 0.0}
    with open_slide(path) as slide:
        scale = slide.grid_scale(config.mpp)
        t = pick[0]  # warm-up: loading (and converting) the network is not a per-tile cost
        seg.segment(slide.read_grid((t.x, t.y), (t.size, t.size), mpp=config.mpp), mpp=config.mpp)
        for t in pick:
            t0 = time.process_time()
            image = slide.read_grid((t.x, t.y), (t.size, t.size), mpp=config.mpp)
            t1 = time.process_time()
            labels = seg.segment(image, mpp=config.mpp)
            t2 = time.process_time()
            x0, y0, x1, y1 = t.core
            cells_from_labels(image, labels, mpp=config.mpp, origin=(t.x * scale, t.y * scale), scale=scale,
                              core=(x0 - t.x, y0 - t.y, x1 - t.x, y1 - t.y))  # fmt: skip
            t3 = time.process_time()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                totals[key] += dt / len(pick)
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--side", type=int, default=30720)
    ap.add_argument("--region", type=int, default=4096, help="side of the level-0 region (px)")
    ap.add_argument("--segmenters", nargs="+", default=["cnn", "hvnet"],
                    choices=["hvnet", "hvnet-fine", "cnn", "classifier", "haematoxylin"],
                    help="hvnet, hvnet-fine or a watershed foreground")  # fmt: skip
    ap.add_argument("--configs", nargs="*", default=[], type=Path,
                    help="extraction config files whose segmentation settings are run too (named by file stem)")
    ap.add_argument("--mpp", type=float, default=0.5, help="working resolution, µm/px (0.25: as extraction of 40x slides)")
    ap.add_argument("--hv-flips", type=int, default=1, choices=[1, 2, 4], help="hvnet / hvnet-fine: test-time flips [1]")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="the networks' arithmetic [default: auto]")
    ap.add_argument("--runtime", choices=["auto", "torch", "openvino"], help="the HV-net's runtime [default: auto]")
    args = ap.parse_args()
    path = mosaic_slide(args.side)
    region = (WINDOW_ORIGIN, WINDOW_ORIGIN, WINDOW_ORIGIN + args.region, WINDOW_ORIGIN + args.region)
    extra = {"precision": args.precision} if args.precision else {}
    segments = {
        name: SegmentConfig(method=name, hv_flips=args.hv_flips, **extra, **({"runtime": args.runtime} if args.runtime else {}))
        if name in ("hvnet", "hvnet-fine")
        else SegmentConfig(method="watershed", foreground=name, **extra)
        for name in args.segmenters
    }  # fmt: skip
    segments |= {path.stem: load_config(ExtractConfig, path).segment for path in args.configs}
    # the tiles (their overlap follows max_diameter_um, shared by all segmenters)
    config = ExtractConfig(region=region, mpp=args.mpp, segment=segments[args.segmenters[0]])
    with open_slide(path) as slide:
        seg = make_segmenter(config.segment)
        scale = slide.grid_scale(config.mpp)
        tissue = detect_tissue(slide, method=config.tissue_method)
        extent = working_extent(slide, config)
        tiles = tiles_over_tissue(tile_grid(extent, size=config.tile_size, overlap=config.overlap_px(seg.max_nucleus_um)),
                                  tissue, scale=scale)  # fmt: skip
    boxes = [tuple(round(v) for v in core_bounds_level0(t, scale)) for t in tiles]
    mp = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) / 1e6
    print(f"{path.name}: region {args.region} px, {len(tiles)} tissue tiles, {mp:.1f} tissue MP", flush=True)
    rows = []
    load = [os.getloadavg()[0]]
    for threads in (1, 2):
        raw_read(path, boxes[:2], threads)  # warm the file cache
        wall, cpu = min(raw_read(path, boxes, threads) for _ in range(2))
        rows.append(("raw OpenSlide read", threads, mp, None, wall, cpu))
        load.append(os.getloadavg()[0])
    for name, segment in segments.items():
        print(f"segmenter {name}: {segment}", flush=True)
        for workers in (1, 2):
            store = WORK / f"speed-{workers}.zarr"
            shutil.rmtree(store, ignore_errors=True)
            c0 = time.process_time()
            report = extract_slides([path], store=store, config=ExtractConfig(region=region, mpp=args.mpp, segment=segment),
                                    workers=workers, progress=False)  # fmt: skip
            cpu = time.process_time() - c0
            [r] = report.slides
            assert r.status == "done", r
            rows.append((f"extraction, {name}", workers, r.megapixels, r.n_cells, r.seconds, cpu))
            load.append(os.getloadavg()[0])
    print("\n| what | threads/workers | tissue MP/s (wall) | cells/s (wall) | wall s | CPU s | tissue MP per CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for what, n, mpx, cells, wall, cpu in rows:
        cps = "-" if cells is None else f"{cells / wall:,.0f}"
        print(f"| {what} | {n} | {mpx / wall:.2f} | {cps} | {wall:.1f} | {cpu:.1f} | {mpx / cpu:.2f} |")
    wall_rate = [r[2] / r[4] for r in rows]
    cpu_rate = [r[2] / r[5] for r in rows]
    print()
    for k, name in enumerate(segments):
        one, two = 2 + 2 * k, 3 + 2 * k
        print(f"{name}: extraction / raw read, wall: 1 worker {wall_rate[one] / wall_rate[0]:.3f}, 2 workers "
              f"{wall_rate[two] / wall_rate[1]:.3f}; per CPU-second: {cpu_rate[one] / cpu_rate[0]:.3f} "
              f"(target >= 0.5); 2 / 1 workers (wall): {wall_rate[two] / wall_rate[one]:.2f}")  # fmt: skip
    names = list(segments)
    for k, name in enumerate(names[1:], start=1):
        for w in (0, 1):
            print(f"{name} / {names[0]}, {w + 1} worker(s): per CPU-second "
                  f"{cpu_rate[2 + 2 * k + w] / cpu_rate[2 + w]:.2f}, wall {wall_rate[2 + 2 * k + w] / wall_rate[2 + w]:.2f}")  # fmt: skip
    print(f"load average during the run: {', '.join(f'{v:.1f}' for v in load)} (2 cores, shared machine)")
    figures = [
        {"what": what, "threads_or_workers": n, "tissue_mp_per_s": round(mpx / wall, 2),
         "cells_per_s": None if cells is None else round(cells / wall), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
         "tissue_mp_per_cpu_s": round(mpx / cpu, 2)}
        for what, n, mpx, cells, wall, cpu in rows
    ]  # fmt: skip
    stages_ms = {}
    for name, segment in segments.items():
        stages = stage_breakdown(path, tiles, ExtractConfig(region=region, mpp=args.mpp, segment=segment))
        total = sum(stages.values())
        stages_ms[name] = {key: round(seconds * 1000) for key, seconds in stages.items()}
        print(f"\n{name}: per-tile stages, CPU time ({config.tile_size} px tile incl. overlap, one thread):")
        for key, seconds in stages.items():
            print(f"  {key}: {seconds * 1000:.0f} ms ({seconds / total:.0%})")
    name = "extract_speed" + ("" if args.mpp == 0.5 else f"-mpp{args.mpp:g}")
    name += "" if sorted(args.segmenters) == ["cnn", "hvnet"] else "-" + "-".join(args.segmenters)
    name += "" if args.hv_flips == 1 else f"-flips{args.hv_flips}"
    name += "".join(f"-{path.stem}" for path in args.configs)
    save(name, figures, notes={"region_px": args.region, "mpp": args.mpp, "tiles": len(tiles), "tissue_mp": round(mp, 1),
                                          "precision": args.precision or "auto", "per_tile_stage_cpu_ms": stages_ms,
                                          "load_during_run": [round(v, 1) for v in load]},
         title="extraction speed vs raw reading")  # fmt: skip


if __name__ == "__main__":
    main()
