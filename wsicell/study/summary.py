"""`wsicell summarize`: one row per slide and cluster, for a whole study.

Per slide and cluster: cells, share of the slide, density per mm² of tissue
(:mod:`wsicell.study.tissue`), the mean of a few morphology features, the share of its nuclei
the annotator filter doubts (:mod:`wsicell.study.doubt`), and the neighbourhood
enrichment z-score against every cluster (:mod:`wsicell.study.enrichment`). Slides are read
one at a time, their per-cell arrays a chunk at a time (the enrichment holds one slide's
labels, centroids and close pairs), so memory follows the largest slide, not the study.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsicell.atomic import atomic_path
from wsicell.cluster import load_clustering, slide_labels_current
from wsicell.errors import ConfigError, StoreError
from wsicell.export.names import ClusterStyle, load_styles
from wsicell.export.output import check_output
from wsicell.store import CellStore, SlideCells
from wsicell.study.doubt import doubted_per_label
from wsicell.study.enrichment import Enrichment, slide_enrichment
from wsicell.study.tissue import TissueArea, tissue_area
from wsicell.types import PathLikeStr

ROWS = 65_536
"""Cells per chunk when streaming a slide's features."""

MORPHOLOGY = ("area_um2", "eccentricity", "haematoxylin_od_mean")
"""The store's feature columns averaged per cluster (those a store lacks are left out)."""


@dataclass(frozen=True)
class SummaryConfig:
    radius_um: float = 20.0
    """Cells closer than this are neighbours for the enrichment; 0 = no enrichment."""
    n_perms: int = 200
    """Label permutations of the enrichment's null model; 0 = its exact moments (no shuffles)."""
    seed: int = 0
    morphology: tuple[str, ...] = MORPHOLOGY

    def __post_init__(self) -> None:
        if not (np.isfinite(self.radius_um) and self.radius_um >= 0):
            raise ConfigError(f"the enrichment radius must be >= 0 µm, got {self.radius_um}")
        if self.n_perms < 0 or self.n_perms == 1:
            raise ConfigError(f"permutations must be 0 (exact moments) or >= 2, got {self.n_perms}")


@dataclass(frozen=True)
class SlideSummary:
    slide_id: str
    name: str
    counts: np.ndarray  # (k,) int64
    tissue: TissueArea
    means: dict[str, np.ndarray]  # feature -> (k,) mean per cluster (NaN where no cell)
    enrichment: Enrichment | None
    seconds: float
    doubted: np.ndarray | None = None  # (k,) nuclei the annotator filter doubts; None: not counted (study/doubt.py)


@dataclass(frozen=True)
class StudySummary:
    styles: list[ClusterStyle]
    slides: list[SlideSummary]
    config: SummaryConfig
    skipped: list[str] = field(default_factory=list)  # slides without the current clustering
    label: str = "cluster"  # what the rows are: "cluster", or "class" (the cell classifier's)

    @property
    def k(self) -> int:
        return len(self.styles)

    def counts(self) -> np.ndarray:
        """(slides, k) cells per cluster."""
        return np.stack([s.counts for s in self.slides]) if self.slides else np.zeros((0, self.k), np.int64)


def summarize_slide(slide: SlideCells, *, k: int, config: SummaryConfig, by: str = "cluster") -> SlideSummary:
    """Counts, tissue area, morphology means and enrichment of one slide's clusters (or of
    another per-cell label array ``by`` with values 0..k-1, e.g. ``cell_class``)."""
    t0 = time.perf_counter()
    n = slide.n_cells
    names = slide.feature_names
    columns = [(f, names.index(f)) for f in config.morphology if f in names]
    labels = np.asarray(slide.array(by)[:n]).astype(np.int64)
    sums = np.zeros((len(columns), k))
    finite = np.zeros((len(columns), k))
    features = slide.array("features")
    for start in range(0, n, ROWS):
        part = np.asarray(features[start : min(start + ROWS, n)], np.float64)  # (m, F)
        lab = labels[start : start + len(part)]
        for j, (_, col) in enumerate(columns):
            values = part[:, col]
            ok = np.isfinite(values)
            sums[j] += np.bincount(lab[ok], weights=values[ok], minlength=k)
            finite[j] += np.bincount(lab[ok], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {f: np.where(finite[j] > 0, sums[j] / np.maximum(finite[j], 1), np.nan) for j, (f, _) in enumerate(columns)}
    enrichment = None
    if config.radius_um > 0 and n > 1:
        groups = np.asarray(slide.array("tile")[:n]) if slide.has("tile") else None
        enrichment = slide_enrichment(
            labels, slide.array("centroid")[:n], mpp=slide.mpp, radius_um=config.radius_um, k=k,
            n_perms=config.n_perms, seed=config.seed, groups=groups,
        )  # fmt: skip
    doubted = doubted_per_label(slide, labels, k=k)
    return SlideSummary(
        slide.id, str(slide.attrs.get("name") or slide.id), np.bincount(labels, minlength=k).astype(np.int64),
        tissue_area(slide), means, enrichment, time.perf_counter() - t0, doubted,
    )  # fmt: skip


def summarize_store(
    store: PathLikeStr, *, names: PathLikeStr | None = None, config: SummaryConfig = SummaryConfig(),
    classes: bool = False, progress: Callable[[SlideSummary], None] | None = None,
) -> StudySummary:  # fmt: skip
    """Summarise every slide of ``store`` that carries the current clustering, one at a time
    (with ``classes``: by the cell classifier's classes, ``wsicell name --classifier``)."""
    from wsicell.study.classifier import CLASS_ARRAY, classes_current, load_classifier

    cells = CellStore.open(store)
    clustering = load_clustering(cells)
    if classes and names is not None:
        raise ConfigError("--classes summarises the classifier's classes; --names applies to clusters: give one")
    clf = load_classifier(cells) if classes else None
    styles = clf.styles if clf is not None else load_styles(names, k=clustering.k)
    done, skipped = [], []
    for slide in cells.slides():
        current = classes_current(slide, clf) if clf is not None else slide_labels_current(slide, clustering)
        if not current:
            skipped.append(slide.id)
            continue
        summary = summarize_slide(slide, k=len(styles), config=config, by=CLASS_ARRAY if clf else "cluster")
        done.append(summary)
        if progress is not None:
            progress(summary)
    if not done:
        raise StoreError(f"{cells.path}: no slide carries the current clustering; run `wsicell cluster --store {cells.path}`")
    return StudySummary(styles, done, config, skipped, "class" if clf is not None else "cluster")


def summary_table(summary: StudySummary):  # noqa: ANN201 - pandas is imported lazily
    """A pandas DataFrame, one row per slide x cluster (columns in docs/study.md)."""
    import pandas as pd

    k = summary.k
    rows: dict[str, list] = {}

    def add(name: str, values) -> None:  # noqa: ANN001
        rows.setdefault(name, []).extend(values)

    for s in summary.slides:
        total = int(s.counts.sum())
        add("slide_id", [s.slide_id] * k)
        add("slide", [s.name] * k)
        add(summary.label, list(range(k)))
        add("name", [st.name for st in summary.styles])
        add("count", s.counts.tolist())
        add("fraction", (s.counts / max(total, 1)).tolist())
        add("tissue_mm2", [s.tissue.mm2] * k)
        add("tissue_source", [s.tissue.source] * k)
        add("density_per_mm2", (s.counts / s.tissue.mm2 if s.tissue.mm2 > 0 else np.full(k, np.nan)).tolist())
        for f in summary.config.morphology:
            add(f"mean_{f}", s.means.get(f, np.full(k, np.nan)).tolist())
        with np.errstate(invalid="ignore", divide="ignore"):
            doubted = np.full(k, np.nan) if s.doubted is None else np.where(s.counts > 0, s.doubted / s.counts, np.nan)
        add("doubted_fraction", doubted.tolist())
        if summary.config.radius_um > 0:
            z = s.enrichment.zscore if s.enrichment is not None else np.full((k, k), np.nan)
            for j in range(k):
                add(f"nhood_z_{j}", z[:, j].tolist())
    table = pd.DataFrame(rows)
    for name in ("slide_id", "slide", "name", "tissue_source"):
        table[name] = table[name].astype("string") if len(table) else table[name]
    return table


def write_table(table, path: PathLikeStr, *, force: bool) -> Path:  # noqa: ANN001
    """Write ``table`` as CSV, or Parquet when ``path`` ends in .parquet, atomically."""
    out = check_output(path, force=force)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"{out}: the table must be a .csv or .parquet file")
    with atomic_path(out) as tmp:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False, float_format="%.6g")
    return out
