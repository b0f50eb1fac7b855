"""The linear probe (wsicell.evaluate.linear): macro F1 of logistic regression on embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.evaluate.linear import linear_probe


def blobs(n: int, *, seed: int, separation: float, classes: int = 4, dim: int = 16):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, dim)) * separation
    y = rng.integers(1, classes + 1, size=n)
    return centres[y - 1] + rng.normal(size=(n, dim)), y


def test_separable_classes_score_high_and_chance_scores_low() -> None:
    tx, ty = blobs(800, seed=0, separation=3.0)
    vx, vy = blobs(400, seed=1, separation=3.0)
    result = linear_probe(train_x=tx, train_y=ty, test_x=vx, test_y=vy)
    assert result.macro_f1 > 0.95 and result.accuracy > 0.95
    assert set(result.per_class_f1) == {1, 2, 3, 4} and (result.n_train, result.n_test) == (800, 400)
    shuffled = linear_probe(train_x=tx, train_y=np.random.default_rng(2).permutation(ty), test_x=vx, test_y=vy)
    assert shuffled.macro_f1 < 0.45  # chance is ~0.25 for four classes


def test_macro_f1_weighs_every_class_equally() -> None:
    # a rare class that overlaps a common one: accuracy stays high, macro F1 drops
    def data(n: int, seed: int):
        rng = np.random.default_rng(seed)
        y = rng.choice([1, 2, 3], size=n, p=[0.5, 0.45, 0.05])
        centres = {1: np.zeros(8), 2: np.full(8, 4.0), 3: np.full(8, 0.3)}
        return np.stack([centres[c] for c in y]) + rng.normal(size=(n, 8)), y

    (tx, ty), (vx, vy) = data(2000, 6), data(1000, 7)
    result = linear_probe(train_x=tx, train_y=ty, test_x=vx, test_y=vy)
    assert result.macro_f1 == pytest.approx(np.mean(list(result.per_class_f1.values())))
    assert result.accuracy > 0.9
    assert result.per_class_f1[3] < 0.5 and result.macro_f1 < result.accuracy - 0.1


def test_rejects_bad_input() -> None:
    x, y = blobs(50, seed=5, separation=1.0)
    with pytest.raises(ValueError, match="same D"):
        linear_probe(train_x=x, train_y=y, test_x=x[:, :3], test_y=y)
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(train_x=x, train_y=np.ones(50), test_x=x, test_y=y)
    with pytest.raises(ValueError, match="disagree"):
        linear_probe(train_x=x, train_y=y[:10], test_x=x, test_y=y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(train_x=bad, train_y=y, test_x=x, test_y=y)
