"""SSLP parts against naive references: neighbour search, multi-positive loss, positives, bank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsicell.neighbours import concat_neighbours, spatial_neighbours
from wsicell.train.methods.memory_bank import MemoryBank
from wsicell.train.methods.multipos import multi_positive_loss
from wsicell.train.methods.ntxent import nt_xent
from wsicell.train.methods.sslp_positives import sslp_targets


# -- neighbour search -------------------------------------------------------------------
def naive_neighbours(points_px: np.ndarray, mpp: float, radius_um: float) -> list[list[int]]:
    out = []
    for i, p in enumerate(points_px):
        found = []
        for j, q in enumerate(points_px):
            d = math.dist(p, q) * mpp
            if j != i and d <= radius_um:
                found.append((d, j))
        out.append([j for _, j in sorted(found)])
    return out


@pytest.mark.parametrize("mpp,radius", [(0.25, 10.0), (0.5, 6.0), (0.499, 25.0)])
def test_neighbours_match_naive_search(mpp: float, radius: float) -> None:
    rng = np.random.default_rng(int(radius))
    points = rng.uniform(0, 400, size=(300, 2)).astype(np.float32)
    got = spatial_neighbours(points, mpp=mpp, radius_um=radius)
    want = naive_neighbours(points, mpp, radius)
    assert got.n_cells == 300
    assert sum(map(len, want)) > 150  # the case is not trivial
    for i in range(300):
        assert sorted(got.of(i).tolist()) == sorted(want[i])
        assert np.all(np.diff(got.distance_um[got.indptr[i] : got.indptr[i + 1]]) >= 0)


def test_neighbour_cap_keeps_the_nearest() -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, size=(200, 2))
    full = naive_neighbours(points, 0.5, 20.0)
    capped = spatial_neighbours(points, mpp=0.5, radius_um=20.0, max_neighbours=4)
    for i in range(200):
        assert capped.of(i).tolist() == full[i][:4] or (
            # ties in distance may swap order; compare distances instead
            np.allclose(np.sort(capped.distance_um[capped.indptr[i] : capped.indptr[i + 1]]),
                        sorted(math.dist(points[i], points[j]) * 0.5 for j in full[i])[:4], atol=1e-4)
        )  # fmt: skip
    assert capped.counts().max() == 4


def test_neighbours_stay_within_their_slide() -> None:
    a = np.array([[0, 0], [10, 0]], np.float32)
    b = np.array([[0, 0], [5, 0], [500, 500]], np.float32)  # same coordinates as slide a
    joined = concat_neighbours(
        [spatial_neighbours(a, mpp=1.0, radius_um=12, offset=0), spatial_neighbours(b, mpp=1.0, radius_um=12, offset=2)]
    )
    assert joined.n_cells == 5
    assert joined.of(0).tolist() == [1] and joined.of(1).tolist() == [0]
    assert joined.of(2).tolist() == [3] and joined.of(3).tolist() == [2] and joined.of(4).tolist() == []


def test_neighbours_respect_groups() -> None:
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 50, size=(200, 2))
    groups = rng.integers(0, 4, size=200)  # four tiles sharing one coordinate frame
    got = spatial_neighbours(points, mpp=1.0, radius_um=9.0, groups=groups)
    naive = naive_neighbours(points, 1.0, 9.0)
    for i in range(200):
        same = [j for j in naive[i] if groups[j] == groups[i]]
        assert sorted(got.of(i).tolist()) == sorted(same)
    assert got.counts().sum() > 200


def test_neighbours_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="mpp"):
        spatial_neighbours(np.zeros((3, 2)), mpp=0, radius_um=5)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        spatial_neighbours(np.zeros((3, 3)), mpp=1, radius_um=5)
    assert spatial_neighbours(np.zeros((0, 2)), mpp=1, radius_um=5).n_cells == 0


# -- multi-positive loss ----------------------------------------------------------------
def naive_multi_positive(anchors, candidates, weights, excluded, t) -> float:
    a = anchors.double() / anchors.double().norm(dim=1, keepdim=True)
    c = candidates.double() / candidates.double().norm(dim=1, keepdim=True)
    losses = []
    for i in range(len(a)):
        sims = [float(a[i] @ c[k]) / t for k in range(len(c))]
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if not excluded[i, k])
        total_w, acc = 0.0, 0.0
        for j in range(len(c)):
            w = float(weights[i, j])
            if w > 0 and not excluded[i, j]:
                acc += -w * math.log(math.exp(sims[j]) / denominator)
                total_w += w
        if total_w > 0:
            losses.append(acc / total_w)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_positive_matches_naive_loop(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    anchors, candidates = torch.randn(6, 5, generator=gen), torch.randn(11, 5, generator=gen)
    weights = torch.rand(6, 11, generator=gen) * (torch.rand(6, 11, generator=gen) < 0.3)
    weights[5] = 0  # an anchor without positives is skipped
    excluded = torch.rand(6, 11, generator=gen) < 0.15
    weights[0, 0], excluded[0, 0] = 1.0, True  # an excluded pair never counts as a positive
    got = multi_positive_loss(anchors, candidates, weights, excluded=excluded, temperature=0.2)
    assert got.item() == pytest.approx(naive_multi_positive(anchors, candidates, weights, excluded, 0.2), rel=1e-5)


def test_multi_positive_with_one_positive_is_nt_xent() -> None:
    gen = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    z = torch.cat([z1, z2])
    weights = torch.roll(torch.eye(10), 5, dims=1)
    excluded = torch.eye(10, dtype=torch.bool)
    got = multi_positive_loss(z, z, weights, excluded=excluded, temperature=0.1)
    assert got.item() == pytest.approx(nt_xent(z1, z2, temperature=0.1).item(), rel=1e-5)


def test_multi_positive_without_positives_is_zero_with_gradient() -> None:
    anchors = torch.randn(3, 4, requires_grad=True)
    loss = multi_positive_loss(anchors, torch.randn(5, 4), torch.zeros(3, 5))
    loss.backward()
    assert loss.item() == 0.0 and anchors.grad is not None


# -- SSLP positives ---------------------------------------------------------------------
def naive_targets(batch, neighbour_lists, labels, filled, ws, wi, wx, gate):
    extra = sorted({c for i in batch for c in neighbour_lists[i] if c not in batch and filled[c]})
    cand = list(batch) + list(batch) + extra
    anchors = list(batch) + list(batch)
    w = np.zeros((len(anchors), len(cand)))
    ex = np.zeros_like(w, dtype=bool)
    for i, a in enumerate(anchors):
        for j, c in enumerate(cand):
            if i == j:
                ex[i, j] = True
                continue
            same = labels[a] >= 0 and labels[a] == labels[c]
            if c == a:
                w[i, j] += ws
            else:
                if same:
                    w[i, j] += wx
                if c in neighbour_lists[a] and (same or gate == "none"):
                    w[i, j] += wi
    return extra, w, ex


@pytest.mark.parametrize("gate", ["cluster", "none"])
def test_sslp_targets_match_naive_construction(gate: str) -> None:
    rng = np.random.default_rng(7)
    n = 120
    points = rng.uniform(0, 60, size=(n, 2))
    nbrs = spatial_neighbours(points, mpp=1.0, radius_um=8.0, max_neighbours=5)
    lists = [nbrs.of(i).tolist() for i in range(n)]
    labels = torch.from_numpy(rng.integers(-1, 4, size=n))
    filled = torch.from_numpy(rng.random(n) < 0.8)
    batch = torch.from_numpy(rng.choice(n, size=16, replace=False))
    got = sslp_targets(
        batch, neighbours=nbrs, labels=labels, filled=filled,
        self_weight=1.0, intra_weight=0.7, inter_weight=0.3, intra_gate=gate,
    )  # fmt: skip
    extra, w, ex = naive_targets(batch.tolist(), lists, labels.tolist(), filled.tolist(), 1.0, 0.7, 0.3, gate)
    assert got.bank_index.tolist() == extra and len(extra) > 0
    assert np.allclose(got.weights.numpy(), w)
    assert np.array_equal(got.excluded.numpy(), ex)
    assert (w > 0.9).sum() >= 32  # every view has its self positive


# -- memory bank ------------------------------------------------------------------------
def test_bank_update_and_clusters() -> None:
    bank = MemoryBank(60, 3, momentum=0.5)
    centres = torch.eye(3)
    z = centres.repeat_interleave(20, dim=0) + 0.05 * torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    bank.update(torch.arange(60), z)
    assert bool(bank.filled.all())
    assert torch.allclose(bank.vectors.norm(dim=1), torch.ones(60), atol=1e-5)
    labels = bank.cluster(3, seed=0)
    for block in range(3):
        assert len(set(labels[block * 20 : (block + 1) * 20].tolist())) == 1  # three clean groups
    assert len(set(labels.tolist())) == 3
    bank.update(torch.tensor([0]), torch.tensor([[0.0, 1.0, 0.0]]))  # momentum blend, renormalised
    assert bank.vectors[0, 0] > 0.5 and bank.vectors[0, 1] > 0.5
    assert bank.vectors[0].norm().item() == pytest.approx(1.0, abs=1e-5)


def test_bank_clusters_only_filled_rows() -> None:
    bank = MemoryBank(10, 2)
    bank.update(torch.arange(4), torch.randn(4, 2))
    labels = bank.cluster(2)
    assert (labels[4:] == -1).all() and (labels[:4] >= 0).all()
    with pytest.raises(ValueError, match="at least 5"):
        bank.cluster(5)
