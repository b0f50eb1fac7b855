"""Extraction presets shipped with the package (also linked from the repository's
``configs/``): better nuclei than the default for more time, chosen by name with
``wsicell extract --preset NAME`` (docs/segmentation.md, "Choosing a segmenter")."""

from __future__ import annotations

from pathlib import Path

PRESETS = Path(__file__).resolve().parent
PRESET_NAMES = ("balanced", "quality")
"""balanced: the default network, 4 test-time flips and the annotator filter (~2.6x the
default's time); quality: ``hvnet-fine`` with the same two (~8x)."""


def preset_path(name: str) -> Path:
    """The YAML file of the extraction preset ``name`` (one of :data:`PRESET_NAMES`)."""
    if name not in PRESET_NAMES:
        raise ValueError(f"no extraction preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    return PRESETS / f"{name}.yaml"
