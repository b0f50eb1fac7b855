"""SSLP's positives for a batch of cells: self, intra (spatial) and inter (cluster) invariance.

The batch holds B cells seen twice; the candidates every view is contrasted with are the 2B
views of the batch followed by E memory-bank rows: the spatial neighbours of the batch's
cells that are not themselves in the batch (so every anchor's neighbours are present,
whatever the loader put in the batch). For anchor cell ``a`` and candidate cell ``c``::

    w = w_self  * [c is a, other view]
      + w_intra * [c is a spatial neighbour of a]  (gated: only if both share a cluster)
      + w_inter * [c != a and c shares a's cluster]

Cells without a cluster yet (label -1: before the first clustering) take part only through
the self term. The pairs are returned as the weights and the "excluded" mask (an anchor
against itself) of :func:`wsicell.train.methods.multipos.multi_positive_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from wsicell.neighbours import Neighbours

IntraGate = Literal["cluster", "none"]


@dataclass(frozen=True)
class SSLPTargets:
    bank_index: torch.Tensor  # (E,) int64: bank rows appended after the 2B batch views
    weights: torch.Tensor  # (2B, 2B + E) float32
    excluded: torch.Tensor  # (2B, 2B + E) bool


def sslp_targets(
    batch_index: torch.Tensor,
    *,
    neighbours: Neighbours,
    labels: torch.Tensor,
    filled: torch.Tensor,
    self_weight: float = 1.0,
    intra_weight: float = 0.5,
    inter_weight: float = 0.5,
    intra_gate: IntraGate = "cluster",
) -> SSLPTargets:
    """Positive weights of the 2B views of the cells ``batch_index`` (B,), global indices.

    ``labels`` (N,) are cluster labels (-1: none), ``filled`` (N,) marks bank rows written.
    """
    if intra_gate not in ("cluster", "none"):
        raise ValueError(f"intra_gate must be 'cluster' or 'none', got {intra_gate!r}")
    batch = batch_index.detach().cpu().numpy().astype(np.int64)  # (B,)
    b = len(batch)
    rows = [neighbours.of(int(i)) for i in batch]
    nbr_anchor = np.repeat(np.arange(b), [len(r) for r in rows])  # pair -> batch position
    nbr_cell = np.concatenate(rows) if rows else np.zeros(0, np.int64)  # pair -> neighbour id
    extra = np.setdiff1d(nbr_cell, batch)
    if len(extra):  # only rows already in the bank (read just those: the bank may be on a GPU)
        extra = extra[_take(filled, extra)]  # (E,)

    cand_cell = np.concatenate([batch, batch, extra])  # (M,)
    anchor_cell = np.concatenate([batch, batch])  # (2B,)
    a, m = 2 * b, len(cand_cell)
    same_cell = anchor_cell[:, None] == cand_cell[None, :]  # (2B, M)
    excluded = np.zeros((a, m), dtype=bool)
    excluded[np.arange(a), np.arange(a)] = True
    weights = np.zeros((a, m), dtype=np.float32)
    weights[same_cell & ~excluded] = self_weight

    la, lc = _take(labels, anchor_cell), _take(labels, cand_cell)
    same_cluster = (la[:, None] == lc[None, :]) & (la[:, None] >= 0)  # (2B, M)
    if inter_weight > 0:
        weights += inter_weight * (same_cluster & ~same_cell)
    if intra_weight > 0 and len(nbr_cell):
        spatial = _spatial_matrix(batch, extra, nbr_anchor, nbr_cell)  # (2B, M)
        if intra_gate == "cluster":
            spatial &= same_cluster
        weights += intra_weight * spatial
    return SSLPTargets(
        bank_index=torch.from_numpy(extra), weights=torch.from_numpy(weights), excluded=torch.from_numpy(excluded)
    )


def _take(values: torch.Tensor, index: np.ndarray) -> np.ndarray:
    """``values[index]`` as numpy, gathering on ``values``' device first."""
    return values[torch.from_numpy(index).to(values.device)].cpu().numpy()


def _spatial_matrix(batch: np.ndarray, extra: np.ndarray, pair_anchor: np.ndarray, pair_cell: np.ndarray) -> np.ndarray:
    """(2B, 2B + E) bool: anchor view of batch position p vs every column holding a neighbour
    of p (both views of a neighbour in the batch, or its bank row)."""
    b = len(batch)
    out = np.zeros((2 * b, 2 * b + len(extra)), dtype=bool)
    order = np.argsort(batch, kind="stable")
    loc = np.minimum(np.searchsorted(batch[order], pair_cell), b - 1)
    hit = batch[order][loc] == pair_cell  # neighbour is in the batch
    p, q = pair_anchor[hit], order[loc[hit]]
    for rows in (p, p + b):
        out[rows, q] = True
        out[rows, q + b] = True
    if len(extra):
        loc = np.minimum(np.searchsorted(extra, pair_cell), len(extra) - 1)
        hit = extra[loc] == pair_cell  # neighbour comes from the bank (extra is sorted)
        p, col = pair_anchor[hit], 2 * b + loc[hit]
        out[p, col] = True
        out[p + b, col] = True
    return out
