"""What a cell store holds, as plain data (``wsicell info`` prints it; ``--json`` as is)."""

from __future__ import annotations

from typing import Any

from wsicell.provenance import DOUBTED, EXTRACT_SETTINGS
from wsicell.segment.annotator_filter import doubted_share
from wsicell.types import PathLikeStr


def store_summary(path: PathLikeStr) -> dict[str, Any]:
    """Plain-data summary of a store (what `info --json` prints)."""
    from wsicell.store import CellStore

    cs = CellStore.open(path)
    slides = []
    for s in cs.slides(complete_only=False):
        a = s.attrs
        arrays = set(s.group.array_keys())
        slides.append({
            "id": s.id, "name": a.get("name"), "path": a.get("path"),
            "status": "complete" if s.complete else "incomplete",
            "cells": s.n_cells if s.complete else (s.group["centroid"].shape[0] if "centroid" in arrays else 0),
            "mpp": a.get("mpp"), "width": a.get("width"), "height": a.get("height"),
            "tiles": a.get("n_tiles"), "seconds": a.get("seconds"),
            "doubted": doubted_share(a.get(DOUBTED), s.n_cells) if s.complete else None,
            "tile_features": s.group["tile_features"].shape[1] if "tile_features" in arrays else None,
            "embedding": list(s.group["embedding"].shape) if "embedding" in arrays else None,
            "clustered": "cluster" in arrays,
        })  # fmt: skip
    clustering = cs.clustering
    return {
        "store": str(path),
        "schema_version": cs.root.attrs.get("schema_version"),
        "extract_settings": cs.root.attrs.get(EXTRACT_SETTINGS),
        "slides": slides,
        "complete_slides": sum(s["status"] == "complete" for s in slides),
        "cells": sum(s["cells"] for s in slides if s["status"] == "complete"),
        "clustering": dict(clustering.attrs) if clustering is not None else None,
    }
