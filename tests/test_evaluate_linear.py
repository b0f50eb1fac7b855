"""The linear probe (wsicell.evaluate.linear): macro F1 of logistic regression on embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.evaluate.linear import linear_probe


def blobs(n: int, *, seed: int, separation: float, classes: int = 4, dim: int = 16):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, dim)) * separation
    y = rng.integers(1, classes + 1, size=n)
    return centres[y - 1] + rng.normal(size=(n, dim)), y


def test_separable_classes_score_high_and_chance_scores_low() -> None:
    tx, ty = blobs(800, seed=0, separation=3.0)
    vx, vy = blobs(400, seed=1, separation=3.0)
    result = linear_probe(train_x=tx, train_y=ty, test_x=vx, test_y=vy)
    assert result.macro_f1 > 0.95 and result.accuracy > 0.95
    assert set(result.per_class_f1) == {1, 2, 3, 4} and (result.n_train, result.n_test) == (800, 400)
    shuffled = linear_probe(train_x=tx, train_y=np.random.default_rng(2).permutation(ty), test_x=vx, test_y=vy)
    assert shuffled.macro_f1 < 0.45  # chance is ~0.25 for four classes


def test_macro_f1_weighs_every_class_equally() -> None:
    # a rare class that overlaps a common one: accuracy stays high, macro F1 drops
    def data(n: int, seed: int):
        rng = np.random.default_rng(seed)
        y = rng.choice([1, 2, 3], size=n, p=[0.5, 0.45, 0.05])
        centres = {1: np.zeros(8), 2: np.full(8, 4.0), 3: np.full(8, 0.3)}
        return np.stack([centres[c] for c in y]) + rng.normal(size=(n, 8)), y

    (tx, ty), (vx, vy) = data(2000, 6), data(1000, 7)
    result = linear_probe(train_x=tx, train_y=ty, test_x=vx, test_y=vy)
    assert result.macro_f1 == pytest.approx(np.mean(list(result.per_class_f1.values())))
    assert result.accuracy > 0.9
    assert result.per_class_f1[3] < 0.5 and result.macro_f1 < result.accuracy - 0.1


def test_rejects_bad_input() -> None:
    x, y = blobs(50, seed=5, separation=1.0)
    with pytest.raises(ValueError, match="same D"):
        linear_probe(train_x=x, train_y=y, test_x=x[:, :3], test_y=y)
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(train_x=x, train_y=np.ones(50), test_x=x, test_y=y)
    with pytest.raises(ValueError, match="disagree"):
        linear_probe(train_x=x, train_y=y[:10], test_x=x, test_y=y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(train_x=bad, train_y=y, test_x=x, test_y=y)


@pytest.mark.slow
def test_probe_runs_on_real_consep_tiles(tmp_path, shared_data) -> None:
    import torch

    from wsicell.config import to_mapping
    from wsicell.evaluate.dataset import build_split_store
    from wsicell.evaluate.linear import linear_markdown, probe_runs
    from wsicell.train import checkpoint
    from wsicell.train.config import TrainConfig
    from wsicell.train.method import build_method

    dataset = tmp_path / "tiles"
    for split, names in (("train", ("train_1_000", "train_1_005", "train_2_010")), ("test", ("test_1_005", "test_2_006"))):
        (dataset / split).mkdir(parents=True)
        for name in names:
            for suffix in (".jpg", ".npz"):
                (dataset / split / f"{name}{suffix}").symlink_to(shared_data / "consep-tiles" / split / f"{name}{suffix}")
    stores = {s: build_split_store(dataset=dataset, split=s, out=tmp_path / f"{s}.zarr", progress=False) for s in ("train", "test")}
    torch.manual_seed(0)
    config = TrainConfig(width=4, stem="cifar_pool", batch_size=8, queue_size=8)
    run = tmp_path / "run"
    state = {"config": to_mapping(config), "epoch": 1, "step": 1, "model": build_method(config).state_dict()}
    checkpoint.save(run / "last.pt", state)
    rows = probe_runs([run], train_store=stores["train"], test_store=stores["test"])
    # the run's embedding, the embedding joined with the measurements, the measurements alone
    assert [r["run"] for r in rows] == [str(run), f"{run} + morphology", "morphology (30 measurements)"]
    assert rows[0]["n_train"] > 50 and rows[0]["n_test"] > 20
    assert len({r["macro_f1"] for r in rows}) == 3  # three different probes
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in rows)
    assert rows[0]["macro_f1"] == pytest.approx(np.mean(list(rows[0]["per_class_f1"].values())))  # its definition
    assert set(rows[0]["per_class_f1"]) <= {"other", "inflammatory", "epithelial", "spindle"}
    assert "| run |" in linear_markdown(rows)
    # the same through `wsicell evaluate --model RUN --linear`
    import json

    from click.testing import CliRunner

    from wsicell.cli import main

    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--dataset", str(dataset), "--model", str(run), "--seeds", "1",
                                       "--baselines", "none", "--no-curve", "--linear", "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Linear evaluation" in result.output
    saved = json.loads((out / "linear.json").read_text())
    assert saved[0]["n_test"] == rows[0]["n_test"]
    assert saved[0]["macro_f1"] == pytest.approx(rows[0]["macro_f1"])  # the same probe, the same cells
