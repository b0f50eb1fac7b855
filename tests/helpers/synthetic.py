"""A synthetic cell store with known clusters, for the cluster / export / map tests.

``build_store`` writes real Zarr through the real store API: plausible nucleus geometry
inside the sample slide's bounds (2220 x 2967 px), crops tinted by cluster, and Gaussian
blob embeddings whose blob is the true cluster.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsicell.store import CellBatch, CellStore

SAMPLE_SIZE = (2220, 2967)  # CMU-1-Small-Region level 0 (width, height)
FEATURES = ["area_um2", "perimeter_um", "eccentricity", "mean_hematoxylin"]
POINTS = 32


def blobs(n: int, *, k: int, dim: int, seed: int, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """n points of ``k`` well-separated Gaussian blobs (random unit-vector centres) in ``dim``-d."""
    centres = np.random.default_rng(12345 + k).normal(size=(k, dim))  # same for every slide
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + rng.normal(scale=spread, size=(n, dim))
    return x.astype(np.float32), labels.astype(np.int32)


def nuclei(n: int, *, seed: int, size: tuple[int, int] = SAMPLE_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elliptical 32-point contours (n, 32, 2), centroids (n, 2) and bboxes (n, 4) inside ``size``."""
    rng = np.random.default_rng(seed)
    w, h = size
    centroid = np.column_stack([rng.uniform(12, w - 12, n), rng.uniform(12, h - 12, n)]).astype(np.float32)
    a = rng.uniform(3, 9, n)[:, None]
    b = a * rng.uniform(0.5, 1.0, n)[:, None]
    rot = rng.uniform(0, np.pi, n)[:, None]
    t = np.linspace(0, 2 * np.pi, POINTS, endpoint=False)[None, :]
    dx, dy = a * np.cos(t), b * np.sin(t)
    x = centroid[:, :1] + dx * np.cos(rot) - dy * np.sin(rot)
    y = centroid[:, 1:] + dx * np.sin(rot) + dy * np.cos(rot)
    contour = np.stack([x, y], axis=-1).astype(np.float32)  # (n, 32, 2)
    bbox = np.column_stack([
        np.floor(contour[..., 0].min(1)), np.floor(contour[..., 1].min(1)),
        np.ceil(contour[..., 0].max(1)) + 1, np.ceil(contour[..., 1].max(1)) + 1,
    ]).astype(np.int32)  # fmt: skip
    return contour, centroid, bbox


def build_store(
    path: Path, *, slides: tuple[int, ...] = (3000, 2000), k: int = 4, dim: int = 64, seed: int = 0,
    embed: bool = True, crop_size: int = 32, fingerprints: tuple[str, ...] | None = None,
) -> tuple[CellStore, dict[str, np.ndarray]]:  # fmt: skip
    """A store with one slide group per entry of ``slides`` (its cell count).

    Returns the store (opened r+) and the true blob label of every cell per slide id.
    """
    store = CellStore.create_or_open(path)
    palette = np.random.default_rng(99).integers(40, 230, size=(k, 3))
    truth = {}
    for i, n in enumerate(slides):
        fp = fingerprints[i] if fingerprints else f"{i:02d}" + "ab" * 31
        sid = f"synthetic{i}-{fp[:8]}"
        x, labels = blobs(n, k=k, dim=dim, seed=seed + i)
        contour, centroid, bbox = nuclei(n, seed=seed + 100 + i)
        rng = np.random.default_rng(seed + 200 + i)
        crops = np.clip(
            palette[labels][:, None, None, :] + rng.normal(0, 12, (n, crop_size, crop_size, 3)), 0, 255
        ).astype(np.uint8)
        # cell types differ in size and shape too: area and eccentricity follow the blob
        feats = np.column_stack([
            20 + 12 * labels + rng.normal(0, 1.5, n), rng.uniform(10, 40, n),
            np.clip(0.2 + 0.15 * labels + rng.normal(0, 0.03, n), 0, 1), rng.uniform(0, 1, n),
        ]).astype(np.float32)  # fmt: skip
        writer = store.begin_slide(
            sid, attrs={"path": f"synthetic{i}.svs", "name": f"synthetic{i}", "fingerprint": fp, "mpp": 0.499,
                        "width": SAMPLE_SIZE[0], "height": SAMPLE_SIZE[1]},
            crop_size=crop_size, contour_points=POINTS, feature_names=FEATURES,
        )  # fmt: skip
        for start in range(0, n, 700):
            stop = min(start + 700, n)
            writer.append(CellBatch(crops[start:stop], centroid[start:stop], contour[start:stop],
                                    bbox[start:stop], feats[start:stop]))  # fmt: skip
        writer.finish()
        if embed:
            cells = store.slide(sid)
            arr = cells.create_array("embedding", shape=(n, dim), dtype="float16", chunks=(1024, dim))
            arr[:] = x.astype(np.float16)
        truth[sid] = labels
    if embed:
        store.root.attrs["embedding_model"] = {"run": "synthetic", "checkpoint": "none", "sha256": "0" * 64,
                                              "encoder": "momentum"}  # fmt: skip
    return store, truth

