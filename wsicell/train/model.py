"""CCRL (Nakhli et al. 2023): MoCo-style query/key encoders with a predictor on the query side.

Query branch: backbone -> projector (512-128-64) -> predictor (64-32-64), trainable.
Key branch: momentum (EMA) copies of the backbone and projector, no predictor.
Negatives: a FIFO queue of past keys (gathered from every rank). ``forward`` returns the
InfoNCE logits and labels as in MoCo; the loss itself is plain cross-entropy.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from wsicell.train import dist
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.loss import contrastive_logits
from wsicell.train.method import Method
from wsicell.train.splitbn import regrouped, split_batchnorm


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """A 2-layer MLP head: Linear-BN-ReLU-Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class CCRL(Method):
    """CCRL. ``forward(view_q, view_k)`` -> logits Nx(1+K), labels N; updates the key branch
    (EMA) before computing keys and enqueues the keys afterwards, as MoCo does."""

    name = "ccrl"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        hidden, out = config.projector_dims
        self.backbone_q = self.make_backbone(config)
        self.projector_q = mlp(config.embed_dim, hidden, out)
        self.predictor: nn.Module = mlp(out, config.predictor_hidden, out) if config.predictor else nn.Identity()
        self.bn_splits = config.bn_splits
        if self.bn_splits > 1:  # MoCo's shuffling BN on one device (splitbn.py)
            for module in (self.backbone_q, self.projector_q, self.predictor):
                split_batchnorm(module, splits=self.bn_splits)
        self.backbone_k = copy.deepcopy(self.backbone_q)
        self.projector_k = copy.deepcopy(self.projector_q)
        for p in self.key_parameters():
            p.requires_grad = False
        self.momentum = config.momentum
        self.temperature = config.temperature
        self.register_buffer("queue", F.normalize(torch.randn(config.queue_size, out), dim=1))  # KxD
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    # -- momentum branch ----------------------------------------------------------------
    def query_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone_q.parameters(), *self.projector_q.parameters()]

    def key_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone_k.parameters(), *self.projector_k.parameters()]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """key = m * key + (1 - m) * query, for the backbone and projector weights.

        BatchNorm running statistics are buffers: the key branch keeps its own (from the
        key batches it sees in train mode), as in MoCo.
        """
        for pq, pk in zip(self.query_parameters(), self.key_parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """FIFO with wrap-around: write ``keys`` (NxD) at the pointer; the oldest go first.

        Pure tensor arithmetic on the pointer (no ``.item()``: no device sync per step).
        """
        keys = keys.detach().to(self.queue.dtype)
        size = self.queue.shape[0]
        n = keys.shape[0]
        ptr = self.queue_ptr
        if n > size:  # only the newest K survive
            ptr, keys, n = (ptr + n - size) % size, keys[-size:], size
        idx = (ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys
        self.queue_ptr.copy_((ptr + n) % size)

    # -- the method -------------------------------------------------------------------
    def views(self, x: torch.Tensor, *, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lg = self.config.local_global
        local_q = lg and self.config.local_branch == "query"
        local_k = lg and self.config.local_branch == "key"
        view_q = augment(x, local=local_q, generator=generator)
        view_k = augment(x, local=local_k, generator=generator)
        return view_q, view_k

    def forward(self, view_q: torch.Tensor, view_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.predictor(self.projector_q(self.backbone_q(view_q)))  # NxD
        q = F.normalize(q.float(), dim=1)
        with torch.no_grad():
            self.momentum_update()
            k = regrouped(lambda v: self.projector_k(self.backbone_k(v)), view_k, splits=self.bn_splits)
            k = F.normalize(k.float(), dim=1)  # NxD
        drop = int(round(self.config.negative_drop * self.queue.shape[0]))
        logits, labels = contrastive_logits(q, k, self.queue.clone().detach(), self.temperature, drop_nearest=drop)
        self.enqueue(dist.concat_all_gather(k))
        return logits, labels

    def encoder(self, which: str = "momentum") -> nn.Module:
        if which == "momentum":
            return self.backbone_k
        if which == "query":
            return self.backbone_q
        raise ValueError(f"encoder must be 'momentum' or 'query', got {which!r}")
