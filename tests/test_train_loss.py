"""InfoNCE against a naive per-sample loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsicell.train.loss import contrastive_logits, info_nce


def naive_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ n) / t) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


@pytest.mark.parametrize("n,d,kq,t", [(1, 4, 3, 0.07), (8, 16, 32, 0.07), (5, 3, 10, 0.5), (16, 64, 64, 1.0)])
def test_info_nce_matches_naive_loop(n: int, d: int, kq: int, t: float) -> None:
    g = torch.Generator().manual_seed(n + d + kq)
    q = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    queue = F.normalize(torch.randn(kq, d, generator=g, dtype=torch.float64), dim=1)
    logits, labels = contrastive_logits(q, k, queue, t)
    assert logits.shape == (n, 1 + kq)
    assert labels.tolist() == [0] * n
    assert info_nce(logits, labels).item() == pytest.approx(naive_info_nce(q, k, queue, t), rel=1e-5)


def test_perfect_positive_gives_low_loss() -> None:
    q = F.normalize(torch.eye(4), dim=1)
    queue = -q  # every negative is the opposite direction
    logits, labels = contrastive_logits(q, q, queue, 0.07)
    assert info_nce(logits, labels).item() < 1e-5


def test_dropping_the_nearest_negatives_matches_a_naive_loop() -> None:
    """``drop_nearest``: each query's most similar queue keys (likely the same cell type) are
    left out of its negatives; the loss is InfoNCE over the positive and the others."""
    gen = torch.Generator().manual_seed(3)
    q = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    k = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    queue = F.normalize(torch.randn(20, 8, generator=gen), dim=1)
    logits, labels = contrastive_logits(q, k, queue, 0.1, drop_nearest=5)
    got = info_nce(logits, labels)
    total = 0.0
    for i in range(6):
        sims = [float(q[i] @ queue[j]) for j in range(20)]
        kept = sorted(range(20), key=lambda j: -sims[j])[5:]  # all but the 5 most similar
        pos = math.exp(float(q[i] @ k[i]) / 0.1)
        total += -math.log(pos / (pos + sum(math.exp(sims[j] / 0.1) for j in kept)))
    assert float(got) == pytest.approx(total / 6, rel=1e-5)
    assert float(got) < float(info_nce(*contrastive_logits(q, k, queue, 0.1)))  # fewer, nearer negatives gone
    assert torch.isfinite(logits[:, 0]).all() and (torch.isinf(logits).sum(dim=1) == 5).all()


def test_negative_drop_setting_is_validated() -> None:
    from wsicell.train.config import TrainConfig

    assert TrainConfig(negative_drop=0.25).negative_drop == 0.25
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="negative_drop"):
            TrainConfig(negative_drop=bad)
