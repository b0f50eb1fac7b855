"""`wsicell name`: cluster names from a pathologist's few labels, and the names YAML.

Labels (QuPath points or detections with a class, :mod:`wsicell.study.labels`) are matched
to cells; each cluster is named by the majority class of its labelled cells, with the
confusion table (clusters x classes) and the per-cluster agreement (the majority's share).
Clusters without labels keep "Cluster N". The names file written is the one
``wsicell map --names`` reads (round trip); a class keeps the colour QuPath gave it.
With ``classifier``, a logistic regression on the labelled cells' embeddings classifies
every cell (:mod:`wsicell.study.classifier`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsicell.atomic import atomic_path
from wsicell.cluster import load_clustering, slide_labels_current
from wsicell.errors import ConfigError, StoreError
from wsicell.export.names import ClusterStyle, default_styles
from wsicell.export.output import check_output
from wsicell.export.palette import RGB, cluster_color
from wsicell.store import CellStore, SlideCells
from wsicell.study.classifier import Classifier, classify_slide, save_classifier, train_classifier
from wsicell.study.labels import Labels, Match, match_labels, read_labels
from wsicell.types import PathLikeStr


@dataclass(frozen=True)
class Unmatched:
    file: str
    slide_id: str
    x: float
    y: float
    label: str
    distance_um: float
    status: str  # "too far" or "duplicate"


@dataclass(frozen=True)
class Naming:
    classes: list[str]
    confusion: np.ndarray  # (k, C) matched labels per cluster x class
    styles: list[ClusterStyle]  # (k,) the names written
    agreement: np.ndarray  # (k,) share of a cluster's labels that are its name; NaN = no labels
    n_labels: int
    unmatched: list[Unmatched] = field(default_factory=list)
    classifier: Classifier | None = None
    class_counts: np.ndarray | None = None  # (C,) cells per class over the store
    ignored_cluster_objects: int = 0  # objects in the files classified "Cluster N" (not labels)

    @property
    def n_matched(self) -> int:
        return int(self.confusion.sum())


def slide_for(store: CellStore, labels_path: Path, slide: str | None) -> SlideCells:
    """The slide a labels file belongs to: ``slide`` (an id, file name or stem), else the one
    whose file stem starts the labels file's name, else the store's only slide."""
    slides = store.slides()
    if slide is not None:
        for s in slides:
            name = str(s.attrs.get("name") or "")
            if slide in (s.id, name, Path(name).stem) or (name and Path(slide).name == name):
                return s
        raise ConfigError(f"--slide {slide}: no such slide in {store.path} (ids: {', '.join(s.id for s in slides)})")
    stems = {s.id: Path(str(s.attrs.get("name") or s.id)).stem for s in slides}
    hits = [s for s in slides if stems[s.id] and labels_path.name.startswith(stems[s.id])]
    longest = max((len(stems[s.id]) for s in hits), default=0)
    hits = [s for s in hits if len(stems[s.id]) == longest]  # "slide10-labels" is slide10's, not slide1's
    if len(hits) == 1:
        return hits[0]
    if len(slides) == 1:
        return slides[0]
    raise ConfigError(
        f"{labels_path}: which slide? Name the file after its slide (e.g. SLIDE-labels.geojson) or pass --slide"
    )


def name_by_majority(
    confusion: np.ndarray, classes: list[str], colors: dict[str, RGB]
) -> tuple[list[ClusterStyle], np.ndarray]:
    """Each cluster's majority class (ties: the first class in order) and its share."""
    k = confusion.shape[0]
    styles = default_styles(k)
    agreement = np.full(k, np.nan)
    class_color: dict[str, RGB] = {}
    for c in range(k):
        total = int(confusion[c].sum())
        if total == 0:
            continue
        best = int(np.argmax(confusion[c]))
        agreement[c] = confusion[c, best] / total
        name = classes[best]
        color = class_color.setdefault(name, colors.get(name, cluster_color(c)))
        styles[c] = ClusterStyle(name, color)
    return styles, agreement


def names_yaml(naming: Naming) -> str:
    """The names file for ``wsicell map --names``, with the evidence as comments."""
    lines = [
        "# Cluster names from a pathologist's labels (`wsicell name`); read by `wsicell map --names`.",
        f"# {naming.n_matched} of {naming.n_labels} labels matched to cells. Per cluster: labels, agreement,",
        "# and the labels by class. Clusters without labels keep their default name.",
        "clusters:",
    ]
    for c, style in enumerate(naming.styles):
        row = naming.confusion[c]
        evidence = ", ".join(f"{naming.classes[j]} {int(row[j])}" for j in np.argsort(-row) if row[j] > 0)
        r, g, b = style.color
        text = f"{c}: {{name: {json.dumps(style.name, ensure_ascii=False)}, color: [{r}, {g}, {b}]}}"  # JSON strings are YAML
        note = f"  # {int(row.sum())} labels, agreement {100 * naming.agreement[c]:.0f} %: {evidence}" if row.sum() else "  # no labels"
        lines.append("  " + text + note)
    return "\n".join(lines) + "\n"


def name_store(
    store: PathLikeStr, *, labels: list[PathLikeStr], out: PathLikeStr, slide: str | None = None,
    max_distance_um: float = 5.0, classifier: bool = False, force: bool = False, seed: int = 0,
) -> Naming:  # fmt: skip
    """Match ``labels`` files to the store's cells, name the clusters, write the names YAML
    ``out``; with ``classifier``, train it and classify every cell (store opened r+)."""
    out = check_output(out, force=force)
    if not labels:
        raise ConfigError("give at least one --labels file")
    if slide is not None and len(labels) > 1:
        raise ConfigError("--slide applies to one --labels file; name each file after its slide instead")
    cells = CellStore.open(store, mode="r+" if classifier else "r")
    clustering = load_clustering(cells)
    k = clustering.k
    read: list[tuple[Labels, SlideCells, Match]] = []
    for path in labels:
        lab = read_labels(path)
        s = slide_for(cells, lab.path, slide)
        if not slide_labels_current(s, clustering):
            raise StoreError(f"{cells.path}: slide {s.id} is not assigned to the current clustering; run `wsicell map` on it")
        match = match_labels(lab.xy, s.array("centroid")[: s.n_cells], mpp=s.mpp, max_distance_um=max_distance_um)
        read.append((lab, s, match))
    classes = sorted({c for lab, _, _ in read for c in lab.classes})
    colors: dict[str, RGB] = {}
    for lab, _, _ in read:
        for name, color in lab.colors.items():
            colors.setdefault(name, color)
    confusion = np.zeros((k, len(classes)), np.int64)
    unmatched: list[Unmatched] = []
    rows_by_slide: dict[str, tuple[SlideCells, list[int], list[int]]] = {}
    for lab, s, match in read:
        cluster = s.array("cluster")
        cls = np.array([classes.index(c) for c in lab.classes])
        ok = match.matched
        if len(ok):
            np.add.at(confusion, (cluster.get_coordinate_selection(match.cell[ok]), cls[ok]), 1)
            entry = rows_by_slide.setdefault(s.id, (s, [], []))
            entry[1].extend(match.cell[ok].tolist())
            entry[2].extend(cls[ok].tolist())
        for i in np.flatnonzero(match.cell < 0):
            unmatched.append(Unmatched(str(lab.path), s.id, float(lab.xy[i, 0]), float(lab.xy[i, 1]),
                                       lab.classes[i], float(match.distance_um[i]), match.status[i]))  # fmt: skip
    n_labels = sum(len(lab.classes) for lab, _, _ in read)
    if confusion.sum() == 0:
        raise StoreError(f"none of the {n_labels} labels lies within {max_distance_um:g} µm of a nucleus; "
                         "check the slide and the coordinates (level-0 pixels), or raise --max-distance")  # fmt: skip
    styles, agreement = name_by_majority(confusion, classes, colors)
    clf = counts = None
    if classifier:
        x, y = [], []
        for s, rows, cls_rows in rows_by_slide.values():
            order = np.argsort(rows)
            x.append(s.array("embedding").get_orthogonal_selection((np.asarray(rows)[order], slice(None))))
            y.append(np.asarray(cls_rows)[order])
        class_colors = [colors.get(c, cluster_color(i)) for i, c in enumerate(classes)]
        clf = train_classifier(np.concatenate(x), np.concatenate(y), classes=classes, colors=class_colors, seed=seed)
        save_classifier(cells, clf, n_labels=int(confusion.sum()))
        counts = sum(classify_slide(s, clf) for s in cells.slides() if s.has("embedding"))
    ignored = sum(lab.ignored_cluster_objects for lab, _, _ in read)
    naming = Naming(classes, confusion, styles, agreement, n_labels, unmatched, clf, counts, ignored)
    with atomic_path(out) as tmp:
        tmp.write_text(names_yaml(naming))
    return naming
