"""Stain self-distillation (not from the papers): an encoder taught to ignore stains.

The encoders that embed cells by type best here were not trained by a self-supervised
objective: the nucleus segmenter's encoder (``backbone: nucleus``, the CPU default) and an
untrained, seeded ResNet (``backbone: resnet18``, this method's preset); but their
embeddings follow each slide's staining (docs/results.md). This method keeps the config's
backbone as the teacher, frozen, and trains a copy of it, the student, from the same
weights: for a batch of crops in a random dihedral pose, the teacher embeds the crops as
they are and the student the same crops with a lab-like stain change (``stain_jitter``:
haematoxylin, eosin, residual and the whole optical density scaled), and the loss is the
mean cosine distance between the two embeddings (of ``embed_stages``, exactly as ``wsicell
embed`` makes them). No negatives, no projector: the student can only
move as far as stain invariance asks, so it keeps the teacher's structure.

BatchNorm keeps the network's initial statistics throughout (its layers stay in eval mode
even while training): an untrained network's identity BatchNorm is part of what makes it
good, and calibrating the statistics on the crops made it worse (docs/results.md); the
nucleus encoder keeps the statistics of the segmenter's training.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from wsicell.train.augment import Augment, stain_factors, stain_scaled
from wsicell.train.backbone import embedding_module
from wsicell.train.config import TrainConfig
from wsicell.train.method import Method


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(student_i, teacher_i) over the batch, in float32 (the values are ~1e-3)."""
    return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=1)).mean()


class StainDistill(Method):
    """``forward(view, stained)`` -> (student embedding of ``stained``, teacher embedding of ``view``)."""

    name = "stain-distill"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.backbone = self.make_backbone(config)  # the student: the seeded initial weights
        self.teacher = copy.deepcopy(self.backbone)  # the same weights, frozen
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> StainDistill:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()  # the initial statistics, always
        return self

    def views(self, x: torch.Tensor, *, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch in one random pose of the dihedral group, and the same with its stains changed."""
        turns = int(torch.randint(4, (1,), generator=generator))
        view = torch.rot90(x, turns, (2, 3))
        if bool(torch.randint(2, (1,), generator=generator)):
            view = view.flip(3)
        factors = stain_factors(view.shape[0], strength=self.config.stain_jitter, generator=generator)
        return view, stain_scaled(view, factors.to(view.device))  # type: ignore[union-attr]

    def forward(self, view: torch.Tensor, stained: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.config.embed_stages  # the embedding exactly as ``wsicell embed`` makes it
        with torch.no_grad():
            target = embedding_module(self.teacher, stages)(view)  # N x D
        return embedding_module(self.backbone, stages)(stained), target

    def loss(self, output: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return cosine_distance(*output)

    def encoder(self, which: str = "momentum") -> nn.Module:
        if which not in ("momentum", "query"):
            raise ValueError(f"encoder must be 'momentum' or 'query', got {which!r}")
        return self.backbone  # one encoder: the student
