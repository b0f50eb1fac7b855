"""LARS: the trust-ratio formula step by step, exclusions, and convergence on a toy problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wsicell.train.lars import LARS, lars_param_groups, simclr_lr


def test_simclr_learning_rate_rule() -> None:
    assert simclr_lr(256) == pytest.approx(0.3)
    assert simclr_lr(512) == pytest.approx(0.6)
    assert simclr_lr(64) == pytest.approx(0.075)
    with pytest.raises(ValueError):
        simclr_lr(0)


def test_param_groups_exclude_bias_and_norm() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    adapted, excluded = lars_param_groups(model, weight_decay=1e-6)
    assert {p.shape for p in adapted["params"]} == {torch.Size([3, 4]), torch.Size([2, 3])}
    assert len(excluded["params"]) == 4  # two biases, BN weight and bias
    assert adapted["lars"] and adapted["weight_decay"] == 1e-6
    assert not excluded["lars"] and excluded["weight_decay"] == 0.0


def test_two_steps_follow_the_trust_ratio_formula() -> None:
    torch.manual_seed(0)
    w0, b0 = torch.randn(5, 3), torch.randn(5)
    grads = [(torch.randn(5, 3), torch.randn(5)) for _ in range(2)]
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    lr, mom, wd, eta = 0.6, 0.9, 1e-2, 1e-3
    opt = LARS(
        [{"params": [w], "weight_decay": wd, "lars": True}, {"params": [b], "weight_decay": 0.0, "lars": False}],
        lr=lr, momentum=mom, eta=eta,
    )  # fmt: skip
    ref_w, ref_b = w0.clone().double(), b0.clone().double()
    v_w, v_b = torch.zeros_like(ref_w), torch.zeros_like(ref_b)
    for gw, gb in grads:
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
        g = gw.double() + wd * ref_w
        trust = eta * ref_w.norm() / g.norm()
        v_w = mom * v_w + lr * trust * g
        ref_w = ref_w - v_w
        v_b = mom * v_b + lr * gb.double()  # excluded: no decay, no trust ratio
        ref_b = ref_b - v_b
    assert torch.allclose(w.detach().double(), ref_w, atol=1e-6)
    assert torch.allclose(b.detach().double(), ref_b, atol=1e-6)


def test_zero_norm_uses_trust_one() -> None:
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=0.1, momentum=0.0, weight_decay=0.0)
    w.grad = torch.ones(2, 2)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((2, 2), -0.1))


def test_converges_on_toy_regression() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    true_w = torch.randn(10, 1)
    y = x @ true_w + 0.5
    model = nn.Sequential(nn.Linear(10, 1))
    opt = LARS(lars_param_groups(model, weight_decay=1e-6), lr=0.1, eta=0.02)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.01 * first


def test_rejects_bad_settings() -> None:
    p = [nn.Parameter(torch.ones(2, 2))]
    for kwargs in ({"lr": -1}, {"lr": 0.1, "momentum": 1.0}, {"lr": 0.1, "eta": 0}):
        with pytest.raises(ValueError):
            LARS(p, **kwargs)
