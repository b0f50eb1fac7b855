"""Extraction through a real dask.distributed cluster of worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsicell.extract import ExtractConfig, extract_slide, extract_slides

REGION = (500, 1200, 1300, 1800)  # a dense part of the sample (speed)


@pytest.mark.slow
def test_local_cluster_of_processes_equals_threads(tmp_path: Path, sample_slide: Path) -> None:
    from distributed import LocalCluster

    config = ExtractConfig(region=REGION, tile_size=512)
    threaded = extract_slide(sample_slide, store=tmp_path / "t.zarr", config=config, workers=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = extract_slides([sample_slide, tmp_path / "missing.svs"], store=tmp_path / "d.zarr", config=config,
                                scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
    assert [s.status for s in report.slides] == ["done", "failed"]
    assert "missing.svs: file not found" in report.slides[1].error
    from wsicell.store import CellStore

    dist = CellStore.open(tmp_path / "d.zarr").slides()[0]
    assert dist.n_cells == threaded.n_cells > 200
    for name in ("centroid", "crops", "contour", "bbox", "features", "tile_features"):
        assert np.array_equal(dist.array(name)[:], threaded.array(name)[:]), name


def test_unreachable_scheduler_is_a_user_error(tmp_path: Path, sample_slide: Path, monkeypatch) -> None:
    from wsicell.errors import WsicellError
    from wsicell.extract import runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(WsicellError, match="cannot reach the Dask scheduler"):
        extract_slides([sample_slide], store=tmp_path / "c.zarr", config=ExtractConfig(),
                       scheduler="tcp://127.0.0.1:9", progress=False)  # fmt: skip
