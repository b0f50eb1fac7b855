"""Baseline cell representations, evaluated by the same protocol as CCRL (paper Table 2).

- ``morphology``: the extraction's shape/stain/colour measurements, standardised;
- ``manual``: SIFT bag of visual words + LBP histograms (the paper's "manual features");
- ``random``: the configured backbone with random weights (no training): the CCRL backbone
  (pre-activation ResNet-18), or with ``backbone: nucleus`` the nucleus encoder's
  architecture (and the ResNet beside it);
- ``imagenet``: torchvision's ImageNet ResNet-18, only from a local weights file (never
  downloaded); unavailable otherwise, with a message saying where it was looked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsicell.types import PathLikeStr

BASELINES = ("morphology", "manual", "random", "imagenet")
IMAGENET_FILE = "resnet18-f37072fd.pth"
"""torchvision's file name for the ImageNet ResNet-18 weights (in torch's hub cache)."""


class BaselineUnavailable(Exception):
    """A baseline cannot run here (e.g. no local weights); the message says why."""


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns -> 0); NaN/inf -> 0."""
    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def morphology_features(features: np.ndarray) -> np.ndarray:
    """The extraction's per-cell measurements (n x F), standardised."""
    return standardise(features)


# -- manual features: SIFT bag of visual words + LBP ----------------------------------------
SIFT_SIZE = 64
"""Crops are enlarged to this size for SIFT (its descriptors need ~16 px cells)."""


def _gray(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    out = np.empty((len(crops), size, size), np.uint8)
    for i, crop in enumerate(crops):
        g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        out[i] = g if g.shape[0] == size else cv2.resize(g, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def dense_sift(crops: np.ndarray) -> np.ndarray:
    """SIFT descriptors on a 3 x 3 grid (+ one whole-crop keypoint) per crop: n x 10 x 128."""
    import cv2

    sift = cv2.SIFT_create()
    step = SIFT_SIZE / 4
    points = [cv2.KeyPoint(step * (i + 1), step * (j + 1), step * 2) for j in range(3) for i in range(3)]
    points.append(cv2.KeyPoint(SIFT_SIZE / 2, SIFT_SIZE / 2, SIFT_SIZE * 0.75))
    gray = _gray(crops, SIFT_SIZE)
    out = np.zeros((len(crops), len(points), 128), np.float32)
    for i, g in enumerate(gray):
        kps, desc = sift.compute(g, points)
        if desc is not None and len(kps) == len(points):
            out[i] = desc
    return out


def lbp_histograms(crops: np.ndarray, *, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Uniform LBP histogram (points + 2 bins) of each crop's grey levels: n x (points + 2)."""
    from skimage.feature import local_binary_pattern

    gray = _gray(crops, crops.shape[1])
    bins = points + 2
    out = np.empty((len(crops), bins), np.float32)
    for i, g in enumerate(gray):
        codes = local_binary_pattern(g, points, radius, method="uniform")
        out[i] = np.bincount(codes.astype(np.int64).ravel(), minlength=bins)[:bins] / codes.size
    return out


def manual_features(
    *, fit_sift: np.ndarray, sift: np.ndarray, lbp: np.ndarray, words: int = 64, seed: int = 0
) -> np.ndarray:
    """SIFT bag of ``words`` visual words + LBP histograms, standardised: n x (words + LBP bins).

    ``fit_sift`` (m x P x 128, from :func:`dense_sift`) fits the vocabulary (k-means seeded by
    ``seed``); ``sift`` (n x P x 128) and ``lbp`` (n x B) describe the cells to represent.
    """
    from wsicell.evaluate.kmeans import kmeans

    fit = fit_sift.reshape(-1, 128)
    rng = np.random.default_rng(seed)
    sample = fit[rng.choice(len(fit), size=min(len(fit), words * 256), replace=False)]
    _, vocab = kmeans(sample, k=words, seed=seed, restarts=1)  # vocab: words x 128
    n, p, _ = sift.shape
    flat = sift.reshape(-1, 128)
    d2 = (flat**2).sum(1)[:, None] - 2 * flat @ vocab.T + (vocab**2).sum(1)[None, :]  # (n*p) x words
    word = d2.argmin(axis=1).reshape(n, p)
    bow = np.zeros((n, words), np.float32)
    np.add.at(bow, (np.repeat(np.arange(n), p), word.ravel()), 1.0 / p)
    return standardise(np.concatenate([bow, lbp], axis=1))


# -- network baselines -------------------------------------------------------------------
def random_encoder(*, stem: str, width: int, seed: int) -> nn.Module:
    """The CCRL backbone (pre-activation ResNet-18) with random weights, in eval mode."""
    from wsicell.train.backbone import PreActResNet18

    torch.manual_seed(seed)
    return PreActResNet18(stem=stem, width=width).eval()


def random_nucleus_encoder(*, stages: tuple[int, ...], seed: int) -> nn.Module:
    """The nucleus encoder (``backbone: nucleus``, the same ``stages``) with freshly
    initialised weights instead of the segmenter's, in eval mode: what the segmentation
    training adds is the difference to the trained one."""
    from wsicell.train.nucleus_backbone import NucleusEncoder

    torch.manual_seed(seed)
    return NucleusEncoder(stages, pretrained=False).eval()


def find_imagenet_weights(weights: PathLikeStr | None = None) -> Path:
    """The local ImageNet ResNet-18 weights file: ``weights``, else torch's hub cache."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise BaselineUnavailable(f"{path}: ImageNet weights file not found")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    if not path.is_file():
        raise BaselineUnavailable(
            f"no local ImageNet ResNet-18 weights ({path} absent; pass --imagenet-weights FILE); "
            "wsicell never downloads weights"
        )
    return path


def imagenet_encoder(weights: PathLikeStr | None = None) -> nn.Module:
    """torchvision's ResNet-18 with local ImageNet weights, classifier removed (512-d)."""
    import torchvision

    path = find_imagenet_weights(weights)
    model = torchvision.models.resnet18(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise BaselineUnavailable(f"{path}: not ResNet-18 ImageNet weights ({exc.__class__.__name__})") from None
    model.fc = nn.Identity()
    return ImagenetWrapper(model).eval()


class ImagenetWrapper(nn.Module):
    """Feeds [0, 1] NCHW crops to an ImageNet network: resized to 112 px, ImageNet-normalised."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
        return self.model((x - self.mean) / self.std)  # N x 512
