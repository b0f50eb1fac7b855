"""Split BatchNorm + key shuffling: MoCo's "shuffling BN" on any number of devices.

With BatchNorm, the query and the key of a positive pair are normalised with statistics of
the *same* batch of images; the network learns to recognise that batch signature instead of
the cell (MoCo, He et al. 2020, section 3.3: the loss keeps falling while the features
degrade). MoCo cures it by shuffling the key batch across 8 GPUs, each normalising its own
sub-batch. On one device we do the same thing explicitly: every BatchNorm normalises
``splits`` sub-batches separately (as 8 GPUs would) and the key batch is regrouped before the
key encoder and put back in order after it, so a query and its key are normalised with
different samples (MoCo's single-GPU CIFAR demo does this too, with a random shuffle).

In eval mode a :class:`SplitBatchNorm` is a plain BatchNorm with its running statistics, and
its parameters and buffers have BatchNorm's names: checkpoints load either way.
"""

from __future__ import annotations

import torch
from torch import nn


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm over ``splits`` equal sub-batches in training; plain BatchNorm in eval.

    Accepts (N, C) and (N, C, H, W) inputs; N must be divisible by ``splits`` (otherwise the
    whole batch is one split).
    """

    def __init__(self, num_features: int, *, splits: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        if splits < 1:
            raise ValueError(f"splits must be >= 1, got {splits}")
        self.splits = splits

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 - torch's name
        if input.dim() not in (2, 4):
            raise ValueError(f"expected a 2-D or 4-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        n = x.shape[0]
        s = self.splits if n % self.splits == 0 and n // self.splits > 1 else 1
        if not self.training or s == 1:
            flat = x.dim() == 2
            y = super().forward(x[:, :, None, None] if flat else x)
            return y[:, :, 0, 0] if flat else y
        dims = (1, 3, 4) if x.dim() == 4 else (1,)
        xs = x.unflatten(0, (s, n // s)).float()  # s x N/s x C (x H x W)
        var, mean = torch.var_mean(xs, dim=dims, keepdim=True, correction=0)  # s x 1 x C (x 1 x 1)
        shape = (1, 1, -1, 1, 1) if x.dim() == 4 else (1, 1, -1)
        scale = torch.rsqrt(var + self.eps) * self.weight.float().view(shape)
        y = ((xs - mean) * scale + self.bias.float().view(shape)).flatten(0, 1).to(x.dtype)
        with torch.no_grad():  # running statistics: the mean over splits (unbiased variance)
            count = xs.numel() // (s * self.num_features)
            unbiased = var * count / max(count - 1, 1)
            self.running_mean.lerp_(mean.flatten().view(s, -1).mean(0), self.momentum)
            self.running_var.lerp_(unbiased.flatten().view(s, -1).mean(0), self.momentum)
            self.num_batches_tracked.add_(1)
        return y.contiguous(memory_format=torch.channels_last) if _channels_last(x) else y


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def split_batchnorm(module: nn.Module, *, splits: int) -> nn.Module:
    """Replace every BatchNorm1d/2d in ``module`` (in place) by a :class:`SplitBatchNorm`
    with the same parameters and statistics; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(child, SplitBatchNorm):
            new = SplitBatchNorm(child.num_features, splits=splits, eps=child.eps, momentum=child.momentum or 0.1)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            split_batchnorm(child, splits=splits)
    return module


def regrouped(fn, x: torch.Tensor, *, splits: int) -> torch.Tensor:
    """``fn(x)`` computed with the batch reordered so that each of ``fn``'s ``splits``
    sub-batches takes every ``splits``-th sample (one from each of the query's sub-batches,
    whose order the loader already randomised), returned in ``x``'s order.

    A fixed permutation, not a random one: no random state, so resumed runs stay exact.
    """
    n = x.shape[0]
    if splits <= 1 or n % splits:
        return fn(x)
    perm = torch.arange(n, device=x.device).view(n // splits, splits).t().reshape(-1)  # i*splits+j -> j*(n/splits)+i
    out = fn(x[perm])
    return out[torch.argsort(perm)]
