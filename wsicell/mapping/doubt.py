"""Which of a slide's nuclei the annotator filter doubts, shown by the nuclei-only map.

`wsicell extract` counts per slide the nuclei the HV-net's annotator filter doubts
(``segment/annotator_filter.py``; `wsicell info` shows the share). The nuclei-only map shows
which ones, so that a pathologist checking the segmentation in QuPath sees where: every
nucleus gets the measurement ``ANNOTATED`` (P(annotated), from the measurements and tile
features the store keeps; QuPath colours detections by a measurement with Measure > Show
measurement maps), and the overlay picture draws the doubted nuclei in their own colour.
The GeoJSON stays unclassified.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from wsicell.export.geojson import CellChunk
from wsicell.export.names import ClusterStyle
from wsicell.segment.annotator_filter import FILTER_PATHS, AnnotatorFilter, descriptions
from wsicell.store import SlideCells

ANNOTATED = "annotated_probability"
"""The measurement: P(an annotator would have outlined this nucleus), 0-1."""
DOUBTED_STYLE = ClusterStyle("Doubted nucleus", (255, 120, 0))
"""How the doubted nuclei are drawn in the overlay picture (the others: ``slide.NUCLEUS_STYLE``)."""


def slide_filter(slide: SlideCells) -> AnnotatorFilter | None:
    """The annotator filter of the slide's segmenter, or None when there is nothing to show:
    a segmenter without one (the watershed), the filter already applied at extraction (its
    doubted nuclei are gone), or no stored tile features (an older store)."""
    segment = dict(slide.attrs.get("settings", {}).get("segment", {}))
    method = segment.get("method", "hvnet")
    if method not in FILTER_PATHS or float(segment.get("hv_annotator_threshold", 0.0)) > 0 or not slide.has("tile_features"):
        return None
    return AnnotatorFilter.load(FILTER_PATHS[method])


def annotated_probability(slide: SlideCells, keep: AnnotatorFilter, *, rows: int = 16_384) -> np.ndarray:
    """(n,) float32: P(annotated) of each of the slide's nuclei, from its stored measurements
    and tile features, ``rows`` nuclei at a time (a million nuclei: 7.2 CPU s, 3.8 s wall on 2
    cores, mostly reading the tile features; the GeoJSON of as many takes ~17 s)."""
    features, tiles = slide.array("features"), slide.array("tile_features")
    out = np.empty(slide.n_cells, np.float32)
    for start in range(0, slide.n_cells, rows):
        stop = min(start + rows, slide.n_cells)
        out[start:stop] = keep.probability(descriptions(features[start:stop], tiles[start:stop]))
    return out


def with_measurement(chunks: Iterable[CellChunk], values: np.ndarray) -> Iterator[CellChunk]:
    """The chunks with one more feature column: ``values`` (one per cell of the slide)."""
    for chunk in chunks:
        column = values[chunk.start : chunk.start + len(chunk.features), None].astype(chunk.features.dtype)
        yield replace(chunk, features=np.concatenate([chunk.features, column], axis=1))
