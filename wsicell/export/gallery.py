"""The crop gallery: a montage of sample cells per cluster, one labelled band per cluster.

For naming clusters: a pathologist looks at each band and writes the cell type into the
cluster-names YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from wsicell.errors import ConfigError, StoreError
from wsicell.export.names import ClusterStyle
from wsicell.export.picture import font
from wsicell.store import SlideCells
from wsicell.types import PathLikeStr, RGBImage


def sample_crops(
    slides: list[SlideCells], *, k: int, per_cluster: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Up to ``per_cluster`` random crops of each cluster, drawn over all slides.

    Each slide proposes up to ``per_cluster`` random cells per cluster; the final pick
    weights a slide's proposals by its share of the cluster, so big slides are not
    under-represented. Only the chunks holding a picked crop are decoded.
    Returns the crops per cluster ((m_c, S, S, 3) uint8) and the cluster sizes (k,).
    """
    rng = np.random.default_rng(seed)
    proposals: list[list[tuple[int, int, float]]] = [[] for _ in range(k)]  # (slide, row, weight)
    sizes = np.zeros(k, np.int64)
    for si, s in enumerate(slides):
        labels = s.array("cluster")[:]  # (n,) int32: 4 bytes a cell
        for c in range(k):
            rows = np.flatnonzero(labels == c)
            sizes[c] += len(rows)
            if len(rows) == 0:
                continue
            pick = rng.choice(rows, size=min(per_cluster, len(rows)), replace=False)
            weight = len(rows) / len(pick)
            proposals[c].extend((si, int(r), weight) for r in pick)
    chosen: list[list[tuple[int, int]]] = []
    for c in range(k):
        props = proposals[c]
        if len(props) > per_cluster:
            w = np.array([p[2] for p in props])
            idx = rng.choice(len(props), size=per_cluster, replace=False, p=w / w.sum())
            props = [props[i] for i in sorted(idx)]
        chosen.append([(p[0], p[1]) for p in props])
    wanted: dict[int, list[int]] = {}
    for picks in chosen:
        for si, r in picks:
            wanted.setdefault(si, []).append(r)
    crops: dict[tuple[int, int], np.ndarray] = {}
    for si, rows in wanted.items():
        rows = sorted(set(rows))
        data = slides[si].array("crops").get_orthogonal_selection(np.asarray(rows))  # (m, S, S, 3)
        crops.update({(si, r): data[j] for j, r in enumerate(rows)})
    return [
        np.stack([crops[p] for p in picks]) if picks else np.zeros((0, 1, 1, 3), np.uint8) for picks in chosen
    ], sizes


def gallery_picture(
    crops: list[np.ndarray], *, styles: list[ClusterStyle], sizes: np.ndarray, per_row: int = 16,
    cell_px: int = 64, title: str = "",
) -> RGBImage:  # fmt: skip
    """One band per cluster: a colour swatch, name, size and share, then its crops."""
    total = max(int(sizes.sum()), 1)
    gap = 3
    fsize = max(12, cell_px // 4)
    f, fb = font(fsize), font(round(fsize * 1.25))
    label_w = 16 * fsize
    lines = [max(1, math.ceil(len(c) / per_row)) for c in crops]
    band_h = [n * (cell_px + gap) + gap for n in lines]
    title_h = round(fsize * 2.4) if title else 0
    width = label_w + per_row * (cell_px + gap) + gap
    canvas = Image.new("RGB", (width, title_h + sum(band_h) + gap * len(crops)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap * 3, round(fsize * 0.6)), title, fill=(20, 20, 20), font=fb)
    y = title_h
    for c, (cells, style) in enumerate(zip(crops, styles, strict=True)):
        shade = (245, 245, 245) if c % 2 == 0 else (232, 232, 232)
        draw.rectangle([0, y, width, y + band_h[c]], fill=shade)
        draw.rectangle([0, y, 10, y + band_h[c]], fill=style.color)
        label = style.name if style.name == f"Cluster {c}" else f"{c}: {style.name}"
        draw.text((18, y + gap * 2), label, fill=(20, 20, 20), font=fb)
        draw.text((18, y + gap * 2 + round(fsize * 1.6)),
                  f"{int(sizes[c]):,} cells ({100 * sizes[c] / total:.1f} %)", fill=(70, 70, 70), font=f)  # fmt: skip
        if len(cells) == 0:
            draw.text((label_w, y + gap * 2), "(no cells)", fill=(120, 120, 120), font=f)
        for j, crop in enumerate(cells):
            tile = cv2.resize(crop, (cell_px, cell_px), interpolation=cv2.INTER_CUBIC)
            x0 = label_w + (j % per_row) * (cell_px + gap) + gap
            y0 = y + (j // per_row) * (cell_px + gap) + gap
            canvas.paste(Image.fromarray(tile), (x0, y0))
        y += band_h[c] + gap
    return np.asarray(canvas)


@dataclass(frozen=True)
class GalleryResult:
    path: Path
    k: int
    width: int
    height: int


def write_gallery(
    *, store: PathLikeStr, out: PathLikeStr, per_cluster: int = 32, per_row: int = 16,
    names: PathLikeStr | None = None, seed: int = 0, force: bool = False,
) -> GalleryResult:  # fmt: skip
    """The gallery PNG of the store's current clustering: ``per_cluster`` random crops per
    cluster (``seed``), ``per_row`` a line, names and colours from ``names`` (YAML)."""
    from wsicell.cluster import load_clustering, slide_labels_current
    from wsicell.export.names import load_styles
    from wsicell.export.output import check_output
    from wsicell.export.picture import save_png
    from wsicell.store import CellStore

    if per_cluster < 1 or per_row < 1:
        raise ConfigError("--per-cluster and --per-row must be >= 1")
    check_output(out, force=force)
    cells = CellStore.open(store)
    clustering = load_clustering(cells)
    styles = load_styles(names, k=clustering.k)
    slides = [s for s in cells.slides() if slide_labels_current(s, clustering)]
    if not slides:
        raise StoreError(f"{store}: no slide carries the current clustering; run `wsicell cluster --store {store}`")
    crops, sizes = sample_crops(slides, k=clustering.k, per_cluster=per_cluster, seed=seed)
    title = f"{cells.path.name}: k = {clustering.k}, {int(sizes.sum()):,} cells, {per_cluster} random crops per cluster"
    image = gallery_picture(crops, styles=styles, sizes=sizes, per_row=min(per_row, per_cluster), title=title)
    path = save_png(image, out, force=force)
    return GalleryResult(path, clustering.k, image.shape[1], image.shape[0])
