"""The overlay picture: the slide thumbnail with nuclei coloured by cluster, and a legend."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wsicell.atomic import write_bytes_atomic
from wsicell.export.names import ClusterStyle
from wsicell.export.output import check_output
from wsicell.types import PathLikeStr, RGBImage

SHIFT = 4  # cv2 sub-pixel bits: contours drawn at 1/16 px precision


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's bundled font at ``size`` px (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # old Pillow / no FreeType
        return ImageFont.load_default()


def draw_nuclei(
    thumb: RGBImage, factor: float, chunks: Iterable[tuple[np.ndarray, np.ndarray]], *,
    styles: list[ClusterStyle],
) -> RGBImage:  # fmt: skip
    """Nuclei filled (translucent) and outlined in their cluster's colour on ``thumb``.

    ``chunks`` yields (contour (m, P, 2) level-0 px, cluster (m,)); ``factor`` is level-0
    px per thumbnail px. Nuclei smaller than ~4 thumbnail px are drawn opaque (no outline
    would show); bigger ones get a translucent fill and a full-colour outline.
    """
    fill = thumb.copy()
    lines = np.zeros(thumb.shape[:2], np.uint16)  # 1 + cluster of each outline pixel, 0 = none
    sizes = []
    for contour, cluster in chunks:
        pts = np.round(contour / factor * (1 << SHIFT)).astype(np.int32)  # (m, P, 2)
        if len(pts) == 0:
            continue
        span = contour.max(axis=1) - contour.min(axis=1)
        sizes.append(float(np.median(span.max(axis=1))) / factor)
        for c in np.unique(cluster):
            group = pts[cluster == c]
            color = tuple(int(v) for v in styles[int(c)].color)
            cv2.fillPoly(fill, list(group), color, lineType=cv2.LINE_AA, shift=SHIFT)
            cv2.polylines(lines, list(group), True, int(c) + 1, thickness=1, lineType=cv2.LINE_8, shift=SHIFT)
    small = not sizes or float(np.median(sizes)) < 4.0
    alpha = 0.85 if small else 0.55
    out = cv2.addWeighted(thumb, 1 - alpha, fill, alpha, 0)
    if not small:
        colors = np.array([s.color for s in styles], np.uint8)
        on = lines > 0
        out[on] = colors[lines[on] - 1]
    return out


def legend_panel(
    height: int, *, styles: list[ClusterStyle], counts: np.ndarray, title: list[str], scale: float = 1.0
) -> RGBImage:
    """A white panel listing each cluster: colour swatch, name, cells and share."""
    size = max(12, round(18 * scale))
    f, fb = font(size), font(round(size * 1.2))
    total = max(int(counts.sum()), 1)
    rows = [f"{s.name}  {int(n):,}  ({100 * n / total:.1f} %)" for s, n in zip(styles, counts, strict=True)]
    line = round(size * 1.6)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max([probe.textlength(r, font=f) for r in rows] + [probe.textlength(t, font=fb) for t in title])
    width = int(text_w + size * 4)
    needed = line * (len(rows) + len(title) + 1) + size
    panel = Image.new("RGB", (width, max(height, needed)), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    y = size // 2
    for t in title:
        draw.text((size, y), t, fill=(20, 20, 20), font=fb)
        y += line
    y += line // 2
    for s, r in zip(styles, rows, strict=True):
        draw.rectangle([size, y + 2, size + line - 6, y + line - 4], fill=s.color, outline=(40, 40, 40))
        draw.text((size + line, y + 2), r, fill=(20, 20, 20), font=f)
        y += line
    return np.asarray(panel)


def scale_bar(image: RGBImage, *, um_per_px: float) -> RGBImage:
    """A scale bar (a round number of µm, ~1/5 of the width) in the bottom-left corner."""
    target = image.shape[1] / 5 * um_per_px
    nice = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]
    um = max([n for n in nice if n <= target] or [nice[0]])
    px = max(1, round(um / um_per_px))
    h = image.shape[0]
    size = max(12, image.shape[1] // 70)
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    x0, y0 = size, h - size * 2
    draw.rectangle([x0 - 6, y0 - size - 10, x0 + px + 6, y0 + 12], fill=(255, 255, 255))
    draw.rectangle([x0, y0, x0 + px, y0 + 5], fill=(0, 0, 0))
    label = f"{um / 1000:g} mm" if um >= 1000 else f"{um} um"  # PIL's bundled font has no µ
    draw.text((x0, y0 - size - 6), label, fill=(0, 0, 0), font=font(size))
    return np.asarray(pil)


def overlay_picture(
    thumb: RGBImage, factor: float, chunks: Iterable[tuple[np.ndarray, np.ndarray]], *,
    styles: list[ClusterStyle], counts: np.ndarray, title: list[str], mpp: float,
) -> RGBImage:  # fmt: skip
    """Thumbnail + coloured nuclei + scale bar, with the legend panel on the right."""
    drawn = scale_bar(draw_nuclei(thumb, factor, chunks, styles=styles), um_per_px=mpp * factor)
    panel = legend_panel(drawn.shape[0], styles=styles, counts=counts, title=title,
                         scale=max(1.0, drawn.shape[0] / 1500))  # fmt: skip
    h = max(drawn.shape[0], panel.shape[0])
    canvas = np.full((h, drawn.shape[1] + panel.shape[1], 3), 255, np.uint8)
    canvas[: drawn.shape[0], : drawn.shape[1]] = drawn
    canvas[: panel.shape[0], drawn.shape[1] :] = panel
    return canvas


def save_png(image: RGBImage, path: PathLikeStr, *, force: bool) -> Path:
    """Write an RGB image as PNG, atomically."""
    out = check_output(path, force=force)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return write_bytes_atomic(out, data.tobytes())
