"""LARS (You et al. 2017) as SimCLR uses it (Chen et al. 2020; Ciga et al. 2022, App. C).

For every parameter ``w`` with gradient ``g`` of an *adapted* group::

    g     <- g + weight_decay * w
    trust <- eta * ||w|| / ||g||      (1 when either norm is 0)
    v     <- momentum * v + lr * trust * g
    w     <- w - v

Biases and normalisation parameters (all 1-D tensors) are excluded from both the weight
decay and the trust-ratio adaptation, as in SimCLR: for them ``v <- momentum * v + lr * g``.
The learning rate SimCLR pairs with LARS is ``0.3 x batch / 256`` (:func:`simclr_lr`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def simclr_lr(batch_size: int, *, base: float = 0.3) -> float:
    """SimCLR's linear scaling rule: ``base x batch_size / 256``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return base * batch_size / 256


def lars_param_groups(model: nn.Module, *, weight_decay: float = 1e-6) -> list[dict]:
    """Two parameter groups: weights (decayed, adapted) and biases/norms (neither)."""
    adapted: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (excluded if param.ndim <= 1 else adapted).append(param)
    return [
        {"params": adapted, "weight_decay": weight_decay, "lars": True},
        {"params": excluded, "weight_decay": 0.0, "lars": False},
    ]


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with momentum (SimCLR's variant, no Nesterov).

    Param groups may set ``lars=False`` (no trust ratio) and their own ``weight_decay``;
    build them with :func:`lars_param_groups`.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        *,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        eta: float = 1e-3,
    ) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if eta <= 0:
            raise ValueError(f"eta must be > 0, got {eta}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta, "lars": True}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if group["weight_decay"] > 0:
                    g = g.add(w, alpha=group["weight_decay"])
                lr = group["lr"]
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(w)
                    g_norm = torch.linalg.vector_norm(g)
                    ok = (w_norm > 0) & (g_norm > 0)
                    trust = torch.where(ok, group["eta"] * w_norm / g_norm.clamp_min(1e-30), torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[w]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(w)
                v = state["momentum"]
                v.mul_(group["momentum"]).add_(g, alpha=lr)
                w.sub_(v)
        return loss
