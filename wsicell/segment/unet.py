"""A small U-Net that predicts nucleus and nucleus-interior probabilities (``foreground: cnn``).

Three levels (8, 16, 32 channels; two 3x3 conv + batch-norm + ReLU per level; bilinear
upsampling with skip connections), two sigmoid outputs: P(nucleus) and P(nucleus interior,
>= 1 µm inside its outline), the same maps as the pixel classifier of ``pixels.py``, so the
watershed that follows is unchanged. It runs at ``UNET_MPP`` (0.5 µm/px, extraction's
default working resolution): other tiles are resampled to it and the probabilities back.
Weights: ``unet_weights.pt`` (a ``state_dict``, loaded with ``weights_only=True``), trained on
the CoNSeP train split by ``python -m wsicell.segment.train_unet``. torch is imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wsicell.device import choose_precision
from wsicell.segment.config import PRECISIONS
from wsicell.types import RGBImage

UNET_MPP = 0.5
"""Resolution (µm/px) the network was trained at and runs at."""
BASE_CHANNELS = 8
"""Channels of the full-resolution level (x2 per level); 8 keeps it near 1 MP/s per core."""
WEIGHTS_PATH = Path(__file__).with_name("unet_weights.pt")
MULTIPLE = 4
"""Input sides are padded to a multiple of this (two 2x poolings)."""


def build_unet(base: int = BASE_CHANNELS):  # -> torch.nn.Module
    """The network: RGB (Nx3xHxW, 0-1) -> logits Nx2xHxW (nucleus, interior); H, W % 4 == 0."""
    import torch
    from torch import nn

    from wsicell.segment.layers import conv_block as block

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc0 = block(3, base)
            self.enc1 = block(base, 2 * base)
            self.mid = block(2 * base, 4 * base)
            self.dec1 = block(6 * base, 2 * base)
            self.dec0 = block(3 * base, base)
            self.head = nn.Conv2d(base, 2, 1)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e0 = self.enc0(x)  # base x H x W
            e1 = self.enc1(self.pool(e0))  # 2base x H/2
            m = self.mid(self.pool(e1))  # 4base x H/4
            d1 = self.dec1(torch.cat([self.up(m), e1], dim=1))
            d0 = self.dec0(torch.cat([self.up(d1), e0], dim=1))
            return self.head(d0)

    return UNet()


def to_input(image: RGBImage):  # -> torch.Tensor 1x3xHxW float32
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)[None]


class UNetForeground:
    """Nucleus / interior probabilities of an RGB tile at any mpp from the shipped U-Net.

    ``precision``: ``bf16`` runs the network under CPU bf16 autocast, ``auto`` does so only
    on CPUs with native bf16 units (else fp32)."""

    def __init__(self, weights: Path = WEIGHTS_PATH, *, precision: str = "auto") -> None:
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.bf16 = choose_precision(precision, "cpu")[0] == "bf16"  # the one policy (wsicell.device)
        if not Path(weights).is_file():
            raise FileNotFoundError(f"{weights}: U-Net weights not found (train with wsicell.segment.train_unet)")
        self.net = build_unet()
        self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.net.eval().to(memory_format=torch.channels_last)  # 2x faster convolutions on CPU

    @classmethod
    def from_net(cls, net) -> UNetForeground:
        """Wrap a network in memory (training's validation)."""
        self = cls.__new__(cls)
        self.net = net
        self.bf16 = False
        return self

    def probability(self, image: RGBImage, *, mpp: float) -> np.ndarray:
        """KxHxW float32 probabilities: [0] nucleus, [1] nucleus interior."""
        import torch

        height, width = image.shape[:2]
        scale = mpp / UNET_MPP
        if abs(scale - 1) > 1e-3:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            work = cv2.resize(image, size, interpolation=interp)
        else:
            work = image
        h, w = work.shape[:2]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        if ph or pw:
            border = cv2.BORDER_REFLECT_101 if min(h, w) > MULTIPLE else cv2.BORDER_REPLICATE
            work = cv2.copyMakeBorder(work, 0, ph, 0, pw, border)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            x = to_input(work).contiguous(memory_format=torch.channels_last)
            logits = self.net(x).float()  # bf16 under autocast: probabilities in fp32
            prob = np.ascontiguousarray(torch.sigmoid(logits)[0, :, :h, :w].numpy())  # 2 x h x w
        if (h, w) != (height, width):
            prob = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in prob])
        return prob.astype(np.float32, copy=False)
