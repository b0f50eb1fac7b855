"""A uniform random sample of per-cell rows across every slide, read chunk by chunk."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from wsicell.store import SlideCells


def sample_rows(
    slides: list[SlideCells],
    *,
    size: int,
    seed: int,
    arrays: Sequence[str] = ("embedding",),
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``min(size, total)`` rows drawn without replacement, uniformly over all cells, of each
    of the per-slide ``arrays`` (the same cells in each, e.g. ``embedding`` and ``features``).

    Only the chunks that hold a sampled row are read, one at a time, so memory is the sample
    plus one chunk. Returns name -> (m, D) float32 in store order (slide by slide).
    """
    counts = [s.n_cells for s in slides]
    total = sum(counts)
    m = min(size, total)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=m, replace=False)) if m < total else np.arange(total)
    out = {name: np.empty((m, slides[0].array(name).shape[1]), np.float32) for name in arrays}  # (m, D)
    filled, offset = 0, 0
    for slide, n in zip(slides, counts, strict=True):
        lo, hi = np.searchsorted(chosen, [offset, offset + n])
        local = chosen[lo:hi] - offset
        step = slide.array(arrays[0]).chunks[0]
        for start in range(0, n, step):
            a, b = np.searchsorted(local, [start, start + step])
            if a == b:
                continue
            for name in arrays:
                rows = slide.array(name)[start : min(start + step, n)]
                out[name][filled : filled + (b - a)] = rows[local[a:b] - start]
            filled += b - a
            if progress is not None:
                progress(b - a)
        offset += n
    assert filled == m
    return out


def sample_embeddings(
    slides: list[SlideCells],
    *,
    size: int,
    seed: int,
    array: str = "embedding",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """:func:`sample_rows` of one array (``embedding``, ``cell_vector`` or ``context_embedding``)."""
    return sample_rows(slides, size=size, seed=seed, arrays=(array,), progress=progress)[array]
