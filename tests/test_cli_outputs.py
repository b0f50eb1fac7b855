"""What every command shares: an example in its help, the same option names, and an
unwritable output reported as one clear line.

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
        "extract": ["extract", SLIDE, "--store", "/proc/wsicell-test/cells.zarr"],
        "train": ["train", "--store", str(store), "--out", "/proc/wsicell-test/run", "--epochs", "1", "--device", "cpu"],
        "evaluate": ["evaluate", "--dataset", str(dataset), "--config", "configs/ccrl-cpu-fast.yaml", "--out", "/proc/wsicell-test/eval"],
        "map": ["map", SLIDE, "--store", str(store), "--out", "/proc/m.geojson"],
        "map --png": ["map", SLIDE, "--store", str(store), "--out", str(dataset / "m.geojson"), "--png", "/proc/m.png"],
        "gallery": ["gallery", "--store", str(store), "--out", "/proc/g.png"],
        "summarize": ["summarize", "--store", str(store), "--out", "/proc/study.csv"],
        "export": ["export", "--store", str(store), "--anndata", "/proc/study.h5ad"],
        "name": ["name", "--store", str(store), "--labels", str(dataset / "labels.geojson"), "--out", "/proc/names.yaml"],
    }


@pytest.mark.parametrize("name", ["extract", "train", "evaluate", "map", "map --png", "gallery", "summarize", "export", "name"])
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


COMMANDS = ["extract", "info", "train", "embed", "cluster", "map", "gallery", "evaluate", "summarize", "export", "name"]


def test_every_command_is_listed_here() -> None:
    assert sorted(main.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_and_the_shared_names(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # click wraps lines
    assert f"Example: wsicell {command} " in text
    if command != "evaluate":  # evaluate reads labelled tiles, not a store
        assert "-s, --store" in text
    if command != "info":
        assert "-q, --quiet" in text
    if command in ("train", "map", "gallery", "evaluate", "summarize", "name"):  # commands writing outside the store
        assert "-o, --out" in text


def test_help_defaults_come_from_the_config_dataclasses() -> None:
    from wsicell.cluster.config import ClusterConfig
    from wsicell.extract.config import ExtractConfig

    for command, config, option, field in (("cluster", ClusterConfig(), "--sample-size", "sample_size"),
                                           ("extract", ExtractConfig(), "--tile-size", "tile_size"),
                                           ("extract", ExtractConfig(), "--segmenter", "segment")):  # fmt: skip
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        value = getattr(config, field)
        value = value.method if field == "segment" else value
        after = text[text.index(option) :]
        assert after[: after.index("--", len(option))].rstrip().endswith(f"[default: {value}]"), option
