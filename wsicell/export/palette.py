"""A fixed qualitative palette: distinct colours for cluster 0, 1, 2, ...

The first 20 are Sasha Trubetskoy's "20 simple, distinct colours", ordered from the most
to the least distinct; beyond them colours are spread around the hue circle by the golden
ratio (still distinct from their neighbours, deterministic).
"""

from __future__ import annotations

import colorsys

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (255, 225, 25), (0, 128, 128),
    (170, 110, 40), (128, 0, 0), (0, 0, 128), (128, 128, 0), (250, 190, 212),
    (220, 190, 255), (170, 255, 195), (255, 215, 180), (255, 250, 200), (128, 128, 128),
)  # fmt: skip

GOLDEN = 0.618033988749895


def cluster_color(index: int) -> RGB:
    """The default colour of cluster ``index`` (0-based)."""
    if index < 0:
        raise ValueError(f"cluster index must be >= 0, got {index}")
    if index < len(PALETTE):
        return PALETTE[index]
    i = index - len(PALETTE)
    hue = (0.11 + i * GOLDEN) % 1.0
    sat = (0.9, 0.6)[i % 2]
    val = (0.85, 0.65, 0.95)[i % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255))
