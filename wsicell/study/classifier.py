"""Cell classes from a pathologist's labels: a logistic regression on the embeddings.

For clusters that mix cell types, ``wsicell name --classifier`` trains a multinomial
logistic regression (scikit-learn, balanced class weights) on the unit-normalised
embeddings of the labelled cells and classifies every cell of the store. Saved in the store:

* ``classifier/coef`` (C, D) and ``classifier/intercept`` (C,) float32, attrs: ``classes``
  (names), ``colors`` ([r, g, b] each), ``created``, ``n_labels``, ``cv_accuracy``, ``model``
  (the embedding model it was trained on);
* per slide ``cell_class`` (n,) int16: each cell's class index, attrs ``classifier`` = the
  ``created`` stamp it was made with (a stale array is recomputed by ``wsicell map --classes``).

Prediction is ``argmax(unit(x) @ coef.T + intercept)``: the same on every machine, no
pickled model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import zarr

from wsicell.errors import StoreError
from wsicell.export.names import ClusterStyle
from wsicell.provenance import EMBEDDING_MODEL
from wsicell.store import CellStore, SlideCells, compressor

GROUP = "classifier"
CLASS_ARRAY = "cell_class"
ROWS = 65_536


@dataclass(frozen=True)
class Classifier:
    coef: np.ndarray  # (C, D) float32
    intercept: np.ndarray  # (C,) float32
    classes: list[str]
    colors: list[tuple[int, int, int]]
    created: str
    cv_accuracy: float | None = None

    @property
    def styles(self) -> list[ClusterStyle]:
        return [ClusterStyle(n, tuple(c)) for n, c in zip(self.classes, self.colors, strict=True)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.argmax(x @ self.coef.T + self.intercept, axis=1).astype(np.int16)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def train_classifier(
    x: np.ndarray, y: np.ndarray, *, classes: list[str], colors: list[tuple[int, int, int]], seed: int = 0
) -> Classifier:
    """Fit on embeddings ``x`` (m, D) with class indices ``y`` (m,) into ``classes``; report
    5-fold (or fewer, as the rarest class allows) cross-validated accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    present = np.unique(y)
    if len(present) < 2:
        raise StoreError("the classifier needs labelled cells of at least two classes")
    model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    xs = unit(x)
    folds = min(5, int(np.bincount(y)[present].min()))
    cv = None
    if folds >= 2:
        split = StratifiedKFold(folds, shuffle=True, random_state=seed)
        cv = float(cross_val_score(model, xs, y, cv=split).mean())
    model.fit(xs, y)
    coef = np.full((len(classes), x.shape[1]), 0.0, np.float32)
    intercept = np.full(len(classes), -np.inf, np.float32)  # a class without labels is never predicted
    if len(present) == 2:  # sklearn's binary form: one row for the second class
        coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
        intercept[present[0]] = 0.0
    else:
        coef[present], intercept[present] = model.coef_, model.intercept_
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Classifier(coef, intercept, list(classes), list(colors), created, cv)


def save_classifier(store: CellStore, clf: Classifier, *, n_labels: int) -> None:
    if GROUP in store.root.group_keys():
        del store.root[GROUP]
    group = store.root.create_group(GROUP)
    for name, value in (("coef", clf.coef), ("intercept", clf.intercept)):
        arr = zarr.create_array(store.root.store, name=f"{GROUP}/{name}", shape=value.shape, dtype="float32",
                                chunks=value.shape, compressors=compressor(), overwrite=True)  # fmt: skip
        arr[:] = value
    group.attrs.update({
        "classes": clf.classes, "colors": [list(c) for c in clf.colors], "created": clf.created,
        "n_labels": n_labels, "cv_accuracy": clf.cv_accuracy, "model": store.root.attrs.get(EMBEDDING_MODEL),
    })  # fmt: skip
    store.root.attrs["cell_classes"] = {
        "names": clf.classes, "colors": ["#{:02x}{:02x}{:02x}".format(*c) for c in clf.colors], "created": clf.created,
    }  # fmt: skip


def load_classifier(store: CellStore) -> Classifier:
    if GROUP not in store.root.group_keys():
        raise StoreError(f"{store.path}: no cell classifier; train one with `wsicell name --classifier`")
    g = store.root[GROUP]
    attrs = dict(g.attrs)
    return Classifier(
        np.asarray(g["coef"][:]), np.asarray(g["intercept"][:]), list(attrs["classes"]),
        [tuple(c) for c in attrs["colors"]], str(attrs["created"]), attrs.get("cv_accuracy"),
    )  # fmt: skip


def classes_current(slide: SlideCells, clf: Classifier) -> bool:
    return (
        slide.has(CLASS_ARRAY)
        and slide.array(CLASS_ARRAY).attrs.get("classifier") == clf.created
        and slide.array(CLASS_ARRAY).shape[0] == slide.n_cells
    )


def classify_slide(slide: SlideCells, clf: Classifier) -> np.ndarray:
    """Write the slide's ``cell_class`` (a chunk of embeddings at a time); the counts per class."""
    n = slide.n_cells
    emb = slide.array("embedding")
    out = slide.create_array(CLASS_ARRAY, shape=(n,), dtype="int16", chunks=(16_384,), attrs={"classifier": clf.created})
    counts = np.zeros(len(clf.classes), np.int64)
    for start in range(0, n, ROWS):
        pred = clf.predict(emb[start : min(start + ROWS, n)])
        out[start : start + len(pred)] = pred
        counts += np.bincount(pred, minlength=len(clf.classes))
    return counts
