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


COARSE_SIGMA_PX = 3.0
"""Gaussians wider than this are computed on a downsampled image (same result to within a
few per cent, several times faster)."""


def _g(x: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; wide ones on an image shrunk by an integer factor, then enlarged."""
    if sigma_px < 0.3:
        return x
    height, width = x.shape[:2]
    k = int(sigma_px // (COARSE_SIGMA_PX / 2))
    if sigma_px <= COARSE_SIGMA_PX or k < 2 or min(height, width) < 4 * k:
        return cv2.GaussianBlur(x, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(x, (max(1, width // k), max(1, height // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / k, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


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
    """FxHxW float32 filter responses (F = len(FEATURES), one contiguous plane each) of an
    RGB tile at ``mpp``."""
    height, width = image.shape[:2]
    out = np.empty((len(FEATURES), height, width), np.float32)
    od = _g(optical_density(image), 0.5 / mpp)  # HxWx3
    w_h, w_e = HED_FROM_RGB[:, 0], HED_FROM_RGB[:, 1]
    h = od[..., 0] * w_h[0] + od[..., 1] * w_h[1] + od[..., 2] * w_h[2]
    e = od[..., 0] * w_e[0] + od[..., 1] * w_e[1] + od[..., 2] * w_e[2]
    px = 1.0 / mpp  # pixels per µm
    g1, g2, g4 = _g(h, 1 * px), _g(h, 2 * px), _g(h, 4 * px)
    planes = [od[..., 0], od[..., 1], od[..., 2], h, e, g1, g2, g4, _g(e, 2 * px)]
    for s, smoothed in ((1, g1), (2, g2), (3, _g(h, 3 * px))):
        planes.append(-cv2.Laplacian(smoothed, cv2.CV_32F, ksize=3) * (s * px) ** 2)
    for s in (1, 3):
        planes += list(_hessian(h, s * px))
    gx = cv2.Sobel(g1, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g1, cv2.CV_32F, 0, 1, ksize=3)
    planes.append(np.sqrt(gx**2 + gy**2) * px)
    planes.append(np.sqrt(np.maximum(_g(h * h, 2 * px) - g2 * g2, 0)))
    planes.append(h - _g(h, 8 * px))
    for i, plane in enumerate(planes):
        out[i] = plane
    return out


CHUNK = 1 << 16
"""Pixels per matrix product (keeps the hidden layer in cache)."""


class PixelClassifier:
    """Standardise the features, then a ReLU MLP with sigmoid outputs (nucleus, interior)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        mean = np.asarray(mean, np.float64)
        std = np.asarray(std, np.float64)
        w0, b0 = (np.asarray(v, np.float64) for v in layers[0])
        # fold the standardisation into the first layer: ((x - m) / s) W + b = x (W / s) + b'
        first = ((w0 / std[:, None]).T, b0 - (mean / std) @ w0)
        rest = [(np.asarray(w, np.float64).T, np.asarray(b, np.float64)) for w, b in layers[1:]]
        # column-major use: y (out x N) = W^T (out x in) @ x (in x N) + b
        self.layers = [(w.astype(np.float32), b.astype(np.float32)[:, None]) for w, b in [first, *rest]]

    @classmethod
    def default(cls) -> PixelClassifier:
        from wsicell.segment import pixel_weights as pw

        if tuple(pw.FEATURES) != FEATURES:
            raise RuntimeError("pixel_weights.py was trained on other features; retrain (see train_pixels.py)")
        return cls(pw.MEAN, pw.STD, [(w, b) for w, b in zip(pw.WEIGHTS, pw.BIASES, strict=True)])

    def probability(self, image: RGBImage, *, mpp: float) -> np.ndarray:
        """KxHxW float32 probabilities: [0] nucleus, [1] nucleus interior (>= 1 µm inside)."""
        f = pixel_features(image, mpp=mpp)
        return self.predict(f.reshape(f.shape[0], -1)).reshape(-1, *f.shape[1:])

    def predict(self, features: np.ndarray) -> np.ndarray:
        """K x N float32 probabilities of F x N features."""
        # small products: BLAS threads only contend (measured 6x slower with 2 threads)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self._predict(features)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        n = features.shape[1]
        out = np.empty((self.layers[-1][0].shape[0], n), np.float32)
        for start in range(0, n, CHUNK):
            x = features[:, start : start + CHUNK]
            for i, (w, b) in enumerate(self.layers):
                x = w @ x + b
                if i < len(self.layers) - 1:
                    np.maximum(x, 0, out=x)
            np.clip(x, -30, 30, out=x)
            out[:, start : start + CHUNK] = 1 / (1 + np.exp(-x))
        return out
