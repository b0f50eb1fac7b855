"""Clustering metrics against values computed by hand / from first principles (not sklearn)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from wsicell.evaluate.metrics import (
    ClusterScores,
    contingency,
    hungarian_accuracy,
    mean_std,
    purity,
    score_clusters,
)

LABELS = np.array([0, 0, 0, 1, 1, 1])
CLUSTERS = np.array([0, 0, 1, 1, 2, 2])
# contingency (rows labels 0/1, columns clusters 0/1/2): [[2, 1, 0], [0, 1, 2]]


def reference_ami(labels: list[int], clusters: list[int]) -> float:
    """AMI (arithmetic normalisation) from its definition, with the expected mutual
    information summed over the hypergeometric distribution (Vinh et al. 2010)."""
    n = len(labels)
    us, vs = sorted(set(labels)), sorted(set(clusters))
    a = [labels.count(u) for u in us]
    b = [clusters.count(v) for v in vs]
    nij = [[sum(1 for x, y in zip(labels, clusters, strict=True) if x == u and y == v) for v in vs] for u in us]
    mi = sum(c / n * math.log(n * c / (a[i] * b[j])) for i, row in enumerate(nij) for j, c in enumerate(row) if c)
    hu = -sum(x / n * math.log(x / n) for x in a)
    hv = -sum(x / n * math.log(x / n) for x in b)
    emi = 0.0
    for ai in a:
        for bj in b:
            for k in range(max(1, ai + bj - n), min(ai, bj) + 1):
                p = Fraction(math.comb(bj, k) * math.comb(n - bj, ai - k), math.comb(n, ai))
                emi += k / n * math.log(n * k / (ai * bj)) * float(p)
    return (mi - emi) / ((hu + hv) / 2 - emi)


def test_contingency_by_hand():
    assert contingency(LABELS, CLUSTERS).tolist() == [[2, 1, 0], [0, 1, 2]]


def test_purity_by_hand():
    # clusters' majorities: 2 (label 0) + 1 + 2 (label 1) = 5 of 6
    assert purity(LABELS, CLUSTERS) == pytest.approx(5 / 6)
    assert purity([1, 1, 2, 2], [0, 0, 0, 0]) == pytest.approx(0.5)  # one cluster: majority share


def test_hungarian_accuracy_by_hand():
    # one-to-one: cluster 0 -> label 0 (2 cells), cluster 2 -> label 1 (2 cells); cluster 1 unmatched
    assert hungarian_accuracy(LABELS, CLUSTERS) == pytest.approx(4 / 6)
    # purity would give 3/4 here, the matching only 2/4: two clusters cannot both be label 1
    assert hungarian_accuracy([1, 1, 1, 2], [0, 0, 1, 1]) == pytest.approx(3 / 4)
    assert hungarian_accuracy([1, 1, 1, 2], [0, 1, 1, 1]) == pytest.approx(2 / 4)


def test_ari_by_hand():
    # sum C(nij,2) = 1 + 0 + 0 + 1 = 2; rows C(3,2)*2 = 6; columns C(2,2)*3 = 3; C(6,2) = 15
    # expected = 6 * 3 / 15 = 1.2; max = (6 + 3) / 2 = 4.5; ARI = (2 - 1.2) / (4.5 - 1.2) = 8/33
    assert score_clusters(labels=LABELS, clusters=CLUSTERS).ari == pytest.approx(8 / 33)


def test_ami_from_first_principles():
    # MI = 2/3 ln 2 by hand; the reference adds the exact expected MI
    s = score_clusters(labels=LABELS, clusters=CLUSTERS)
    assert s.ami == pytest.approx(reference_ami(LABELS.tolist(), CLUSTERS.tolist()), abs=1e-9)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40).tolist()
    clusters = [(x + int(rng.random() < 0.3)) % 4 for x in labels]
    got = score_clusters(labels=np.array(labels), clusters=np.array(clusters)).ami
    assert got == pytest.approx(reference_ami(labels, clusters), abs=1e-9)
    assert 0.2 < got < 0.9


def test_perfect_and_permuted_clusterings_score_one():
    s = score_clusters(labels=np.array([3, 3, 1, 1, 2, 2]), clusters=np.array([0, 0, 2, 2, 1, 1]))
    assert (s.ami, s.ari, s.purity, s.accuracy) == pytest.approx((1.0, 1.0, 1.0, 1.0))


def test_mean_std_and_errors():
    runs = [ClusterScores(0.1, 0.2, 0.5, 0.4), ClusterScores(0.3, 0.2, 0.7, 0.6)]
    m = mean_std(runs)
    assert m["ami"] == pytest.approx((0.2, 0.1))
    assert m["ari"] == pytest.approx((0.2, 0.0))
    with pytest.raises(ValueError, match="differ in length"):
        score_clusters(labels=np.array([1, 2]), clusters=np.array([1]))
    with pytest.raises(ValueError, match="no scores"):
        mean_std([])


def test_knn_label_agreement_against_a_naive_loop() -> None:
    from wsicell.evaluate.metrics import knn_label_agreement

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + rng.integers(0, 2, 300) * (rng.random(300) < 0.2)
    want = []
    for i in range(300):
        d = ((x - x[i]) ** 2).sum(1)
        d[i] = np.inf
        want.append(np.mean(labels[np.argsort(d)[:10]] == labels[i]))
    assert knn_label_agreement(x, labels, cosine=False) == pytest.approx(np.mean(want))
    shuffled = rng.permutation(labels)
    assert knn_label_agreement(x, shuffled, cosine=False) < np.mean(want) - 0.2  # structure, not chance
