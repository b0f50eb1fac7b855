"""The overlay picture (thumbnail + coloured nuclei + legend) and the crop gallery."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.synthetic import build_store, nuclei

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
    # scale bar: 300 thumbnail px x 10 level-0 px x 0.5 µm = 1500 µm wide; a fifth is 300 µm,
    # so 200 µm: 40 px (at 5 µm/px), black, 12 px from the left and 24 px from the bottom
    bar = image[376:382, 12:53]
    assert (bar == 0).all() and not (image[378, 53:60] == 0).all(axis=1).any()
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
    styles = default_styles(3)
    image = gallery_picture(crops, styles=styles, sizes=sizes, per_row=5, cell_px=48, title="t")
    # layout: a 29-px title, then per cluster a band of 2 lines of 5 tiles (48 px, 3-px gaps)
    # after a 192-px label column; band c shows cluster c's crops in sampling order
    label_w, gap, title_h = 192, 3, 29
    band_h = 2 * (48 + gap) + gap
    assert image.shape == (title_h + 3 * (band_h + gap), label_w + 5 * (48 + gap) + gap, 3)
    for c in range(3):
        y = title_h + c * (band_h + gap)
        assert (image[y + 5, :10] == styles[c].color).all()  # the band's colour swatch
        for j in (0, 7):  # first line, first tile; second line, third tile
            x0, y0 = label_w + (j % 5) * (48 + gap) + gap, y + (j // 5) * (48 + gap) + gap
            want = cv2.resize(crops[c][j], (48, 48), interpolation=cv2.INTER_CUBIC)
            np.testing.assert_array_equal(image[y0 : y0 + 48, x0 : x0 + 48], want)
    assert load_clustering(store).k == 3


def test_gallery_of_a_small_cluster(tmp_path: Path) -> None:
    red, green = np.full((8, 8, 3), (200, 10, 10), np.uint8), np.full((8, 8, 3), (10, 200, 10), np.uint8)
    crops = [np.stack([red, green]), np.zeros((0, 1, 1, 3), np.uint8)]
    styles = default_styles(2)
    image = gallery_picture(crops, styles=styles, sizes=np.array([2, 0]), per_row=4, cell_px=32)
    label_w, gap = 192, 3
    band_h = 32 + 2 * gap  # one line per band, even the empty one
    assert image.shape == (2 * (band_h + gap), label_w + 4 * (32 + gap) + gap, 3)
    tile = lambda j: image[gap : gap + 32, label_w + j * (32 + gap) + gap :][:, :32]  # noqa: E731
    assert (tile(0) == (200, 10, 10)).all() and (tile(1) == (10, 200, 10)).all()
    assert (tile(2) == 245).all()  # the rest of the line is the band's shade
    second = band_h + gap
    assert (image[second + 5, :10] == styles[1].color).all()  # the empty cluster keeps its band
    crop_pixels = (np.abs(image[second:, label_w:].astype(int) - (200, 10, 10)).max(axis=2) == 0)
    assert not crop_pixels.any()  # and shows no crop
