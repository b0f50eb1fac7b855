"""The cell store: one Zarr v3 store, one group per slide.

Layout (schema version 1; documented in ``docs/store.md``)::

    cells.zarr/                      attrs: schema_version, created_by, extract_settings
      slides/<slide_id>/             attrs: path, name, fingerprint, mpp, width, height,
                                            settings, n_tiles, seconds, n_cells, ...,
                                            complete (written last)
        crops     (n, S, S, 3) uint8   chunks (1024, S, S, 3)
        centroid  (n, 2) float32       (x, y) level-0 pixels
        contour   (n, P, 2) float32    polygon, P points, level-0 pixels
        bbox      (n, 4) int32         (x0, y0, x1, y1) level-0 pixels, half-open
        features  (n, F) float32       morphology; attrs.names lists the F columns
        tile_features (n, D) float16   the HV-net's encoder around the nucleus (segment/tile_features.py);
                                       only when the segmenter has an encoder (the HV-nets)
        embedding (n, D) float16       written by ``embed``; attrs: model_sha256, run, encoder, ...
        cluster   (n,) int32           written by ``cluster``
        distance  (n,) float32         written by ``cluster``
      clustering/                     attrs: k, seed, model, metric, objective, ...
        centroids (k, D) float32

Only complete slide groups are ever read. An incomplete group is deleted and redone.
What made the embeddings and the clustering is recorded in attrs typed by
``wsicell.provenance`` (``EmbeddingModel``, ``SlideEmbedding``, ``ClusteringRecord``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.codecs

from wsicell.errors import StoreError
from wsicell.types import PathLikeStr

SCHEMA_VERSION = 1
CELL_CHUNK = 1024
"""Cells per chunk of the per-cell arrays: the unit of writing and of fast reading."""

CELL_ARRAYS = ("crops", "centroid", "contour", "bbox", "features", "tile_features")


def compressor() -> zarr.codecs.BloscCodec:
    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle=zarr.codecs.BloscShuffle.bitshuffle)


@dataclass(frozen=True)
class CellBatch:
    """Cells of one tile (or any group of cells), aligned row by row."""

    crops: np.ndarray  # (n, S, S, 3) uint8
    centroid: np.ndarray  # (n, 2) float32, (x, y) level 0
    contour: np.ndarray  # (n, P, 2) float32, level 0
    bbox: np.ndarray  # (n, 4) int32, (x0, y0, x1, y1) level 0
    features: np.ndarray  # (n, F) float32
    tile_features: np.ndarray | None = None  # (n, D) float16; D = 0 (the default) for a segmenter without them

    def __post_init__(self) -> None:
        if self.tile_features is None:
            object.__setattr__(self, "tile_features", np.zeros((len(self.centroid), 0), np.float16))

    def __len__(self) -> int:
        return len(self.centroid)

    @staticmethod
    def concat(batches: list[CellBatch]) -> CellBatch:
        return CellBatch(*(np.concatenate([getattr(b, n) for b in batches]) for n in CELL_ARRAYS))

    def slice(self, start: int, stop: int) -> CellBatch:
        return CellBatch(*(getattr(self, n)[start:stop] for n in CELL_ARRAYS))

    def take(self, rows: np.ndarray) -> CellBatch:
        """The cells at ``rows`` (integer indices), in that order."""
        return CellBatch(*(getattr(self, n)[rows] for n in CELL_ARRAYS))


def slide_id_for(path: PathLikeStr, fingerprint: str) -> str:
    """A stable id: the file's stem (made key-safe) and the fingerprint's first 8 hex digits."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "slide"
    return f"{stem}-{fingerprint[:8]}"


class SlideCells:
    """Read (and annotate) one slide's group."""

    def __init__(self, group: zarr.Group, slide_id: str) -> None:
        self.group = group
        self.id = slide_id

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))

    @property
    def n_cells(self) -> int:
        return int(self.group.attrs.get("n_cells", 0))

    @property
    def path(self) -> str:
        return str(self.group.attrs.get("path", ""))

    @property
    def mpp(self) -> float:
        return float(self.group.attrs["mpp"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.group["features"].attrs.get("names", []))

    def has(self, name: str) -> bool:
        return name in self.group.array_keys()

    def array(self, name: str) -> zarr.Array:
        if not self.has(name):
            raise StoreError(f"slide {self.id} has no '{name}' array")
        return self.group[name]

    def create_array(
        self, name: str, *, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...], attrs: dict | None = None
    ) -> zarr.Array:
        """Create (replacing any existing) a per-slide array, e.g. embeddings."""
        arr = zarr.create_array(
            self.group.store,
            name=f"{self.group.path}/{name}",
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compressors=compressor(),
            overwrite=True,
            attributes=attrs or {},
        )
        return arr

    def set_attrs(self, **values: Any) -> None:
        self.group.attrs.update(values)

    def iter_chunks(self, name: str) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start, rows) over whole chunks of a per-cell array, in order."""
        arr = self.array(name)
        step = arr.chunks[0]
        for start in range(0, arr.shape[0], step):
            yield start, arr[start : start + step]


class SlideWriter:
    """Appends cells to a new slide group in whole chunks; ``finish`` marks it complete."""

    def __init__(self, cells: SlideCells, *, crop_size: int, contour_points: int, feature_names: list[str]) -> None:
        self.cells = cells
        self._pending: list[CellBatch] = []
        self._pending_n = 0
        self._written = 0
        g, s, p, f = cells.group, crop_size, contour_points, len(feature_names)
        specs = {
            "crops": ((0, s, s, 3), "uint8", (CELL_CHUNK, s, s, 3)),
            "centroid": ((0, 2), "float32", (CELL_CHUNK * 16, 2)),
            "contour": ((0, p, 2), "float32", (CELL_CHUNK * 4, p, 2)),
            "bbox": ((0, 4), "int32", (CELL_CHUNK * 16, 4)),
            "features": ((0, f), "float32", (CELL_CHUNK * 16, f)),
        }
        self._chunk_rows = CELL_CHUNK * 16  # a multiple of every array's row chunk
        for name, (shape, dtype, chunks) in specs.items():
            zarr.create_array(
                g.store, name=f"{g.path}/{name}", shape=shape, dtype=dtype, chunks=chunks,
                compressors=compressor(), overwrite=True,
            )  # fmt: skip
        g["features"].attrs["names"] = list(feature_names)

    @property
    def n_cells(self) -> int:
        return self._written + self._pending_n

    def append(self, batch: CellBatch) -> None:
        if len(batch) == 0:
            return
        self._pending.append(batch)
        self._pending_n += len(batch)
        if self._pending_n >= CELL_CHUNK:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        data = CellBatch.concat(self._pending)
        n = len(data) if final else (len(data) // CELL_CHUNK) * CELL_CHUNK
        if n == 0:
            return
        head, rest = data.slice(0, n), data.slice(n, len(data))
        start, stop = self._written, self._written + n
        dim = head.tile_features.shape[1]
        if dim and not self.cells.has("tile_features"):  # the first cells tell the segmenter's D
            g = self.cells.group
            zarr.create_array(
                g.store, name=f"{g.path}/tile_features", shape=(0, dim), dtype="float16",
                chunks=(CELL_CHUNK * 4, dim), compressors=compressor(), overwrite=True,
            )  # fmt: skip
        for name in CELL_ARRAYS:
            if name == "tile_features" and not dim:
                continue
            arr = self.cells.group[name]
            arr.resize((stop, *arr.shape[1:]))
            arr[start:stop] = getattr(head, name)
        self._written = stop
        self._pending = [rest] if len(rest) else []
        self._pending_n = len(rest)

    def finish(self, **attrs: Any) -> int:
        """Write what is buffered, then the attributes, then ``complete`` last."""
        self._flush(final=True)
        self.cells.group.attrs.update({**attrs, "n_cells": self._written})
        self.cells.group.attrs["complete"] = True
        return self._written


class CellStore:
    """A wsicell Zarr store. Open with :meth:`open` (read) or :meth:`create_or_open` (write)."""

    def __init__(self, root: zarr.Group, path: Path) -> None:
        self.root = root
        self.path = path

    @classmethod
    def open(cls, path: PathLikeStr, *, mode: str = "r") -> CellStore:
        """Open an existing store (``mode`` "r" or "r+")."""
        p = Path(path)
        if not p.exists():
            raise StoreError(f"{p}: no cell store here; create one with `wsicell extract SLIDES --store {p}`")
        try:
            root = zarr.open_group(str(p), mode=mode)
        except Exception as exc:  # zarr raises several types for a non-store folder
            raise StoreError(f"{p}: exists but is not a Zarr cell store ({exc.__class__.__name__})") from None
        version = root.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{p}: not a wsicell store of schema {SCHEMA_VERSION} (found {version!r})")
        return cls(root, p)

    @classmethod
    def create_or_open(cls, path: PathLikeStr) -> CellStore:
        """Open a store for writing, creating it if needed."""
        p = Path(path)
        if p.exists():
            if not p.is_dir():
                raise StoreError(f"{p}: is a file, not a cell store folder; choose another output")
            return cls.open(p, mode="r+")
        ancestor = p.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise StoreError(f"{p}: cannot create the store: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK):
            raise StoreError(f"{p}: cannot create the store: {ancestor} is not writable")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            root = zarr.open_group(str(p), mode="w-")
        except OSError as exc:
            raise StoreError(f"{p}: cannot create the store ({exc.strerror or exc})") from None
        root.attrs.update({"schema_version": SCHEMA_VERSION, "created_by": "wsicell"})
        root.create_group("slides")
        return cls(root, p)

    # -- slides -----------------------------------------------------------------------
    def slide_ids(self) -> list[str]:
        if "slides" not in self.root:
            return []
        return sorted(self.root["slides"].group_keys())

    def slides(self, *, complete_only: bool = True) -> list[SlideCells]:
        out = [self.slide(i) for i in self.slide_ids()]
        return [s for s in out if s.complete or not complete_only]

    def slide(self, slide_id: str) -> SlideCells:
        try:
            group = self.root[f"slides/{slide_id}"]
        except KeyError:
            raise StoreError(f"{self.path}: no slide '{slide_id}' in the store") from None
        return SlideCells(group, slide_id)

    def find_slide(self, *, fingerprint: str) -> SlideCells | None:
        """The complete slide group with this content fingerprint, if any."""
        for s in self.slides():
            if s.attrs.get("fingerprint") == fingerprint:
                return s
        return None

    def begin_slide(
        self, slide_id: str, *, attrs: dict[str, Any], crop_size: int, contour_points: int, feature_names: list[str]
    ) -> SlideWriter:
        """Start (or restart) a slide group; any previous incomplete group is replaced."""
        if slide_id in self.slide_ids():
            del self.root["slides"][slide_id]
        group = self.root["slides"].create_group(slide_id)
        group.attrs.update({**attrs, "complete": False, "n_cells": 0})
        return SlideWriter(
            SlideCells(group, slide_id), crop_size=crop_size, contour_points=contour_points, feature_names=feature_names
        )

    def discard_slide(self, slide_id: str) -> None:
        """Delete a slide group if present (used for a failed, incomplete extraction)."""
        if slide_id in self.slide_ids():
            del self.root["slides"][slide_id]

    def total_cells(self) -> int:
        return sum(s.n_cells for s in self.slides())

    # -- clustering -------------------------------------------------------------------
    @property
    def clustering(self) -> zarr.Group | None:
        return self.root["clustering"] if "clustering" in self.root.group_keys() else None
