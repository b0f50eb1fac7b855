"""`wsicell evaluate` end to end on a few real CoNSeP tiles and a few training steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.cli.evaluate import parse_baselines
from wsicell.errors import ConfigError

FAST_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "ccrl-cpu-fast.yaml")
TRAIN = ["train_1_000", "train_1_005", "train_2_006", "train_3_009", "train_4_010", "train_5_006"]
TEST = ["test_1_005", "test_2_010", "test_3_006"]
TINY = ["epochs=2", "batch_size=32", "queue_size=64", "width=8", "stem=imagenet", "checkpoint_every=1",
        "warmup_epochs=0", "threads=1", "num_workers=1"]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("consep")
    for split, names in (("train", TRAIN), ("test", TEST)):
        (root / split).mkdir()
        for name in names:
            for suffix in (".jpg", ".npz"):
                shutil.copy(shared_data / "consep-tiles" / split / f"{name}{suffix}", root / split)
    return root


@pytest.mark.slow
def test_evaluate_end_to_end(dataset: Path, tmp_path: Path):
    weights = tmp_path / "resnet18.pth"  # random weights: checks the local-file plumbing only
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    out = tmp_path / "results"
    args = ["evaluate", "--dataset", str(dataset), "--config", FAST_CONFIG, "--seeds", "1",
            "--baselines", "all", "--ablations", "--imagenet-weights", str(weights), "--out", str(out), "--quiet"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in results["rows"]]
    assert names[0] == "CCRL (this config)"
    # every representation is scored four ways: k-means, + tissue context (default 20 µm), and
    # as `wsicell cluster` clusters it (joined with the morphology, spectral), with and without context
    assert results["context"] == {"radius_um": 20.0, "weight": 1.0}
    assert results["protocol"] == "inductive" and results["product"]["algorithm"] == "spectral"
    rows = results["rows"]
    assert len(rows) % 4 == 0
    for a, b, c, d in zip(rows[::4], rows[1::4], rows[2::4], rows[3::4], strict=True):
        assert b["name"] == a["name"] + " + context (20 µm)"
        assert c["name"] == a["name"] + " → wsicell cluster"
        assert d["name"] == a["name"] + " → wsicell cluster + context (20 µm)"
        for other in (b, c, d):
            assert other["kind"] == a["kind"] and other["seeds"] == a["seeds"]
            assert other["train_seconds"] == a["train_seconds"]
        assert len({json.dumps(r["scores"][0], sort_keys=True) for r in (a, b, c, d)}) >= 3  # other clusterings
        # the diagnostic: label agreement of the 10 nearest cells, on the plain row
        assert 0.0 <= a["knn_agreement"] <= 1.0 and b["knn_agreement"] is None
    assert {"w/o local-global", "w/o ensembling (query encoder)", "w/o predictor"} <= set(names)
    assert any(n.startswith("Morphological") for n in names) and any(n.startswith("Manual") for n in names)
    assert any(n.startswith("Random-init") for n in names) and any(n.startswith("ImageNet") for n in names)
    from wsicell.evaluate.dataset import load_split
    from wsicell.evaluate.kmeans import kmeans
    from wsicell.evaluate.metrics import score_clusters
    from wsicell.evaluate.protocol import KMEANS_RESTARTS

    test_cells = load_split(out / "cells" / "test.zarr")
    majority = np.bincount(test_cells.labels).max() / len(test_cells.labels)
    for row in results["rows"]:
        assert row["seeds"] == [0] and len(row["scores"]) == 1 and row["std"]["ami"] == 0.0
        assert row["mean"] == pytest.approx(row["scores"][0])  # one seed: the mean is its score
        assert row["mean"]["purity"] >= majority - 1e-9  # one cluster per class never does worse
        assert len(set(row["scores"][0].values())) > 1  # a real clustering, not a constant
    # the morphology row is exactly k-means (k = classes, seed 0) of the z-scored measurements
    # of the test cells, scored against their labels (z-scores computed here, naively)
    morph = next(r for r in results["rows"] if r["name"].startswith("Morphological"))
    f = test_cells.features.astype(np.float64)
    sd = f.std(axis=0)
    z = ((f - f.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    clusters, _ = kmeans(z, k=len(np.unique(test_cells.labels)), seed=0, restarts=KMEANS_RESTARTS, spherical=False)
    want = score_clusters(labels=test_cells.labels, clusters=clusters)
    assert morph["mean"] == pytest.approx({"ami": want.ami, "ari": want.ari, "purity": want.purity, "accuracy": want.accuracy})
    ccrl = results["rows"][0]
    assert len(ccrl["train_seconds"]) == 1 and ccrl["train_seconds"][0] > 0
    assert [p["epoch"] for p in results["curve"]] == [1, 2]
    assert results["n_test"] == sum(len(np.load(dataset / "test" / f"{n}.npz")["type"]) for n in TEST)
    md = (out / "results.md").read_text()
    assert "paper: CCRL | 24.2 | 21.7 | 51.8" in md and "CCRL (this config)" in md
    assert "paper: CCRL" in result.output
    for tag in ("ccrl", "ccrl-no-local-global", "ccrl-no-predictor"):
        assert (out / "runs" / f"{tag}-seed0" / "last.pt").exists()

    # an already trained run, evaluated as it is (k-means seeds only); no weights -> skipped
    again = CliRunner().invoke(main, [
        "evaluate", "--dataset", str(dataset), "--model", str(out / "runs" / "ccrl-seed0"), "--seeds", "2",
        "--baselines", "morphology,imagenet", "--context-radius", "0", "--out", str(out), "--quiet",
    ], catch_exceptions=False)  # fmt: skip
    assert again.exit_code == 0, again.output
    rerun = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in rerun["rows"]][0] == "CCRL (ccrl-seed0)"
    assert rerun["rows"][0]["seeds"] == [0, 1] and len(rerun["rows"][0]["scores"]) == 2
    assert rerun["context"] is None and not any("context" in r["name"] for r in rerun["rows"])
    if not (Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth").exists():
        assert any("ImageNet pre-trained: skipped" in m and "never downloads" in m for m in rerun["skipped"])


def test_transductive_protocol_trains_on_train_and_test_images(dataset: Path, tmp_path: Path):
    from wsicell.store import CellStore

    out = tmp_path / "results"
    args = ["evaluate", "--dataset", str(dataset), "--config", FAST_CONFIG, "--seeds", "1", "--baselines", "none",
            "--protocol", "transductive", "--context-radius", "0", "--no-curve", "--out", str(out), "--quiet"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "transductive"
    assert "transductive protocol" in (out / "results.md").read_text()
    run = out / "runs-transductive" / "ccrl-seed0"
    assert (run / "last.pt").exists() and not (out / "runs").exists()
    # the run trained on every train and test cell (labels are not in the training store)
    union = CellStore.open(out / "cells" / "train+test.zarr")
    assert sorted(s.id for s in union.slides()) == ["test", "train"]
    assert union.total_cells() == results["n_train"] + results["n_test"]
    assert not any(s.has("label") for s in union.slides())
    assert json.loads((run / "store.json").read_text())["n_cells"] == results["n_train"] + results["n_test"]


def test_cli_errors(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--dataset", str(tmp_path / "none"), "--model", "x", "--config", "y"])
    assert result.exit_code == 1 and "cannot be combined" in result.output
    result = runner.invoke(main, ["evaluate", "--dataset", str(tmp_path / "none"), "--config", FAST_CONFIG,
                                  "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    assert result.exit_code == 1 and "dataset folder not found" in result.output and "Traceback" not in result.output
    assert parse_baselines("all") == ["morphology", "manual", "random", "imagenet"]
    assert parse_baselines("none") == []
    with pytest.raises(ConfigError, match="unknown sift"):
        parse_baselines("morphology,sift")


def test_segmented_nuclei_at_20x(dataset: Path, tmp_path: Path):
    """--nuclei segmented --scale 0.5: the cells are the segmenter's, matched to labelled nuclei."""
    untrained = str(Path(FAST_CONFIG).with_name("cpu-untrained.yaml"))
    out = tmp_path / "results"
    args = ["evaluate", "--dataset", str(dataset), "--config", untrained, "--seeds", "1", "--baselines", "morphology",
            "--nuclei", "segmented", "--scale", "0.5", "--no-curve", "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    labelled = sum(len(np.load(dataset / "test" / f"{n}.npz")["type"]) for n in TEST)
    assert 0.4 * labelled < results["n_test"] < results["labelled_test_nuclei"] <= labelled
    assert "segmenter" in results["nuclei"] and "x0.5" in results["nuclei"]
    assert f"of {results['labelled_test_nuclei']} labelled test nuclei" in (out / "results.md").read_text()
    assert any(r["name"].startswith("Morphological") for r in results["rows"])
    bad = CliRunner().invoke(main, ["evaluate", "--dataset", str(dataset), "--config", untrained, "--segmenter", "hvnet",
                                    "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    assert bad.exit_code == 1 and "--nuclei segmented" in bad.output
    both = CliRunner().invoke(main, ["evaluate", "--dataset", str(dataset), "--config", untrained, "--nuclei", "segmented",
                                     "--segmenter", "hvnet", "--extract-config", "configs/extract-quality.yaml",
                                     "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    assert both.exit_code == 1 and "not both" in both.output


def test_segmented_nuclei_as_an_extraction_config_finds_them(dataset: Path, tmp_path: Path):
    """--extract-config: the `segment:` settings of a `wsicell extract` config (the quality
    preset: hvnet-fine with 4 test-time flips and the annotator filter) segment the tiles."""
    untrained = str(Path(FAST_CONFIG).with_name("cpu-untrained.yaml"))
    quality = str(Path(FAST_CONFIG).with_name("extract-quality.yaml"))
    out = tmp_path / "results"
    args = ["evaluate", "--dataset", str(dataset), "--config", untrained, "--seeds", "1", "--baselines", "none",
            "--nuclei", "segmented", "--extract-config", quality, "--no-curve", "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["nuclei"] == "nuclei found by the hvnet-fine segmenter (4 test-time flips, annotator filter 0.5)"
    assert results["nuclei"] in (out / "results.md").read_text()
    assert results["n_test"] > 0.4 * results["labelled_test_nuclei"]


def test_random_baseline_follows_the_nucleus_backbone(dataset: Path, tmp_path: Path):
    config = str(Path(__file__).resolve().parents[1] / "configs" / "nucleus-untrained.yaml")
    out = tmp_path / "results"
    args = ["evaluate", "--dataset", str(dataset), "--config", config, "--seeds", "1", "--baselines", "random",
            "--context-radius", "0", "--no-curve", "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    nucleus = "Random-init encoder (the nucleus encoder's architecture, levels 3, 4, 5, 32 px)"
    resnet = [name for name in rows if name.startswith("Random-init encoder (ResNet-18")]
    assert nucleus in rows and nucleus + " → wsicell cluster" in rows and len(resnet) == 2
    # the untrained nucleus encoder embeds differently from the trained one it stands beside
    assert rows[nucleus]["scores"] != rows["nucleus segmenter's encoder (this config)"]["scores"]
