"""Whole-slide readers: one interface, an OpenSlide reader and an in-memory reader.

``open_slide`` is the factory. Every reader answers in level-0 pixel coordinates and
knows its physical resolution (``mpp``, µm per level-0 pixel); ``read`` returns a region
resampled to any working resolution from the best pyramid level.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from wsicell.errors import SlideError
from wsicell.types import Bounds, IntPoint, PathLikeStr, RGBImage, Size

SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm",
)  # fmt: skip
"""File types OpenSlide reads; folders are searched for these."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Plain images (fields of view, tiles, exported regions): read whole into memory, taken when
named explicitly (not from folders: slide folders often hold thumbnails and overlays too).
They carry no resolution, so their µm/px must be given (``--slide-mpp``). TIFFs always go to
OpenSlide, which reads tiled TIFFs; a truncated slide must not pass for a plain image."""

MAX_IMAGE_PIXELS = 100_000_000
"""Largest plain image read whole (300 MB of RGB, per extraction thread): extraction's memory
stays bounded; a larger image belongs in a tiled pyramidal TIFF."""

MPP_RANGE = (0.05, 20.0)
"""Plausible µm/px at level 0; anything outside is treated as broken metadata."""

MPP_HINT = "pass --slide-mpp (for example 0.25 for a 40x scan, 0.5 for 20x)"


class Slide(ABC):
    """A pyramidal RGB image with a physical resolution."""

    path: str
    mpp: float
    level_dimensions: tuple[Size, ...]
    level_downsamples: tuple[float, ...]

    @property
    def dimensions(self) -> Size:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @abstractmethod
    def read_region(self, location: IntPoint, level: int, size: Size) -> RGBImage:
        """RGB pixels of ``size`` at ``level`` whose top-left is ``location`` (level 0).

        Pixels outside the slide are white.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample``."""
        best = 0
        for level, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + 1e-3):
                best = level
        return best

    def read(self, bounds: Bounds, mpp: float) -> RGBImage:
        """The level-0 region ``bounds`` resampled to ``mpp`` µm/px.

        The output is ``round(width * slide.mpp / mpp)`` x ``round(height * ...)`` pixels.
        """
        x0, y0, x1, y1 = bounds
        scale = mpp / self.mpp  # level-0 pixels per output pixel
        out_w = max(1, round((x1 - x0) / scale))
        out_h = max(1, round((y1 - y0) / scale))
        level = self.best_level(scale)
        ds = self.level_downsamples[level]
        w = max(1, math.ceil((x1 - x0) / ds))
        h = max(1, math.ceil((y1 - y0) / ds))
        pixels = self.read_region((x0, y0), level, (w, h))
        if (w, h) == (out_w, out_h):
            return pixels
        interp = cv2.INTER_AREA if w > out_w else cv2.INTER_LINEAR
        return cv2.resize(pixels, (out_w, out_h), interpolation=interp)

    def grid_scale(self, mpp: float) -> float:
        """Level-0 pixels per pixel of the working grid at ``mpp`` µm/px."""
        return mpp / self.mpp

    def grid_size(self, mpp: float) -> Size:
        """(width, height) of the whole slide on the working grid at ``mpp``."""
        s = self.grid_scale(mpp)
        w, h = self.dimensions
        return max(1, math.ceil(w / s - 1e-6)), max(1, math.ceil(h / s - 1e-6))

    def read_grid(self, origin: IntPoint, size: Size, *, mpp: float) -> RGBImage:
        """Pixels of the slide-wide working grid at ``mpp`` µm/px.

        Working pixel (u, v) covers level-0 ``[u*s, (u+1)*s) x [v*s, (v+1)*s)`` with
        ``s = mpp / slide.mpp``. Resampling weights depend only on the global pixel index,
        so overlapping reads give bit-identical pixels wherever they overlap (tiles cut at
        any size see the same image). Pixels outside the slide are white.
        """
        ox, oy = origin
        w, h = size
        s = self.grid_scale(mpp)
        level = self.best_level(s)
        ds = self.level_downsamples[level]
        r = s / ds  # level pixels per working pixel (>= ~1 unless the slide is coarser)
        if abs(r - 1.0) < 1e-9:  # same grid: a plain read
            return self.read_region((round(ox * ds), round(oy * ds)), level, (w, h))
        # Integer part of the reduction: exact block means on a globally aligned sub-grid.
        k = max(1, math.floor(r + 1e-9))
        r /= k  # in [1, 2) unless enlarging
        qx, fx = _bilinear_map(ox, w, r)
        qy, fy = _bilinear_map(oy, h, r)
        jx0, jx1 = int(qx[0]) * k, (int(qx[-1]) + 2) * k  # source columns at ``level``
        jy0, jy1 = int(qy[0]) * k, (int(qy[-1]) + 2) * k
        src = self.read_region((round(jx0 * ds), round(jy0 * ds)), level, (jx1 - jx0, jy1 - jy0))
        if k > 1:
            sh, sw = src.shape[0] // k, src.shape[1] // k
            src = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)  # exact k x k means
        map1 = np.empty((h, w, 2), np.int16)  # integer source (x, y), local
        map1[..., 0] = (qx - qx[0])[None, :]
        map1[..., 1] = (qy - qy[0])[:, None]
        map2 = (fy[:, None] * cv2.INTER_TAB_SIZE + fx[None, :]).astype(np.uint16)
        return cv2.remap(src, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def thumbnail(self, max_side: int = 1024) -> tuple[RGBImage, float]:
        """A downsampled whole-slide image and its downsample factor from level 0."""
        w, h = self.dimensions
        factor = max(w, h) / max_side if max(w, h) > max_side else 1.0
        image = self.read((0, 0, w, h), self.mpp * factor)
        return image, w / image.shape[1]


class OpenSlideSlide(Slide):
    """A slide file read through OpenSlide."""

    def __init__(self, path: PathLikeStr, *, mpp: float | None = None) -> None:
        import openslide

        self.path = str(path)
        try:
            self._osr = openslide.OpenSlide(self.path)
        except openslide.OpenSlideUnsupportedFormatError:
            if _looks_like_tiff(path):
                raise SlideError(path, "a TIFF-based file OpenSlide cannot parse: truncated or corrupt, "
                                       "or a plain untiled TIFF (save those as PNG)") from None  # fmt: skip
            raise SlideError(path, "not a slide format OpenSlide can read") from None
        except openslide.OpenSlideError as exc:
            raise SlideError(path, f"corrupt or truncated slide ({exc})") from None
        self.level_dimensions = tuple(self._osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        self.mpp = _resolve_mpp(path, self._osr.properties, mpp)
        self.properties = dict(self._osr.properties)

    def read_region(self, location: IntPoint, level: int, size: Size) -> RGBImage:
        import openslide

        try:
            rgba = np.asarray(self._osr.read_region(location, level, size))
        except openslide.OpenSlideError as exc:
            raise SlideError(self.path, f"cannot read pixels, file corrupt or truncated ({exc})") from None
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255  # transparent = outside the scanned area
        return rgb

    def close(self) -> None:
        self._osr.close()


class VirtualSlide(Slide):
    """An in-memory slide from an RGB array (tests, labelled tiles, synthetic data)."""

    def __init__(self, image: RGBImage, *, mpp: float, path: str = "<memory>", levels: int = 3) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("VirtualSlide needs an (H, W, 3) uint8 image")
        self.path = path
        self.mpp = float(mpp)
        self._levels = [image]
        for _ in range(1, levels):
            prev = self._levels[-1]
            if min(prev.shape[:2]) < 4:
                break
            self._levels.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA))
        h, w = image.shape[:2]
        self.level_dimensions = tuple((lv.shape[1], lv.shape[0]) for lv in self._levels)
        self.level_downsamples = tuple(w / d[0] for d in self.level_dimensions)

    def read_region(self, location: IntPoint, level: int, size: Size) -> RGBImage:
        src = self._levels[level]
        ds = self.level_downsamples[level]
        x, y = int(location[0] // ds), int(location[1] // ds)
        w, h = size
        out = np.full((h, w, 3), 255, np.uint8)
        sx0, sy0 = max(x, 0), max(y, 0)
        sx1, sy1 = min(x + w, src.shape[1]), min(y + h, src.shape[0])
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = src[sy0:sy1, sx0:sx1]
        return out


def open_slide(path: PathLikeStr, *, mpp: float | None = None, check: bool = True) -> Slide:
    """Open a slide file; ``mpp`` overrides (or supplies) its level-0 µm/px.

    Raises :class:`SlideError` naming the file and the reason for a missing file, a file
    OpenSlide cannot read, a truncated file (``check`` reads the smallest level once), or
    missing/implausible resolution metadata without an override.
    """
    p = Path(path)
    if not p.exists():
        raise SlideError(path, "file not found")
    if not p.is_file():
        raise SlideError(path, "not a file")
    if p.stat().st_size == 0:
        raise SlideError(path, "empty file")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return open_image(p, mpp=mpp)
    slide = OpenSlideSlide(p, mpp=mpp)
    if check:
        level = slide.level_count - 1
        w, h = slide.level_dimensions[level]
        if w * h <= 4096 * 4096:
            slide.read_region((0, 0), level, (w, h))
    return slide


def open_image(path: PathLikeStr, *, mpp: float | None) -> VirtualSlide:
    """A plain image file (``IMAGE_SUFFIXES``) as a slide at ``mpp`` µm/px, which it must be
    given: such files carry no reliable resolution."""
    if mpp is None:
        raise SlideError(path, f"a plain image has no resolution metadata; {MPP_HINT}")
    mpp = _resolve_mpp(path, {}, mpp)
    width, height = _image_size(path)
    if width * height > MAX_IMAGE_PIXELS:
        raise SlideError(path, f"a plain image of {width:,} x {height:,} px is too large to read whole "
                               f"(limit {MAX_IMAGE_PIXELS:,} px); save it as a tiled pyramidal TIFF")  # fmt: skip
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8-bit BGR whatever the file's depth
    if image is None:
        raise SlideError(path, "cannot decode the image (truncated or corrupt)")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise SlideError(path, f"image of {image.shape[1]} x {image.shape[0]} px: too small to segment")
    return VirtualSlide(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mpp=mpp, path=str(path))


def _image_size(path: PathLikeStr) -> Size:
    """(width, height) from a plain image's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is ours
        try:
            with Image.open(path) as image:
                return image.size
        except Image.DecompressionBombError:  # Pillow's own ceiling, far above MAX_IMAGE_PIXELS
            raise SlideError(path, f"a plain image too large to read whole (over {MAX_IMAGE_PIXELS:,} px); "
                                   "save it as a tiled pyramidal TIFF") from None  # fmt: skip
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise SlideError(path, "cannot decode the image (truncated or corrupt)") from None


def fingerprint(path: PathLikeStr) -> str:
    """A fast content fingerprint: sha256 of the size, the first and the last MiB."""
    p = Path(path)
    size = p.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def find_slides(paths: list[PathLikeStr]) -> list[Path]:
    """Expand files and folders (recursively) into slide paths, in a stable order.

    Paths given explicitly are kept whatever their suffix (a bad one fails later with a
    clear message; plain images, ``IMAGE_SUFFIXES``, are read as such); folders contribute
    files with a known slide suffix.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SLIDE_SUFFIXES))
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def require_slides(paths: list[PathLikeStr]) -> list[Path]:
    """:func:`find_slides`, or a :class:`SlideError` when it finds nothing, saying how to name
    the plain images when the folders hold only those."""
    found = find_slides(paths)
    if found:
        return found
    images = sorted(f for raw in paths if Path(raw).is_dir() for f in Path(raw).rglob("*")
                    if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip
    reason = "no slide files found"
    if images:
        example = images[0].parent / f"*{images[0].suffix}"
        reason += (f", but {len(images)} plain image(s): name them, with their resolution, "
                   f"e.g. {example} --slide-mpp 0.5")  # fmt: skip
    raise SlideError(", ".join(map(str, paths)) or "(none)", reason)


def _looks_like_tiff(path: PathLikeStr) -> bool:
    """TIFF (and BigTIFF) magic bytes: SVS, generic TIFF, NDPI, SCN, BIF... all start so."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _bilinear_map(start: int, n: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer source index and 1/32 fraction of working pixels ``start .. start+n-1``.

    Pixel centres map as ``c = (u + 0.5) * r - 0.5`` in source-index space. Both parts are
    computed from the global index ``u`` only, so every window gets identical samples
    (OpenCV's fixed-point bilinear interpolation, ``INTER_TAB_SIZE`` steps per pixel).
    """
    u = np.arange(start, start + n, dtype=np.float64)
    c = (u + 0.5) * r - 0.5
    q = np.floor(c).astype(np.int64)
    f = np.rint((c - q) * cv2.INTER_TAB_SIZE).astype(np.int64)
    carry = f == cv2.INTER_TAB_SIZE
    q[carry] += 1
    f[carry] = 0
    return q, f


def _resolve_mpp(path: PathLikeStr, properties: dict, override: float | None) -> float:
    if override is not None:
        if not (MPP_RANGE[0] <= override <= MPP_RANGE[1]):
            raise SlideError(path, f"--slide-mpp {override} is outside the plausible range {MPP_RANGE}")
        return float(override)
    values = []
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        with contextlib.suppress(KeyError, ValueError):
            values.append(float(properties[key]))
    if not values:
        raise SlideError(path, f"no resolution (microns-per-pixel) metadata; {MPP_HINT}")
    mpp = sum(values) / len(values)
    if not (MPP_RANGE[0] <= mpp <= MPP_RANGE[1]):
        raise SlideError(path, f"implausible resolution metadata ({mpp:g} µm/px); {MPP_HINT}")
    return mpp
