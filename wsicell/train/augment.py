"""Batched augmentations on the training device, per-sample random parameters.

The CCRL views: an optional stain change (``stain_jitter``: haematoxylin / eosin / residual
optical densities scaled, as between labs), colour jitter (brightness, contrast, saturation,
hue), random grayscale, Gaussian blur, horizontal/vertical flips and a rotation, on both branches; a random resized
crop only on the *local* branch (local-global). All geometry (crop, flips, rotation) is one
affine warp per sample applied by a single ``grid_sample`` over the whole batch; colour ops
are plain tensor arithmetic. Random parameters are drawn on the CPU from an explicit
``torch.Generator`` (deterministic, device independent), then moved to the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsicell.segment.stain import HED_FROM_RGB, RGB_FROM_HED
from wsicell.train.config import TrainConfig

GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewParams:
    """The random parameters of one view of a batch of N crops (CPU tensors)."""

    crop_w: torch.Tensor  # (N,) crop width as a fraction of the side (1 = whole crop)
    crop_h: torch.Tensor  # (N,)
    center: torch.Tensor  # (N, 2) crop centre, normalised coordinates in [-1, 1]
    flip: torch.Tensor  # (N, 2) +1 or -1 for (horizontal, vertical)
    angle: torch.Tensor  # (N,) rotation in degrees
    brightness: torch.Tensor  # (N,) multiplicative factor (1 = unchanged)
    contrast: torch.Tensor  # (N,)
    saturation: torch.Tensor  # (N,)
    hue: torch.Tensor  # (N,) shift in turns, [-0.5, 0.5]
    gray: torch.Tensor  # (N,) bool
    sigma: torch.Tensor  # (N,) Gaussian blur sigma in output pixels, 0 = no blur
    stain: torch.Tensor | None = None  # (N, 4) H, E, residual and overall OD factors; None = unchanged

    @property
    def crop_area(self) -> torch.Tensor:
        return self.crop_w * self.crop_h


class Augment:
    """Draws and applies the CCRL view augmentations for a config."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.blur_kernel = 2 * (config.crop_size // 20) + 1  # ~10 % of the side, odd, >= 3
        self.blur_kernel = max(self.blur_kernel, 3)

    # -- parameters ---------------------------------------------------------------------
    def sample(self, n: int, *, local: bool, generator: torch.Generator) -> ViewParams:
        c = self.config

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        def bernoulli(p: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) < p

        if local:
            area = uniform(*c.local_scale)
            log_ratio = uniform(math.log(c.local_ratio[0]), math.log(c.local_ratio[1]))
            ratio = torch.exp(log_ratio)
            crop_w = torch.sqrt(area * ratio).clamp(max=1.0)
            crop_h = torch.sqrt(area / ratio).clamp(max=1.0)
            center = (torch.rand(n, 2, generator=generator) * 2 - 1) * torch.stack([1 - crop_w, 1 - crop_h], 1)
        else:
            crop_w = torch.ones(n)
            crop_h = torch.ones(n)
            center = torch.zeros(n, 2)
        flip = torch.where(torch.rand(n, 2, generator=generator) < 0.5, -1.0, 1.0)
        angle = uniform(*c.rotation)
        b, ct, s, h = c.jitter
        jitter = bernoulli(c.jitter_p)
        one = torch.ones(n)
        brightness = torch.where(jitter, uniform(max(0.0, 1 - b), 1 + b), one)
        contrast = torch.where(jitter, uniform(max(0.0, 1 - ct), 1 + ct), one)
        saturation = torch.where(jitter, uniform(max(0.0, 1 - s), 1 + s), one)
        hue = torch.where(jitter, uniform(-h, h), torch.zeros(n))
        gray = bernoulli(c.grayscale_p)
        sigma = torch.where(bernoulli(c.blur_p), uniform(*c.blur_sigma), torch.zeros(n))
        stain = stain_factors(n, strength=c.stain_jitter, generator=generator)
        return ViewParams(crop_w, crop_h, center, flip, angle, brightness, contrast, saturation, hue, gray, sigma, stain)

    # -- application --------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, *, local: bool, generator: torch.Generator) -> torch.Tensor:
        """One augmented view of ``x`` (Nx3xSxS float in [0, 1]), same shape."""
        return self.apply(x, self.sample(x.shape[0], local=local, generator=generator))

    def apply(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        dev = x.device
        if p.stain is not None:
            x = stain_scaled(x, p.stain.to(dev))
        x = self._geometry(x, p)
        x = _jitter(x, *(t.to(dev) for t in (p.brightness, p.contrast, p.saturation, p.hue)))
        g = _gray(x).expand_as(x)
        x = torch.where(p.gray.to(dev).view(-1, 1, 1, 1), g, x)
        return self._blur(x, p.sigma.to(dev))

    def _geometry(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        # input = centre + diag(w, h) @ R(angle) @ diag(flip) @ output, normalised coordinates
        a = torch.deg2rad(p.angle)
        cos, sin = torch.cos(a), torch.sin(a)
        fx, fy = p.flip[:, 0], p.flip[:, 1]
        theta = torch.stack(
            [
                torch.stack([p.crop_w * cos * fx, -p.crop_w * sin * fy, p.center[:, 0]], 1),
                torch.stack([p.crop_h * sin * fx, p.crop_h * cos * fy, p.center[:, 1]], 1),
            ],
            1,
        ).to(device=x.device, dtype=x.dtype)  # theta: Nx2x3
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        n, ch, hgt, wid = x.shape
        k = self.blur_kernel
        r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
        s = sigma.to(x.dtype).clamp(min=1e-3).view(-1, 1)
        kernel = torch.exp(-(r.view(1, -1) ** 2) / (2 * s**2))
        kernel = kernel / kernel.sum(1, keepdim=True)  # kernel: Nxk (sigma ~0 -> a delta)
        kernel = kernel.repeat_interleave(ch, 0)  # (N*3)xk
        y = x.reshape(1, n * ch, hgt, wid)
        y = F.pad(y, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
        y = F.conv2d(y, kernel.view(n * ch, 1, 1, k), groups=n * ch)
        y = F.conv2d(y, kernel.view(n * ch, 1, k, 1), groups=n * ch)
        return y.view(n, ch, hgt, wid)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)  # Nx1xHxW


def _jitter(
    x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor, hue: torch.Tensor
) -> torch.Tensor:
    """torchvision's ColorJitter arithmetic (fixed order b, c, s, h), per-sample factors."""
    def per(t: torch.Tensor) -> torch.Tensor:
        return t.to(x.dtype).view(-1, 1, 1, 1)

    x = (x * per(brightness)).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * per(contrast) + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * per(saturation) + g).clamp(0, 1)
    return _shift_hue(x, per(hue))


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``shift`` turns (per sample)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc, _ = x.max(1, keepdim=True)
    minc, _ = x.min(1, keepdim=True)
    v = maxc
    delta = maxc - minc
    s = delta / maxc.clamp(min=1e-8)
    d = delta.clamp(min=1e-8)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    h = (h + shift) % 1.0
    # HSV -> RGB
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    out_r = torch.stack([v, q, p, p, t, v], 0).gather(0, i.unsqueeze(0)).squeeze(0)
    out_g = torch.stack([t, v, v, q, p, p], 0).gather(0, i.unsqueeze(0)).squeeze(0)
    out_b = torch.stack([p, p, t, v, v, q], 0).gather(0, i.unsqueeze(0)).squeeze(0)
    return torch.cat([out_r, out_g, out_b], 1)


def stain_factors(n: int, *, strength: float, generator: torch.Generator) -> torch.Tensor | None:
    """(n, 4) factors in [1 / (1 + strength), 1 + strength] for :func:`stain_scaled`, or None
    when ``strength`` is 0 (nothing drawn, so the other draws' random stream is unchanged)."""
    if strength <= 0:
        return None
    lo, hi = 1 / (1 + strength), 1 + strength
    return torch.stack([lo + (hi - lo) * torch.rand(n, generator=generator) for _ in range(4)], 1)


def stain_scaled(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Nx3xHxW RGB in [0, 1] with each crop's stains scaled: optical density
    -log10((255 x + 1) / 256) unmixed into haematoxylin, eosin and residual (Ruifrok-Johnston),
    each multiplied by ``factors[:, :3]`` and the whole by ``factors[:, 3]``, mixed back."""
    n, _, height, width = x.shape
    hed_from_rgb = torch.as_tensor(HED_FROM_RGB, dtype=x.dtype, device=x.device)
    rgb_from_hed = torch.as_tensor(RGB_FROM_HED, dtype=x.dtype, device=x.device)
    od = -torch.log10((x.permute(0, 2, 3, 1).reshape(n, -1, 3) * 255 + 1) / 256)  # N x HW x 3
    od = (od @ hed_from_rgb * factors[:, None, :3]) @ rgb_from_hed * factors[:, None, 3:]
    rgb = ((256 * torch.pow(10.0, -od.clamp(min=0)) - 1) / 255).clamp(0, 1)
    return rgb.reshape(n, height, width, 3).permute(0, 3, 1, 2).contiguous()
