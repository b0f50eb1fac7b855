"""SimCLR: augmentation presets (Ciga et al. App. C), the method's heads, loss and optimiser."""

from __future__ import annotations

import pytest
import torch

from wsicell.config import from_mapping
from wsicell.errors import ConfigError
from wsicell.train.augment import Augment, ViewParams
from wsicell.train.config import TrainConfig
from wsicell.train.lars import LARS
from wsicell.train.methods.config import JITTER_PRESETS, SimCLRConfig
from wsicell.train.methods.simclr import SimCLR
from wsicell.train.methods.simclr_augment import simclr_params, simclr_view

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def small_config(**kw) -> TrainConfig:
    base = {"method": "simclr", "crop_size": 16, "width": 4, "batch_size": 16, "queue_size": 16,
            "projector_dims": (32, 16), "temperature": 0.1, "lr": 0.3 * 16 / 256, "weight_decay": 1e-6}  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("preset", ["light", "medium", "heavy"])
def test_params_follow_the_preset(preset: str) -> None:
    options = SimCLRConfig(jitter=preset, min_area=0.01, jitter_p=1.0)
    p = simclr_params(4000, options=options, generator=torch.Generator().manual_seed(0))
    b, c, s, h = JITTER_PRESETS[preset]
    assert set(torch.unique(p.angle).tolist()) == {0.0, 90.0, 180.0, 270.0}
    counts = torch.bincount((p.angle / 90).long(), minlength=4).float() / 4000
    assert torch.all((counts - 0.25).abs() < 0.03)  # 25 % each
    assert p.crop_area.min() >= 0.01 - 1e-6 and p.crop_area.max() <= 1.0
    assert p.crop_area.min() < 0.03  # down to ~1 % of the crop (the paper's minimum)
    assert p.brightness.min() >= 1 - b - 1e-6 and p.brightness.max() <= 1 + b + 1e-6
    assert p.brightness.max() > 1 + 0.9 * b and p.contrast.min() < 1 - 0.9 * c
    assert p.saturation.max() <= 1 + s + 1e-6 and p.hue.abs().max() <= h + 1e-6 and p.hue.abs().max() > 0.9 * h
    assert not p.gray.any()
    assert 0.45 < (p.sigma > 0).float().mean() < 0.55  # blur half of the time
    assert p.sigma[p.sigma > 0].min() >= 0.1 and p.sigma.max() <= 2.0
    assert 0.45 < (p.flip[:, 0] < 0).float().mean() < 0.55 and 0.45 < (p.flip[:, 1] < 0).float().mean() < 0.55


def test_min_area_is_configurable() -> None:
    p = simclr_params(2000, options=SimCLRConfig(min_area=0.25), generator=torch.Generator().manual_seed(1))
    assert p.crop_area.min() >= 0.25 - 1e-6
    with pytest.raises(ValueError, match="min_area"):
        SimCLRConfig(min_area=0.0)
    with pytest.raises(ValueError, match="jitter"):
        SimCLRConfig(jitter="extreme")  # type: ignore[arg-type]


def plain(n: int, angle: float) -> ViewParams:
    one, zero = torch.ones(n), torch.zeros(n)
    return ViewParams(one, one, torch.zeros(n, 2), torch.ones(n, 2), torch.full((n,), angle),
                      one, one, one, zero, torch.zeros(n, dtype=torch.bool), zero)  # fmt: skip


def test_quarter_turns_are_exact_pixel_permutations() -> None:
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    augment = Augment(small_config())
    for angle, k in ((90.0, None), (180.0, 2), (270.0, None), (0.0, 0)):
        y = augment.apply(x, plain(3, angle))
        if k is not None:
            assert torch.allclose(y, torch.rot90(x, k, dims=(2, 3)), atol=1e-4)
        else:
            assert torch.allclose(y, torch.rot90(x, 1, dims=(2, 3)), atol=1e-4) or torch.allclose(
                y, torch.rot90(x, -1, dims=(2, 3)), atol=1e-4
            )


def test_views_are_valid_images_and_differ() -> None:
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    augment = Augment(small_config())
    gen = torch.Generator().manual_seed(4)
    v1 = simclr_view(x, augment=augment, options=SimCLRConfig(), generator=gen)
    v2 = simclr_view(x, augment=augment, options=SimCLRConfig(), generator=gen)
    assert v1.shape == x.shape and v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)


def test_simclr_learns_and_uses_lars() -> None:
    torch.manual_seed(0)
    config = small_config()
    method = SimCLR(config)
    optimizer = method.make_optimizer()
    assert isinstance(optimizer, LARS)
    decayed = {id(p) for g in optimizer.param_groups if g["lars"] for p in g["params"]}
    assert all((p.ndim > 1) == (id(p) in decayed) for p in method.parameters())
    assert method.encoder("momentum") is method.backbone and method.encoder("query") is method.backbone
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    augment, gen = Augment(config), torch.Generator().manual_seed(6)
    losses = []
    for _ in range(30):
        views = method.views(x, augment=augment, generator=gen)
        loss = method.loss(method(*views))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.2  # measured: ~3.3 -> ~2.4 on 16 random images


def test_simclr_settings_from_yaml_mapping() -> None:
    config = from_mapping(TrainConfig, {"method": "simclr", "simclr": {"jitter": "heavy", "min_area": 0.05}})
    assert config.simclr == SimCLRConfig(jitter="heavy", min_area=0.05)
    with pytest.raises(ConfigError, match="unknown"):
        from_mapping(TrainConfig, {"method": "simclr", "simclr": {"colour": "heavy"}})
    with pytest.raises(ConfigError, match="min_area"):
        from_mapping(TrainConfig, {"simclr": {"min_area": 2.0}})


def test_simclr_views_take_the_stain_jitter_setting() -> None:
    from wsicell.train.methods.simclr_augment import simclr_params

    options = SimCLRConfig()
    off = simclr_params(6, options=options, generator=torch.Generator().manual_seed(1))
    on = simclr_params(6, options=options, generator=torch.Generator().manual_seed(1), stain_jitter=0.5)
    assert off.stain is None and on.stain.shape == (6, 4)
    assert torch.equal(on.angle, off.angle)
