"""The settings of SimCLR and SSLP (sections ``simclr:`` and ``sslp:`` of a training config).

What every method shares (batch size, learning rate, weight decay, temperature, projector
sizes, epochs, the CCRL augmentation fields SSLP reuses) stays in ``TrainConfig``; these hold
only what is specific to one method. Defaults are the papers' values where they give one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JITTER_PRESETS: dict[str, tuple[float, float, float, float]] = {
    "light": (0.4, 0.4, 0.4, 0.2),
    "medium": (0.8, 0.8, 0.8, 0.2),
    "heavy": (0.8, 0.8, 0.8, 0.4),
}
"""Ciga et al. App. C colour jitter (brightness, contrast, saturation, hue); medium was best."""


@dataclass(frozen=True)
class SimCLRConfig:
    """SimCLR for histopathology (Ciga et al. 2022, App. C)."""

    jitter: Literal["light", "medium", "heavy"] = "medium"
    jitter_p: float = 0.8  # Chen et al.'s probability; Ciga et al. do not state one
    min_area: float = 0.01  # random resized crop area in [min_area, 1] of the crop (paper: 1 %)
    blur_p: float = 0.5
    optimizer: Literal["lars", "adam"] = "lars"
    lars_eta: float = 0.001  # LARS trust coefficient (SimCLR's value)

    def __post_init__(self) -> None:
        if self.jitter not in JITTER_PRESETS:
            raise ValueError(f"simclr.jitter must be one of {', '.join(JITTER_PRESETS)}, got {self.jitter!r}")
        if not 0.0 < self.min_area <= 1.0:
            raise ValueError(f"simclr.min_area must be in (0, 1], got {self.min_area}")
        for name in ("jitter_p", "blur_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"simclr.{name} must be a probability in [0, 1], got {value}")
        if self.optimizer not in ("lars", "adam"):
            raise ValueError(f"simclr.optimizer must be 'lars' or 'adam', got {self.optimizer!r}")
        if self.lars_eta <= 0:
            raise ValueError(f"simclr.lars_eta must be > 0, got {self.lars_eta}")


@dataclass(frozen=True)
class SSLPConfig:
    """SSLP's three invariances for cells (see docs/methods.md for the choices)."""

    radius_um: float = 15.0  # spatial neighbours: centroids within this distance, same slide
    max_neighbours: int = 8  # the nearest ones only
    self_weight: float = 1.0  # weight of the other view of the same cell
    intra_weight: float = 0.5  # weight of a spatial neighbour
    inter_weight: float = 0.5  # weight of a cluster mate (k-means over the memory bank)
    intra_gate: Literal["cluster", "none"] = "cluster"  # neighbours count only if cluster mates
    clusters: int = 32  # k of the memory-bank k-means (finer than the cell types)
    cluster_every: int = 1  # epochs between re-clusterings of the bank
    bank_momentum: float = 0.5  # bank row <- m * row + (1 - m) * new projection

    def __post_init__(self) -> None:
        if not self.radius_um > 0:
            raise ValueError(f"sslp.radius_um must be > 0, got {self.radius_um}")
        if self.max_neighbours < 1:
            raise ValueError(f"sslp.max_neighbours must be >= 1, got {self.max_neighbours}")
        for name in ("self_weight", "intra_weight", "inter_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"sslp.{name} must be >= 0, got {getattr(self, name)}")
        if self.self_weight == 0:
            raise ValueError("sslp.self_weight must be > 0 (the two views of a cell are always positives)")
        if self.intra_gate not in ("cluster", "none"):
            raise ValueError(f"sslp.intra_gate must be 'cluster' or 'none', got {self.intra_gate!r}")
        if self.clusters < 2:
            raise ValueError(f"sslp.clusters must be >= 2, got {self.clusters}")
        if self.cluster_every < 1:
            raise ValueError(f"sslp.cluster_every must be >= 1, got {self.cluster_every}")
        if not 0.0 <= self.bank_momentum < 1.0:
            raise ValueError(f"sslp.bank_momentum must be in [0, 1), got {self.bank_momentum}")
