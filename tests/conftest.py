"""Shared fixtures. Real data: the bundled sample slide; ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

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
