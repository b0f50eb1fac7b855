"""A small multi-task U-Net: nucleus probability + HoVer-Net-style horizontal/vertical maps.

Five levels (8, 16, 32, 64, 128 channels; two 3x3 conv + batch-norm + ReLU per level;
max-pool down, bilinear up with skip connections; ~0.5 M parameters), three outputs per
pixel: a nucleus logit and the horizontal and vertical distances of the pixel to its
nucleus' centroid, each scaled to [-1, 1] within the nucleus (Graham et al. 2019,
HoVer-Net). Most parameters sit in the coarse levels and most arithmetic in the fine ones,
so on OpenVINO (the shipped IR, ``hv_openvino.py``) it is faster than the 30 k-parameter
U-Net of ``unet.py`` while seeing ~40 µm of context. It runs at ``HVNET_MPP`` (0.5 µm/px,
extraction's default working resolution):
other tiles are resampled to it and the maps back. Weights: ``hvnet_weights.pt`` (a
``state_dict`` loaded with ``weights_only=True``; its convolutions' shapes give the channels
per level, so weights of a wider net, ``train_hvnet --channels``, load too), trained by
``python -m wsicell.segment.train_hvnet`` (see ``hvnet_weights.md``). torch is imported
lazily.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

from wsicell.device import autocast, choose_precision
from wsicell.segment.config import PRECISIONS, RUNTIMES
from wsicell.types import RGBImage

HVNET_MPP = 0.5
"""Resolution (µm/px) the network was trained at and runs at."""
CHANNELS = (8, 16, 32, 64, 128)
"""Channels per level, full resolution first (the shipped weights')."""
WEIGHTS_PATH = Path(__file__).with_name("hvnet_weights.pt")
MULTIPLE = 2 ** (len(CHANNELS) - 1)
"""Input sides are padded to a multiple of this (one 2x pooling per level below the first)."""


def build_hvnet(channels: tuple[int, ...] = CHANNELS):  # -> torch.nn.Module
    """RGB (Nx3xHxW, 0-1) -> Nx3xHxW (nucleus logit, horizontal, vertical); H, W % 16 == 0."""
    import torch
    from torch import nn

    from wsicell.segment.layers import conv_block as block

    class HVNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            ins = (3, *channels[:-1])
            self.enc = nn.ModuleList([block(i, o) for i, o in zip(ins, channels, strict=True)])
            # decoder level k takes the upsampled level k+1 output and the level-k skip
            self.dec = nn.ModuleList(
                [block(channels[k + 1] + channels[k], channels[k]) for k in range(len(channels) - 1)]
            )
            self.head = nn.Conv2d(channels[0], 3, 1)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for k, enc in enumerate(self.enc):
                x = enc(x if k == 0 else self.pool(x))
                skips.append(x)
            for k in range(len(self.dec) - 1, -1, -1):
                x = self.dec[k](torch.cat([self.up(x), skips[k]], dim=1))
            return self.head(x)

    return HVNet()


def load_hvnet(weights: Path):  # -> torch.nn.Module, in eval mode
    """The network of a weights file, built with the channels its state_dict holds."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    levels = sorted(int(k.split(".")[1]) for k in state if k.startswith("enc.") and k.endswith(".0.weight"))
    net = build_hvnet(tuple(int(state[f"enc.{k}.0.weight"].shape[0]) for k in levels))
    net.load_state_dict(state)
    return net.eval()


def to_input(image: RGBImage):  # -> torch.Tensor 1x3xHxW float32
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)[None]


def resize_to(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resampled by ``scale`` (area interpolation when shrinking)."""
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


@cache
def pick_runtime(requested: str = "auto") -> tuple[str, str]:
    """(runtime, a one-line reason) for ``SegmentConfig.runtime``; ``auto`` picks torch on a
    CUDA GPU, else OpenVINO when it is installed (the fastest CPU runtime measured:
    ``benchmarks/segment_runtimes.py``), else torch eager."""
    if requested not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {requested!r}")
    if requested != "auto":
        return requested, f"hvnet runtime: {requested} (as configured)"
    import torch

    if torch.cuda.is_available():
        return "torch", "hvnet runtime: torch on the GPU (a CUDA device is available)"
    from wsicell.segment.hv_openvino import import_openvino

    try:
        import_openvino()
    except ImportError:
        return "torch", ("hvnet runtime: torch on the CPU, because openvino is not installed "
                         "(pip install openvino: segmentation ~1.6x faster)")  # fmt: skip
    return "openvino", "hvnet runtime: OpenVINO, because it is the fastest CPU runtime measured (~1.6x torch)"


class HVNetModel:
    """Nucleus probability and HV maps of an RGB tile at any mpp from the shipped network.

    ``runtime``: ``auto`` (:func:`pick_runtime`), ``torch`` (eager; on the GPU when CUDA is
    available) or ``openvino`` (the shipped IR read once per process, ``hv_openvino.py``;
    compiled once per instance, i.e. per extraction worker thread, each on one thread).
    ``precision``: ``bf16`` runs the network in bf16 (torch: autocast; OpenVINO: its bf16
    inference-precision hint), ``auto`` follows ``wsicell.device`` (bf16 on CPUs with native
    bf16 units, else fp32; bf16 or fp16 on a GPU)."""

    def __init__(self, weights: Path = WEIGHTS_PATH, *, precision: str = "auto", runtime: str = "auto") -> None:
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.runtime = pick_runtime(runtime)[0]
        gpu = self.runtime == "torch" and torch.cuda.is_available()
        self.device = torch.device("cuda" if gpu else "cpu")
        # the one precision policy (wsicell.device): auto = bf16 on CPUs with native bf16
        # units, bf16 or fp16 on a GPU
        self.precision = choose_precision(precision, self.device)[0]
        self.bf16 = self.precision == "bf16"
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"{weights}: HV-net weights not found (train with wsicell.segment.train_hvnet)")
        self.net = load_hvnet(self.weights)
        self.compiled = self._openvino() if self.runtime == "openvino" else None
        self.request = None if self.compiled is None else self.compiled.create_infer_request()
        self.net.to(self.device, memory_format=torch.channels_last)  # faster convolutions

    def _openvino(self):
        from wsicell.segment.hv_openvino import compile_model, load_model

        return compile_model(load_model(self.net, self.weights), bf16=self.bf16)

    @classmethod
    def from_net(cls, net, *, bf16: bool = False) -> HVNetModel:
        """Wrap a network in memory (training's validation)."""
        import torch

        self = cls.__new__(cls)
        self.net = net
        self.bf16 = bf16
        self.precision = "bf16" if bf16 else "fp32"
        self.runtime = "torch"
        self.device = torch.device("cpu")
        self.compiled = None
        self.request = None
        return self

    def maps(self, image: RGBImage, *, mpp: float) -> np.ndarray:
        """3xHxW float32 at the tile's resolution: [0] P(nucleus), [1] horizontal, [2] vertical."""
        height, width = image.shape[:2]
        scale = mpp / HVNET_MPP
        work = resize_to(image, scale) if abs(scale - 1) > 1e-3 else image
        out = self.maps_at_working_resolution(work)
        if out.shape[1:] != (height, width):
            out = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in out])
        return out

    def maps_at_working_resolution(self, work: RGBImage) -> np.ndarray:
        """3xhxw float32 maps of an image already at ``HVNET_MPP``."""
        import torch

        h, w = work.shape[:2]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        if ph or pw:
            border = cv2.BORDER_REFLECT_101 if min(h, w) > MULTIPLE else cv2.BORDER_REPLICATE
            work = cv2.copyMakeBorder(work, 0, ph, 0, pw, border)
        if self.compiled is not None:
            raw = self.request.infer({0: to_input(work).numpy()})[0]
            out = np.array(raw[0, :, :h, :w], dtype=np.float32)
            out[0] = 1 / (1 + np.exp(-out[0]))
            np.clip(out[1:], -1, 1, out=out[1:])
            return out
        with torch.inference_mode(), autocast(self.device, self.precision):
            x = to_input(work).to(self.device).contiguous(memory_format=torch.channels_last)
            out = self.net(x).float()[0, :, :h, :w]  # fp32 even under autocast
            out[0] = torch.sigmoid(out[0])
            out[1:] = out[1:].clamp(-1, 1)
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)
