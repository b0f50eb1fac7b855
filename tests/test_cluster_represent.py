"""The cell representation: embedding PCA joined with standardised morphology, against a naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.cluster.represent import Blend, Representation, fit_representation


def naive(embedding: np.ndarray, features: np.ndarray, names: list[str], w: float, dims: int) -> np.ndarray:
    """The formula of represent.py written out plainly (float64, SVD instead of eigh)."""
    u = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    c = u - u.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    e = c @ vt[:dims].T
    e /= np.sqrt((e**2).sum(1).mean())
    keep = [i for i, n in enumerate(names) if n != "orientation_deg"]
    f = (features[:, keep] - features[:, keep].mean(0)) / features[:, keep].std(0)
    f /= np.sqrt((f**2).sum(1).mean())
    return np.hstack([(1 - w) * e, w * f])


def data(n: int = 500, d: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d)) * np.linspace(3, 0.1, d)  # distinct variances: a stable PCA
    names = ["area_um2", "orientation_deg", "eccentricity", "haematoxylin_od_mean"]
    feats = np.column_stack([rng.uniform(10, 80, n), rng.uniform(-90, 90, n), rng.uniform(0, 1, n), rng.normal(0.5, 0.1, n)])
    return emb.astype(np.float32), feats.astype(np.float32), names


@pytest.mark.parametrize("w", [0.0, 0.25, 0.5, 1.0])
def test_transform_equals_the_naive_formula_up_to_component_signs(w: float) -> None:
    emb, feats, names = data()
    rep = fit_representation(emb, feats, feature_names=names, blend=Blend(morphology_weight=w, embedding_dims=6))
    got = rep.transform(emb, feats)
    want = naive(emb.astype(np.float64), feats.astype(np.float64), names, w, 6)
    if w == 0.0:
        want = want[:, :6]  # no measurements at all
    if w == 1.0:
        want = want[:, 6:]  # no embedding at all
    assert got.shape == want.shape and got.dtype == np.float32
    signs = np.sign((got * want).sum(0))  # a principal direction is defined up to its sign
    signs[signs == 0] = 1
    np.testing.assert_allclose(got * signs, want, atol=2e-4)
    assert "orientation_deg" not in rep.feature_names
    if 0 < w < 1:  # each part carries its share of the squared norm
        e, f = got[:, :6], got[:, 6:]
        assert (e**2).sum(1).mean() == pytest.approx((1 - w) ** 2, rel=1e-3)
        assert (f**2).sum(1).mean() == pytest.approx(w**2, rel=1e-3)


def test_saved_and_reloaded_representation_is_identical() -> None:
    emb, feats, names = data(seed=1)
    rep = fit_representation(emb, feats, feature_names=names, blend=Blend())
    again = Representation.from_saved(rep.attrs(), rep.arrays())
    np.testing.assert_array_equal(again.transform(emb, feats), rep.transform(emb, feats))


def test_failed_measurements_do_not_poison_the_vectors() -> None:
    emb, feats, names = data(seed=2)
    feats[3, 0] = np.nan
    rep = fit_representation(emb, feats, feature_names=names, blend=Blend())
    v = rep.transform(emb, feats)
    assert np.isfinite(v).all() and v[3, rep.embedding_basis.shape[1]] == 0.0  # the mean, standardised


def test_blend_validation() -> None:
    for bad in ({"morphology_weight": -0.1}, {"morphology_weight": 1.5}, {"embedding_dims": 0}):
        with pytest.raises(ValueError):
            Blend(**bad)
    emb, feats, names = data()
    with pytest.raises(ValueError, match="no variation"):
        fit_representation(emb, np.ones_like(feats), feature_names=names, blend=Blend())
