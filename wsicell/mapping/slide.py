"""`wsicell map`: one slide -> QuPath GeoJSON (+ overlay PNG) of its cells' clusters.

A slide already in the store (matched by content fingerprint) uses its cells. A new slide
is extracted with the store's extraction settings, embedded with the store's model and
assigned with the store's clustering (no retraining: cluster/model.py); its cells are
added to the store, so mapping it again is immediate. With ``nuclei_only`` the nuclei are
written without cell types (no embedding or clustering needed: the segmentation to review
in QuPath right after `wsicell extract`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from wsicell.cluster import Clustering, assign_slide, load_clustering, slide_labels_current
from wsicell.cluster.context import CONTEXT_ARRAY, write_slide_context
from wsicell.cluster.vectors import VECTOR_ARRAY, write_slide_vectors
from wsicell.errors import ConfigError, SlideError, StoreError
from wsicell.export.geojson import CellChunk, ExportStats, ObjectType, write_geojson
from wsicell.export.names import ClusterStyle, load_styles
from wsicell.export.output import check_output
from wsicell.export.picture import overlay_picture, save_png
from wsicell.io.slide import fingerprint, open_slide
from wsicell.progress import progress_bars
from wsicell.provenance import EmbeddingModel
from wsicell.segment.annotator_filter import DOUBT_BELOW
from wsicell.segment.config import describe_settings
from wsicell.store import CellStore, SlideCells
from wsicell.study.classifier import (
    CLASS_ARRAY,
    Classifier,
    classes_current,
    classify_slide,
    load_classifier,
)
from wsicell.study.doubt import annotated_probability, slide_filter
from wsicell.types import PathLikeStr

ROWS = 16_384
"""Cells per chunk when streaming a slide's cells out (a multiple of every array chunk)."""


@dataclass(frozen=True)
class MapResult:
    slide_id: str
    added: bool  # the slide was new: extracted (and, with cell types, embedded) now
    n_cells: int
    counts: np.ndarray  # (k,) cells per cluster or class; (1,) the nuclei, without cell types
    geojson: ExportStats
    png: Path | None


def default_output(slide_path: PathLikeStr) -> Path:
    """SLIDE.svs -> SLIDE.geojson in the current folder."""
    return Path(Path(slide_path).stem + ".geojson")


def png_path(out: PathLikeStr) -> Path:
    """cells.geojson / cells.geojson.gz -> cells.png next to it."""
    p = Path(out)
    name = p.name
    for suffix in (".gz", ".geojson", ".json"):
        name = name.removesuffix(suffix)
    return p.with_name(name + ".png")


def iter_cells(
    slide: SlideCells, *, rows: int = ROWS, style: str | None = None, clusters: bool = True
) -> Iterator[CellChunk]:
    """The slide's contours, clusters, distances and features, ``rows`` cells at a time
    (with ``style`` the name of a per-cell array, e.g. ``cell_class``, that colours them;
    without ``clusters`` the nuclei alone: no cluster, distance or class)."""
    n = slide.n_cells
    names = ("contour", "features", *(("cluster", "distance") if clusters else ()), *((style,) if style else ()))
    arrays = {name: slide.array(name) for name in names}
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        part = {name: arr[start:stop] for name, arr in arrays.items()}
        yield CellChunk(start, part["contour"], part.get("cluster"), part.get("distance"), part["features"],
                        part[style] if style else None)  # fmt: skip


def map_slide(
    slide_path: PathLikeStr,
    *,
    store: PathLikeStr,
    out: PathLikeStr | None = None,
    names: PathLikeStr | None = None,
    object_type: ObjectType = "detection",
    png: bool | PathLikeStr = False,
    png_size: int = 2048,
    force: bool = False,
    slide_mpp: float | None = None,
    cell_expansion_um: float = 5.0,
    classes: bool = False,
    nuclei_only: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> MapResult:
    """Write the GeoJSON (and with ``png`` the overlay picture) of one slide's clusters.

    ``png`` True writes the picture next to ``out`` (:func:`png_path`); a path writes it
    there. Every input is checked before anything is written: the outputs (exist without
    ``force``), the slide file, the store, its clustering and the names file.
    ``classes`` names and colours the cells by the store's cell classifier (``wsicell name
    --classifier``) instead of by cluster; ``counts`` are then per class. ``nuclei_only`` writes
    the nuclei unclassified, with their measurements, from a store that need not be embedded
    or clustered (a new slide is extracted only); ``counts`` is then the number of nuclei.
    With an HV-net's nuclei it also gives each one P(annotated), and the picture draws the
    ones the annotator filter doubts in their own colour (``study/doubt.py``).
    """
    out = Path(out) if out is not None else default_output(slide_path)
    check_output(out, force=force)
    picture = png_path(out) if png is True else (Path(png) if png else None)
    if picture is not None:
        check_output(picture, force=force)
    path = Path(slide_path)
    if not path.is_file():
        raise SlideError(path, "file not found" if not path.exists() else "not a file")
    check_colouring(names=names, classes=classes, nuclei_only=nuclei_only)
    cells_store = CellStore.open(store)
    clustering = None if nuclei_only else current_clustering(cells_store)
    clf = load_classifier(cells_store) if classes else None
    if clustering is None:
        styles = [NUCLEUS_STYLE]
    else:
        styles = clf.styles if clf is not None else load_styles(names, k=clustering.k)
    slide, added = prepare_slide(path, cells_store=cells_store, clustering=clustering, classifier=clf,
                                 slide_mpp=slide_mpp, progress=progress, log=log)  # fmt: skip
    fp = str(slide.attrs["fingerprint"])
    if clustering is None:
        counts = np.array([slide.n_cells])
    else:
        counts = np.bincount(slide.array(CLASS_ARRAY if clf is not None else "cluster")[:], minlength=len(styles))
    size = (int(slide.attrs["width"]), int(slide.attrs["height"]))
    style = CLASS_ARRAY if clf else None
    keep = slide_filter(slide) if nuclei_only else None  # nuclei alone: show which ones the filter doubts
    annotated = None
    if keep is not None:
        with progress_bars(progress, unit="cells") as bars:
            task = bars.add_task(f"doubt {path.name}"[:40], total=slide.n_cells, info="")
            annotated = annotated_probability(slide, keep, progress=lambda m: bars.advance(task, m))
    feature_names = slide.feature_names + ([ANNOTATED] if annotated is not None else [])

    def cells() -> Iterator[CellChunk]:
        chunks = iter_cells(slide, style=style, clusters=clustering is not None)
        return chunks if annotated is None else with_measurement(chunks, annotated)

    with progress_bars(progress, unit="cells") as bars:
        task = bars.add_task(out.name[:40], total=slide.n_cells, info="")
        stats = write_geojson(
            out, cells(), fingerprint=fp, styles=styles, feature_names=feature_names,
            size=size, mpp=slide.mpp, object_type=object_type, cell_expansion_um=cell_expansion_um, force=force,
            progress=lambda m: bars.advance(task, m),
        )  # fmt: skip
        if picture is not None:
            with open_slide(path, mpp=slide.mpp) as wsi:
                thumb, factor = wsi.thumbnail(png_size)
            task = bars.add_task(picture.name[:40], total=slide.n_cells, info="")

            def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for c in cells():
                    index = c.classification
                    if annotated is not None:  # the doubted nuclei in their own colour
                        index = (annotated[c.start : c.start + len(c.contour)] < DOUBT_BELOW).astype(np.int64)
                    yield c.contour, np.zeros(len(c.contour), np.int64) if index is None else index
                    bars.advance(task, len(c.contour))

            drawn_styles, drawn_counts = styles, counts
            if annotated is not None:
                n_doubted = int((annotated < DOUBT_BELOW).sum())
                drawn_styles, drawn_counts = [NUCLEUS_STYLE, DOUBTED_STYLE], np.array([slide.n_cells - n_doubted, n_doubted])
            title = [path.name, picture_subtitle(slide, clustering=clustering, n_classes=len(styles) if clf else None)]
            image = overlay_picture(thumb, factor, chunks(), styles=drawn_styles, counts=drawn_counts, title=title,
                                    mpp=slide.mpp)  # fmt: skip
            save_png(image, picture, force=force)
    return MapResult(slide.id, added, slide.n_cells, counts, stats, picture)


def check_colouring(*, names: PathLikeStr | None, classes: bool, nuclei_only: bool) -> None:
    """Refuse the ways of colouring cells that exclude each other (before any work)."""
    if nuclei_only and (classes or names is not None):
        raise ConfigError("--nuclei-only writes nuclei without cell types; --classes and --names apply to cell types")
    if classes and names is not None:
        raise ConfigError("--classes colours cells by the classifier's classes; --names applies to clusters: give one")


NUCLEUS_STYLE = ClusterStyle("Nucleus", (0, 160, 255))
"""How nuclei without cell types are drawn in the overlay picture (the GeoJSON leaves them unclassified)."""
DOUBTED_STYLE = ClusterStyle("Doubted nucleus", (255, 120, 0))
"""How the nuclei the annotator filter doubts are drawn in the nuclei-only picture."""
ANNOTATED = "annotated_probability"
"""The nuclei-only map's extra measurement: P(an annotator would have outlined this nucleus),
0-1 (``study/doubt.py``; QuPath colours detections by it with Measure > Show measurement maps)."""


def with_measurement(chunks: Iterable[CellChunk], values: np.ndarray) -> Iterator[CellChunk]:
    """The chunks with one more feature column: ``values`` (one per cell of the slide)."""
    for chunk in chunks:
        column = values[chunk.start : chunk.start + len(chunk.features), None].astype(chunk.features.dtype)
        yield replace(chunk, features=np.concatenate([chunk.features, column], axis=1))


def current_clustering(cells_store: CellStore) -> Clustering:
    """The store's clustering, refused if the embeddings changed since it was made."""
    if cells_store.clustering is None:
        embedded = EmbeddingModel.of_store(cells_store.root.attrs) is not None
        todo = f"`wsicell cluster --store {cells_store.path}`"
        todo = todo if embedded else f"`wsicell train`, `wsicell embed` and {todo}"
        raise StoreError(
            f"{cells_store.path}: no clustering; run {todo} first, or map the nuclei alone "
            "(without cell types) with --nuclei-only"
        )
    clustering = load_clustering(cells_store)
    if clustering.record.model != EmbeddingModel.of_store(cells_store.root.attrs):
        raise StoreError(
            f"{cells_store.path}: the embeddings changed since the last clustering; "
            f"run `wsicell cluster --store {cells_store.path}` again"
        )
    return clustering


def picture_subtitle(slide: SlideCells, *, clustering: Clustering | None, n_classes: int | None) -> str:
    """The overlay picture's second title line: what the colours are."""
    if clustering is None:
        segmenter = describe_settings(slide.attrs.get("settings", {}).get("segment", {}))
        return f"{slide.n_cells:,} nuclei (segmenter {segmenter}; no cell types)"
    if n_classes is not None:
        return f"{slide.n_cells:,} nuclei, {n_classes} classes (classifier on the embeddings)"
    how = f"{clustering.algorithm}, morphology {clustering.representation.blend.morphology_weight:g}"
    if clustering.context.enabled:
        how += f", context {clustering.context.radius_um:g} um"  # the picture font has no µ
    return f"{slide.n_cells:,} nuclei, k = {clustering.k} ({how})"


def prepare_slide(
    path: Path, *, cells_store: CellStore, clustering: Clustering | None, classifier: Classifier | None = None,
    slide_mpp: float | None = None, progress: bool = True, log: Callable[[str], None] = lambda message: None,
    scheduler: str | None = None, workers: int | None = None,
) -> tuple[SlideCells, bool]:  # fmt: skip
    """The slide's group, made ready to map: found by fingerprint or extracted and embedded
    (``scheduler`` / ``workers`` as for extract), its cells assigned to the current clustering
    and, with ``classifier``, classified. Without ``clustering`` (nuclei only) a new slide is
    extracted only. Returns the group and whether it was added to the store."""
    fp = fingerprint(path)
    slide = cells_store.find_slide(fingerprint=fp)
    added = slide is None
    if slide is None:
        with open_slide(path, mpp=slide_mpp):  # unreadable, or no resolution: say so before any work
            pass
        what = "extracting it" if clustering is None else "extracting and embedding it"
        log(f"{path.name} is not in {cells_store.path}: {what} with the store's settings")
        slide = add_slide(path, store=cells_store, slide_mpp=slide_mpp, progress=progress,
                          scheduler=scheduler, workers=workers, embed=clustering is not None)  # fmt: skip
    if clustering is None:
        return slide, added
    if not slide_labels_current(slide, clustering):
        steps = 2  # the cell vectors (embedding + morphology), then the assignment
        if clustering.context.enabled:
            log(f"assigning {slide.n_cells:,} cells with tissue context ({clustering.context.radius_um:g} µm)")
            steps = 3  # + the context vectors
        with progress_bars(progress, unit="cells") as bars:
            task = bars.add_task(f"clusters {path.name}"[:40], total=steps * slide.n_cells, info="")
            slide = label_slide(cells_store.path, slide.id, clustering, progress=lambda m: bars.advance(task, m))
    if classifier is not None and not classes_current(slide, classifier):
        log(f"classifying {slide.n_cells:,} cells with the store's cell classifier")
        classify_slide(CellStore.open(cells_store.path, mode="r+").slide(slide.id), classifier)
    return slide, added


def label_slide(
    store_path: Path, slide_id: str, clustering: Clustering, *, progress: Callable[[int], None] | None = None
) -> SlideCells:
    """Assign the slide's cells with the store's clustering and save cluster + distance: the
    clustering's representation (embedding + morphology), its tissue context if it has one,
    then its model. ``progress`` is called with the rows done, once per step."""
    writable = CellStore.open(store_path, mode="r+")
    slide = writable.slide(slide_id)
    if not slide.has("embedding") or slide.array("embedding").shape[0] != slide.n_cells:
        raise StoreError(f"{store_path}: slide {slide_id} has no embeddings; run `wsicell embed --store {store_path}` first")
    if slide.array("embedding").shape[1] != clustering.representation.embedding_basis.shape[0]:
        raise StoreError(
            f"{store_path}: slide {slide_id}'s embeddings are {slide.array('embedding').shape[1]}-d but the "
            f"clustering's are {clustering.representation.embedding_basis.shape[0]}-d; "
            f"run `wsicell cluster --store {store_path}` again"
        )
    if not write_slide_vectors(slide, clustering.representation, progress=progress) and progress is not None:
        progress(slide.n_cells)  # already current
    array = VECTOR_ARRAY
    if clustering.context.enabled:  # the clustering was fitted on context vectors: same here
        if not write_slide_context(slide, clustering.context, source=VECTOR_ARRAY, progress=progress) and progress is not None:
            progress(slide.n_cells)  # already current
        array = CONTEXT_ARRAY
    assign_slide(
        slide, clustering.model.assigner(), k=clustering.k, batch_size=65_536, created=clustering.created,
        array=array, progress=progress,
    )  # fmt: skip
    return slide


def add_slide(
    path: Path, *, store: CellStore, slide_mpp: float | None, progress: bool, scheduler: str | None = None,
    workers: int | None = None, embed: bool = True,
) -> SlideCells:  # fmt: skip
    """Extract a new slide into the store with its settings, then (``embed``) embed it with its model."""
    from wsicell.extract import extract_slide, stored_config

    config = stored_config(store.path)
    model = EmbeddingModel.of_store(store.root.attrs)
    if embed and model is None:
        raise StoreError(f"{store.path}: has no embedding model; run `wsicell embed --store {store.path}` first")
    slide = extract_slide(path, store=store.path, config=config, slide_mpp=slide_mpp, progress=progress,
                          scheduler=scheduler, workers=workers)  # fmt: skip
    if not embed:
        return CellStore.open(store.path).slide(slide.id)
    embed_slide(store.path, slide.id, model=model, progress=progress)
    return CellStore.open(store.path).slide(slide.id)


def embed_slide(store_path: Path, slide_id: str, *, model: EmbeddingModel, progress: bool) -> None:
    """Embed the new slide with the store's model: the checkpoint and encoder it records,
    checked unchanged by its sha256 (slides already embedded with it are skipped)."""
    from wsicell.embed import embed_store
    from wsicell.train import checkpoint

    ckpt = Path(model.checkpoint)
    if not model.checkpoint or not ckpt.is_file():
        raise StoreError(
            f"{store_path}: the embedding model's checkpoint {ckpt} is gone; new slides cannot be embedded "
            "with the same model (map slides already in the store, or re-run embed and cluster)"
        )
    if checkpoint.sha256(ckpt) != model.sha256:
        raise StoreError(
            f"{ckpt}: changed since the store was embedded (sha256 differs); new slides would not be "
            "comparable: re-run `wsicell embed` and `wsicell cluster`"
        )
    embed_store(
        store=store_path, run=ckpt, encoder=model.encoder, views=model.views, precision=model.precision, progress=progress,
    )  # fmt: skip
