"""A memory bank of every training cell's projection, and its k-means clusters.

SSLP needs vectors of cells that are not in the current batch (a cell's spatial neighbours)
and a partition of feature space (inter-invariance: cluster mates are positives). The bank
holds one L2-normalised row per training cell, refreshed with momentum each time the cell
is seen (Wu et al. 2018); :meth:`MemoryBank.cluster` runs FAISS k-means over the rows seen
so far (once per epoch). Memory: n_cells x dim x 4 bytes (20k cells x 128: 10 MB;
10 M cells: 5 GB — sample the training cells beyond that).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class MemoryBank:
    """``n`` rows of ``dim``; rows never written are "unfilled" and take part in nothing."""

    def __init__(self, n: int, dim: int, *, momentum: float = 0.5, device: str | torch.device = "cpu") -> None:
        if n < 1 or dim < 1:
            raise ValueError(f"a memory bank needs n >= 1 and dim >= 1, got {n} x {dim}")
        if not 0 <= momentum < 1:
            raise ValueError(f"bank momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.vectors = torch.zeros(n, dim, device=device)  # n x dim, unit rows once filled
        self.filled = torch.zeros(n, dtype=torch.bool, device=device)  # n
        self.labels = torch.full((n,), -1, dtype=torch.long, device=device)  # n, -1 = no cluster

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @torch.no_grad()
    def update(self, index: torch.Tensor, z: torch.Tensor) -> None:
        """Blend ``z`` (B x dim) into rows ``index`` (B,); a first write replaces the row."""
        index = index.to(self.vectors.device)
        z = F.normalize(z.detach().float().to(self.vectors.device), dim=1)
        old = self.vectors[index]
        was = self.filled[index].unsqueeze(1)
        mixed = torch.where(was, self.momentum * old + (1 - self.momentum) * z, z)
        self.vectors[index] = F.normalize(mixed, dim=1)
        self.filled[index] = True

    @torch.no_grad()
    def cluster(self, k: int, *, seed: int = 0, niter: int = 20) -> torch.Tensor:
        """Spherical k-means (the project's: k-means++ seeds, FAISS, GPU when there is one)
        over the filled rows; sets and returns ``labels`` (n,)."""
        from wsicell.cluster.kmeans import assign, make_index, prepare, train_kmeans

        rows = torch.nonzero(self.filled).squeeze(1)
        if len(rows) < k:
            raise ValueError(f"k-means with k={k} needs at least {k} filled bank rows, got {len(rows)}")
        x = prepare(self.vectors[rows].float().cpu().numpy(), spherical=True)
        result = train_kmeans(x, k=k, iterations=niter, restarts=1, seed=seed, spherical=True)
        cluster, _, _ = assign(make_index(result.centroids), x, spherical=True)
        self.labels.fill_(-1)
        self.labels[rows] = torch.from_numpy(cluster.astype(np.int64)).to(self.labels.device)
        return self.labels

    def state_dict(self) -> dict:
        return {"vectors": self.vectors.cpu(), "filled": self.filled.cpu(), "labels": self.labels.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["vectors"].shape) != tuple(self.vectors.shape):
            raise ValueError(f"bank shape {tuple(state['vectors'].shape)} != {tuple(self.vectors.shape)}")
        device = self.vectors.device
        self.vectors = state["vectors"].to(device)
        self.filled = state["filled"].to(device)
        self.labels = state["labels"].to(device)
