"""Split BatchNorm and key regrouping (MoCo's shuffling BN on one device), against naive code."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsicell.train.splitbn import SplitBatchNorm, regrouped, split_batchnorm


def naive_split_bn(x: torch.Tensor, bn: nn.BatchNorm2d, splits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each split through its own copy of a plain BatchNorm in train mode; running stats averaged."""
    outs, means, vars_ = [], [], []
    for part in x.chunk(splits):
        copy = nn.BatchNorm2d(bn.num_features)
        copy.load_state_dict(bn.state_dict())
        copy.train()
        flat = part.dim() == 2
        y = copy(part[:, :, None, None] if flat else part)
        outs.append(y[:, :, 0, 0] if flat else y)
        means.append(copy.running_mean)
        vars_.append(copy.running_var)
    return torch.cat(outs), torch.stack(means).mean(0), torch.stack(vars_).mean(0)


def test_train_mode_normalises_each_split_like_its_own_batchnorm() -> None:
    torch.manual_seed(0)
    for shape in ((32, 6, 5, 5), (32, 6)):
        bn = SplitBatchNorm(6, splits=4)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
        x = torch.randn(*shape) * 3 + torch.arange(32).view(-1, *([1] * (len(shape) - 1))) / 8  # splits differ
        want, mean, var = naive_split_bn(x, bn, 4)
        got = bn(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-6)
        whole = F.batch_norm(x if x.dim() == 4 else x[:, :, None, None], None, None, bn.weight, bn.bias, True)
        assert not torch.allclose(got, whole.view_as(got), atol=1e-3)  # not whole-batch BN


def test_eval_mode_is_plain_batchnorm_and_checkpoints_load_both_ways() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8))
    net.train()
    net(torch.randn(16, 3, 8, 8))  # non-trivial running statistics
    plain_state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(5, 3, 8, 8)
    net.eval()
    want = net(x)
    split_batchnorm(net, splits=4)
    assert isinstance(net[1], SplitBatchNorm) and isinstance(net[4], SplitBatchNorm)
    assert set(net.state_dict()) == set(plain_state)
    torch.testing.assert_close(net(x), want)
    net.load_state_dict(plain_state)  # an old whole-batch-BN checkpoint loads unchanged


def test_channels_last_and_odd_batches() -> None:
    bn = SplitBatchNorm(3, splits=4)
    x = torch.randn(8, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    y = bn(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    odd = torch.randn(6, 3, 4, 4)  # 6 is not divisible by 4: one split (plain BN)
    torch.testing.assert_close(bn(odd), F.batch_norm(odd, None, None, bn.weight, bn.bias, True))


def test_regrouped_returns_outputs_in_order_with_mixed_sub_batches() -> None:
    x = torch.arange(32, dtype=torch.float32).view(32, 1)
    seen = []

    def fn(v: torch.Tensor) -> torch.Tensor:
        seen.append(v[:, 0].clone())
        return v * 10

    out = regrouped(fn, x, splits=4)
    torch.testing.assert_close(out, x * 10)  # back in the input's order
    groups = seen[0].view(4, 8).long()  # the sub-batches fn's SplitBatchNorm would see
    for g in groups:  # each takes two samples from each of the query's four sub-batches
        assert torch.bincount(g // 8, minlength=4).tolist() == [2, 2, 2, 2]
    torch.testing.assert_close(regrouped(fn, x[:30], splits=4), x[:30] * 10)  # indivisible: as is
