"""`wsicell train` and `wsicell embed` from the command line, including bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.store import CellStore

FAST = ["--set", "width=8", "--set", "crop_size=16", "--set", "threads=1", "--set", "queue_size=1024", "--device", "cpu"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_train_then_embed(extracted_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)
    run = tmp_path / "runs" / "ccrl"
    result = invoke("train", "--store", str(store), "--out", str(run), "--epochs", "2", "--batch-size", "512",
                    "--lr", "0.002", "--precision", "bf16", "--quiet", "--set", "stop_after=1", *FAST)  # fmt: skip
    assert result.exit_code != 0 and "stop_after" in result.output  # not a setting
    result = invoke("train", "--store", str(store), "--out", str(run), "--epochs", "1", "--batch-size", "512",
                    "--lr", "0.002", "--precision", "bf16", "--quiet", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["lr"] <= 0.002
    # resume with more epochs: settings come from the run's config.yaml
    result = invoke("train", "--store", str(store), "--out", str(run), "--epochs", "2", "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    result = invoke("embed", "--store", str(store), "--model", str(run))
    n = CellStore.open(store).total_cells()
    assert result.exit_code == 0 and f"Embedded {n} cells" in result.output
    # the CPU preset's backbone, trained one epoch more by CCRL: the nucleus encoder's levels
    # 3-5, 32 + 64 + 128 channels (width is the ResNet's setting and does not apply), joined
    # with the 224-d tile features that extraction kept
    slide = CellStore.open(store).slides()[0]
    assert slide.array("embedding").shape == (n, 224 + 224)
    assert np.array_equal(slide.array("embedding")[:, 224:], slide.array("tile_features")[:])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--set", "temperature=-1"], "temperature must be > 0"),
        (["--set", "queue_size=1000"], "multiple of batch_size"),
        (["--set", "nonsense=1"], "unknown setting(s) nonsense"),
        (["--set", "novalue"], "expected KEY=VALUE"),
        (["--set", "local_global=maybe"], "expected true/false"),
        (["--set", "embed_stages=[4, 3]"], "embed_stages must be increasing"),
        (["--batch-size", "65536", "--set", "queue_size=65536", "--epochs", "1"], "batch_size 65536 is larger than the"),
    ],
)
def test_train_bad_settings(extracted_store: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = invoke("train", "--store", str(extracted_store), "--out", str(tmp_path / "r"), "--quiet", *FAST, *extra)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_train_and_embed_bad_paths(tmp_path: Path) -> None:
    result = invoke("train", "--store", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "r"), "--quiet")
    assert result.exit_code == 1 and "nope.zarr: no cell store here" in result.output
    CellStore.create_or_open(tmp_path / "empty.zarr")
    result = invoke("train", "--store", str(tmp_path / "empty.zarr"), "--out", str(tmp_path / "r"), "--quiet")
    assert result.exit_code == 1 and "no cells to train on" in result.output
    result = invoke("train", "--store", str(tmp_path / "empty.zarr"), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "x.yaml"))
    assert result.exit_code == 1 and "x.yaml: config file not found" in result.output
    result = invoke("embed", "--store", str(tmp_path / "empty.zarr"), "--model", str(tmp_path / "no_run"))
    assert result.exit_code == 1 and "checkpoint not found" in result.output


def train_without_config(store: Path, run: Path, *extra: str):
    """`wsicell train` with no --config on this CPU (skipped on a CUDA machine, whose default is
    the paper's recipe), width 8: the result and the run's saved config."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the default is the paper's recipe")
    result = CliRunner().invoke(main, ["train", "--store", str(store), "--out", str(run), "--set", "width=8", *extra],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result, yaml.safe_load((run / "config.yaml").read_text())


@pytest.mark.slow
def test_no_config_on_a_cpu_keeps_the_nucleus_encoder_and_says_so(extracted_store: Path, tmp_path: Path) -> None:
    """On a CPU, `wsicell train` alone saves the nucleus segmenter's encoder as it is (the CPU
    default, configs/nucleus-tile.yaml: the segmenter's shipped weights, whose embeddings are
    joined with the store's tile features) and says so in one line; flags win over the preset."""
    import torch

    from wsicell.segment.hvnet import WEIGHTS_PATH
    from wsicell.train import checkpoint
    from wsicell.train.presets import CPU_DEFAULT

    run = tmp_path / "r"
    result, saved = train_without_config(extracted_store, run, "--set", "embed_views=4")
    said = [line for line in result.output.splitlines() if line.startswith("No CUDA GPU")]
    assert len(said) == 1 and "joined with its tile features kept by extract (nucleus-tile.yaml" in said[0]
    assert "Saved the run that embeds with the nucleus segmenter's encoder and tile features" in result.output
    preset = yaml.safe_load(CPU_DEFAULT.read_text())
    assert saved["embed_views"] == 4 and saved["epochs"] == 0  # the flag wins...
    for key in ("backbone", "embed_from", "crop_size", "embed_stages", "predictor"):  # ...then the preset
        assert saved[key] == preset[key], key
    # the model is the segmenter's encoder, its shipped weights exactly
    state = checkpoint.load(run / "last.pt")["model"]
    shipped = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    for level in range(5):
        key = f"enc.{level}.0.weight"
        assert torch.equal(state[f"backbone_k.levels.{level}.0.weight"], shipped[key]), key


def test_method_ccrl_on_a_cpu_keeps_the_untrained_encoder(extracted_store: Path, tmp_path: Path) -> None:
    """On a CPU, `wsicell train --method ccrl` saves the untrained, seeded encoder of the CPU
    preset (configs/cpu-untrained.yaml) and says so; flags still win over the preset."""
    import torch

    from wsicell.train import checkpoint
    from wsicell.train.config import TrainConfig
    from wsicell.train.method import build_method
    from wsicell.train.presets import cpu_preset

    run = tmp_path / "r"
    result, saved = train_without_config(extracted_store, run, "--method", "ccrl")
    assert "No CUDA GPU: an untrained, seeded encoder (configs/cpu-untrained.yaml" in result.output
    assert "Saved the untrained encoder" in result.output
    preset = yaml.safe_load(cpu_preset("ccrl").read_text())
    assert saved["epochs"] == 0 and saved["width"] == 8  # the flag wins over the preset...
    for key in ("crop_size", "stem", "embed_views", "embed_stages", "predictor"):  # ...which beats the paper's defaults
        assert saved[key] == preset[key], key
    # the model is the seeded initial weights, exactly
    state = checkpoint.load(run / "last.pt")
    assert state["epoch"] == 0 and (run / "metrics.jsonl").read_text() == ""
    torch.manual_seed(0)
    fresh = build_method(TrainConfig(**{**{k: v for k, v in saved.items() if k in ("width", "stem", "crop_size", "predictor",
                                                                               "projector_dims", "queue_size")},
                                       "projector_dims": tuple(saved["projector_dims"])}))  # fmt: skip
    for name, value in fresh.backbone_k.state_dict().items():
        assert torch.equal(state["model"][f"backbone_k.{name}"], value), name
    # and a CPU preset for the other methods, which do train
    assert yaml.safe_load(cpu_preset("simclr").read_text())["epochs"] >= 1 and cpu_preset("sslp").is_file()
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)  # the fixture is shared: embed into a copy
    embedded = CliRunner().invoke(main, ["embed", "--store", str(store), "--model", str(run)], catch_exceptions=False)
    assert embedded.exit_code == 0 and CellStore.open(store).slides()[0].has("embedding"), embedded.output
