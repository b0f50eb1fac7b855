"""A small learned pixel classifier: nucleus vs background, from a bank of filters.

Like ilastik's pixel classification: every pixel gets ~20 filter responses computed with
OpenCV at physical scales (µm, so any mpp works) from the Ruifrok-Johnston stain densities;
a tiny multilayer perceptron (numpy, weights in ``pixel_weights.py``, trained on the CoNSeP
train split by ``python -m wsicell.segment.train_pixels``) turns them into a nucleus
probability. No deep-learning framework, no downloaded weights.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsicell.segment.stain import HED_FROM_RGB, optical_density
from wsicell.types import RGBImage

FEATURES = (
    "od_red", "od_green", "od_blue", "h", "e",
    "h_g1", "h_g2", "h_g4", "e_g2",
    "h_log1", "h_log2", "h_log3",
    "h_hess1_hi", "h_hess1_lo", "h_hess3_hi", "h_hess3_lo",
    "h_grad1", "h_std2", "h_minus_bg8",
)  # fmt: skip
"""Filter responses per pixel; the suffix number is the Gaussian sigma in µm."""


def _g(x: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


def _hessian(x: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (high, low) of the scale-normalised Hessian of ``x`` at ``sigma_px``."""
    s = _g(x, sigma_px)
    dxx = cv2.Sobel(s, cv2.CV_32F, 2, 0, ksize=3)
    dyy = cv2.Sobel(s, cv2.CV_32F, 0, 2, ksize=3)
    dxy = cv2.Sobel(s, cv2.CV_32F, 1, 1, ksize=3)
    half = (dxx + dyy) / 2
    root = np.sqrt(((dxx - dyy) / 2) ** 2 + dxy**2)
    norm = sigma_px**2
    return (half + root) * norm, (half - root) * norm


def pixel_features(image: RGBImage, *, mpp: float) -> np.ndarray:
    """HxWxF float32 filter responses (F = len(FEATURES)) of an RGB tile at ``mpp``."""
    od = optical_density(image)  # HxWx3
    od = _g(od, 0.5 / mpp)
    h = od @ HED_FROM_RGB[:, 0]
    e = od @ HED_FROM_RGB[:, 1]
    px = 1.0 / mpp  # pixels per µm
    out = [od[..., 0], od[..., 1], od[..., 2], h, e]
    out += [_g(h, 1 * px), _g(h, 2 * px), _g(h, 4 * px), _g(e, 2 * px)]
    for s in (1, 2, 3):
        sp = s * px
        out.append(-cv2.Laplacian(_g(h, sp), cv2.CV_32F, ksize=3) * sp**2)
    for s in (1, 3):
        hi, lo = _hessian(h, s * px)
        out += [hi, lo]
    g1 = _g(h, 1 * px)
    gx = cv2.Sobel(g1, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g1, cv2.CV_32F, 0, 1, ksize=3)
    out.append(np.sqrt(gx**2 + gy**2) * px)
    m2 = _g(h, 2 * px)
    out.append(np.sqrt(np.maximum(_g(h * h, 2 * px) - m2 * m2, 0)))
    out.append(h - _g(h, 8 * px))
    return np.stack([np.asarray(o, np.float32) for o in out], axis=-1)


class PixelClassifier:
    """Standardise the features, then a ReLU MLP with a sigmoid output."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]

    @classmethod
    def default(cls) -> PixelClassifier:
        from wsicell.segment import pixel_weights as pw

        return cls(pw.MEAN, pw.STD, [(w, b) for w, b in zip(pw.WEIGHTS, pw.BIASES, strict=True)])

    def probability(self, image: RGBImage, *, mpp: float) -> np.ndarray:
        """HxWx2 float32 probabilities: nucleus, nucleus interior (>= 1 µm from its outline)."""
        f = pixel_features(image, mpp=mpp)
        return self.predict(f.reshape(-1, f.shape[-1])).reshape(*f.shape[:2], -1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """N x 2 float32 probabilities of N x F features."""
        x = (features - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        return (1 / (1 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)
