"""The per-tile task: read a tile, segment it, measure the nuclei of its core (and, with an
HV-net, keep its encoder's tile features around each: ``segment/tile_features.py``, and
count the nuclei its annotator filter doubts: ``segment/annotator_filter.py``).

It runs on Dask workers (threads here, or processes of a ``dask.distributed`` cluster), so
it takes only picklable values and opens the slide itself by path. The open slide and the
segmenter are cached per thread (OpenSlide handles and segmenters are reused, never shared
between threads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from wsicell.errors import SlideError, WsicellError
from wsicell.io.slide import Slide, open_slide
from wsicell.io.tiling import Tile
from wsicell.segment import cells_from_labels, make_segmenter
from wsicell.segment.base import Segmenter
from wsicell.segment.config import SegmentConfig
from wsicell.store import CellBatch

_local = threading.local()
_CACHE_SIZE = 4


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs for one tile (picklable, small)."""

    slide_path: str  # absolute
    slide_mpp: float  # level-0 µm/px, already resolved (workers do not re-check metadata)
    mpp: float  # working resolution
    tile: Tile
    segment: SegmentConfig  # with the slide's resolved threshold
    crop_size: int
    window_scale: float
    tissue: np.ndarray  # (h, w) bool: the dilated tissue mask around the core
    tissue_origin: tuple[int, int]  # (col, row) of tissue[0, 0] in the slide's mask
    tissue_downsample: float  # level-0 px per mask px
    region: tuple[int, int, int, int] | None  # level-0 box cells must lie in


@dataclass(frozen=True)
class TileResult:
    index: int
    cells: CellBatch | None
    pixels: int  # core pixels of the tile (working grid)
    error: str | None = None  # a user error (bad file) as text: it crosses process borders
    doubted: int | None = None  # kept nuclei its annotator filter doubts (Segmenter.count_doubted)


def run_tile(job: TileJob) -> TileResult:
    """Segment one tile; keep nuclei whose centroid is in its core and over tissue.

    A :class:`WsicellError` (e.g. the file turns out truncated) comes back as ``error``
    text rather than an exception, so it survives the trip from a distributed worker.
    """
    try:
        return _run_tile(job)
    except WsicellError as exc:
        _forget_slide(job.slide_path, job.slide_mpp)  # an OpenSlide handle stays broken after an error
        reason = exc.reason if isinstance(exc, SlideError) else str(exc)
        return TileResult(job.tile.index, None, 0, reason)


def _run_tile(job: TileJob) -> TileResult:
    slide = _cached_slide(job.slide_path, job.slide_mpp)
    segmenter = _cached_segmenter(job.segment)
    t = job.tile
    x0, y0, x1, y1 = t.window_on(slide.grid_size(job.mpp))  # the tile's window, cut to the slide
    image = slide.read_grid((x0, y0), (x1 - x0, y1 - y0), mpp=job.mpp)
    labels, maps = segmenter.segment_with_features(image, mpp=job.mpp)
    scale = slide.grid_scale(job.mpp)
    c0, r0, c1, r1 = t.core
    cells = cells_from_labels(
        image, labels, mpp=job.mpp, origin=(x0 * scale, y0 * scale), scale=scale,
        core=(c0 - x0, r0 - y0, c1 - x0, r1 - y0),
        crop_size=job.crop_size, window_scale=job.window_scale,
    )  # fmt: skip
    keep = over_tissue(cells.centroid, job.tissue, job.tissue_origin, job.tissue_downsample)
    if job.region is not None:
        rx0, ry0, rx1, ry1 = job.region
        c = cells.centroid
        keep &= (c[:, 0] >= rx0) & (c[:, 0] < rx1) & (c[:, 1] >= ry0) & (c[:, 1] < ry1)
    if not keep.all():
        cells = cells.take(np.flatnonzero(keep))
    doubted = None
    if maps is not None:  # the segmenter's encoder around each kept nucleus
        xy = cells.centroid.astype(np.float64) / scale - (x0, y0) - 0.5  # tile px (pixel centres), as cells_from_labels
        cells = replace(cells, tile_features=maps.at(xy).astype(np.float16))
        doubted = segmenter.count_doubted(features=cells.features, tile_features=cells.tile_features)
    return TileResult(t.index, cells, t.core_pixels, doubted=doubted)


def over_tissue(centroid: np.ndarray, tissue: np.ndarray, origin: tuple[int, int], downsample: float) -> np.ndarray:
    """Which level-0 centroids (n x 2) fall on a True pixel of the mask window."""
    if len(centroid) == 0:
        return np.zeros(0, bool)
    col = np.floor(centroid[:, 0].astype(np.float64) / downsample).astype(np.int64) - origin[0]
    row = np.floor(centroid[:, 1].astype(np.float64) / downsample).astype(np.int64) - origin[1]
    h, w = tissue.shape
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    keep = np.zeros(len(centroid), bool)
    keep[inside] = tissue[row[inside], col[inside]]
    return keep


def _cached_slide(path: str, mpp: float) -> Slide:
    cache: dict = _local.__dict__.setdefault("slides", {})
    key = (path, mpp)
    if key not in cache:
        if len(cache) >= _CACHE_SIZE:
            old = cache.pop(next(iter(cache)))
            old.close()
        cache[key] = open_slide(path, mpp=mpp, check=False)
    return cache[key]


def _forget_slide(path: str, mpp: float) -> None:
    cache: dict = _local.__dict__.setdefault("slides", {})
    slide = cache.pop((path, mpp), None)
    if slide is not None:
        slide.close()


def _cached_segmenter(config: SegmentConfig) -> Segmenter:
    cache: dict = _local.__dict__.setdefault("segmenters", {})
    if config not in cache:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[config] = make_segmenter(config)
    return cache[config]
