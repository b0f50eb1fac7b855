"""The per-tile task at a slide's edge: only the tile's window on the slide is read and segmented."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wsicell.extract import ExtractConfig, extract_slides
from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, cells_from_labels, make_segmenter
from wsicell.store import CellStore

FIELD = (1024, 1024, 1280, 1280)  # a 256² field of view of the sample slide, dense with nuclei


def edge_nuclei(labels: np.ndarray) -> int:
    return len(np.setdiff1d(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])), [0]))


def test_a_field_of_view_extracts_as_segment_sees_it(tmp_path: Path, sample_slide: Path) -> None:
    x0, y0, x1, y1 = FIELD
    with open_slide(sample_slide) as slide:
        field = slide.read_region((x0, y0), 0, (x1 - x0, y1 - y0))
    png = tmp_path / "field.png"
    cv2.imwrite(str(png), cv2.cvtColor(field, cv2.COLOR_RGB2BGR))
    report = extract_slides([png], store=tmp_path / "f.zarr", config=ExtractConfig(tissue_method="none"),
                            slide_mpp=0.5, progress=False)  # fmt: skip
    assert report.ok, report
    [stored] = CellStore.open(tmp_path / "f.zarr").slides()

    segmenter = make_segmenter(SegmentConfig())
    labels = segmenter.segment(field, mpp=0.5)
    direct = cells_from_labels(field, labels, mpp=0.5, origin=(0, 0), scale=1.0)
    assert stored.n_cells == len(direct) > 40
    np.testing.assert_allclose(stored.array("centroid")[:], direct.centroid, atol=1e-3)
    np.testing.assert_allclose(stored.array("contour")[:], direct.contour, atol=1e-3)
    assert np.array_equal(stored.array("crops")[:], direct.crops)  # replicated at the edge, not white

    # what reading the whole tile would have given: a white band around the field, beside
    # which the network misses nuclei that the field's edge cuts
    tile = np.full((400, 400, 3), 255, np.uint8)
    tile[80:336, 64:320] = field
    banded = segmenter.segment(tile, mpp=0.5)[80:336, 64:320]
    assert edge_nuclei(labels) >= edge_nuclei(banded) + 8, (edge_nuclei(labels), edge_nuclei(banded))
