"""The overlay picture (thumbnail + coloured nuclei + legend) and the crop gallery."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cluster_synthetic import build_store, nuclei

from wsicell.cluster import ClusterConfig, cluster_store, load_clustering
from wsicell.errors import WsicellError
from wsicell.export.gallery import gallery_picture, sample_crops
from wsicell.export.names import default_styles
from wsicell.export.picture import draw_nuclei, overlay_picture, save_png


def test_nuclei_take_their_cluster_colour() -> None:
    thumb = np.full((300, 200, 3), 255, np.uint8)
    contour, centroid, _ = nuclei(40, seed=3, size=(400, 600))  # level-0 px, nuclei 6-18 px wide
    cluster = np.arange(40) % 4
    styles = default_styles(4)
    big = draw_nuclei(thumb, 2.0, [(contour, cluster)], styles=styles)  # 2 level-0 px per thumbnail px
    for i in range(40):
        x, y = np.round(centroid[i] / 2).astype(int)
        pixel = big[y, x].astype(int)
        want = np.array(styles[cluster[i]].color)
        tinted = 255 * 0.45 + want * 0.55  # translucent fill over white
        assert np.abs(pixel - tinted).max() <= 40 or np.abs(pixel - want).max() <= 40
    assert (big != 255).any(axis=2).mean() > 0.02


def test_overlay_has_legend_and_scale_bar(tmp_path: Path) -> None:
    thumb = np.full((400, 300, 3), 230, np.uint8)
    contour, _, _ = nuclei(100, seed=1, size=(3000, 4000))
    styles = default_styles(3)
    counts = np.array([50, 30, 20])
    image = overlay_picture(thumb, 10.0, [(contour, np.arange(100) % 3)], styles=styles, counts=counts,
                            title=["slide.svs", "100 nuclei"], mpp=0.5)  # fmt: skip
    assert image.shape[0] >= 400 and image.shape[1] > 300 + 100  # legend panel on the right
    panel = image[:, 300:]
    for s in styles:  # each swatch present
        assert (np.abs(panel.astype(int) - np.array(s.color)).max(axis=2) == 0).sum() > 50
    out = save_png(image, tmp_path / "o.png", force=False)
    back = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, image)
    with pytest.raises(WsicellError, match="already exists"):
        save_png(image, out, force=False)


def test_gallery_rows_are_clusters(tmp_path: Path) -> None:
    store, truth = build_store(tmp_path / "g.zarr", slides=(1500, 900), k=3, dim=16)
    cluster_store(store, config=ClusterConfig(k=3, restarts=2))
    slides = store.slides()
    crops, sizes = sample_crops(slides, k=3, per_cluster=10, seed=0)
    assert [len(c) for c in crops] == [10, 10, 10] and sizes.sum() == 2400
    for c in crops:  # crops are tinted by their true cluster: one tint per band
        means = c.reshape(len(c), -1, 3).mean(axis=1)
        assert means.std(axis=0).max() < 6
    again, _ = sample_crops(slides, k=3, per_cluster=10, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again, strict=True))
    image = gallery_picture(crops, styles=default_styles(3), sizes=sizes, per_row=5, cell_px=48, title="t")
    assert image.shape[1] > 5 * 48 and image.shape[0] > 3 * 2 * 48  # 3 bands of 2 lines
    assert load_clustering(store).k == 3


def test_gallery_of_a_small_cluster(tmp_path: Path) -> None:
    crops = [np.zeros((2, 8, 8, 3), np.uint8), np.zeros((0, 1, 1, 3), np.uint8)]
    image = gallery_picture(crops, styles=default_styles(2), sizes=np.array([2, 0]), per_row=4, cell_px=32)
    assert image.ndim == 3 and image.shape[2] == 3
