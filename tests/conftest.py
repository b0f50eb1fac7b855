"""Shared fixtures. Real data: the bundled sample slide; ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.stores import build_crop_store

import wsicell

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_slide() -> Path:
    """The bundled CC0 sample slide (2220 x 2967, 0.499 µm/px)."""
    return Path(str(wsicell.SAMPLE_SLIDE))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def crop_store(tmp_path_factory: pytest.TempPathFactory, sample_slide: Path) -> Path:
    """Two slides (700 + 500 cells) of real 32-px crops from the sample slide."""
    path = tmp_path_factory.mktemp("crops") / "cells.zarr"
    build_crop_store(path, sample_slide)
    return path


@pytest.fixture(scope="session")
def extracted_store(tmp_path_factory: pytest.TempPathFactory, sample_slide: Path) -> Path:
    """The sample slide extracted once with default settings (wsicell.extract); the store path.

    Shared by the whole session: treat it as read-only (copy it with shutil.copytree to write)."""
    from wsicell.extract import ExtractConfig, extract_slides

    path = tmp_path_factory.mktemp("extracted") / "cells.zarr"
    report = extract_slides([sample_slide], store=path, config=ExtractConfig(), progress=False)
    assert report.ok, report
    return path


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a loaded 2-core machine: one torch thread avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
