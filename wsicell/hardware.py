"""What the CPU offers, read once: native bf16 units decide the ``auto`` precision of the
U-Net (segmentation) and of training."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (Intel AMX or AVX512-BF16): there bf16
    autocast runs convolutions ~2x faster than fp32 (docs/benchmarks.md)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
