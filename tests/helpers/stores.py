"""Cell stores of real crops for training and embedding tests."""

from __future__ import annotations

from pathlib import Path


def build_crop_store(path: Path, slide: Path, *, sizes: tuple[int, ...] = (700, 500), crop: int = 32, seed: int = 0):
    """A cell store of REAL crops cut at random tissue positions of ``slide`` (one group per
    entry of ``sizes``), written through the store's own writer. For training/embedding tests
    that need crops but not a segmentation."""
    import numpy as np

    from wsicell.io.slide import fingerprint, open_slide
    from wsicell.store import CellBatch, CellStore

    rng = np.random.default_rng(seed)
    with open_slide(slide) as s:
        w, h = s.dimensions
        image = s.read((0, 0, w, h), s.mpp)  # (H, W, 3), ~20 MB
        mpp = s.mpp
    ys, xs = np.nonzero(image[crop : h - crop, crop : w - crop].mean(2) < 200)  # tissue pixels
    store = CellStore.create_or_open(path)
    for i, n in enumerate(sizes):
        pick = rng.choice(len(xs), n, replace=False)
        cx, cy = xs[pick] + crop, ys[pick] + crop
        crops = np.stack([image[y - crop // 2 : y + crop // 2, x - crop // 2 : x + crop // 2] for x, y in zip(cx, cy, strict=True)])
        centroid = np.stack([cx, cy], 1).astype(np.float32)
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        contour = centroid[:, None, :] + 4 * np.stack([np.cos(angles), np.sin(angles)], 1)[None].astype(np.float32)
        bbox = np.concatenate([centroid - 4, centroid + 4], 1).astype(np.int32)
        features = rng.random((n, 2)).astype(np.float32)
        writer = store.begin_slide(
            f"sample-{i}", attrs={"path": str(slide), "fingerprint": f"{fingerprint(slide)}-{i}", "mpp": mpp},
            crop_size=crop, contour_points=8, feature_names=["a", "b"],
        )  # fmt: skip
        writer.append(CellBatch(crops, centroid, contour.astype(np.float32), bbox, features))
        writer.finish()
    return store
