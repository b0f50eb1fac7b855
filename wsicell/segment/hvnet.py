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

``method: hvnet-fine`` adds a full-resolution branch (:func:`build_fine_hvnet`, weights
``hvnet_fine_weights.pt``): the same network still sees the input at 0.5 µm/px, and a small
branch at 0.25 µm/px corrects its enlarged maps, for sharper outlines and more nuclei found
(on 20x slides too, from the enlarged tile), at ~3x the network's time. ``flips`` averages
the maps of flipped copies of the tile (test-time augmentation, ``SegmentConfig.hv_flips``). Every network carries its working
resolution (``net.mpp``) and the multiple its input sides are padded to (``net.multiple``);
:class:`HVNetModel` reads them from the net.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

from wsicell.device import autocast, choose_precision
from wsicell.segment.config import HV_FLIPS, PRECISIONS, RUNTIMES
from wsicell.segment.tile_batcher import GPU_BATCH, shared_batcher
from wsicell.segment.tile_features import TILE_LEVELS, TileFeatureMaps
from wsicell.types import RGBImage

HVNET_MPP = 0.5
"""Resolution (µm/px) the network was trained at and runs at."""
CHANNELS = (8, 16, 32, 64, 128)
"""Channels per level, full resolution first (the shipped weights')."""
WEIGHTS_PATH = Path(__file__).with_name("hvnet_weights.pt")
FINE_MPP = 0.25
"""Resolution (µm/px) of the full-resolution branch of ``method: hvnet-fine`` (40x)."""
FINE_WEIGHTS_PATH = Path(__file__).with_name("hvnet_fine_weights.pt")
FINE_WIDTH = 8
"""Channels of the full-resolution branch (the shipped weights')."""
FINE_CHUNK = 1024
"""Longest side (px at 0.25 µm/px) the branch's network is run on in one call; larger images
go in overlapping pieces (``HVNetModel.maps_at_working_resolution``)."""
CHUNK_MARGIN_UM = 32.0
"""Context (µm) around each piece's core when an image is run in pieces."""


def build_hvnet(channels: tuple[int, ...] = CHANNELS):  # -> torch.nn.Module
    """RGB (Nx3xHxW, 0-1) -> Nx3xHxW (nucleus logit, horizontal, vertical); H, W % 16 == 0."""
    import torch
    from torch import nn

    from wsicell.segment.layers import conv_block as block

    class HVNet(nn.Module):
        mpp = HVNET_MPP
        multiple = 2 ** (len(channels) - 1)  # input sides: one 2x pooling per level below the first
        level_strides = tuple(2 ** (k - 1) for k in TILE_LEVELS)  # input px per feature px of each tile level
        chunk = None  # any image in one call

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

        def features_and_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            """The last decoder level's features (NxC0xHxW) and every encoder level's output
            (level k: NxC_kx(H/2^(k-1))x(W/2^(k-1)), k = 1..5)."""
            skips = []
            for k, enc in enumerate(self.enc):
                x = enc(x if k == 0 else self.pool(x))
                skips.append(x)
            for k in range(len(self.dec) - 1, -1, -1):
                x = self.dec[k](torch.cat([self.up(x), skips[k]], dim=1))
            return x, skips

        def features(self, x: torch.Tensor) -> torch.Tensor:
            """The last decoder level's features: NxC0xHxW."""
            return self.features_and_levels(x)[0]

        def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            """The maps and the encoder levels of ``TILE_LEVELS`` (``tile_features.py``)."""
            y, skips = self.features_and_levels(x)
            return self.head(y), [skips[k - 1] for k in TILE_LEVELS]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x))

    return HVNet()


def build_fine_hvnet(base, width: int = FINE_WIDTH):  # -> torch.nn.Module
    """``base`` (an HV-net at 0.5 µm/px) + a full-resolution branch: RGB Nx3xHxW at 0.25 µm/px
    (H, W % 2 * base.multiple == 0) -> Nx3xHxW maps, as ``base``'s.

    ``base`` runs on the input shrunk 2x (area average: its own 0.5 µm/px and context); its
    output and last decoder features are enlarged 2x (bilinear); the branch, one conv block
    of ``width`` channels on the RGB input joined with those features by a second block,
    adds a 1x1-convolution *correction* to the enlarged output. The correction starts at
    zero, so an untrained branch gives exactly ``base``'s maps, enlarged."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from wsicell.segment.layers import conv_block as block

    class FineHVNet(nn.Module):
        mpp = FINE_MPP
        multiple = 2 * base.multiple
        level_strides = tuple(2 * s for s in base.level_strides)  # base runs on the input shrunk 2x
        chunk = FINE_CHUNK

        def __init__(self) -> None:
            super().__init__()
            self.base = base
            c0 = base.head.in_channels
            self.full = block(3, width)
            self.fuse = block(width + c0, width)
            self.correct = nn.Conv2d(width, 3, 1)
            nn.init.zeros_(self.correct.weight)
            nn.init.zeros_(self.correct.bias)

        def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            """The maps and ``base``'s encoder levels of ``TILE_LEVELS`` (on the input shrunk 2x)."""
            y, skips = self.base.features_and_levels(F.avg_pool2d(x, 2))  # y: NxC0x(H/2)x(W/2)
            coarse = F.interpolate(self.base.head(y), scale_factor=2, mode="bilinear", align_corners=False)
            up = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)  # NxC0xHxW
            maps = coarse + self.correct(self.fuse(torch.cat([self.full(x), up], dim=1)))
            return maps, [skips[k - 1] for k in TILE_LEVELS]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward_levels(x)[0]

    return FineHVNet()


def load_hvnet(weights: Path):  # -> torch.nn.Module, in eval mode
    """The network of a weights file, built with the channels its state_dict holds: an HV-net,
    or one with a full-resolution branch (its keys under ``base.``, ``build_fine_hvnet``)."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    fine = any(k.startswith("base.") for k in state)
    prefix = "base.enc." if fine else "enc."
    levels = sorted(int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix) and k.endswith(".0.weight"))
    net = build_hvnet(tuple(int(state[f"{prefix}{k}.0.weight"].shape[0]) for k in levels))
    if fine:
        net = build_fine_hvnet(net, int(state["full.0.weight"].shape[0]))
    net.load_state_dict(state)
    return net.eval()


def chunks(n: int, chunk: int, multiple: int) -> list[tuple[int, int]]:
    """[start, end) of the fewest near-equal pieces of ``range(n)`` no longer than ``chunk``,
    with every start a multiple of ``multiple`` (the network's pooling grid stays the whole
    image's)."""
    k = -(-n // chunk)
    edges = [0] + [multiple * round(n * i / k / multiple) for i in range(1, k)] + [n]
    return list(zip(edges[:-1], edges[1:], strict=True))


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
        return "torch", (f"hvnet runtime: torch on the GPU (a CUDA device is available), the worker threads' "
                         f"tiles joined up to {GPU_BATCH} per network call")  # fmt: skip
    from wsicell.segment.hv_openvino import import_openvino

    try:
        import_openvino()
    except ImportError:
        return "torch", ("hvnet runtime: torch on the CPU, because openvino is not installed "
                         "(pip install openvino: segmentation ~1.6x faster)")  # fmt: skip
    return "openvino", "hvnet runtime: OpenVINO, because it is the fastest CPU runtime measured (~1.6x torch)"


class HVNetModel:
    """Nucleus probability and HV maps of an RGB tile at any mpp from a network (by default
    the shipped HV-net; ``FINE_WEIGHTS_PATH`` for the one with a full-resolution branch). The
    tile is resampled to the network's ``net.mpp`` and the maps back.

    ``runtime``: ``auto`` (:func:`pick_runtime`), ``torch`` (eager; on the GPU when CUDA is
    available) or ``openvino`` (the shipped IR read once per process, ``hv_openvino.py``;
    compiled once per instance, i.e. per extraction worker thread, each on one thread).
    ``precision``: ``bf16`` runs the network in bf16 (torch: autocast; OpenVINO: its bf16
    inference-precision hint), ``auto`` follows ``wsicell.device`` (bf16 on CPUs with native
    bf16 units, else fp32; bf16 or fp16 on a GPU).
    ``batch``: with torch, the tiles of every thread of the process that uses these weights,
    device and precision go through one network, up to ``batch`` tiles per call
    (``tile_batcher.py``); ``None`` = ``GPU_BATCH`` on a CUDA GPU, else 1 (each instance its
    own network, one tile per call)."""

    def __init__(self, weights: Path = WEIGHTS_PATH, *, precision: str = "auto", runtime: str = "auto",
                 flips: int = 1, batch: int | None = None) -> None:  # fmt: skip
        import torch

        if flips not in HV_FLIPS:
            raise ValueError(f"flips must be one of {', '.join(map(str, HV_FLIPS))}, got {flips!r}")
        self.flips = flips
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
        if batch is None:
            batch = GPU_BATCH if gpu else 1
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batcher = None
        if batch > 1 and self.runtime == "torch":  # one network for the process' threads, tiles joined per call
            self.batcher = shared_batcher(self.weights, load_hvnet, device=self.device, precision=self.precision,
                                          max_batch=batch)  # fmt: skip
        else:
            self.net.to(self.device, memory_format=torch.channels_last)  # faster convolutions

    def _openvino(self):
        from wsicell.segment.hv_openvino import compile_model, load_model

        return compile_model(load_model(self.net, self.weights), bf16=self.bf16)

    @classmethod
    def from_net(cls, net, *, bf16: bool = False, flips: int = 1) -> HVNetModel:
        """Wrap a network in memory (training's validation)."""
        import torch

        self = cls.__new__(cls)
        self.net = net
        self.flips = flips
        self.bf16 = bf16
        self.precision = "bf16" if bf16 else "fp32"
        self.runtime = "torch"
        self.device = torch.device("cpu")
        self.compiled = None
        self.request = None
        self.batcher = None
        return self

    def maps(self, image: RGBImage, *, mpp: float) -> np.ndarray:
        """3xHxW float32 at the tile's resolution: [0] P(nucleus), [1] horizontal, [2] vertical."""
        return self.maps_and_features(image, mpp=mpp)[0]

    def maps_and_features(self, image: RGBImage, *, mpp: float) -> tuple[np.ndarray, TileFeatureMaps]:
        """The maps of :meth:`maps` and, from the same network call, the encoder levels of
        ``TILE_LEVELS`` at the network's resolution (``tile_features.py``)."""
        height, width = image.shape[:2]
        scale = mpp / self.net.mpp
        work = resize_to(image, scale) if abs(scale - 1) > 1e-3 else image
        out, levels = self.maps_at_working_resolution(work)
        if out.shape[1:] != (height, width):
            out = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in out])
        per_px = (work.shape[0] / height, work.shape[1] / width)  # work px per tile px (y, x): ~scale
        strides = tuple(s / float(np.mean(per_px)) for s in self.net.level_strides)
        return out, TileFeatureMaps(levels=tuple(levels), strides=strides, mpp=mpp)

    def maps_at_working_resolution(self, work: RGBImage) -> tuple[np.ndarray, list[np.ndarray]]:
        """3xhxw float32 maps of an image already at the network's ``net.mpp``, and the
        encoder levels of ``TILE_LEVELS``, channels last (level k: ceil(h / s_k) x ceil(w / s_k)
        x C_k, s_k = ``net.level_strides[k]``). An image with a side longer than the network's
        ``net.chunk`` (px; None = never) goes through in overlapping pieces (:func:`chunks`),
        each with ``CHUNK_MARGIN_UM`` of context around its core, so that one call's memory
        stays bounded (``hvnet-fine`` on a 1024² tile at 0.5 µm/px would otherwise hold ~0.9
        GB of activations per worker); the pieces start on the network's pooling grid, so
        their levels are cut and joined on it too."""
        chunk = self.net.chunk
        h, w = work.shape[:2]
        if chunk is None or max(h, w) <= chunk:
            return self._infer(work)
        margin = self.net.multiple * round(CHUNK_MARGIN_UM / self.net.mpp / self.net.multiple)
        out = np.empty((3, h, w), np.float32)
        levels: list[np.ndarray] = []
        for y0, y1 in chunks(h, chunk, self.net.multiple):
            for x0, x1 in chunks(w, chunk, self.net.multiple):
                a0, b0 = max(0, y0 - margin), max(0, x0 - margin)
                piece, piece_levels = self._infer(work[a0 : min(h, y1 + margin), b0 : min(w, x1 + margin)])
                out[:, y0:y1, x0:x1] = piece[:, y0 - a0 : y1 - a0, x0 - b0 : x1 - b0]
                if not levels:
                    levels = [np.empty((-(-h // s), -(-w // s), m.shape[2]), np.float32)
                              for m, s in zip(piece_levels, self.net.level_strides, strict=True)]  # fmt: skip
                for full, part, s in zip(levels, piece_levels, self.net.level_strides, strict=True):
                    r0, r1, c0, c1 = y0 // s, -(-y1 // s), x0 // s, -(-x1 // s)
                    full[r0:r1, c0:c1] = part[r0 - a0 // s : r1 - a0 // s, c0 - b0 // s : c1 - b0 // s]
        return out, levels

    def _infer(self, work: RGBImage) -> tuple[np.ndarray, list[np.ndarray]]:
        """3xhxw float32 maps of ``work`` and its encoder levels: one network call (sides
        padded inside), or with ``flips`` 2 / 4 the mean of the maps (and levels) of the tile
        flipped left-right (and up-down, and both), each flipped back; a flip negates the
        horizontal (vertical) map. With a batcher (a GPU) the flipped copies go in one call."""
        views = ((False, False), (False, True), (True, False), (True, True))[: self.flips]  # (up-down, left-right)
        axes = [tuple(a for a, f in ((0, flip_y), (1, flip_x)) if f) for flip_y, flip_x in views]
        images = [work] + [np.ascontiguousarray(np.flip(work, a)) for a in axes[1:]]
        if self.batcher is None:
            results = [self._infer_once(image) for image in images]
        else:  # all queued before waiting: one call for them (and other threads' tiles)
            futures = [self.batcher.submit(self._padded(image)) for image in images]
            results = [self._cut(*f.result(), image.shape[:2]) for f, image in zip(futures, images, strict=True)]
        out, levels = results[0]
        for (flip_y, flip_x), a, (maps, more) in zip(views[1:], axes[1:], results[1:], strict=True):
            maps = np.flip(maps, tuple(k + 1 for k in a))
            out[0] += maps[0]
            out[1] += -maps[1] if flip_x else maps[1]
            out[2] += -maps[2] if flip_y else maps[2]
            for total, level in zip(levels, more, strict=True):
                total += np.flip(level, a)  # channels last: the image's axes
        if self.flips > 1:
            out /= self.flips
            for total in levels:
                total /= self.flips
        return out, levels

    def _padded(self, work: RGBImage) -> RGBImage:
        """``work`` with its sides padded (bottom, right) to a multiple of ``net.multiple``."""
        h, w = work.shape[:2]
        multiple = self.net.multiple
        ph, pw = -h % multiple, -w % multiple
        if ph or pw:
            border = cv2.BORDER_REFLECT_101 if min(h, w) > multiple else cv2.BORDER_REPLICATE
            work = cv2.copyMakeBorder(work, 0, ph, 0, pw, border)
        return work

    def _cut(self, maps: np.ndarray, levels: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The network's raw output for a padded input (3xHxW maps; levels channels last) as
        the image's (``shape``): cut to it, copied, P(nucleus) from its logit, the HV maps
        clipped to [-1, 1]."""
        from scipy.special import expit

        h, w = shape
        out = np.array(maps[:, :h, :w], dtype=np.float32)
        out[0] = expit(out[0])
        np.clip(out[1:], -1, 1, out=out[1:])
        levels = [np.array(m[: -(-h // s), : -(-w // s)], dtype=np.float32) for m, s in zip(levels, self.net.level_strides, strict=True)]
        return out, levels

    def _infer_once(self, work: RGBImage) -> tuple[np.ndarray, list[np.ndarray]]:
        """3xhxw float32 maps of ``work`` and its encoder levels (channels last), in one network
        call of its own (sides padded inside)."""
        import torch

        shape = work.shape[:2]
        work = self._padded(work)
        if self.compiled is not None:
            results = self.request.infer({0: to_input(work).numpy()})
            return self._cut(results[0][0], [results[i + 1][0] for i in range(len(TILE_LEVELS))], shape)  # the IR gives the levels NHWC
        with torch.inference_mode(), autocast(self.device, self.precision):
            x = to_input(work).to(self.device).contiguous(memory_format=torch.channels_last)
            maps, levels = self.net.forward_levels(x)
            maps = maps[0].float().cpu().numpy()  # fp32 even under autocast
            levels = [m[0].float().permute(1, 2, 0).cpu().numpy() for m in levels]
        return self._cut(maps, levels, shape)
