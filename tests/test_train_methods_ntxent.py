"""NT-Xent against a naive loop over the 2N views (lightly's test style)."""

from __future__ import annotations

import math

import pytest
import torch

from wsicell.train.methods.ntxent import nt_xent


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / denominator)
    return total / n2


@pytest.mark.parametrize("n,d,t", [(1, 3, 0.1), (4, 8, 0.1), (16, 32, 0.5), (7, 5, 1.0)])
def test_matches_naive_loop(n: int, d: int, t: float) -> None:
    gen = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    assert nt_xent(z1, z2, temperature=t).item() == pytest.approx(naive_nt_xent(z1, z2, t), rel=1e-5)


def test_scale_invariant_and_symmetric() -> None:
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    base = nt_xent(z1, z2).item()
    assert nt_xent(3 * z1, 0.5 * z2).item() == pytest.approx(base, rel=1e-5)
    assert nt_xent(z2, z1).item() == pytest.approx(base, rel=1e-5)


def test_closed_form_for_orthogonal_cells() -> None:
    # N cells whose two views coincide and are mutually orthogonal: the positive has
    # similarity 1, the 2N - 2 negatives 0. Loss = -log(e^(1/t) / (e^(1/t) + 2N - 2)).
    n, t = 5, 0.5
    z = torch.eye(n)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert nt_xent(z, z.clone(), temperature=t).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_pulls_views_together() -> None:
    gen = torch.Generator().manual_seed(1)
    z1 = torch.randn(6, 4, generator=gen, requires_grad=True)
    z2 = torch.randn(6, 4, generator=gen)
    opt = torch.optim.SGD([z1], lr=0.5)
    before = nt_xent(z1, z2).item()
    for _ in range(50):
        opt.zero_grad()
        nt_xent(z1, z2).backward()
        opt.step()
    assert nt_xent(z1, z2).item() < before * 0.5


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(3, 2), torch.ones(3, 2), temperature=0)
