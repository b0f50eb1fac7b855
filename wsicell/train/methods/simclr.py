"""SimCLR for histopathology (Chen et al. 2020; Ciga et al. 2022) on the shared backbone.

One encoder (backbone + projection MLP), two SimCLR views of every cell, NT-Xent over the
2N views of the batch (temperature from ``TrainConfig.temperature``, 0.1 in
``configs/simclr.yaml``), no momentum encoder, no queue. Under DDP the projections of all
ranks are gathered (with gradient) so negatives come from the global batch. Optimiser:
LARS (``simclr.optimizer``), biases and BatchNorm excluded from adaptation and decay.
"""

from __future__ import annotations

import torch
from torch import nn

from wsicell.train import dist
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.lars import LARS, lars_param_groups
from wsicell.train.method import Method
from wsicell.train.methods.config import SimCLRConfig
from wsicell.train.methods.ntxent import nt_xent
from wsicell.train.methods.simclr_augment import simclr_view
from wsicell.train.model import mlp


class SimCLR(Method):
    """``forward(view1, view2)`` -> the two projections (N x D each)."""

    name = "simclr"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.options: SimCLRConfig = config.simclr
        hidden, out = config.projector_dims
        self.backbone = self.make_backbone(config)
        self.projector = mlp(config.embed_dim, hidden, out)

    def views(self, x: torch.Tensor, *, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        v1 = simclr_view(x, augment=augment, options=self.options, generator=generator)
        v2 = simclr_view(x, augment=augment, options=self.options, generator=generator)
        return v1, v2

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = view1.shape[0]
        z = self.projector(self.backbone(torch.cat([view1, view2])))  # 2N x D, one pass (shared BN stats)
        return z[:n], z[n:]

    def loss(self, output: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        z1, z2 = output
        return nt_xent(dist.gather_with_grad(z1), dist.gather_with_grad(z2), temperature=self.config.temperature)

    def make_optimizer(self) -> torch.optim.Optimizer:
        if self.options.optimizer == "adam":
            return super().make_optimizer()
        groups = lars_param_groups(self, weight_decay=self.config.weight_decay)
        return LARS(groups, lr=self.config.lr, weight_decay=self.config.weight_decay, eta=self.options.lars_eta)

    def encoder(self, which: str = "momentum") -> nn.Module:
        if which not in ("momentum", "query"):
            raise ValueError(f"encoder must be 'momentum' or 'query', got {which!r}")
        return self.backbone  # one encoder: both names mean it
