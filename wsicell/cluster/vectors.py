"""Per slide, the vectors cells are clustered by (represent.py), written beside the embedding.

``cell_vector`` (n, dim) float32 holds ``Representation.transform(embedding, features)`` of
every cell, chunk by chunk (memory: one chunk). Its attrs record the representation's
fingerprint and the embedding it was made from; it is rebuilt when either changes, so the
context step (context.py) and the assignment read current vectors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import numpy as np

from wsicell.cluster.represent import Representation
from wsicell.store import SlideCells

VECTOR_ARRAY = "cell_vector"


def representation_fingerprint(rep: Representation) -> str:
    """sha256 of the representation's arrays and settings (identical fits -> identical tags)."""
    digest = hashlib.sha256(json.dumps(rep.attrs(), sort_keys=True).encode())
    for name, array in sorted(rep.arrays().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def vectors_tag(slide: SlideCells, rep: Representation) -> dict:
    return {"representation": representation_fingerprint(rep), "embedding": dict(slide.array("embedding").attrs)}


def vectors_current(slide: SlideCells, rep: Representation) -> bool:
    if not slide.has(VECTOR_ARRAY) or not slide.has("embedding"):
        return False
    attrs = dict(slide.array(VECTOR_ARRAY).attrs)
    return bool(attrs.get("complete")) and attrs.get("tag") == vectors_tag(slide, rep)


def write_slide_vectors(
    slide: SlideCells, rep: Representation, *, progress: Callable[[int], None] | None = None
) -> bool:
    """Write the slide's ``cell_vector`` unless it is current; True if it was (re)written."""
    if vectors_current(slide, rep):
        return False
    emb = slide.array("embedding")
    feats = slide.array("features")
    n = slide.n_cells
    if emb.shape[0] != n or feats.shape[0] != n:
        raise ValueError(f"slide {slide.id}: {emb.shape[0]} embeddings and {feats.shape[0]} feature rows for {n} cells")
    out = slide.create_array(
        VECTOR_ARRAY, shape=(n, rep.dim), dtype="float32", chunks=(emb.chunks[0], rep.dim),
        attrs={"tag": vectors_tag(slide, rep), "complete": False},
    )  # fmt: skip
    step = emb.chunks[0]
    for a in range(0, n, step):
        b = min(a + step, n)
        out[a:b] = rep.transform(np.asarray(emb[a:b]), np.asarray(feats[a:b]))
        if progress is not None:
            progress(b - a)
    out.attrs["complete"] = True
    return True
