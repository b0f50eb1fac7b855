"""SimCLR-for-histopathology views (Ciga et al. 2022, App. C), batched on the device.

Per sample: a random resized crop of area U[min_area, 1] of the crop (aspect 3/4-4/3),
a rotation by 0/90/180/270 degrees (25 % each), a flip on each axis (50 %), colour jitter of
a preset strength (light / medium / heavy), a Gaussian blur half of the time (sigma
U[0.1, 2.0], kernel ~10 % of the side). No grayscale. The parameters are drawn here; the
warp, jitter and blur are the shared :class:`wsicell.train.augment.Augment` primitives.
"""

from __future__ import annotations

import math

import torch

from wsicell.train.augment import Augment, ViewParams, stain_factors
from wsicell.train.methods.config import JITTER_PRESETS, SimCLRConfig

RATIO = (3 / 4, 4 / 3)
BLUR_SIGMA = (0.1, 2.0)


def simclr_params(
    n: int, *, options: SimCLRConfig, generator: torch.Generator, stain_jitter: float = 0.0
) -> ViewParams:
    """Random parameters of one SimCLR view of ``n`` crops (CPU tensors); ``stain_jitter`` as
    the training setting (0 = off, the paper's views)."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    def bernoulli(p: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) < p

    area = uniform(options.min_area, 1.0)
    ratio = torch.exp(uniform(math.log(RATIO[0]), math.log(RATIO[1])))
    crop_w = torch.sqrt(area * ratio).clamp(max=1.0)
    crop_h = torch.sqrt(area / ratio).clamp(max=1.0)
    center = (torch.rand(n, 2, generator=generator) * 2 - 1) * torch.stack([1 - crop_w, 1 - crop_h], 1)
    flip = torch.where(torch.rand(n, 2, generator=generator) < 0.5, -1.0, 1.0)
    angle = 90.0 * torch.randint(0, 4, (n,), generator=generator).float()
    b, c, s, h = JITTER_PRESETS[options.jitter]
    jitter = bernoulli(options.jitter_p)
    one = torch.ones(n)
    brightness = torch.where(jitter, uniform(max(0.0, 1 - b), 1 + b), one)
    contrast = torch.where(jitter, uniform(max(0.0, 1 - c), 1 + c), one)
    saturation = torch.where(jitter, uniform(max(0.0, 1 - s), 1 + s), one)
    hue = torch.where(jitter, uniform(-h, h), torch.zeros(n))
    gray = torch.zeros(n, dtype=torch.bool)
    sigma = torch.where(bernoulli(options.blur_p), uniform(*BLUR_SIGMA), torch.zeros(n))
    stain = stain_factors(n, strength=stain_jitter, generator=generator)
    return ViewParams(crop_w, crop_h, center, flip, angle, brightness, contrast, saturation, hue, gray, sigma, stain)


def simclr_view(x: torch.Tensor, *, augment: Augment, options: SimCLRConfig, generator: torch.Generator) -> torch.Tensor:
    """One SimCLR view of ``x`` (Nx3xSxS float in [0, 1]), same shape, on ``x``'s device."""
    params = simclr_params(x.shape[0], options=options, generator=generator, stain_jitter=augment.config.stain_jitter)
    return augment.apply(x, params)
