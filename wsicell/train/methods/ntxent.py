"""NT-Xent, SimCLR's loss: every view against the other 2N - 1 views of the batch.

For a batch of N cells seen twice (views ``z1[i]``, ``z2[i]``), view ``i`` has one positive
(the other view of the same cell) and 2(N - 1) negatives; the similarity is the cosine and
the loss is the mean over all 2N views of

    -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )

(Chen et al. 2020, eq. 1 of Ciga et al. 2022). No queue, no momentum encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """The NT-Xent loss of two views ``z1``, ``z2`` (N x D each, any norm), a scalar."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent needs two N x D tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # z: 2N x D
    logits = z @ z.T / temperature  # 2N x 2N
    self_pair = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pair, float("-inf"))  # a view is never its own negative
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # 2N
    return F.cross_entropy(logits, targets)
