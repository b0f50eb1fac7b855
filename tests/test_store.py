"""The Zarr cell store: writing in whole chunks, completion, resume, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from wsicell.errors import StoreError
from wsicell.store import CELL_CHUNK, CellBatch, CellStore, slide_id_for


def batch(n: int, start: int = 0, crop: int = 8) -> CellBatch:
    i = np.arange(start, start + n)
    return CellBatch(
        crops=(i[:, None, None, None] % 251 * np.ones((1, crop, crop, 3))).astype(np.uint8),
        centroid=np.stack([i, i * 2], 1).astype(np.float32),
        contour=np.repeat(np.stack([i, i], 1)[:, None, :], 5, 1).astype(np.float32),
        bbox=np.stack([i, i, i + 1, i + 1], 1).astype(np.int32),
        features=np.stack([i, -i, i * 0.5], 1).astype(np.float32),
    )


def test_writer_appends_in_order_and_completes_last(tmp_path: Path) -> None:
    store = CellStore.create_or_open(tmp_path / "c.zarr")
    writer = store.begin_slide("s-1", attrs={"path": "/x.svs", "mpp": 0.5}, crop_size=8, contour_points=5,
                               feature_names=["a", "b", "c"])  # fmt: skip
    sizes = [300, 0, 900, 1500, 7]
    start = 0
    for n in sizes:
        writer.append(batch(n, start))
        start += n
        arr = zarr.open_array(str(tmp_path / "c.zarr" / "slides" / "s-1" / "crops"), mode="r")
        assert arr.shape[0] % CELL_CHUNK == 0  # only whole chunks until finish
        assert not store.slide("s-1").complete
    assert store.slides() == []  # incomplete slides are not listed
    assert writer.finish(n_tiles=3) == sum(sizes)
    s = CellStore.open(tmp_path / "c.zarr").slides()[0]
    assert s.complete and s.n_cells == 2707 and s.attrs["n_tiles"] == 3 and s.feature_names == ["a", "b", "c"]
    assert np.array_equal(s.array("centroid")[:, 0], np.arange(2707))
    assert np.array_equal(s.array("crops")[:, 0, 0, 0], np.arange(2707) % 251)
    chunks = list(s.iter_chunks("crops"))
    assert [c[0] for c in chunks] == [0, 1024, 2048] and sum(len(c[1]) for c in chunks) == 2707


def test_begin_slide_replaces_an_incomplete_group(tmp_path: Path) -> None:
    store = CellStore.create_or_open(tmp_path / "c.zarr")
    w = store.begin_slide("s", attrs={}, crop_size=8, contour_points=5, feature_names=["a", "b", "c"])
    w.append(batch(2000))  # 1024 written, then "killed"
    store = CellStore.open(tmp_path / "c.zarr", mode="r+")
    assert store.slide("s").array("crops").shape[0] == 1024
    w = store.begin_slide("s", attrs={}, crop_size=8, contour_points=5, feature_names=["a", "b", "c"])
    w.append(batch(10))
    w.finish()
    assert store.slide("s").array("crops").shape[0] == 10
    store.discard_slide("s")
    assert store.slide_ids() == []


def test_per_slide_arrays_and_attrs(tmp_path: Path) -> None:
    store = CellStore.create_or_open(tmp_path / "c.zarr")
    w = store.begin_slide("s", attrs={}, crop_size=8, contour_points=5, feature_names=["a", "b", "c"])
    w.append(batch(5))
    w.finish()
    s = store.slide("s")
    emb = s.create_array("embedding", shape=(5, 4), dtype="float16", chunks=(1024, 4), attrs={"model": "m"})
    emb[:] = 1
    s.set_attrs(embedded=True)
    again = CellStore.open(tmp_path / "c.zarr").slide("s")
    assert again.has("embedding") and again.array("embedding").attrs["model"] == "m" and again.attrs["embedded"]
    with pytest.raises(StoreError, match="no 'cluster' array"):
        again.array("cluster")


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no cell store here"):
        CellStore.open(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(StoreError, match="not a wsicell store"):
        CellStore.open(tmp_path / "other.zarr")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the store: .*file is a file, not a folder"):
        CellStore.create_or_open(tmp_path / "file" / "c.zarr")
    with pytest.raises(StoreError, match="is a file, not a cell store folder"):
        CellStore.create_or_open(tmp_path / "file")


def test_slide_id_is_stable_and_key_safe() -> None:
    assert slide_id_for("/a/b/My slide #1.svs", "abcdef0123") == "My_slide_1-abcdef01"
