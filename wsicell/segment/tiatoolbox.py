"""Deep-learning nuclei (HoVer-Net & co.) through tiatoolbox, on an in-memory tile.

Optional: install with ``make tiatoolbox`` (tiatoolbox goes in with ``--no-deps`` over the
measured import-time needs in ``requirements-tiatoolbox.txt``, so it never changes the main
environment's torch/numpy/dask/zarr). Imported only when ``method: tiatoolbox`` is asked for.

tiatoolbox's ``NucleusInstanceSegmentor`` engine (deprecated in 2.1 in favour of
``MultiTaskSegmentor``) reads slides and patches itself and writes its own stores; wsicell
already tiles, so this backend uses the same pieces the engine uses — the pretrained
architecture and IO config (``get_pretrained_model``, local ``weights`` or tiatoolbox's
download), the model's ``infer_batch`` and its ``postproc`` (HoVer-Net's NP/HV watershed) —
on the tile it is given: resample to the model's mpp, cut overlapping input patches so the
valid outputs tile the image, stitch the head maps, post-process, resample labels back.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from wsicell.errors import ConfigError
from wsicell.segment.base import Segmenter
from wsicell.segment.config import SegmentConfig
from wsicell.segment.watershed import check_image, filter_sizes
from wsicell.types import LabelImage, RGBImage

INSTALL_HINT = "install the optional extra with `make tiatoolbox` (see docs/segmentation.md)"


def import_tiatoolbox() -> object:
    """The tiatoolbox.models.architecture module, or a clear error when not installed."""
    try:
        import tiatoolbox.models.architecture as arch
    except ImportError as exc:
        raise ConfigError(f"method 'tiatoolbox' needs tiatoolbox ({exc}); {INSTALL_HINT}") from None
    return arch


class TiatoolboxSegmenter(Segmenter):
    name = "tiatoolbox"

    def __init__(self, config: SegmentConfig, *, batch_size: int = 4) -> None:
        self.config = config
        self.max_nucleus_um = config.max_diameter_um
        self.batch_size = batch_size
        if config.weights is not None and not Path(config.weights).is_file():
            raise ConfigError(f"{config.weights}: weights file not found")
        arch = import_tiatoolbox()
        try:
            model, ioconfig = arch.get_pretrained_model(config.tiatoolbox_model, config.weights)
        except ValueError as exc:
            raise ConfigError(f"tiatoolbox_model {config.tiatoolbox_model!r}: {exc}") from None
        except (RuntimeError, KeyError) as exc:  # state dict does not fit the architecture
            raise ConfigError(f"{config.weights}: not weights for {config.tiatoolbox_model} ({exc})") from None
        if ioconfig is None:
            raise ConfigError(f"tiatoolbox_model {config.tiatoolbox_model!r} is not a segmentation model")
        self.model = model.eval()
        self.model_mpp = float(ioconfig.input_resolutions[0]["resolution"])
        if ioconfig.input_resolutions[0]["units"] != "mpp":
            raise ConfigError(f"tiatoolbox_model {config.tiatoolbox_model!r}: input resolution not in mpp")
        self.patch_in = tuple(int(v) for v in ioconfig.patch_input_shape)  # (h, w)
        self.patch_out = tuple(int(v) for v in ioconfig.patch_output_shape)

    def segment(self, image: RGBImage, *, mpp: float) -> LabelImage:
        check_image(image, mpp)
        import torch

        height, width = image.shape[:2]
        factor = mpp / self.model_mpp  # model px per tile px
        work = image
        if abs(factor - 1) > 1e-3:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)
        wh, ww = work.shape[:2]
        (ih, iw), (oh, ow) = self.patch_in, self.patch_out
        my, mx = (ih - oh) // 2, (iw - ow) // 2
        ny, nx = math.ceil(wh / oh), math.ceil(ww / ow)
        padded = cv2.copyMakeBorder(
            work, my, ny * oh - wh + (ih - oh - my), mx, nx * ow - ww + (iw - ow - mx), cv2.BORDER_REFLECT_101
        )
        corners = [(y * oh, x * ow) for y in range(ny) for x in range(nx)]
        maps: list[np.ndarray] | None = None
        for start in range(0, len(corners), self.batch_size):
            chunk = corners[start : start + self.batch_size]
            batch = np.stack([padded[y : y + ih, x : x + iw] for y, x in chunk])  # N x ih x iw x 3
            heads = self.model.infer_batch(self.model, torch.from_numpy(batch), device="cpu")
            if maps is None:
                maps = [np.zeros((ny * oh, nx * ow, h.shape[-1]), np.float32) for h in heads]
            for head, canvas in zip(heads, maps, strict=True):
                for (y, x), out in zip(chunk, head, strict=True):
                    canvas[y : y + oh, x : x + ow] = out
        assert maps is not None
        maps = [m[:wh, :ww] for m in maps]
        result = self.model.postproc(maps)
        inst = np.asarray(result[0]["predictions"] if isinstance(result[0], dict) else result[0])
        inst = inst.astype(np.int32)
        if inst.shape != (height, width):
            inst = cv2.resize(inst, (width, height), interpolation=cv2.INTER_NEAREST)
        c = self.config
        return filter_sizes(
            inst, min_px=c.min_area_um2 / mpp**2, max_px=c.max_area_um2 / mpp**2, max_side_px=c.max_diameter_um / mpp
        )
