"""InfoNCE as in MoCo: logits over (positive, queue negatives), cross-entropy to index 0."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_logits(
    q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float, drop_nearest: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of InfoNCE; the positive of query i is key i (column 0).

    q: NxD and k: NxD L2-normalised; negatives: KxD L2-normalised (the queue).
    Returns logits Nx(1+K) divided by the temperature, and labels N (all zero).
    """
    l_pos = torch.einsum("nd,nd->n", q, k).unsqueeze(1)  # Nx1
    l_neg = q @ negatives.t()  # NxK
    if drop_nearest > 0:  # likely false negatives (same cell type): the most similar keys are left out
        nearest = l_neg.topk(min(drop_nearest, l_neg.shape[1] - 1), dim=1).indices  # N x drop
        l_neg = l_neg.scatter(1, nearest, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # Nx(1+K)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return logits, labels


def info_nce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -log softmax(logits)[label]; half precision is lifted to fp32."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, labels)
