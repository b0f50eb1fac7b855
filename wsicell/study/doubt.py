"""Which of a stored slide's nuclei the annotator filter doubts.

`wsicell extract` counts per slide the nuclei the HV-net's annotator filter doubts
(``segment/annotator_filter.py``; `wsicell info` shows the share). This module says which
ones, from the measurements and tile features the store keeps: the nuclei-only map gives each
nucleus its P(annotated) and colours the doubted ones (``mapping/slide.py``), and the study
table gives each cluster's share of doubted nuclei (``study/summary.py``), where a cluster
made mostly of doubted nuclei is likely not nuclei at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wsicell.segment.annotator_filter import (
    DOUBT_BELOW,
    AnnotatorFilter,
    descriptions,
    doubting_filter,
)
from wsicell.store import SlideCells


def slide_filter(slide: SlideCells) -> AnnotatorFilter | None:
    """The annotator filter of the slide's segmenter, or None when there is nothing to show:
    a segmenter without one (the watershed), the filter already applied at extraction (its
    doubted nuclei are gone), or no stored tile features (an older store)."""
    segment = dict(slide.attrs.get("settings", {}).get("segment", {}))
    path = doubting_filter(segment.get("method", "hvnet"), float(segment.get("hv_annotator_threshold", 0.0)))
    return AnnotatorFilter.load(path) if path is not None and slide.has("tile_features") else None


def annotated_probability(
    slide: SlideCells, keep: AnnotatorFilter, *, rows: int = 16_384, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """(n,) float32: P(annotated) of each of the slide's nuclei, from its stored measurements
    and tile features, ``rows`` nuclei at a time, ``progress`` told how many after each (a
    million nuclei: 7.2 CPU s, 3.8 s wall on 2 cores, mostly reading the tile features; the
    GeoJSON of as many takes ~17 s)."""
    features, tiles = slide.array("features"), slide.array("tile_features")
    out = np.empty(slide.n_cells, np.float32)
    for start in range(0, slide.n_cells, rows):
        stop = min(start + rows, slide.n_cells)
        out[start:stop] = keep.probability(descriptions(features[start:stop], tiles[start:stop]))
        if progress is not None:
            progress(stop - start)
    return out


def doubted_per_label(slide: SlideCells, labels: np.ndarray, *, k: int) -> np.ndarray | None:
    """(k,) how many nuclei of each label 0..k-1 (one per cell) the filter doubts; None when
    :func:`slide_filter` has nothing to show."""
    keep = slide_filter(slide)
    if keep is None:
        return None
    doubted = annotated_probability(slide, keep) < DOUBT_BELOW
    return np.bincount(labels[doubted], minlength=k).astype(np.int64)
