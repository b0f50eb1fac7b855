"""The labelled-tile reader: real CoNSeP tiles, synthetic alignment checks, bad layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsicell.errors import DatasetError
from wsicell.evaluate.dataset import build_split_store, list_tiles, load_split, source_of

CLASS_COLOURS = {1: (200, 30, 30), 2: (30, 200, 30), 3: (30, 30, 200)}


def copy_tiles(shared_data: Path, dest: Path, split: str, names: list[str]) -> None:
    (dest / split).mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".jpg", ".npz"):
            shutil.copy(shared_data / "consep-tiles" / split / f"{name}{suffix}", dest / split / f"{name}{suffix}")


def synthetic_dataset(root: Path) -> dict[str, np.ndarray]:
    """One 96 x 96 PNG tile: nine square nuclei, each coloured by its class."""
    image = np.full((96, 96, 3), 235, np.uint8)
    inst = np.zeros((96, 96), np.uint16)
    types = []
    rng = np.random.default_rng(1)
    i = 0
    for gy in range(3):
        for gx in range(3):
            i += 1
            cls = int(rng.integers(1, 4))
            y, x = 10 + gy * 30, 12 + gx * 30
            size = 6 + i % 3
            inst[y : y + size, x : x + size] = i
            image[y : y + size, x : x + size] = CLASS_COLOURS[cls]
            types.append(cls)
    (root / "train").mkdir(parents=True)
    cv2.imwrite(str(root / "train" / "synth_000.png"), image[:, :, ::-1])
    arrays = {"inst": inst, "type": np.array(types, np.uint8), "centroid": np.zeros((9, 2), np.float32)}
    np.savez(root / "train" / "synth_000.npz", **arrays)
    return arrays


def test_real_tiles_instance_counts_and_labels(shared_data: Path, tmp_path: Path):
    names = ["test_1_000", "test_1_005", "test_2_010"]
    copy_tiles(shared_data, tmp_path / "ds", "test", names)
    store = build_split_store(dataset=tmp_path / "ds", split="test", out=tmp_path / "test.zarr", progress=False)
    cells = load_split(store)
    assert cells.class_names == ["other", "inflammatory", "epithelial", "spindle"]
    assert cells.crops.shape[1:] == (32, 32, 3) and cells.features.shape[1] == 30
    for t, name in enumerate(names):
        data = np.load(tmp_path / "ds" / "test" / f"{name}.npz")
        rows = cells.tile == t
        assert rows.sum() == len(data["type"]) > 0  # every instance of the npz, once
        ids = load_inst(store)[rows]
        assert sorted(ids.tolist()) == list(range(1, len(data["type"]) + 1))
        assert np.array_equal(cells.labels[rows], data["type"][ids - 1].astype(np.int32))
    assert set(np.unique(cells.source).tolist()) == {0, 1}  # test_1 and test_2
    # built again with the same settings: reused, not rewritten
    stamp = (store / "zarr.json").stat().st_mtime_ns
    assert build_split_store(dataset=tmp_path / "ds", split="test", out=store, progress=False) == store
    assert (store / "zarr.json").stat().st_mtime_ns == stamp


def load_inst(store: Path) -> np.ndarray:
    from wsicell.store import CellStore

    return CellStore.open(store).slides()[0].array("inst")[:]


def test_labels_aligned_with_crops(tmp_path: Path):
    """Each cell's crop centre has the colour of the class it is labelled with."""
    arrays = synthetic_dataset(tmp_path / "ds")
    cells = load_split(build_split_store(dataset=tmp_path / "ds", split="train", out=tmp_path / "s.zarr", progress=False))
    assert len(cells) == 9
    assert sorted(cells.labels.tolist()) == sorted(arrays["type"].tolist())
    for crop, label in zip(cells.crops, cells.labels, strict=True):
        centre = crop[14:18, 14:18].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - np.array(CLASS_COLOURS[int(label)])).max() < 25


def test_source_of():
    assert source_of("train_10_003") == "train_10"
    assert source_of("slideA") == "slideA"


def test_bad_layouts(tmp_path: Path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        list_tiles(tmp_path / "nothing", "train")
    (tmp_path / "ds" / "test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no 'train' split folder.*found: test"):
        list_tiles(tmp_path / "ds", "train")
    with pytest.raises(DatasetError, match="no .npz label files"):
        list_tiles(tmp_path / "ds", "test")

    arrays = synthetic_dataset(tmp_path / "bad")
    folder = tmp_path / "bad" / "train"
    (folder / "synth_000.png").rename(folder / "elsewhere.png")
    with pytest.raises(DatasetError, match=r"synth_000\.npz: no image beside it"):
        list_tiles(tmp_path / "bad", "train")
    (folder / "elsewhere.png").rename(folder / "synth_000.png")

    def build_with(**changes):
        data = {**arrays, **changes}
        np.savez(folder / "synth_000.npz", **{k: v for k, v in data.items() if v is not None})
        return build_split_store(dataset=tmp_path / "bad", split="train", out=tmp_path / "b.zarr", progress=False)

    with pytest.raises(DatasetError, match=r"synth_000\.npz: inst holds instances 1\.\.9 but type has 8"):
        build_with(type=arrays["type"][:8])
    with pytest.raises(DatasetError, match=r"synth_000\.npz: missing array\(s\) type"):
        build_with(type=None)
    with pytest.raises(DatasetError, match=r"synth_000\.npz: inst has shape \(50, 50\)"):
        build_with(inst=arrays["inst"][:50, :50])
    (folder / "synth_000.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match=r"synth_000\.npz: not a readable \.npz"):
        build_split_store(dataset=tmp_path / "bad", split="train", out=tmp_path / "b.zarr", progress=False)
    (folder / "synth_000.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"synth_000\.png: cannot be read as an image"):
        build_split_store(dataset=tmp_path / "bad", split="train", out=tmp_path / "b.zarr", progress=False)
    assert not (tmp_path / "b.zarr").exists()  # nothing half-written left behind
