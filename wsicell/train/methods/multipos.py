"""A multi-positive contrastive loss (SupCon's "L_out" form with weighted positives).

For anchor ``i`` with candidates ``k`` (cosine similarities ``s_ik``, temperature ``t``) and
non-negative positive weights ``w_ij``::

    loss_i = - sum_j w_ij * log( exp(s_ij / t) / sum_{k not excluded} exp(s_ik / t) ) / sum_j w_ij

averaged over the anchors that have at least one positive. ``excluded`` removes pairs from
the denominator (an anchor never contrasts with itself). With one positive of weight 1 per
anchor this is InfoNCE / NT-Xent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_positive_loss(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    weights: torch.Tensor,
    *,
    excluded: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> torch.Tensor:
    """``anchors`` A x D, ``candidates`` M x D, ``weights`` A x M (>= 0), ``excluded`` A x M bool."""
    if anchors.ndim != 2 or candidates.ndim != 2 or anchors.shape[1] != candidates.shape[1]:
        raise ValueError(f"anchors (A x D) and candidates (M x D) disagree: {tuple(anchors.shape)}, {tuple(candidates.shape)}")
    if weights.shape != (anchors.shape[0], candidates.shape[0]):
        raise ValueError(f"weights must be A x M = {anchors.shape[0]} x {candidates.shape[0]}, got {tuple(weights.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    a = F.normalize(anchors.float(), dim=1)
    c = F.normalize(candidates.float(), dim=1)
    logits = a @ c.T / temperature  # A x M
    if excluded is not None:
        if excluded.shape != weights.shape:
            raise ValueError(f"excluded must be {tuple(weights.shape)}, got {tuple(excluded.shape)}")
        logits = logits.masked_fill(excluded, float("-inf"))
        weights = weights.masked_fill(excluded, 0.0)
    log_prob = torch.log_softmax(logits, dim=1)  # A x M
    weights = weights.float()
    total = weights.sum(dim=1)  # A
    has_positive = total > 0
    if not bool(has_positive.any()):
        return logits.sum() * 0.0  # no positives: a zero that keeps the graph
    log_prob = log_prob.masked_fill(weights == 0, 0.0)  # avoid 0 * -inf
    per_anchor = -(weights * log_prob).sum(dim=1)[has_positive] / total[has_positive]
    return per_anchor.mean()
