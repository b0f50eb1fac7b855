"""What a self-supervised method is, and the factory that builds the one a config names.

A method is an ``nn.Module`` that owns its heads (and any momentum copies or queues),
draws its views from a batch of crops, computes its output and its loss, and hands out the
backbone used for embeddings. Everything else — backbone, data, augmentation, the loop,
the run directory, checkpoints — is shared, so a new method (SimCLR, SSLP) is a new file
with a subclass plus one entry in ``wsicell.train.methods.registry``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from wsicell.train.augment import Augment
from wsicell.train.backbone import PreActResNet18
from wsicell.train.config import TrainConfig
from wsicell.train.loss import info_nce
from wsicell.train.methods.registry import REGISTRY


class Method(nn.Module, ABC):
    """A training method on the shared backbone.

    The loop calls, per step: ``views = method.views(x, augment=..., generator=...)``,
    ``output = model(*views)`` (``model`` is the method, or its DDP wrapper), then
    ``loss = method.loss(output)``, backward and the optimiser step, then ``after_step()``.
    Around that: ``setup(slides)`` once (before a resume loads the state), the optimiser from
    ``make_optimizer()``, ``before_step(batch.index)`` before each step's views and
    ``after_epoch(epoch)`` after each epoch (before its checkpoint).
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ("crops",)
    """Per-cell store arrays the method's batches need (SSLP would add "centroid")."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    @staticmethod
    def make_backbone(config: TrainConfig) -> nn.Module:
        """The config's backbone: the ResNet (random weights, seeded by the loop), or the
        nucleus segmenter's encoder (its trained weights; its output is the embedding)."""
        if config.backbone == "nucleus":
            from wsicell.train.nucleus_backbone import NucleusEncoder

            return NucleusEncoder(config.embed_stages)
        return PreActResNet18(stem=config.stem, width=config.width)

    @abstractmethod
    def views(self, x: torch.Tensor, *, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The augmented views of a batch ``x`` (Nx3xSxS float in [0, 1])."""

    @abstractmethod
    def forward(self, *views: torch.Tensor) -> Any:
        """The method's output for its views (for contrastive methods: logits, labels)."""

    def loss(self, output: Any) -> torch.Tensor:
        logits, labels = output
        return info_nce(logits, labels)

    def after_step(self) -> None:  # noqa: B027 - optional hook
        """Called after each optimiser step."""

    def setup(self, slides: Sequence[Any]) -> None:  # noqa: B027 - optional hook
        """Called once with the loader's slides (``SlideCells``, in loader order) before training."""

    def before_step(self, index: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Called with the batch's (slide number, row) index, (B, 2), before its views."""

    def after_epoch(self, epoch: int) -> None:  # noqa: B027 - optional hook
        """Called after each epoch (``epoch`` counts from 0), before its checkpoint."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the trainable parameters (CCRL's); a method may choose another (SimCLR: LARS)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    @abstractmethod
    def encoder(self, which: str = "momentum") -> nn.Module:
        """The backbone that embeds cells: ``"momentum"`` (ensembling) or ``"query"``."""


def build_method(config: TrainConfig) -> Method:
    """A fresh method for ``config`` (weights from ``torch``'s current RNG): the model that
    training optimises and that embedding loads a checkpoint's weights into. The class is the
    registry's ``target`` for ``config.method``, imported here on use."""
    module_name, cls_name = REGISTRY[config.method].target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config)
