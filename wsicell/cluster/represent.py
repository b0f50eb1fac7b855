"""The vector a cell is clustered by: its learned embedding joined with its morphology.

A contrastive embedding of a 32-px crop is mostly a colour and texture descriptor, and the
crop rule (a window of twice the nucleus, resized) erases the nucleus' absolute size. The
extraction's own measurements (area, axes, shape, stain) carry exactly that. Neither alone
is the best account of a cell type; joined with equal weight they are (docs/results.md,
"Cell representation"). The joined vector of cell i is

    v_i = [ (1 - w) * P(unit(e_i) - mu) / s_e ,  w * (f_i - m) / sd / s_f ]

with ``e`` the embedding, ``P`` the projection on its first ``embedding_dims`` principal
components, ``f`` the morphology measurements (minus those without meaning for a type, such
as the nucleus' orientation), ``m``/``sd`` their mean and standard deviation, and the scales
``s_e``, ``s_f`` chosen so that each part has a mean squared norm of 1 before the weight
``w = morphology_weight``. ``w = 0`` is the embedding alone, ``w = 1`` the morphology alone.
Everything is fitted on a sample of cells once and applied to every cell (and to slides
mapped later) as one affine map, so it streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsicell.cluster.kmeans import normalise

EXCLUDED_FEATURES = ("orientation_deg",)
"""Measurements left out of the representation: a nucleus has no preferred orientation."""


@dataclass(frozen=True)
class Blend:
    """How the embedding and the morphology are joined (``ClusterConfig`` holds one)."""

    morphology_weight: float = 0.5
    embedding_dims: int = 32

    def __post_init__(self) -> None:
        if not (np.isfinite(self.morphology_weight) and 0.0 <= self.morphology_weight <= 1.0):
            raise ValueError(f"morphology weight must be in [0, 1], got {self.morphology_weight!r}")
        if self.embedding_dims < 1:
            raise ValueError(f"embedding dims must be >= 1, got {self.embedding_dims!r}")

    def as_dict(self) -> dict[str, float | int]:
        return {"morphology_weight": float(self.morphology_weight), "embedding_dims": int(self.embedding_dims)}


@dataclass(frozen=True)
class Representation:
    """A fitted blend: ``transform(embedding, features)`` -> (n, dims + F') float32."""

    blend: Blend
    embedding_mean: np.ndarray  # (D,) mean of the unit embeddings
    embedding_basis: np.ndarray  # (D, p) principal directions, p = min(embedding_dims, D)
    embedding_scale: float  # (1 - w) / s_e
    feature_columns: np.ndarray  # (F',) int: columns of the store's features used
    feature_names: tuple[str, ...]  # their names
    feature_mean: np.ndarray  # (F',)
    feature_std: np.ndarray  # (F',)
    feature_scale: float  # w / s_f

    @property
    def dim(self) -> int:
        return self.embedding_basis.shape[1] + len(self.feature_columns)

    def transform(self, embedding: np.ndarray, features: np.ndarray) -> np.ndarray:
        """embedding: (n, D), features: (n, F) as stored -> (n, dim) float32."""
        u = normalise(np.array(embedding, dtype=np.float32, order="C", copy=True))  # n x D unit rows
        e = (u - self.embedding_mean) @ self.embedding_basis  # n x p
        e *= self.embedding_scale
        f = standardised(features[:, self.feature_columns], self.feature_mean, self.feature_std)  # n x F'
        f *= self.feature_scale
        return np.ascontiguousarray(np.concatenate([e, f], axis=1), dtype=np.float32)

    # -- saving: plain arrays + attrs (the clustering group of the store) -------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "embedding_mean": self.embedding_mean, "embedding_basis": self.embedding_basis,
            "feature_mean": self.feature_mean, "feature_std": self.feature_std,
        }  # fmt: skip

    def attrs(self) -> dict:
        return {
            **self.blend.as_dict(), "embedding_scale": float(self.embedding_scale),
            "feature_scale": float(self.feature_scale), "feature_columns": [int(c) for c in self.feature_columns],
            "feature_names": list(self.feature_names),
        }  # fmt: skip

    @classmethod
    def from_saved(cls, attrs: dict, arrays: dict[str, np.ndarray]) -> Representation:
        return cls(
            blend=Blend(morphology_weight=attrs["morphology_weight"], embedding_dims=attrs["embedding_dims"]),
            embedding_mean=np.asarray(arrays["embedding_mean"], np.float32),
            embedding_basis=np.asarray(arrays["embedding_basis"], np.float32),
            embedding_scale=float(attrs["embedding_scale"]),
            feature_columns=np.asarray(attrs["feature_columns"], np.int64),
            feature_names=tuple(attrs["feature_names"]),
            feature_mean=np.asarray(arrays["feature_mean"], np.float32),
            feature_std=np.asarray(arrays["feature_std"], np.float32),
            feature_scale=float(attrs["feature_scale"]),
        )  # fmt: skip


def standardised(f: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(f - mean) / std as float32, non-finite values (a measurement that failed) set to 0."""
    out = (np.asarray(f, np.float32) - mean) / std
    out[~np.isfinite(out)] = 0.0
    return out


def fit_representation(
    embedding: np.ndarray, features: np.ndarray, *, feature_names: list[str], blend: Blend
) -> Representation:
    """Fit the blend on a sample: embedding (m, D), features (m, F) with their ``feature_names``."""
    if len(embedding) != len(features):
        raise ValueError(f"{len(embedding)} embeddings but {len(features)} feature rows")
    if len(embedding) < 2:
        raise ValueError("need at least 2 cells to fit the representation")
    w = blend.morphology_weight
    u = normalise(np.array(embedding, dtype=np.float32, order="C", copy=True))  # m x D
    mean = u.mean(axis=0)
    centred = u - mean
    p = 0 if w == 1.0 else min(blend.embedding_dims, u.shape[1], len(u))  # w = 1: the measurements alone
    # principal directions from the D x D covariance (D is small: 256-512): no m x D SVD copy
    cov = (centred.T.astype(np.float64) @ centred) / len(u)
    values, vectors = np.linalg.eigh(cov)
    basis = vectors[:, ::-1][:, :p].astype(np.float32)  # D x p, largest variance first
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(p)])  # a deterministic sign
    e = centred @ basis
    s_e = float(np.sqrt(np.mean(np.einsum("ij,ij->i", e, e)))) if p else 1.0
    s_e = s_e or 1.0

    used = [] if w == 0.0 else [i for i, n in enumerate(feature_names) if n not in EXCLUDED_FEATURES]
    columns = np.array(used, np.int64)  # w = 0: the embedding alone
    f = np.asarray(features, np.float64)[:, columns]
    f_mean = np.nanmean(f, axis=0) if len(columns) else np.zeros(0)
    f_std = np.nanstd(f, axis=0) if len(columns) else np.zeros(0)
    f_mean = np.where(np.isfinite(f_mean), f_mean, 0.0).astype(np.float32)
    f_std = np.where(np.isfinite(f_std) & (f_std > 0), f_std, 1.0).astype(np.float32)
    z = standardised(f, f_mean, f_std)
    s_f = float(np.sqrt(np.mean(np.einsum("ij,ij->i", z, z)))) if len(columns) else 0.0
    if w > 0 and s_f == 0.0:
        raise ValueError("the morphology measurements carry no variation (or there are none); use --morphology-weight 0")
    return Representation(
        blend=blend, embedding_mean=mean.astype(np.float32), embedding_basis=basis,
        embedding_scale=(1.0 - w) / s_e, feature_columns=columns,
        feature_names=tuple(feature_names[i] for i in columns), feature_mean=f_mean, feature_std=f_std,
        feature_scale=(w / s_f) if s_f else 0.0,
    )  # fmt: skip
