"""Every command that writes a file or folder: an unwritable output is one clear line.

``/proc`` takes no new files, even for root, so it stands for any unwritable place. Embed and
cluster write into an existing store (its writability is the store's, see test_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wsicell.cli import main

SLIDE = "wsicell/data/CMU-1-Small-Region.svs"


def commands(store: Path, dataset: Path) -> dict[str, list[str]]:
    return {
        "extract": ["extract", SLIDE, "--out", "/proc/wsicell-test/cells.zarr"],
        "train": ["train", "--store", str(store), "--out", "/proc/wsicell-test/run", "--epochs", "1", "--device", "cpu"],
        "evaluate": ["evaluate", "--dataset", str(dataset), "--config", "configs/ccrl-cpu-fast.yaml", "--out", "/proc/wsicell-test/eval"],
        "map": ["map", SLIDE, "--store", str(store), "--out", "/proc/m.geojson"],
        "map --png": ["map", SLIDE, "--store", str(store), "--out", str(dataset / "m.geojson"), "--png", "/proc/m.png"],
        "gallery": ["gallery", "--store", str(store), "--out", "/proc/g.png"],
    }


@pytest.mark.parametrize("name", ["extract", "train", "evaluate", "map", "map --png", "gallery"])
def test_unwritable_output_is_one_clear_line(name: str, crop_store: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the repo: SLIDE and configs/ are relative
    args = commands(crop_store, tmp_path)[name]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a user error, not a crash
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: /proc/"), result.output
    assert "cannot" in lines[0] and "Traceback" not in result.output
    assert not list(tmp_path.glob(".*tmp*"))  # nothing left behind
