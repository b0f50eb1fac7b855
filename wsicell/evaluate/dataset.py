"""Labelled tiles (CoNSeP layout) -> a cell store with a per-cell ``label``.

Layout of a dataset folder (one sub-folder per split, e.g. ``train/`` and ``test/``)::

    DATASET/SPLIT/NAME.jpg    RGB tile (.jpg, .jpeg, .png or .tif)
    DATASET/SPLIT/NAME.npz    inst     (H, W) integer instance map, 0 = background, 1..n
                              type     (n,) integer class of instance i+1 (1..C)
                              centroid (n, 2) float (x, y) of each instance (checked for n)
    DATASET/classes.txt       optional: class names, line i = class i (default: CoNSeP's)

Crops are built by the extraction's own crop rule (``wsicell.segment.cells.cells_from_labels``)
from the instance masks, so the evaluated path is the product's path. A split becomes one Zarr
cell store with one group (id = the split's name) holding the usual per-cell arrays plus

    label  (n,) int32   class of the cell (from ``type``)
    tile   (n,) int32   index into the group's ``attrs.tiles`` (tile names)
    source (n,) int32   index into ``attrs.sources``: the image a tile was cut from
                        (``NAME`` minus a trailing ``_NNN``, e.g. ``train_10_003`` -> ``train_10``)
    inst   (n,) int32   instance id of the cell in its tile's ``inst`` map

and ``tile_features`` as extraction keeps them (``wsicell.segment.tile_features``): from the
segmenter's own network for segmented nuclei, from the default HV-net for labelled ones.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsicell.atomic import atomic_path
from wsicell.errors import DatasetError, StoreError
from wsicell.evaluate.nuclei import Nuclei, rescale_tile
from wsicell.progress import track
from wsicell.segment.metrics import centroid_pairs, instance_centroids
from wsicell.store import CellBatch, CellStore
from wsicell.types import PathLikeStr

CONSEP_CLASSES = ("other", "inflammatory", "epithelial", "spindle")
CONSEP_MPP = 0.25 * 1000 / 1024
"""CoNSeP is 40x (~0.25 µm/px); its 256-px tiles are 1000 px images cut 4 x 4, resized 1.024x."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
DATASET_FORMAT = 2
"""Bumped when the way a split store is built changes (a cached store of another format is rebuilt)."""


@dataclass(frozen=True)
class Tile:
    name: str
    image: Path
    npz: Path


@dataclass(frozen=True)
class LabelledCells:
    """One split's cells, in memory, aligned row by row."""

    crops: np.ndarray  # (n, S, S, 3) uint8
    features: np.ndarray  # (n, F) float32, morphology
    feature_names: list[str]
    labels: np.ndarray  # (n,) int32, 1..C
    tile: np.ndarray  # (n,) int32
    source: np.ndarray  # (n,) int32
    class_names: list[str]
    store: Path
    centroid: np.ndarray  # (n, 2) float64, tile px (x, y)
    mpp: float  # µm per tile px
    tile_features: np.ndarray | None = None  # (n, D) float32: the default HV-net's (segment/tile_features.py)

    def __len__(self) -> int:
        return len(self.labels)


def list_tiles(dataset: PathLikeStr, split: str) -> list[Tile]:
    """The tiles of ``dataset/split`` in name order; DatasetError if the layout is wrong."""
    root = Path(dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DatasetError(
            f"{folder}: no '{split}' split folder (found: {', '.join(found) or 'no sub-folders'}); "
            "expected DATASET/SPLIT/NAME.jpg + NAME.npz"
        )
    npzs = sorted(folder.glob("*.npz"))
    if not npzs:
        raise DatasetError(f"{folder}: no .npz label files (expected NAME.jpg + NAME.npz per tile)")
    tiles = []
    for npz in npzs:
        image = next((npz.with_suffix(s) for s in IMAGE_SUFFIXES if npz.with_suffix(s).is_file()), None)
        if image is None:
            raise DatasetError(f"{npz}: no image beside it (expected {npz.stem}.jpg or .png)")
        tiles.append(Tile(name=npz.stem, image=image, npz=npz))
    return tiles


def read_tile(tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image HxWx3 uint8, inst HxW int32, type (n,) int32) of one tile, validated."""
    import cv2

    bgr = cv2.imread(str(tile.image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{tile.image}: cannot be read as an image")
    image = np.ascontiguousarray(bgr[:, :, ::-1])
    try:
        with np.load(tile.npz) as data:
            missing = [k for k in ("inst", "type") if k not in data.files]
            if missing:
                raise DatasetError(
                    f"{tile.npz}: missing array(s) {', '.join(missing)} (has: {', '.join(data.files)})"
                )
            inst = np.asarray(data["inst"])
            types = np.asarray(data["type"])
            centroid = np.asarray(data["centroid"]) if "centroid" in data.files else None
    except DatasetError:
        raise
    except Exception as exc:  # zip / pickle / truncation errors of every kind
        raise DatasetError(f"{tile.npz}: not a readable .npz ({exc.__class__.__name__}: {exc})") from None
    if inst.ndim != 2 or inst.shape != image.shape[:2]:
        raise DatasetError(f"{tile.npz}: inst has shape {inst.shape}, the image is {image.shape[:2]}")
    if not np.issubdtype(inst.dtype, np.integer) or not np.issubdtype(types.dtype, np.integer):
        raise DatasetError(f"{tile.npz}: inst and type must be integer arrays")
    if types.ndim != 1:
        raise DatasetError(f"{tile.npz}: type must be one-dimensional, got shape {types.shape}")
    n = int(inst.max()) if inst.size else 0
    if inst.min() < 0 or len(types) != n:
        raise DatasetError(f"{tile.npz}: inst holds instances 1..{n} but type has {len(types)} entries")
    if centroid is not None and centroid.shape != (n, 2) and not (n == 0 and centroid.size == 0):
        raise DatasetError(f"{tile.npz}: centroid has shape {centroid.shape}, expected ({n}, 2)")
    if n and types.min() < 1:
        raise DatasetError(f"{tile.npz}: type values must be >= 1 (class ids 1..C), found {types.min()}")
    return image, inst.astype(np.int32), types.astype(np.int32)


def class_names(dataset: PathLikeStr, n_classes: int) -> list[str]:
    """Names from ``classes.txt`` if present, else CoNSeP's (for 4 classes), else numbers."""
    path = Path(dataset) / "classes.txt"
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if len(names) < n_classes:
            raise DatasetError(f"{path}: {len(names)} names for {n_classes} classes")
        return names[:n_classes]
    if n_classes <= len(CONSEP_CLASSES):
        return list(CONSEP_CLASSES[:n_classes])
    return [f"class {i}" for i in range(1, n_classes + 1)]


def source_of(tile_name: str) -> str:
    """The image a tile was cut from: its name minus a trailing ``_NNN``."""
    return re.sub(r"_\d+$", "", tile_name) or tile_name


def tile_cells(
    image: np.ndarray, inst: np.ndarray, *, mpp: float, crop_size: int, window_scale: float, where: str,
    tile_maps: Callable[[np.ndarray, float], Any] | None = None,
) -> tuple[CellBatch, np.ndarray]:
    """The cells of one tile by the extraction's crop rule, and each cell's instance id; with
    ``tile_maps`` (image, mpp -> ``TileFeatureMaps``), their tile features as extraction keeps them."""
    from wsicell.segment.cells import cells_from_labels

    batch = cells_from_labels(
        image, inst, mpp=mpp, origin=(0, 0), scale=1.0, crop_size=crop_size, window_scale=window_scale
    )
    if tile_maps is not None:
        batch = _with_tile_features(batch, tile_maps(image, mpp))
    return batch, _match_instances(batch.centroid, inst, where=where)


def segmented_cells(
    image: np.ndarray, inst: np.ndarray, *, segmenter: Any, mpp: float, crop_size: int, window_scale: float,
    match_um: float, tile_maps: Callable[[np.ndarray, float], Any] | None = None,
) -> tuple[CellBatch, np.ndarray]:
    """The cells a segmenter finds in one tile that match a labelled nucleus, and its id; with
    tile features from the segmenter when it has them, else from ``tile_maps`` when given."""
    from wsicell.segment.cells import cells_from_labels

    found, maps = segmenter.segment_with_features(image, mpp=mpp)
    if maps is None and tile_maps is not None:
        maps = tile_maps(image, mpp)
    batch = cells_from_labels(
        image, found, mpp=mpp, origin=(0, 0), scale=1.0, crop_size=crop_size, window_scale=window_scale
    )
    rows, cols = centroid_pairs(batch.centroid, instance_centroids(inst), radius=match_um / mpp)
    return _with_tile_features(batch.take(rows), maps), (cols + 1).astype(np.int32)


@functools.cache
def _default_hvnet() -> Any:  # -> HVNetModel, loaded once per process on first use
    from wsicell.segment.hvnet import HVNetModel

    return HVNetModel()  # the default segmenter's network, runtime and precision


def default_tile_maps(image: np.ndarray, mpp: float) -> Any:
    """The default HV-net's tile features of a tile (a ``TileFeatureMaps``): what extraction
    keeps with the default segmenter, without its post-processing."""
    return _default_hvnet().maps_and_features(image, mpp=mpp)[1]


def _with_tile_features(batch: CellBatch, maps: Any) -> CellBatch:
    """``batch`` with the tile features of ``maps`` (a ``TileFeatureMaps``, or None) at its
    centroids (origin 0, scale 1: tile px + 0.5)."""
    if maps is None:
        return batch
    return dataclasses.replace(batch, tile_features=maps.at(batch.centroid.astype(np.float64) - 0.5).astype(np.float16))


def _match_instances(centroid: np.ndarray, inst: np.ndarray, *, where: str) -> np.ndarray:
    """Instance id of each cell: the instance with the same centroid (the crop rule's rows are
    in its own order; its centroid is the mean of pixel centres, pixel (j, i) centred at j + 0.5)."""
    # centroid: nx2 (x, y) tile coordinates (origin 0, scale 1)
    if len(centroid) == 0:
        return np.zeros(0, np.int32)
    ref = instance_centroids(inst)  # (n, 2), NaN for an id with no pixel
    present = np.isfinite(ref[:, 0])
    d = np.linalg.norm(centroid[:, None, :].astype(np.float64) - ref[None, :, :], axis=2)  # (cells, n)
    d[:, ~present] = np.inf
    ids = d.argmin(axis=1)
    best = d[np.arange(len(ids)), ids]
    if np.any(best > 0.05) or len(np.unique(ids)) != len(ids):
        raise DatasetError(f"{where}: cannot align the crop rule's cells with the instance map")
    return (ids + 1).astype(np.int32)


def build_split_store(
    *,
    dataset: PathLikeStr,
    split: str,
    out: PathLikeStr,
    crop_size: int = 32,
    window_scale: float = 2.0,
    mpp: float = CONSEP_MPP,
    nuclei: Nuclei | None = None,
    progress: bool = True,
) -> Path:
    """Write (or reuse, when built with the same settings) ``out`` = the split's cell store.

    ``nuclei`` (nuclei.py): the labelled instances (default), or a segmenter's nuclei matched
    to them, optionally on tiles shown at a lower magnification. The store's attrs record
    ``labelled_nuclei`` (how many the tiles mark) beside the cells it holds."""
    from wsicell.segment.cells import FEATURE_NAMES

    nuclei = nuclei or Nuclei()
    out = Path(out)
    tiles = list_tiles(dataset, split)
    settings = {
        "format": DATASET_FORMAT, "dataset": str(Path(dataset).resolve()), "split": split,
        "crop_size": crop_size, "window_scale": window_scale, "mpp": mpp,
        "tiles": [t.name for t in tiles], "nuclei": nuclei.settings,
    }  # fmt: skip
    if _reusable(out, split, settings):
        return out
    tile_mpp = mpp / nuclei.scale
    from wsicell.segment import make_segmenter

    segmenter = None if nuclei.segmenter is None else make_segmenter(nuclei.segmenter)
    labelled_nuclei = 0

    batches, labels, tile_idx, inst_ids = [], [], [], []
    sources: list[str] = []
    source_idx = []
    n_classes = 0
    for i, tile in enumerate(track(tiles, label=f"cells of {split}", enabled=progress, unit="tiles")):
        image, inst, types = read_tile(tile)
        if len(types) == 0:
            continue  # a tile without nuclei
        n_classes = max(n_classes, int(types.max()))
        image, inst, types = rescale_tile(image, inst, types, scale=nuclei.scale)
        labelled_nuclei += len(types)
        if segmenter is None:
            batch, ids = tile_cells(
                image, inst, mpp=tile_mpp, crop_size=crop_size, window_scale=window_scale, where=str(tile.npz),
                tile_maps=default_tile_maps,
            )  # fmt: skip
        else:
            batch, ids = segmented_cells(
                image, inst, segmenter=segmenter, mpp=tile_mpp, crop_size=crop_size, window_scale=window_scale,
                match_um=nuclei.match_um, tile_maps=default_tile_maps,
            )  # fmt: skip
        src = source_of(tile.name)
        if src not in sources:
            sources.append(src)
        batches.append(batch)
        labels.append(types[ids - 1])
        inst_ids.append(ids)
        tile_idx.append(np.full(len(ids), i, np.int32))
        source_idx.append(np.full(len(ids), sources.index(src), np.int32))
    cells = CellBatch.concat(batches)
    if len(cells) == 0:
        raise DatasetError(f"{Path(dataset) / split}: the tiles hold no labelled instances")

    with atomic_path(out) as tmp:  # a folder (Zarr store): built aside, renamed into place
        store = CellStore.create_or_open(tmp)
        writer = store.begin_slide(
            split,
            attrs={"path": str(Path(dataset) / split), "name": split, "fingerprint": split, "mpp": tile_mpp},
            crop_size=crop_size,
            contour_points=cells.contour.shape[1],
            feature_names=list(FEATURE_NAMES),
        )
        writer.append(cells)
        extra = {
            "label": np.concatenate(labels).astype(np.int32),
            "tile": np.concatenate(tile_idx),
            "source": np.concatenate(source_idx),
            "inst": np.concatenate(inst_ids),
        }
        for name, values in extra.items():
            arr = writer.cells.create_array(name, shape=values.shape, dtype="int32", chunks=(1 << 16,))
            arr[:] = values
        writer.finish(
            settings=settings, tiles=[t.name for t in tiles], sources=sources,
            class_names=class_names(dataset, n_classes), labelled=True, labelled_nuclei=labelled_nuclei,
        )  # fmt: skip
    return out


def load_split(store_path: PathLikeStr) -> LabelledCells:
    """All cells of a split store written by :func:`build_split_store`."""
    store = CellStore.open(store_path)
    slides = store.slides()
    if len(slides) != 1 or not slides[0].attrs.get("labelled"):
        raise StoreError(f"{store_path}: not a labelled split store (build it with wsicell evaluate)")
    cells = slides[0]
    return LabelledCells(
        crops=cells.array("crops")[:],
        features=cells.array("features")[:],
        feature_names=cells.feature_names,
        labels=cells.array("label")[:],
        tile=cells.array("tile")[:],
        source=cells.array("source")[:],
        class_names=list(cells.attrs["class_names"]),
        store=Path(store_path),
        centroid=np.asarray(cells.array("centroid")[:], np.float64),
        mpp=cells.mpp,
        tile_features=np.asarray(cells.array("tile_features")[:], np.float32) if cells.has("tile_features") else None,
    )


def labelled_nuclei(store_path: PathLikeStr) -> int:
    """How many labelled nuclei the split's tiles mark (its cells are all of them, or, with a
    segmenter, the ones a detection matched)."""
    slide = CellStore.open(store_path).slides()[0]
    return int(slide.attrs.get("labelled_nuclei", slide.attrs.get("n_cells", 0)))


def _reusable(out: Path, split: str, settings: dict) -> bool:
    if not out.exists():
        return False
    try:
        slides = CellStore.open(out).slides()
    except StoreError:
        return False
    return len(slides) == 1 and slides[0].id == split and slides[0].attrs.get("settings") == settings


def build_union_store(*, stores: list[PathLikeStr], out: PathLikeStr) -> Path:
    """Write (or reuse) ``out``: one cell store holding the cells of several split stores, one
    group per split, without their labels (the transductive protocol trains on it)."""
    out = Path(out)
    sources = {str(Path(s).resolve()): CellStore.open(s).slides()[0].attrs.get("settings") for s in stores}
    if out.exists():
        try:
            existing = CellStore.open(out)
            if existing.root.attrs.get("union_of") == sources and len(existing.slides()) == len(stores):
                return out
        except StoreError:
            pass
    with atomic_path(out) as tmp:  # a folder (Zarr store): built aside, renamed into place
        union = CellStore.create_or_open(tmp)
        for path in stores:
            (cells,) = CellStore.open(path).slides()
            names = ("crops", "centroid", "contour", "bbox", "features")
            tile_features = np.asarray(cells.array("tile_features")[:]) if cells.has("tile_features") else None
            batch = CellBatch(*(np.asarray(cells.array(name)[:]) for name in names), tile_features=tile_features)
            writer = union.begin_slide(
                cells.id, attrs={k: cells.attrs[k] for k in ("path", "name", "fingerprint", "mpp")},
                crop_size=batch.crops.shape[1], contour_points=batch.contour.shape[1], feature_names=cells.feature_names,
            )  # fmt: skip
            writer.append(batch)
            writer.finish()
        union.root.attrs["union_of"] = sources
    return out
