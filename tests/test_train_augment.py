"""Augmentations: parameter ranges, local-global cropping, shapes and value ranges."""

from __future__ import annotations

import pytest
import torch

from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.method import build_method

N = 2000


def params(config: TrainConfig, *, local: bool):
    return Augment(config).sample(N, local=local, generator=torch.Generator().manual_seed(1))


def test_parameter_ranges_follow_the_paper() -> None:
    p = params(TrainConfig(), local=False)
    for name in ("brightness", "contrast", "saturation"):
        v = getattr(p, name)
        assert v.min() >= 0.6 and v.max() <= 1.4 and v.max() > 1.3 and v.min() < 0.7
    assert -0.1 <= p.hue.min() < -0.09 and 0.09 < p.hue.max() <= 0.1
    assert 0 <= p.angle.min() < 5 and 175 < p.angle.max() <= 180
    blurred = p.sigma[p.sigma > 0]
    assert blurred.min() >= 0.1 and blurred.max() <= 2.0
    assert 0.4 < len(blurred) / N < 0.6  # blur_p 0.5
    assert 0.15 < p.gray.float().mean() < 0.25  # grayscale_p 0.2
    assert set(p.flip.unique().tolist()) == {-1.0, 1.0}
    assert 0.7 < (p.brightness != 1).float().mean() < 0.9  # jitter_p 0.8


def test_only_the_local_view_crops() -> None:
    config = TrainConfig()
    glob = params(config, local=False)
    loc = params(config, local=True)
    assert torch.all(glob.crop_area == 1) and torch.all(glob.center == 0)
    assert torch.all(loc.crop_area <= 1) and loc.crop_area.min() < 0.3 and loc.crop_area.min() >= 0.2 - 1e-6
    assert torch.all(loc.center.abs() <= (1 - torch.stack([loc.crop_w, loc.crop_h], 1)) + 1e-6)


@pytest.mark.parametrize("local_global,branch", [(True, "query"), (True, "key"), (False, "query")])
def test_exactly_one_branch_crops(local_global: bool, branch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(width=4, crop_size=16, batch_size=4, queue_size=4, local_global=local_global, local_branch=branch)
    method = build_method(config)
    aug = Augment(config)
    calls: list[bool] = []
    real = aug.sample

    def spy(n, *, local, generator):
        calls.append(local)
        return real(n, local=local, generator=generator)

    monkeypatch.setattr(aug, "sample", spy)
    method.views(torch.rand(4, 3, 16, 16), augment=aug, generator=torch.Generator().manual_seed(0))
    if local_global:
        assert calls == ([True, False] if branch == "query" else [False, True])
    else:
        assert calls == [False, False]


def test_views_keep_shape_and_range_and_identity_is_identity() -> None:
    config = TrainConfig(crop_size=16)
    aug = Augment(config)
    x = torch.rand(8, 3, 16, 16)
    y = aug(x, local=True, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)
    p = aug.sample(8, local=False, generator=torch.Generator().manual_seed(0))
    ident = type(p)(
        p.crop_w, p.crop_h, p.center, torch.ones(8, 2), torch.zeros(8), torch.ones(8), torch.ones(8), torch.ones(8),
        torch.zeros(8), torch.zeros(8, dtype=torch.bool), torch.zeros(8),
    )  # fmt: skip
    assert torch.allclose(aug.apply(x, ident), x, atol=1e-4)


def test_hflip_and_gray_and_rotation_180() -> None:
    aug = Augment(TrainConfig(crop_size=16))
    x = torch.rand(2, 3, 16, 16)
    p = aug.sample(2, local=False, generator=torch.Generator().manual_seed(0))
    base = dict(crop_w=p.crop_w, crop_h=p.crop_h, center=p.center, brightness=torch.ones(2), contrast=torch.ones(2),
                saturation=torch.ones(2), hue=torch.zeros(2), sigma=torch.zeros(2))  # fmt: skip
    flipped = aug.apply(x, type(p)(**base, flip=torch.tensor([[-1.0, 1.0]] * 2), angle=torch.zeros(2), gray=torch.zeros(2, dtype=torch.bool)))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-4)
    rotated = aug.apply(x, type(p)(**base, flip=torch.ones(2, 2), angle=torch.full((2,), 180.0), gray=torch.zeros(2, dtype=torch.bool)))
    assert torch.allclose(rotated, x.flip(-1).flip(-2), atol=1e-4)
    gray = aug.apply(x, type(p)(**base, flip=torch.ones(2, 2), angle=torch.zeros(2), gray=torch.ones(2, dtype=torch.bool)))
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])


def test_stain_scaling_matches_the_numpy_colour_deconvolution() -> None:
    """stain_scaled against the per-pixel NumPy reference the segmenter's training uses."""
    import numpy as np

    from wsicell.segment.stain import HED_FROM_RGB, OD_LUT, RGB_FROM_HED
    from wsicell.train.augment import stain_scaled

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 6, 6, 3), dtype=np.uint8)
    factors = rng.uniform(0.7, 1.4, size=(3, 4)).astype(np.float32)
    expected = np.empty(rgb.shape, np.float64)
    for i in range(3):
        od = (OD_LUT[rgb[i]] @ HED_FROM_RGB * factors[i, :3]) @ RGB_FROM_HED * factors[i, 3]
        expected[i] = np.clip((256 * np.power(10.0, -np.maximum(od, 0)) - 1) / 255, 0, 1)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    got = stain_scaled(x, torch.from_numpy(factors)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    torch.testing.assert_close(stain_scaled(x, torch.ones(3, 4)), x, atol=1e-5, rtol=0)


def test_stain_jitter_is_drawn_only_when_on_and_leaves_the_other_draws_alone() -> None:
    off = Augment(TrainConfig(crop_size=16)).sample(8, local=False, generator=torch.Generator().manual_seed(3))
    on = Augment(TrainConfig(crop_size=16, stain_jitter=0.3)).sample(8, local=False, generator=torch.Generator().manual_seed(3))
    assert off.stain is None
    assert on.stain.shape == (8, 4) and bool(((on.stain >= 1 / 1.3) & (on.stain <= 1.3)).all())
    assert torch.equal(on.angle, off.angle) and torch.equal(on.brightness, off.brightness)
    with pytest.raises(ValueError, match="stain_jitter"):
        TrainConfig(stain_jitter=-0.1)
