"""`wsicell map`: cell-type maps for QuPath, one slide (`slide`) or a whole study (`batch`)."""

from wsicell.mapping.batch import MANIFEST, SlideMap, StudyMapReport, map_study
from wsicell.mapping.slide import (
    MapResult,
    default_output,
    iter_cells,
    label_slide,
    map_slide,
    png_path,
    prepare_slide,
)

__all__ = [
    "MANIFEST",
    "MapResult",
    "SlideMap",
    "StudyMapReport",
    "default_output",
    "iter_cells",
    "label_slide",
    "map_slide",
    "map_study",
    "png_path",
    "prepare_slide",
]
