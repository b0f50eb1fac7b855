"""Benchmark helper: a large real-content slide mosaicked from the bundled sample.

The sample slide (2220 x 2967 px, 0.499 µm/px, ~40 % tissue) is mirror-tiled over a plane
of any size (reflected copies, so tissue is continuous across copy borders) and written as
a tiled (512 px), JPEG-compressed pyramidal TIFF with resolution tags of 0.5 µm/px, which
OpenSlide reads as `openslide.mpp-x/y` (no --slide-mpp needed). Memory is bounded: the
sample (~20 MB, plus its downsampled copies) and one tile at a time.

    .venv/bin/python benchmarks/slides.py 30720   # -> benchmarks/_work/mosaic-30720.tiff
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

import wsicell
from wsicell.io.pyramid import write_pyramidal_tiff
from wsicell.io.slide import open_slide

WORK = Path(__file__).resolve().parent / "_work"
MPP = 0.5


@lru_cache(maxsize=1)
def _source() -> np.ndarray:
    with open_slide(Path(str(wsicell.SAMPLE_SLIDE))) as s:
        w, h = s.dimensions
        return s.read_region((0, 0), 0, (w, h))  # (2967, 2220, 3)


@lru_cache(maxsize=16)
def _source_at(ds: float) -> np.ndarray:
    src = _source()
    if ds == 1:
        return src
    h, w = src.shape[:2]
    return cv2.resize(src, (max(1, round(w / ds)), max(1, round(h / ds))), interpolation=cv2.INTER_AREA)


def _mirror(coords: np.ndarray, period: int) -> np.ndarray:
    m = coords % (2 * period)
    return np.where(m < period, m, 2 * period - 1 - m)


def render_mosaic(bounds: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = bounds
    ds = round((x1 - x0) / size[0], 6)
    src = _source_at(ds)
    h, w = src.shape[:2]
    cols = _mirror(np.round(np.arange(size[0]) + x0 / ds).astype(np.int64), w)
    rows = _mirror(np.round(np.arange(size[1]) + y0 / ds).astype(np.int64), h)
    return src[rows[:, None], cols[None, :]]


def mosaic_slide(side: int = 30720) -> Path:
    """The cached mosaic of ``side`` x ``side`` px (built on first use)."""
    path = WORK / f"mosaic-{side}.tiff"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_pyramidal_tiff(path, render_mosaic, size=(side, side), mpp=MPP, tile=512, quality=90)
        print(f"built {path.name}: {side} x {side} px in {time.perf_counter() - t0:.0f} s, "
              f"{path.stat().st_size / 2**20:.0f} MiB", flush=True)  # fmt: skip
    return path


if __name__ == "__main__":
    mosaic_slide(int(sys.argv[1]) if len(sys.argv) > 1 else 30720)
