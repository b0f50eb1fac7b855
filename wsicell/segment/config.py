"""Settings of nucleus segmentation, all in physical units (µm) so they hold at any mpp."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

SEGMENT_METHODS = ("watershed", "hvnet", "hvnet-fine", "tiatoolbox")
HV_METHODS = ("hvnet", "hvnet-fine")
"""The methods of the HV-net (``hv_segmenter.py``): their settings are the ``hv_*`` ones."""
FOREGROUNDS = ("classifier", "cnn", "haematoxylin")
PRECISIONS = ("auto", "fp32", "bf16")
RUNTIMES = ("auto", "torch", "openvino")
HV_FLIPS = (1, 2, 4)
"""Test-time flip averaging of the HV-nets: the maps of 1, 2 or 4 flips of a tile (``hv_flips``)."""


@dataclass(frozen=True)
class SegmentConfig:
    """How nuclei are found in an RGB tile.

    ``hvnet`` (default, shipped weights, no downloads): a multi-task U-Net (nucleus +
    HoVer-Net horizontal/vertical maps, trained on CoNSeP + MoNuSeg; weights CC BY-NC-SA 4.0)
    and HoVer-Net's marker-controlled watershed, then size filters (``hv_post.py``,
    docs/segmentation.md); better than the watershed on held-out organs and as fast with
    the default runtime.
    ``hvnet-fine`` (opt-in): the same network plus a full-resolution branch at 0.25 µm/px
    that corrects its maps (same post-processing and settings): more nuclei found and
    better outlines (CoNSeP test PQ 0.380 against 0.352; 0.363 against 0.341 seen at 20x),
    at ~3x the network's time, about half the extraction throughput (docs/segmentation.md).
    ``watershed`` (the earlier default): a foreground mask (default: the small in-project
    U-Net's nucleus probability, trained on CoNSeP only; or the pixel classifier, or a
    haematoxylin threshold), hole filling, then a distance transform (+ interior
    probability) + peak detection + watershed to split touching nuclei, then size filters.
    ``tiatoolbox``: HoVer-Net & co. through tiatoolbox with a local ``weights`` file.
    Defaults were tuned on the CoNSeP train split (see docs/segmentation.md).
    """

    method: Literal["watershed", "hvnet", "hvnet-fine", "tiatoolbox"] = "hvnet"
    foreground: Literal["classifier", "cnn", "haematoxylin"] = "cnn"
    """watershed: how nucleus pixels are found: the in-project pixel classifier, the
    in-project small U-Net (``unet.py``), or a threshold on haematoxylin optical density
    (QuPath-like)."""
    min_area_um2: float = 3.0
    """Smaller objects are dropped (debris, noise)."""
    max_area_um2: float = 400.0
    """Larger objects are dropped (clumps that could not be split, folds)."""
    max_diameter_um: float = 30.0
    """Objects whose bounding box is longer than this on a side are dropped; it bounds the
    nucleus size that tiles must overlap by (``Segmenter.max_nucleus_um``)."""
    probability_threshold: float = 0.6
    """classifier/cnn: pixels with a higher nucleus probability are foreground."""
    interior_weight: float = 2.0
    """classifier/cnn: weight of the "nucleus interior" probability added to the distance
    transform (µm) before seeding the watershed; 0 = distance transform only."""
    smooth_sigma_um: float = 0.5
    """haematoxylin: Gaussian sigma applied to the channel before thresholding."""
    threshold: float = 0.0
    """haematoxylin: optical-density threshold; 0 = automatic (Otsu over the tile's tissue
    pixels, never below ``min_threshold``)."""
    min_threshold: float = 0.15
    """haematoxylin: floor of the automatic threshold, so a tile without nuclei yields none."""
    open_radius_um: float = 0.0
    """Radius of the morphological opening that removes specks and thin bridges."""
    peak_min_distance_um: float = 1.0
    """Watershed seeds: distance-transform maxima at least this far apart."""
    peak_min_height_um: float = 0.25
    """Watershed seeds: only maxima at least this far inside the mask (a smaller object
    keeps a single seed)."""
    distance_smooth_um: float = 0.5
    """Gaussian sigma applied to the distance transform before seeding (merges ridges)."""
    hv_threshold: float = 0.5
    """hvnet: pixels with a higher nucleus probability are foreground."""
    hv_marker_threshold: float = 0.5
    """hvnet: foreground pixels whose HV boundary energy (0-1) is below this seed the watershed."""
    hv_min_object_probability: float = 0.0
    """hvnet: instances whose highest nucleus probability is below this are dropped (0 = off).
    On held-out 40x images 0.85 gained DQ / PQ (MoNuSeg +0.018 / +0.013, CoNSeP +0.011 /
    +0.010), but on the bundled 20x slide it drops about 16 % of the nuclei, some of them thin
    spindle nuclei: off by default (docs/segmentation.md)."""
    hv_annotator_threshold: float = 0.0
    """hvnet / hvnet-fine: instances that a learned filter (``annotator_filter.py``) gives a
    probability of having been outlined by CoNSeP's or MoNuSeg's annotators below this are
    dropped (0 = off). 0.5 in ``configs/extract-quality.yaml``: on the held-out images it raised
    MoNuSeg DQ / PQ from 0.730 / 0.551 to 0.759 / 0.573, and drops ~2 % of the real epithelial
    and spindle nuclei (docs/segmentation.md); off by default."""
    hv_flips: int = 1
    """hvnet / hvnet-fine: test-time flip averaging: the network's maps of the tile as it is
    (1), also flipped left-right (2), also up-down and both ways (4), each flipped back and
    averaged. 4 raised the mean held-out PQ by ~0.01 for either network, at 4x the network's
    time, so it is off by default (docs/segmentation.md)."""
    runtime: Literal["auto", "torch", "openvino"] = "auto"
    """hvnet: the network's inference runtime. ``auto``: torch on a CUDA GPU, else OpenVINO
    (the fastest CPU runtime measured, docs/segmentation.md), else torch eager when openvino
    is not installed (one line on stderr says which and why)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """cnn / hvnet: the network's arithmetic. ``auto`` = bf16 on CPUs with native bf16 units
    (AMX / AVX512-BF16; ~1.5-2x faster, quality unchanged, docs/segmentation.md), else fp32."""
    weights: str | None = None
    """tiatoolbox: a local weights file (None = tiatoolbox's pretrained download)."""
    tiatoolbox_model: str = "hovernet_fast-pannuke"
    """tiatoolbox: a pretrained model name (architecture, and weights when none given)."""

    @property
    def hv_opt_ins(self) -> list[str]:
        """The HV methods' opt-ins this config turns on, in words (e.g. "4 test-time flips")."""
        words = [f"{self.hv_flips} test-time flips"] if self.hv_flips > 1 else []
        if self.hv_annotator_threshold > 0:
            words.append(f"annotator filter {self.hv_annotator_threshold:g}")
        if self.hv_min_object_probability > 0:
            words.append(f"min object probability {self.hv_min_object_probability:g}")
        return words

    def __post_init__(self) -> None:
        if self.method not in SEGMENT_METHODS:
            raise ValueError(f"method must be one of {', '.join(SEGMENT_METHODS)}, got {self.method!r}")
        if self.foreground not in FOREGROUNDS:
            raise ValueError(f"foreground must be one of {', '.join(FOREGROUNDS)}, got {self.foreground!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.method != "watershed" and self.foreground != "cnn":
            raise ValueError(
                f"foreground: {self.foreground} applies to method: watershed only (the default method "
                f"is hvnet); add method: watershed"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("probability_threshold", "hv_threshold", "hv_marker_threshold"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.hv_flips not in HV_FLIPS:
            raise ValueError(f"hv_flips must be one of {', '.join(map(str, HV_FLIPS))}, got {self.hv_flips!r}")
        if not 0 <= self.hv_min_object_probability < 1:
            raise ValueError(f"hv_min_object_probability must be in [0, 1), got {self.hv_min_object_probability}")
        if not 0 <= self.hv_annotator_threshold < 1:
            raise ValueError(f"hv_annotator_threshold must be in [0, 1), got {self.hv_annotator_threshold}")
        positive = {
            "min_area_um2": self.min_area_um2,
            "max_area_um2": self.max_area_um2,
            "max_diameter_um": self.max_diameter_um,
            "peak_min_distance_um": self.peak_min_distance_um,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        non_negative = {
            "smooth_sigma_um": self.smooth_sigma_um,
            "threshold": self.threshold,
            "min_threshold": self.min_threshold,
            "open_radius_um": self.open_radius_um,
            "peak_min_height_um": self.peak_min_height_um,
            "distance_smooth_um": self.distance_smooth_um,
            "interior_weight": self.interior_weight,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.max_area_um2 <= self.min_area_um2:
            raise ValueError(
                f"max_area_um2 ({self.max_area_um2}) must be larger than min_area_um2 ({self.min_area_um2})"
            )
        if self.threshold > 5 or self.min_threshold > 5:
            raise ValueError("threshold/min_threshold are optical densities, expected 0-5")
        if not self.tiatoolbox_model:
            raise ValueError("tiatoolbox_model must not be empty")


def describe_settings(segment: Mapping[str, Any]) -> str:
    """Stored segmentation settings (a store's ``extract_settings["segment"]``) in words: the
    method and its opt-ins, e.g. "hvnet, 4 test-time flips"; the method alone for settings
    this version cannot read."""
    from wsicell.config import from_mapping
    from wsicell.errors import ConfigError

    try:
        config = from_mapping(SegmentConfig, dict(segment), source="stored segmentation settings")
    except (ConfigError, ValueError):
        return str(segment.get("method"))
    return ", ".join([config.method, *config.hv_opt_ins])
