"""Which nuclei an evaluation scores: the dataset's labelled instances, or a segmenter's.

The paper's protocol scores the labelled instances themselves (``Nuclei()``). With a
``segmenter``, it scores what a user of ``wsicell extract`` gets instead: every tile is
segmented as extraction segments a slide, each detected nucleus is matched one-to-one to a
labelled nucleus whose centroid lies within ``match_um`` (Hungarian assignment on centroid
distance, ``wsicell.segment.metrics.centroid_pairs``) and takes its class; unmatched detections (false positives, or nuclei the labels
do not mark) are left out, and labelled nuclei that no detection matched are counted as
missed. ``scale`` < 1 shows the tiles at a lower magnification (0.5: a 40x dataset seen as
20x): the image is shrunk with area interpolation, the instance map with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wsicell.config import plain, to_mapping
from wsicell.segment.config import SegmentConfig


@dataclass(frozen=True)
class Nuclei:
    """Where the evaluated cells come from (see the module docstring)."""

    segmenter: SegmentConfig | None = None  # None: the labelled instances
    scale: float = 1.0  # tiles resized by this factor first (0.5: 40x seen as 20x)
    match_um: float = 3.0  # largest centroid distance of a detection to its labelled nucleus

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if not self.match_um > 0.0:
            raise ValueError(f"match_um must be > 0, got {self.match_um}")

    @property
    def settings(self) -> dict[str, Any]:
        """Plain values for a split store's reuse check."""
        seg = None if self.segmenter is None else plain(to_mapping(self.segmenter))
        return {"segmenter": seg, "scale": self.scale, "match_um": self.match_um}

    @property
    def title(self) -> str:
        which = (
            "labelled nuclei"
            if self.segmenter is None
            else f"nuclei found by the {self.segmenter.method} segmenter"
            + (f" ({', '.join(self.segmenter.hv_opt_ins)})" if self.segmenter.hv_opt_ins else "")
        )
        return which if self.scale == 1.0 else f"{which}, tiles resized x{self.scale:g}"


def rescale_tile(
    image: np.ndarray, inst: np.ndarray, types: np.ndarray, *, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tile resized by ``scale``: image (area interpolation), instance map (nearest, then
    renumbered 1..n' so that instances too small to survive are dropped) and their types."""
    import cv2

    if scale == 1.0:
        return image, inst, types
    h, w = inst.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2: (width, height)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_inst = cv2.resize(inst.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    kept = np.unique(small_inst)
    kept = kept[kept > 0]
    renumber = np.zeros(int(inst.max()) + 1, np.int32)
    renumber[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return small, renumber[small_inst], types[kept - 1]
