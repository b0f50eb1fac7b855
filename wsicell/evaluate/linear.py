"""Linear evaluation (Ciga et al. 2022): a logistic-regression probe on frozen embeddings.

For users with some labels: fit on the embeddings of the labelled *train* split, report the
macro F1 (every class weighs the same, whatever its size) and the accuracy on the *test*
split. Features are standardised with the train split's mean and std; the probe is sklearn's
multinomial logistic regression (L-BFGS), L2 strength ``1 / C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LinearProbeResult:
    macro_f1: float
    accuracy: float
    per_class_f1: dict[int, float]  # class label -> F1 on the test split
    n_train: int
    n_test: int

    def as_dict(self) -> dict:
        return {
            "macro_f1": self.macro_f1, "accuracy": self.accuracy,
            "per_class_f1": {str(k): v for k, v in self.per_class_f1.items()},
            "n_train": self.n_train, "n_test": self.n_test,
        }  # fmt: skip


def linear_probe(
    *,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    C: float = 1.0,
    max_iter: int = 2000,
    class_weight: str | None = None,
) -> LinearProbeResult:
    """Fit on (``train_x`` (n, D), ``train_y`` (n,)), score on (``test_x`` (m, D), ``test_y`` (m,))."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"embeddings must be (n, D) with the same D, got {train_x.shape} and {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError(f"embeddings and labels disagree: {len(train_x)} vs {len(train_y)}, {len(test_x)} vs {len(test_y)}")
    if len(np.unique(train_y)) < 2:
        raise ValueError("the train split needs at least two classes for a linear probe")
    if len(test_y) == 0:
        raise ValueError("the test split is empty")
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        raise ValueError("embeddings contain NaN or infinite values")
    mean = train_x.mean(0)
    std = train_x.std(0)
    std[std == 0] = 1.0
    probe = LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight)
    probe.fit((train_x - mean) / std, train_y)
    predicted = probe.predict((test_x - mean) / std)
    classes = np.union1d(train_y, test_y)
    per_class = f1_score(test_y, predicted, labels=classes, average=None, zero_division=0)
    return LinearProbeResult(
        macro_f1=float(np.mean(per_class)),
        accuracy=float(accuracy_score(test_y, predicted)),
        per_class_f1={int(c): float(f) for c, f in zip(classes, per_class, strict=True)},
        n_train=len(train_y),
        n_test=len(test_y),
    )


def probe_runs(
    runs: list[Path], *, train_store: Path, test_store: Path, encoder: str = "momentum", C: float = 1.0
) -> list[dict]:
    """The linear probe of each trained run: embeddings of a labelled train and test split
    store (``wsicell.evaluate.dataset``) with the run's ``encoder``; one dict per run."""
    from wsicell.cluster.represent import Blend, fit_representation
    from wsicell.evaluate.dataset import load_split
    from wsicell.evaluate.protocol import embed

    train, test = load_split(train_store), load_split(test_store)
    names = {i + 1: n for i, n in enumerate(test.class_names)}

    def row(name: str, train_x: np.ndarray, test_x: np.ndarray) -> dict:
        result = linear_probe(train_x=train_x, train_y=train.labels, test_x=test_x, test_y=test.labels, C=C)
        out = result.as_dict()
        out["per_class_f1"] = {names.get(int(k), k): v for k, v in out["per_class_f1"].items()}
        return {"run": name, **out}

    def finite(f: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(f), f, np.nanmean(np.where(np.isfinite(f), f, np.nan), axis=0))

    rows = []
    for run in runs:
        e_train, e_test = embed(run, train, encoder=encoder), embed(run, test, encoder=encoder)
        rows.append(row(str(run), e_train, e_test))
        # the vector `wsicell cluster` clusters: the embedding joined with the measurements
        rep = fit_representation(e_train, train.features, feature_names=list(train.feature_names), blend=Blend())
        rows.append(row(f"{run} + morphology", rep.transform(e_train, train.features), rep.transform(e_test, test.features)))
    rows.append(row("morphology (30 measurements)", finite(train.features), finite(test.features)))
    return rows


def linear_markdown(rows: list[dict]) -> str:
    """A small table: run, macro F1 and accuracy (percent), per-class F1."""
    lines = ["| run | linear macro F1 | accuracy | per-class F1 |", "|---|---|---|---|"]
    for r in rows:
        per_class = ", ".join(f"{k} {100 * v:.1f}" for k, v in r["per_class_f1"].items())
        lines.append(f"| {Path(r['run']).name} | {100 * r['macro_f1']:.1f} | {100 * r['accuracy']:.1f} | {per_class} |")
    return "\n".join(lines)
