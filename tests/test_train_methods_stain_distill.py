"""Stain self-distillation: its views, its loss against a naive reference, a frozen teacher,
BatchNorm that keeps the initial statistics, and a real run through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.train.augment import Augment, stain_scaled
from wsicell.train.backbone import PooledStages
from wsicell.train.config import TrainConfig, train_config
from wsicell.train.methods.stain_distill import StainDistill

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def small(**kw) -> TrainConfig:
    return train_config(method="stain-distill", crop_size=16, width=4, batch_size=8, queue_size=8, embed_stages=(3, 4), **kw)


def test_the_settings_come_from_the_method_and_need_a_stain_change() -> None:
    config = small()
    assert (config.stain_jitter, config.lr, config.weight_decay) == (0.3, 1e-4, 0.0)
    with pytest.raises(ValueError, match="stain_jitter must be > 0 for stain-distill"):
        TrainConfig(method="stain-distill", stain_jitter=0.0)


def test_views_are_one_pose_of_the_batch_and_its_stain_changed_copy() -> None:
    config = small()
    method = StainDistill(config)
    x = torch.rand(8, 3, 16, 16)
    view, stained = method.views(x, augment=Augment(config), generator=torch.Generator().manual_seed(3))
    poses = [torch.rot90(y, k, (2, 3)) for y in (x, x.flip(3)) for k in range(4)]
    poses += [torch.rot90(x, k, (2, 3)).flip(3) for k in range(4)]
    assert any(torch.equal(view, p) for p in poses)
    # the same draw of stain factors, redone by hand
    g = torch.Generator().manual_seed(3)
    torch.randint(4, (1,), generator=g), torch.randint(2, (1,), generator=g)
    lo, hi = 1 / 1.3, 1.3
    factors = torch.stack([lo + (hi - lo) * torch.rand(8, generator=g) for _ in range(4)], 1)
    torch.testing.assert_close(stained, stain_scaled(view, factors))
    assert not torch.allclose(stained, view, atol=1e-3)


def test_the_loss_is_the_mean_cosine_distance_to_the_teachers_embedding() -> None:
    torch.manual_seed(0)
    method = StainDistill(small())
    view, stained = torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)
    student, teacher = method(view, stained)
    assert not teacher.requires_grad and student.requires_grad
    with torch.no_grad():
        t = PooledStages(method.teacher, (3, 4))(view).numpy()
        s = PooledStages(method.backbone, (3, 4))(stained).numpy()
    naive = np.mean([1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(s, t, strict=True)])
    assert method.loss((student, teacher)).item() == pytest.approx(naive, abs=1e-6)
    assert method.loss(method(view, view)).item() == pytest.approx(0.0, abs=1e-6)  # student = teacher at the start


def test_a_step_moves_the_student_only_and_batchnorm_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    config = small()
    method = StainDistill(config)
    method.train()
    assert method.training and not any(m.training for m in method.modules() if isinstance(m, torch.nn.BatchNorm2d))
    teacher = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    student = {k: v.clone() for k, v in method.backbone.state_dict().items()}
    optimizer = method.make_optimizer()
    view, stained = method.views(torch.rand(8, 3, 16, 16), augment=Augment(config), generator=torch.Generator().manual_seed(0))
    loss = method.loss(method(view, stained))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after_t, after_s = method.teacher.state_dict(), method.backbone.state_dict()
    assert all(torch.equal(teacher[k], after_t[k]) for k in teacher)  # the teacher never moves
    assert any(not torch.equal(student[k], after_s[k]) for k in student if "conv" in k)  # the student does
    for k in student:  # running statistics stay the initial ones
        if "running" in k:
            assert torch.equal(student[k], after_s[k]), k
    assert method.encoder("momentum") is method.backbone is method.encoder("query")


@pytest.mark.slow
def test_train_stain_distill_from_the_cli_says_its_configuration_and_embeds(extracted_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "sd"
    result = CliRunner().invoke(main, ["train", "--store", str(extracted_store), "--out", str(run), "--method", "stain-distill",
                                       "--epochs", "1", "--set", "width=8", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Training stain-distill with its configuration stain-distill-cpu-fast.yaml" in result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["method"] == "stain-distill" and saved["embed_stages"] == [3, 4] and saved["width"] == 8
    rows = [yaml.safe_load(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0 < rows[0]["loss"] < 0.1  # a cosine distance, small: the student stays near
    from wsicell.embed import embed_crops, load_encoder
    from wsicell.store import CellStore

    model, config = load_encoder(run, device="cpu")
    crops = np.asarray(CellStore.open(extracted_store).slides()[0].array("crops")[:16])
    assert embed_crops(model, crops, views=8).shape == (16, config.embedding_dim) == (16, 32 + 64)
