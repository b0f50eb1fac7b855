"""The composition picture: one stacked bar per slide, coloured as the maps."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from wsicell.export.names import ClusterStyle
from wsicell.export.picture import font
from wsicell.types import RGBImage


def composition_picture(
    labels: list[str], counts: np.ndarray, *, styles: list[ClusterStyle], title: str = "", bar_px: int = 900,
    row_px: int = 22,
) -> RGBImage:  # fmt: skip
    """Each slide (``labels``, ``counts`` (slides, k)) as a bar split by its clusters' shares,
    in the clusters' colours, with its cell count; the legend (names, colours) underneath."""
    counts = np.asarray(counts, np.float64).reshape(len(labels), len(styles))
    size = max(12, round(row_px * 0.6))
    f, fb = font(size), font(round(size * 1.25))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [t if len(t) <= 40 else t[:37] + "..." for t in labels]
    label_w = int(max([probe.textlength(t, font=f) for t in names] + [0]) + size * 2)
    totals = counts.sum(axis=1)
    count_w = int(probe.textlength("99,999,999 cells", font=f) + size * 2)
    legend = [f"{s.name}  {100 * c / max(totals.sum(), 1):.1f} %" for s, c in zip(styles, counts.sum(0), strict=True)]
    per_line = max(1, (label_w + bar_px + count_w) // int(max(probe.textlength(t, font=f) for t in legend) + size * 3))
    legend_lines = -(-len(legend) // per_line)
    top = round(size * 2.4) if title else size
    height = top + len(labels) * row_px + size * 2 + legend_lines * round(size * 1.6) + size
    width = label_w + bar_px + count_w
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((size, round(size * 0.6)), title, fill=(20, 20, 20), font=fb)
    y = top
    for name, row, total in zip(names, counts, totals, strict=True):
        draw.text((size, y + (row_px - size) // 2 - 1), name, fill=(20, 20, 20), font=f)
        x = float(label_w)
        for c, n in enumerate(row):
            if n <= 0:
                continue
            w = bar_px * n / total
            draw.rectangle([round(x), y + 2, max(round(x), round(x + w) - 1), y + row_px - 3], fill=styles[c].color)
            x += w
        draw.text((label_w + bar_px + size // 2, y + (row_px - size) // 2 - 1), f"{int(total):,} cells",
                  fill=(70, 70, 70), font=f)  # fmt: skip
        y += row_px
    y += size
    col_w = width // per_line
    for i, (s, text) in enumerate(zip(styles, legend, strict=True)):
        lx, ly = size + (i % per_line) * col_w, y + (i // per_line) * round(size * 1.6)
        draw.rectangle([lx, ly + 2, lx + size, ly + size + 2], fill=s.color, outline=(40, 40, 40))
        draw.text((lx + size * 1.5, ly), text, fill=(20, 20, 20), font=f)
    return np.asarray(canvas)
