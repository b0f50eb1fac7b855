"""A uniform random sample of embeddings across every slide, read chunk by chunk."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wsicell.store import SlideCells


def sample_embeddings(
    slides: list[SlideCells],
    *,
    size: int,
    seed: int,
    array: str = "embedding",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``min(size, total)`` embedding rows drawn without replacement, uniformly over all cells.

    ``array`` names the per-slide array sampled (``embedding`` or ``context_embedding``).
    Only the chunks that hold a sampled row are read, one at a time, so memory is the sample
    plus one chunk. Returns (m, D) float32 in store order (slide by slide).
    """
    counts = [s.n_cells for s in slides]
    total = sum(counts)
    dim = slides[0].array(array).shape[1]
    m = min(size, total)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=m, replace=False)) if m < total else np.arange(total)
    out = np.empty((m, dim), np.float32)  # (m, D)
    filled, offset = 0, 0
    for slide, n in zip(slides, counts, strict=True):
        lo, hi = np.searchsorted(chosen, [offset, offset + n])
        local = chosen[lo:hi] - offset
        arr = slide.array(array)
        step = arr.chunks[0]
        for start in range(0, n, step):
            a, b = np.searchsorted(local, [start, start + step])
            if a == b:
                continue
            rows = arr[start : min(start + step, n)]
            out[filled : filled + (b - a)] = rows[local[a:b] - start]
            filled += b - a
            if progress is not None:
                progress(b - a)
        offset += n
    assert filled == m
    return out
