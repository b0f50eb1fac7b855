"""Tile features: the HV-net's encoder levels around each nucleus, from the segmenting call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsicell.segment import SegmentConfig, make_segmenter
from wsicell.segment.hvnet import HVNetModel
from wsicell.segment.metrics import centroids_of
from wsicell.segment.tile_features import TILE_BOX_UM, TILE_LEVELS, pool_levels


@pytest.fixture(scope="module")
def consep_tile(shared_data):
    """A CoNSeP test tile (40x): RGB, its instance map, µm per px."""
    import cv2

    from wsicell.evaluate.dataset import CONSEP_MPP

    name = shared_data / "consep-tiles" / "test" / "test_1_005"
    image = cv2.cvtColor(cv2.imread(f"{name}.jpg"), cv2.COLOR_BGR2RGB)
    return image, np.load(f"{name}.npz")["inst"].astype(np.int32), CONSEP_MPP


def naive_box_mean(level: np.ndarray, stride: float, x: float, y: float, box: float) -> np.ndarray:
    """roi_align's average, one sample at a time: 4 x 4 bilinear samples on a regular grid in
    the box around pixel (x, y) (its centre at x + 0.5 in continuous tile coordinates); a
    sample more than one feature pixel outside the map counts zero, one within it is clamped."""
    h, w, c = level.shape
    total = np.zeros(c)
    for j in range(4):
        for i in range(4):
            sx = (x + 0.5 - box / 2 + (i + 0.5) * box / 4) / stride - 0.5  # feature px, centres at integers
            sy = (y + 0.5 - box / 2 + (j + 0.5) * box / 4) / stride - 0.5
            if sy < -1 or sy > h or sx < -1 or sx > w:
                continue
            sx, sy = min(max(sx, 0), w - 1), min(max(sy, 0), h - 1)
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            fx, fy = sx - x0, sy - y0
            total += ((1 - fy) * ((1 - fx) * level[y0, x0] + fx * level[y0, x1])
                      + fy * ((1 - fx) * level[y1, x0] + fx * level[y1, x1]))  # fmt: skip
    return total / 16


def test_pool_levels_against_a_naive_reference():
    rng = np.random.default_rng(0)
    levels = (rng.normal(size=(24, 20, 5)), rng.normal(size=(12, 10, 6)), rng.normal(size=(6, 5, 7)))  # h x w x C
    strides = (4.0, 8.0, 16.0)
    xy = np.array([[40.0, 50.0], [3.0, 2.0], [78.5, 95.0], [10.2, 60.7], [-1.0, 40.0]])  # inside, corner, edge, outside
    box = 32.0
    got = pool_levels(tuple(m.astype(np.float32) for m in levels), strides, xy, box_px=box)
    assert got.shape == (len(xy), 18) and got.dtype == np.float32
    for row, (x, y) in enumerate(xy):
        parts = []
        for level, stride in zip(levels, strides, strict=True):
            v = naive_box_mean(level, stride, x, y, box)
            parts.append(v / max(np.linalg.norm(v), 1e-12))
        np.testing.assert_allclose(got[row], np.concatenate(parts), atol=1e-5)
    assert pool_levels(tuple(levels), strides, np.zeros((0, 2)), box_px=box).shape == (0, 18)


def test_the_levels_are_the_train_configs_segmenter_stages():
    from wsicell.train.config import SEGMENTER_STAGES, nucleus_channels

    assert TILE_LEVELS == SEGMENTER_STAGES
    model = HVNetModel(precision="fp32", runtime="torch")
    _, maps = model.maps_and_features(np.full((64, 64, 3), 200, np.uint8), mpp=0.5)
    assert maps.dim == nucleus_channels(SEGMENTER_STAGES) == 224


def test_levels_are_the_encoders_outputs_on_a_real_tile(consep_tile):
    """The naive reference: the HV-net's encoder blocks run one by one on the tile at 0.5
    µm/px (as the nucleus encoder runs them on crops), against the segmenting call's levels."""
    import cv2
    import torch
    import torch.nn.functional as F

    from wsicell.segment.hvnet import resize_to, to_input

    image, _, mpp = consep_tile
    model = HVNetModel(precision="fp32", runtime="torch")
    _, maps = model.maps_and_features(image, mpp=mpp)
    work = resize_to(image, mpp / 0.5)  # 256 px at ~0.244 µm/px -> 125 px, padded inside to 128
    padded = cv2.copyMakeBorder(work, 0, -work.shape[0] % 16, 0, -work.shape[1] % 16, cv2.BORDER_REFLECT_101)
    x = to_input(padded)
    expected = []
    with torch.no_grad():
        for level, block in enumerate(model.net.enc, start=1):
            x = block(x if level == 1 else F.max_pool2d(x, 2))
            if level in TILE_LEVELS:
                s = 2 ** (level - 1)
                expected.append(x[0, :, : -(-work.shape[0] // s), : -(-work.shape[1] // s)].permute(1, 2, 0).numpy())
    for got, want in zip(maps.levels, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    tile_px_per_work_px = image.shape[0] / work.shape[0]
    np.testing.assert_allclose(maps.strides, [4 * tile_px_per_work_px, 8 * tile_px_per_work_px, 16 * tile_px_per_work_px])


def test_openvino_gives_the_torch_levels(consep_tile):
    image, _, mpp = consep_tile
    _, a = HVNetModel(precision="fp32", runtime="torch").maps_and_features(image, mpp=mpp)
    _, b = HVNetModel(precision="fp32", runtime="openvino").maps_and_features(image, mpp=mpp)
    for x, y in zip(a.levels, b.levels, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-3)


def test_flips_average_levels_flipped_back(consep_tile):
    """With 2 flips the levels are the mean of the tile's and of its mirror image's, that one
    mirrored back (the naive reference: two calls by hand)."""
    image, _, mpp = consep_tile
    model = HVNetModel(precision="fp32", runtime="torch")
    _, one = model.maps_and_features(image, mpp=mpp)
    _, mirror = model.maps_and_features(np.ascontiguousarray(image[:, ::-1]), mpp=mpp)
    _, two = HVNetModel(precision="fp32", runtime="torch", flips=2).maps_and_features(image, mpp=mpp)
    for got, a, b in zip(two.levels, one.levels, mirror.levels, strict=True):
        np.testing.assert_allclose(got, (a + b[:, ::-1]) / 2, atol=1e-5)  # channels last


def test_the_segmenter_gives_its_labels_and_features_from_one_call(consep_tile):
    image, _, mpp = consep_tile
    segmenter = make_segmenter(SegmentConfig(runtime="torch", precision="fp32"))
    labels, maps = segmenter.segment_with_features(image, mpp=mpp)
    assert np.array_equal(labels, segmenter.segment(image, mpp=mpp))
    features = maps.at(centroids_of(labels))
    assert features.shape == (labels.max(), 224) and np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features[:, :32], axis=1), 1, atol=1e-4)  # each level unit length
    assert make_segmenter(SegmentConfig(method="watershed")).segment_with_features(image, mpp=mpp)[1] is None


def test_extraction_keeps_the_tile_features_the_segmenter_gives(tmp_path: Path, sample_slide: Path):
    """A field of view extracted as one tile: the store's tile features are the segmenter's
    at the stored centroids (float16); a watershed extraction has none."""
    import cv2

    from wsicell.extract import ExtractConfig, extract_slides
    from wsicell.io.slide import open_slide
    from wsicell.store import CellStore

    with open_slide(sample_slide) as slide:
        field = slide.read_region((1024, 1024), 0, (256, 256))
    png = tmp_path / "field.png"
    cv2.imwrite(str(png), cv2.cvtColor(field, cv2.COLOR_RGB2BGR))
    for method in ("hvnet", "watershed"):
        config = ExtractConfig(tissue_method="none", segment=SegmentConfig(method=method))
        report = extract_slides([png], store=tmp_path / f"{method}.zarr", config=config, slide_mpp=0.5, progress=False)
        assert report.ok, report
    [stored] = CellStore.open(tmp_path / "hvnet.zarr").slides()
    assert not CellStore.open(tmp_path / "watershed.zarr").slides()[0].has("tile_features")
    _, maps = make_segmenter(SegmentConfig()).segment_with_features(field, mpp=0.5)
    expected = maps.at(np.asarray(stored.array("centroid")[:], np.float64) - 0.5)
    got = np.asarray(stored.array("tile_features")[:], np.float32)
    assert got.shape == (stored.n_cells, 224) and stored.n_cells > 40
    np.testing.assert_allclose(got, expected, atol=2e-3)  # float16; bf16 vs bf16: the same runtime


def test_a_box_of_16_um_is_what_the_features_average(consep_tile):
    """``at`` uses the TILE_BOX_UM box at the tile's resolution."""
    image, inst, mpp = consep_tile
    _, maps = HVNetModel(precision="fp32", runtime="torch").maps_and_features(image, mpp=mpp)
    xy = centroids_of(inst)
    np.testing.assert_allclose(maps.at(xy), pool_levels(maps.levels, maps.strides, xy, box_px=TILE_BOX_UM / mpp))


def test_pool_levels_is_torchvisions_roi_align():
    import torch
    import torch.nn.functional as F
    from torchvision.ops import roi_align

    rng = np.random.default_rng(1)
    levels = (rng.normal(size=(8, 40, 36)).astype(np.float32), rng.normal(size=(4, 20, 18)).astype(np.float32))
    strides = (4.0, 8.0)
    xy = rng.uniform(-10, 160, size=(200, 2))
    box = 33.0
    centre = xy + 0.5
    boxes = torch.from_numpy(np.concatenate([np.zeros((200, 1)), centre - box / 2, centre + box / 2], 1).astype(np.float32))
    expected = [F.normalize(roi_align(torch.from_numpy(m)[None], boxes, output_size=2, spatial_scale=1 / s,
                                      sampling_ratio=2, aligned=True).mean((2, 3)), dim=1).numpy()
                for m, s in zip(levels, strides, strict=True)]  # fmt: skip
    channels_last = tuple(np.ascontiguousarray(m.transpose(1, 2, 0)) for m in levels)
    np.testing.assert_allclose(pool_levels(channels_last, strides, xy, box_px=box), np.concatenate(expected, 1), atol=1e-5)
