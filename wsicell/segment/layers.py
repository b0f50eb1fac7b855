"""Building blocks shared by the in-project segmentation networks (unet.py, hvnet.py)."""

from __future__ import annotations


def conv_block(cin: int, cout: int):  # -> torch.nn.Sequential
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (the U-Net unit)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip
