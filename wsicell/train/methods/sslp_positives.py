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

from wsicell.train.neighbours import Neighbours

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
    n_total = neighbours.n_cells
    rows = [neighbours.of(int(i)) for i in batch]
    nbr_anchor = np.repeat(np.arange(b), [len(r) for r in rows])  # pair -> batch position
    nbr_cell = np.concatenate(rows) if rows else np.zeros(0, np.int64)  # pair -> neighbour id
    filled_np = filled.detach().cpu().numpy()
    extra = np.setdiff1d(nbr_cell, batch)
    extra = extra[filled_np[extra]] if len(extra) else extra  # (E,)

    device = labels.device
    cand_cell = torch.from_numpy(np.concatenate([batch, batch, extra])).to(device)  # (M,)
    anchor_cell = torch.from_numpy(np.concatenate([batch, batch])).to(device)  # (2B,)
    a, m = 2 * b, len(cand_cell)
    same_cell = anchor_cell[:, None] == cand_cell[None, :]  # (2B, M)
    excluded = torch.zeros(a, m, dtype=torch.bool, device=device)
    excluded[torch.arange(a), torch.arange(a)] = True
    weights = self_weight * (same_cell & ~excluded).float()

    la, lc = labels[anchor_cell], labels[cand_cell]
    same_cluster = (la[:, None] == lc[None, :]) & (la[:, None] >= 0)  # (2B, M)
    if inter_weight > 0:
        weights += inter_weight * (same_cluster & ~same_cell).float()
    if intra_weight > 0 and len(nbr_cell):
        pair_keys = torch.from_numpy(batch[nbr_anchor] * n_total + nbr_cell).to(device)
        keys = anchor_cell[:, None] * n_total + cand_cell[None, :]  # (2B, M)
        spatial = torch.isin(keys, pair_keys)
        if intra_gate == "cluster":
            spatial &= same_cluster
        weights += intra_weight * spatial.float()
    return SSLPTargets(bank_index=torch.from_numpy(extra), weights=weights, excluded=excluded)
