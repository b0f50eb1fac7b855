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
