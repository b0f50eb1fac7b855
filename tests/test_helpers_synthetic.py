"""The synthetic store builder of tests/helpers/synthetic.py writes what it promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers.synthetic import POINTS, build_store


def test_build_store_roundtrip(tmp_path: Path) -> None:
    store, truth = build_store(tmp_path / "s.zarr", slides=(1500,), k=3, dim=16)
    (slide,) = store.slides()
    assert slide.n_cells == 1500 and slide.array("embedding").shape == (1500, 16)
    assert slide.array("contour").shape == (1500, POINTS, 2)
    assert set(np.unique(truth[slide.id])) == {0, 1, 2}
