"""Writing tiled pyramidal TIFFs that OpenSlide reads (generic TIFF, mpp in the resolution tags).

Memory stays bounded whatever the image size: every tile of every level is rendered on
demand by a callback and handed to tifffile through a generator. Used for synthetic and
mosaicked test/benchmark slides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from wsicell.atomic import atomic_path
from wsicell.types import Bounds, PathLikeStr, RGBImage, Size

RenderFn = Callable[[Bounds, Size], RGBImage]
"""render(level-0 bounds (x0, y0, x1, y1), output (width, height)) -> (h, w, 3) uint8."""


def write_pyramidal_tiff(
    path: PathLikeStr,
    render: RenderFn,
    *,
    size: Size,
    mpp: float,
    tile: int = 512,
    min_side: int = 1024,
    compression: str = "jpeg",
    quality: int = 90,
) -> Path:
    """Write a ``size`` (width, height) RGB pyramid, halving until a side is < ``min_side``.

    The file appears atomically (written under a temporary name, then renamed).
    """
    import tifffile

    path = Path(path)
    width, height = size
    levels = [(width, height)]
    while min(levels[-1]) // 2 >= min_side:
        w, h = levels[-1]
        levels.append((w // 2, h // 2))
    kwargs = {"compressionargs": {"level": quality}} if compression == "jpeg" else {}
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for index, (w, h) in enumerate(levels):
            ds = width / w
            res = 1e4 / (mpp * ds)  # pixels per centimetre
            tif.write(
                _tiles(render, w, h, ds, tile),
                shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                compression=compression, resolution=(res, res), resolutionunit="CENTIMETER",
                subfiletype=1 if index else 0, **kwargs,
            )  # fmt: skip
    return path


def _tiles(render: RenderFn, w: int, h: int, ds: float, tile: int) -> Iterator[RGBImage]:
    for ty in range(math.ceil(h / tile)):
        for tx in range(math.ceil(w / tile)):
            x0, y0 = tx * tile, ty * tile
            x1, y1 = min(x0 + tile, w), min(y0 + tile, h)
            pixels = render((round(x0 * ds), round(y0 * ds), round(x1 * ds), round(y1 * ds)), (x1 - x0, y1 - y0))
            out = np.full((tile, tile, 3), 255, np.uint8)
            out[: y1 - y0, : x1 - x0] = pixels
            yield out
