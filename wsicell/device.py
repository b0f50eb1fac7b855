"""Where the networks run and in what arithmetic: one policy for training, embedding and
segmentation.

Device (``auto`` | ``cpu`` | ``cuda``): ``auto`` is CUDA when a GPU is present (under
``torchrun``, this process's GPU, ``LOCAL_RANK``), else the CPU; ``cuda`` without a GPU is an
error, not a silent fallback.

Precision (``auto`` | ``fp32`` | ``bf16`` | ``fp16``): ``auto`` is bf16 autocast on CUDA when
the GPU supports it (else fp16 autocast, with a GradScaler in training), and on a CPU bf16
autocast when the CPU multiplies bf16 natively (AMX / AVX512-BF16: 2-4x faster convolutions,
docs/benchmarks.md), else fp32. ``fp16`` is for CUDA only.

:func:`choose` returns a :class:`Compute` with a one-line ``reason`` ("chose X because Y")
that the commands print. torch is imported on use, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wsicell.errors import ConfigError
from wsicell.hardware import cpu_has_bf16

if TYPE_CHECKING:
    import numpy as np
    import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_PRECISION = "auto"
"""The default of every command that runs a network (train, embed, map, segmentation)."""


@dataclass(frozen=True)
class Compute:
    """A resolved device and precision, and why they were chosen."""

    device: Any  # torch.device
    precision: str  # "fp32" | "bf16" | "fp16"
    reason: str


def choose(device: str = "auto", precision: str = DEFAULT_PRECISION) -> Compute:
    """The device and precision for the options ``device`` and ``precision``."""
    dev, why_device = choose_device(device)
    prec, why_precision = choose_precision(precision, dev)
    return Compute(dev, prec, f"Chose {dev} because {why_device}, {prec} because {why_precision}")


def choose_device(name: str) -> tuple[torch.device, str]:
    """(device, why) for ``auto`` | ``cpu`` | ``cuda`` (or an explicit ``cuda:N``)."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    has_cuda = torch.cuda.is_available()
    if name.startswith("cuda") and not has_cuda:
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is available (use --device cpu or auto)")
    if name == "cpu":
        return torch.device("cpu"), "device cpu was asked for"
    if name == "auto" and not has_cuda:
        return torch.device("cpu"), "no CUDA GPU is present"
    if name.startswith("cuda:"):
        return torch.device(name), f"device {name} was asked for"
    index = int(os.environ.get("LOCAL_RANK", "0"))  # this rank's GPU under torchrun
    return torch.device("cuda", index), ("a CUDA GPU is present" if name == "auto" else "device cuda was asked for")


def choose_precision(name: str, device: torch.device | str) -> tuple[str, str]:
    """(precision, why) for ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` on ``device``."""
    kind = device if isinstance(device, str) else device.type
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        if name == "fp16" and kind == "cpu":
            raise ConfigError("precision 'fp16' is for CUDA; on CPU use bf16 or fp32")
        return name, f"precision {name} was asked for"
    if kind == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16", "the GPU supports bf16"
        return "fp16", "the GPU lacks bf16"
    if cpu_has_bf16():
        return "bf16", "the CPU multiplies bf16 natively (AMX / AVX512-BF16)"
    return "fp32", "the CPU has no native bf16"


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` in ``precision`` (bf16/fp16), disabled for fp32."""
    import torch

    kind = device if isinstance(device, str) else device.type
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(kind, dtype=dtype, enabled=precision in ("bf16", "fp16"))


def to_float_batch(crops: np.ndarray | torch.Tensor, *, size: int, device: torch.device) -> torch.Tensor:
    """uint8 crops NxSxSx3 -> float Nx3xsize x size in [0, 1] on ``device``.

    The uint8 batch crosses to the device (4x fewer bytes than float); resizing, if the
    store's crop size differs from ``size``, is antialiased bilinear.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    x = t.to(device).permute(0, 3, 1, 2).float().div_(255.0)  # x: Nx3xSxS
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()
