"""`wsicell export --anndata`: the store's cells as one AnnData (.h5ad) file, streamed.

AnnData is the scverse standard (scanpy, squidpy, ...). The file holds, one row per cell of
every slide that carries the current clustering, in store order:

* ``X`` (n, F) float32: the morphology features (``var`` names them);
* ``obs``: ``slide`` (id), ``slide_name``, ``cluster`` (categories "0".."k-1"),
  ``cluster_name``, ``distance`` (to the centroid), ``x_um`` / ``y_um`` (centroid, µm from
  the slide's top-left), the morphology of :data:`wsicell.study.summary.MORPHOLOGY`, and
  ``class`` when ``wsicell name --classifier`` classified every cell (current on every slide);
* ``obsm``: ``X_wsicell`` (n, D) float32 the embedding; ``spatial`` (n, 2) float32 the centroid
  in µm (squidpy's key);
* ``uns``: ``wsicell`` (the clustering's provenance as JSON and its main fields, the store),
  ``cluster_colors`` / ``cluster_name_colors`` (the map's colours, scanpy's convention).

The file is laid out with h5py in anndata's on-disk format (encoding attributes of
anndata 0.8+), its per-cell datasets created at full size and filled ``ROWS`` cells at a
time, so memory stays bounded whatever the number of cells; the small parts (var, uns,
categories) are written by anndata itself. Written under a temporary name, renamed at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsicell.atomic import atomic_path
from wsicell.cluster import load_clustering, slide_labels_current
from wsicell.errors import StoreError
from wsicell.export.names import load_styles
from wsicell.export.output import check_output
from wsicell.provenance import EMBEDDING_MODEL
from wsicell.store import CellStore, SlideCells
from wsicell.study.classifier import CLASS_ARRAY, GROUP, classes_current, load_classifier
from wsicell.study.summary import MORPHOLOGY
from wsicell.types import PathLikeStr

ROWS = 65_536
"""Cells per write (a multiple of the store's chunks)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    n_cells: int
    n_slides: int
    skipped: list[str]
    seconds: float
    classes_stale: bool = False  # a classifier exists but some slide's classes are not current


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _array(group, name: str, shape: tuple[int, ...], dtype, *, chunk_rows: int):  # noqa: ANN001, ANN202
    rows = max(1, min(chunk_rows, shape[0]))
    ds = group.create_dataset(name, shape=shape, dtype=dtype, chunks=(rows, *shape[1:]) if shape[0] else None)
    ds.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return ds


def _strings(group, name: str, values: list[str]) -> None:  # noqa: ANN001
    import h5py

    ds = group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    ds.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def _categorical(group, name: str, categories: list[str], n: int, *, chunk_rows: int):  # noqa: ANN001, ANN202
    g = group.create_group(name)
    g.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
    _strings(g, "categories", categories)
    dtype = np.int8 if len(categories) < 127 else np.int16 if len(categories) < 32767 else np.int32
    return _array(g, "codes", (n,), dtype, chunk_rows=chunk_rows)


def unique_names(names: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct names in first-seen order and each position's index among them."""
    distinct: list[str] = []
    for name in names:
        if name not in distinct:
            distinct.append(name)
    return distinct, np.array([distinct.index(name) for name in names], np.int64)


def export_anndata(
    store: PathLikeStr, out: PathLikeStr, *, names: PathLikeStr | None = None, force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:  # fmt: skip
    """Write the store's clustered cells to ``out`` (.h5ad); see the module docstring."""
    import h5py
    import pandas as pd
    from anndata.io import write_elem as write

    t0 = time.perf_counter()
    path = check_output(out, force=force)
    cells = CellStore.open(store)
    clustering = load_clustering(cells)
    k = clustering.k
    styles = load_styles(names, k=k)
    slides: list[SlideCells] = []
    skipped: list[str] = []
    for s in cells.slides():
        if slide_labels_current(s, clustering):
            slides.append(s)
        else:
            skipped.append(s.id)
    if not slides:
        raise StoreError(f"{cells.path}: no slide carries the current clustering; run `wsicell cluster --store {cells.path}`")
    for s in slides:
        if not s.has("embedding") or s.array("embedding").shape[0] != s.n_cells:
            raise StoreError(f"{cells.path}: slide {s.id} has no embeddings; run `wsicell embed --store {cells.path}`")
    features = slides[0].feature_names
    dim = slides[0].array("embedding").shape[1]
    for s in slides[1:]:
        if s.feature_names != features or s.array("embedding").shape[1] != dim:
            raise StoreError(f"{cells.path}: slide {s.id} has other features or embedding size than {slides[0].id}")
    morph = [f for f in MORPHOLOGY if f in features]
    n = sum(s.n_cells for s in slides)
    if n == 0:
        raise StoreError(f"{cells.path}: the clustered slides hold no cells; nothing to export")
    clf = load_classifier(cells) if GROUP in cells.root.group_keys() else None
    with_class = clf is not None and all(classes_current(s, clf) for s in slides)
    class_names = clf.classes if with_class else []

    cluster_names, name_code = unique_names([st.name for st in styles])
    name_colors = [hex_color(styles[int(np.flatnonzero(name_code == i)[0])].color) for i in range(len(cluster_names))]
    uns = {
        "wsicell": {
            "store": str(cells.path.resolve()),
            "clustering": json.dumps(clustering.attrs, default=str),
            "k": k, "metric": clustering.record.metric, "created": clustering.created,
            "embedding_model": json.dumps(cells.root.attrs.get(EMBEDDING_MODEL), default=str),
            "names_file": str(names) if names else "",
        },
        "cluster_colors": np.array([hex_color(st.color) for st in styles], dtype=object),
        "cluster_name_colors": np.array(name_colors, dtype=object),
    }  # fmt: skip
    if with_class:
        uns["class_colors"] = np.array([hex_color(c) for c in clf.colors], dtype=object)

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        write(f, "var", pd.DataFrame(index=pd.Index(features, dtype=object)))
        write(f, "uns", uns)
        for empty in ("layers", "obsp", "varm", "varp"):
            write(f, empty, {})
        x = _array(f, "X", (n, len(features)), np.float32, chunk_rows=ROWS // 4)
        obsm = f.create_group("obsm")
        obsm.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        emb = _array(obsm, "X_wsicell", (n, dim), np.float32, chunk_rows=4096)  # 8 MB chunks at 512-d
        spatial = _array(obsm, "spatial", (n, 2), np.float32, chunk_rows=ROWS)
        obs = f.create_group("obs")
        columns = ["slide", "slide_name", "cluster", "cluster_name", "distance", "x_um", "y_um", *morph]
        columns += ["class"] if with_class else []
        obs.attrs.update({"_index": "_index", "column-order": np.array(columns, dtype=object),
                          "encoding-type": "dataframe", "encoding-version": "0.2.0"})  # fmt: skip
        index = obs.create_dataset("_index", shape=(n,), dtype=h5py.string_dtype(), chunks=(min(n, ROWS),))
        index.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
        slide_names, slide_name_code = unique_names([str(s.attrs.get("name") or s.id) for s in slides])
        codes = {
            "slide": _categorical(obs, "slide", [s.id for s in slides], n, chunk_rows=ROWS),
            "slide_name": _categorical(obs, "slide_name", slide_names, n, chunk_rows=ROWS),
            "cluster": _categorical(obs, "cluster", [str(c) for c in range(k)], n, chunk_rows=ROWS),
            "cluster_name": _categorical(obs, "cluster_name", cluster_names, n, chunk_rows=ROWS),
        }
        if with_class:
            codes["class"] = _categorical(obs, "class", class_names, n, chunk_rows=ROWS)
        values = {c: _array(obs, c, (n,), np.float32, chunk_rows=ROWS) for c in ["distance", "x_um", "y_um", *morph]}
        offset = 0
        for si, s in enumerate(slides):
            arrays = {a: s.array(a) for a in ("centroid", "cluster", "distance", "features", "embedding")}
            if with_class:
                arrays[CLASS_ARRAY] = s.array(CLASS_ARRAY)
            for start in range(0, s.n_cells, ROWS):
                stop = min(start + ROWS, s.n_cells)
                a, b = offset + start, offset + stop
                part = {name: arr[start:stop] for name, arr in arrays.items()}
                um = part["centroid"].astype(np.float64) * s.mpp
                label = part["cluster"].astype(np.int64)
                index[a:b] = np.array([f"{s.id}:{i}" for i in range(start, stop)], dtype=object)
                codes["slide"][a:b] = si
                codes["slide_name"][a:b] = slide_name_code[si]
                codes["cluster"][a:b] = label
                codes["cluster_name"][a:b] = name_code[label]
                if with_class:
                    codes["class"][a:b] = part[CLASS_ARRAY]
                values["distance"][a:b] = part["distance"]
                values["x_um"][a:b] = um[:, 0]
                values["y_um"][a:b] = um[:, 1]
                for m in morph:
                    values[m][a:b] = part["features"][:, features.index(m)]
                x[a:b] = part["features"]
                emb[a:b] = part["embedding"].astype(np.float32)
                spatial[a:b] = um.astype(np.float32)
                if progress is not None:
                    progress(stop - start)
            offset += s.n_cells
    return ExportResult(path, n, len(slides), skipped, time.perf_counter() - t0, clf is not None and not with_class)
