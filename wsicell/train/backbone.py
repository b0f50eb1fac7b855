"""Pre-activation ResNet-18 (He et al. 2016, "Identity mappings"), 512-d features.

The input is a float batch in [0, 1], NCHW; the network normalises it itself, so the
training loop and ``embed`` feed exactly the same thing. Three stems suit different crop
sizes: ``cifar`` (3x3 stride 1, best for 32-px crops, slowest), ``cifar_pool`` (3x3 then a
2x2 max-pool: 4x fewer activations) and ``imagenet`` (7x7 stride 2 + max-pool, 16x fewer).
"""

from __future__ import annotations

import torch
from torch import nn

from wsicell.train.config import EMBED_STAGES, stage_channels, valid_stages

STEMS = ("cifar", "cifar_pool", "imagenet")

# Mean/std of the RGB channels (ImageNet); BN after the stem adapts to H&E anyway.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18; ``forward`` maps (N, 3, H, W) in [0, 1] to (N, 8 * width)."""

    def __init__(self, *, stem: str = "cifar", width: int = 64) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.out_dim = 8 * width
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        if stem == "cifar":
            self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        elif stem == "cifar_pool":
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.MaxPool2d(2))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1))
        layers = []
        in_ch = width
        for i, mult in enumerate((1, 2, 4, 8)):
            out_ch = width * mult
            stride = 1 if i == 0 else 2
            layers += [PreActBlock(in_ch, out_ch, stride), PreActBlock(out_ch, out_ch, 1)]
            in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_ch)  # pre-activation nets end with BN-ReLU
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std  # x: Nx3xHxW in [0, 1]
        x = self.layers(self.stem(x))
        x = torch.relu(self.bn(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # N x 8*width


class PooledStages(nn.Module):
    """A backbone's embedding from several stages: (N, 3, H, W) -> (N, sum of their channels).

    Each chosen stage's output is rectified (the last one through the network's final
    BN-ReLU, exactly as ``forward``), average-pooled and L2-normalised, so every stage weighs
    the same, then they are concatenated in stage order. An untrained network's earlier
    stages describe finer texture than its last; with stages 3 and 4 the embedding separates
    cell types better linearly and clusters as well (docs/results.md).
    """

    def __init__(self, backbone: PreActResNet18, stages: tuple[int, ...]) -> None:
        super().__init__()
        if not valid_stages(tuple(stages)):
            raise ValueError(f"stages must be increasing, distinct and among {EMBED_STAGES}, got {stages}")
        self.backbone = backbone
        self.stages = tuple(stages)
        self.out_dim = stage_channels(backbone.out_dim // 8, self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.backbone
        x = net.stem((x - net.mean) / net.std)  # x: Nx3xHxW in [0, 1]
        pooled = []
        for i, block in enumerate(net.layers):
            x = block(x)
            stage = i // 2 + 1
            if i % 2 == 1 and stage in self.stages:
                out = torch.relu(net.bn(x)) if stage == 4 else torch.relu(x)
                pooled.append(nn.functional.normalize(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1), dim=1))
            if stage == self.stages[-1] and i % 2 == 1:
                break
        return torch.cat(pooled, dim=1)  # N x out_dim


def embedding_module(backbone: nn.Module, stages: tuple[int, ...]) -> nn.Module:
    """The module that makes a cell's embedding from ``stages`` of ``backbone``: a ResNet
    itself for the last stage alone (its own output), else its :class:`PooledStages`; any
    other backbone (the nucleus encoder) is built with its stages and is its embedding."""
    if not isinstance(backbone, PreActResNet18):
        return backbone
    return backbone if tuple(stages) == (4,) else PooledStages(backbone, stages)
