"""Which nuclei an evaluation scores: rescaled tiles, one-to-one centroid matching, segmented splits."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsicell.evaluate.dataset import CONSEP_MPP, build_split_store, labelled_nuclei, load_split
from wsicell.evaluate.nuclei import Nuclei, rescale_tile
from wsicell.segment.config import SegmentConfig
from wsicell.segment.metrics import centroid_pairs, instance_centroids


def naive_match(a: np.ndarray, b: np.ndarray, max_distance: float) -> tuple[int, float]:
    """The most pairs closer than max_distance, then their least total distance, by trying
    every one-to-one assignment of a's rows to b's rows or to nothing (tiny inputs only)."""
    best = (0, 0.0)
    for choice in itertools.product([None, *range(len(b))], repeat=len(a)):
        used = [j for j in choice if j is not None]
        if len(set(used)) != len(used):
            continue
        d = [float(np.linalg.norm(a[i] - b[j])) for i, j in enumerate(choice) if j is not None]
        if any(x > max_distance for x in d):
            continue
        if (len(d), -sum(d)) > (best[0], -best[1]):
            best = (len(d), sum(d))
    return best


def test_matching_is_optimal_one_to_one_and_within_the_distance():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = rng.uniform(0, 10, (int(rng.integers(0, 5)), 2))
        b = rng.uniform(0, 10, (int(rng.integers(0, 6)), 2))
        rows, cols = centroid_pairs(a, b, radius=3.0)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        d = np.linalg.norm(a[rows] - b[cols], axis=1) if len(rows) else np.zeros(0)
        assert np.all(d <= 3.0)
        count, total = naive_match(a, b, 3.0)
        assert len(rows) == count
        assert d.sum() == pytest.approx(total, abs=1e-9)


def test_instance_centroids_are_pixel_centres_means():
    inst = np.zeros((6, 8), np.int32)
    inst[1:3, 2:6] = 1  # rows 1-2, columns 2-5
    inst[5, 0] = 3  # id 2 has no pixel
    c = instance_centroids(inst)
    assert np.allclose(c[0], [4.0, 2.0]) and np.isnan(c[1]).all() and np.allclose(c[2], [0.5, 5.5])


def test_rescale_keeps_types_aligned_and_drops_vanished_instances():
    image = np.zeros((40, 40, 3), np.uint8)
    inst = np.zeros((40, 40), np.int32)
    inst[0:10, 0:10] = 1
    inst[20, 20] = 2  # one pixel: gone at half size (nearest neighbour picks even pixels)... or not
    inst[30:40, 30:40] = 3
    types = np.array([4, 5, 6])
    small, small_inst, small_types = rescale_tile(image, inst, types, scale=0.5)
    assert small.shape == (20, 20, 3) and small_inst.shape == (20, 20)
    ids = np.unique(small_inst[small_inst > 0])
    assert ids.tolist() == list(range(1, len(small_types) + 1))  # renumbered 1..n'
    # each surviving instance keeps its class: the big squares are classes 4 and 6
    assert small_types[small_inst[2, 2] - 1] == 4 and small_types[small_inst[17, 17] - 1] == 6
    assert rescale_tile(image, inst, types, scale=1.0)[1] is inst


def test_nuclei_settings_are_validated():
    with pytest.raises(ValueError, match="scale"):
        Nuclei(scale=0.0)
    with pytest.raises(ValueError, match="match_um"):
        Nuclei(match_um=0.0)
    assert Nuclei().settings == {"segmenter": None, "scale": 1.0, "match_um": 3.0}
    assert "hvnet" in Nuclei(segmenter=SegmentConfig(method="hvnet"), scale=0.5).title


@pytest.mark.slow
def test_segmented_split_of_real_tiles(shared_data: Path, tmp_path: Path):
    names = ["test_1_005", "test_2_010"]
    (tmp_path / "ds" / "test").mkdir(parents=True)
    for name in names:
        for suffix in (".jpg", ".npz"):
            shutil.copy(shared_data / "consep-tiles" / "test" / f"{name}{suffix}", tmp_path / "ds" / "test")
    labelled_store = build_split_store(dataset=tmp_path / "ds", split="test", out=tmp_path / "l.zarr", progress=False)
    for scale in (1.0, 0.5):
        nuclei = Nuclei(segmenter=SegmentConfig(), scale=scale)
        store = build_split_store(
            dataset=tmp_path / "ds", split="test", out=tmp_path / f"s{scale}.zarr", nuclei=nuclei, progress=False
        )
        stamp = (store / "zarr.json").stat().st_mtime_ns  # built again with the same settings: reused
        assert build_split_store(
            dataset=tmp_path / "ds", split="test", out=store, nuclei=nuclei, progress=False
        ) == store and (store / "zarr.json").stat().st_mtime_ns == stamp
        cells, every = load_split(store), load_split(labelled_store)
        assert cells.mpp == pytest.approx(CONSEP_MPP / scale)
        found = labelled_nuclei(store)
        assert len(cells) <= found <= len(every)
        assert len(cells) > 0.4 * found  # the segmenter finds most labelled nuclei
        # each matched cell is within 3 µm of the labelled nucleus whose class it carries
        from wsicell.store import CellStore

        inst_ids = CellStore.open(store).slides()[0].array("inst")[:]
        for t, name in enumerate(names):
            rows = cells.tile == t
            data = np.load(tmp_path / "ds" / "test" / f"{name}.npz")
            image, inst, types = np.zeros((256, 256, 3), np.uint8), data["inst"].astype(np.int32), data["type"]
            _, inst, types = rescale_tile(image, inst, types, scale=scale)
            ids = inst_ids[rows]
            assert len(set(ids.tolist())) == len(ids)  # one cell per labelled nucleus at most
            assert np.array_equal(cells.labels[rows], types[ids - 1].astype(np.int32))
            ref = instance_centroids(inst)[ids - 1]
            assert np.all(np.linalg.norm(cells.centroid[rows] - ref, axis=1) * cells.mpp <= 3.0 + 1e-6)
