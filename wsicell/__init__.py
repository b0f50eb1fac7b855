"""wsicell: label-free cell-type maps from H&E whole-slide images."""

from importlib.resources import files

__version__ = "0.1.0"

SAMPLE_SLIDE = files("wsicell") / "data" / "CMU-1-Small-Region.svs"
"""The bundled CC0 sample slide (OpenSlide's CMU-1-Small-Region, 0.499 µm/px)."""
