"""SimCLR and SSLP through the real commands: `wsicell train --method ...`, resume, embed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.config import load_config
from wsicell.embed import embed_crops, load_encoder
from wsicell.store import CellBatch, CellStore
from wsicell.train import checkpoint
from wsicell.train.config import TrainConfig
from wsicell.train.methods.registry import method_defaults
from wsicell.train.presets import cpu_preset

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "width=4", "--set", "crop_size=16", "--set", "queue_size=20", "--set", "threads=1",
        "--set", "precision=fp32", "--set", "projector_dims=[32, 16]", "--set", "warmup_epochs=0",
        "--batch-size", "20", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("methods") / "cells.zarr"
    cells = CellStore.create_or_open(path)
    rng = np.random.default_rng(0)
    for s, n in enumerate((60, 40)):
        writer = cells.begin_slide(f"slide{s}", attrs={"mpp": 0.5, "path": f"slide{s}.svs", "fingerprint": f"f{s}"},
                                   crop_size=16, contour_points=4, feature_names=["area"])  # fmt: skip
        grid = np.stack(np.meshgrid(np.arange(10), np.arange(n // 10)), -1).reshape(-1, 2)[:n]
        centroid = (grid * 20.0 + 100).astype(np.float32)  # 10 µm apart
        crops = rng.integers(0, 255, size=(n, 16, 16, 3), dtype=np.uint8)
        crops[: n // 2] //= 3
        writer.append(CellBatch(crops, centroid, np.repeat(centroid[:, None], 4, 1), np.zeros((n, 4), np.int32),
                                np.ones((n, 1), np.float32)))  # fmt: skip
        writer.finish(mpp=0.5)
    return path


def test_paper_configs_load() -> None:
    simclr = load_config(TrainConfig, ROOT / "configs" / "simclr.yaml")
    assert simclr.method == "simclr" and simclr.temperature == 0.1 and simclr.batch_size == 512
    assert simclr.lr == pytest.approx(0.3 * 512 / 256) and simclr.weight_decay == 1e-6
    assert simclr.simclr.optimizer == "lars" and simclr.simclr.min_area == 0.01 and simclr.simclr.jitter == "medium"
    sslp = load_config(TrainConfig, ROOT / "configs" / "sslp.yaml")
    assert sslp.method == "sslp" and sslp.sslp.radius_um == 15.0 and sslp.sslp.intra_gate == "cluster"


def test_fast_configs_share_the_ccrl_budget() -> None:
    """The methods' CPU configs train the fast CCRL architecture for the same epochs and batch."""
    ccrl = load_config(TrainConfig, ROOT / "configs" / "ccrl-cpu-fast.yaml")
    assert ccrl.method == "ccrl" and TrainConfig() == load_config(TrainConfig, ROOT / "configs" / "ccrl.yaml")
    for name, method in (("simclr-cpu-fast.yaml", "simclr"), ("sslp-cpu-fast.yaml", "sslp")):
        config = load_config(TrainConfig, ROOT / "configs" / name)
        assert config.method == method
        same = ("epochs", "batch_size", "warmup_epochs", "crop_size", "stem", "width", "embed_views", "precision")
        assert {k: getattr(config, k) for k in same} == {k: getattr(ccrl, k) for k in same}
    assert load_config(TrainConfig, ROOT / "configs" / "simclr-cpu-fast.yaml").lr == pytest.approx(0.3)


@pytest.mark.slow
def test_sslp_trains_resumes_and_embeds(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "sslp"
    args = ["train", "--store", str(store), "--out", str(run), "--method", "sslp",
            "--set", "temperature=0.1", "--set", "sslp={radius_um: 12.0, clusters: 4}", *TINY]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--epochs", "2"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["method"] == "sslp" and saved["sslp"]["radius_um"] == 12.0 and saved["sslp"]["clusters"] == 4
    state = checkpoint.load(run / "last.pt")
    bank = state["model"]["_extra_state"]["bank"]
    assert bool(bank["filled"].all()) and set(bank["labels"].tolist()) <= set(range(4))  # clustered after epoch 1

    resumed = CliRunner().invoke(main, ["train", "--store", str(store), "--out", str(run), "--resume", "--epochs", "3", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert checkpoint.load(run / "last.pt")["epoch"] == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    encoder, config = load_encoder(run, device="cpu")
    assert config.method == "sslp"
    crops = CellStore.open(store).slides()[0].array("crops")[:10]
    x = embed_crops(encoder, crops)
    assert x.shape == (10, 32) and np.isfinite(x).all()


@pytest.mark.slow
def test_simclr_trains_with_lars_from_its_config(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "simclr"
    args = ["train", "--store", str(store), "--out", str(run), "--config", str(ROOT / "configs" / "simclr.yaml"),
            "--epochs", "1", "--lr", "0.0234", *TINY]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    state = checkpoint.load(run / "last.pt")
    groups = state["optimizer"]["param_groups"]
    assert [g["lars"] for g in groups] == [True, False] and groups[1]["weight_decay"] == 0.0
    assert groups[0]["weight_decay"] == 1e-6
    encoder, config = load_encoder(run, device="cpu")
    assert config.method == "simclr" and config.simclr.jitter == "medium"
    assert embed_crops(encoder, CellStore.open(store).slides()[1].array("crops")[:5]).shape == (5, 32)


@pytest.mark.slow
def test_method_flag_alone_starts_from_its_own_settings(store: Path, tmp_path: Path) -> None:
    """`--method simclr` without --config: SimCLR's temperature, weight decay and LARS, not
    CCRL's; flags and --set still win. On a CPU these come from SimCLR's CPU preset; on a CUDA
    GPU from its paper (method_defaults: LARS lr 0.3 x batch / 256)."""
    import torch

    run = tmp_path / "simclr-flag"
    drop = TINY.index("projector_dims=[32, 16]")
    tiny = TINY[: drop - 1] + TINY[drop + 1 :]  # keep SimCLR's own projector
    result = CliRunner().invoke(main, ["train", "--store", str(store), "--out", str(run), "--method", "simclr", "--epochs", "1", *tiny])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["method"] == "simclr" and saved["temperature"] == 0.1 and saved["weight_decay"] == 1e-6
    assert saved["simclr"]["optimizer"] == "lars" and saved["batch_size"] == 20 and saved["epochs"] == 1
    if not torch.cuda.is_available():  # the CPU preset: SimCLR at the CCRL CPU budget
        preset = yaml.safe_load(cpu_preset("simclr").read_text())
        assert saved["projector_dims"] == preset["projector_dims"] and saved["lr"] == preset["lr"]
    paper = method_defaults("simclr", batch_size=20)
    assert paper["projector_dims"] == (512, 128) and paper["lr"] == pytest.approx(0.3 * 20 / 256)
    sslp = method_defaults("sslp")
    assert sslp["temperature"] == 0.1 and sslp["batch_size"] == 512 and method_defaults("ccrl") == {}


def test_unknown_method_is_one_line_error(store: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--store", str(store), "--out", str(tmp_path / "x"), "--method", "byol"])
    assert result.exit_code != 0 and "byol" in result.output
