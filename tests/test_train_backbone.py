"""The backbone's multi-stage embedding (PooledStages) against a naive reference built from
forward hooks on the network's own blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wsicell.train.backbone import PooledStages, PreActResNet18


def naive_stages(net: PreActResNet18, x: torch.Tensor, stages: tuple[int, ...]) -> torch.Tensor:
    """Each stage's output caught by a hook on its second block, rectified (the last one
    through the final BN-ReLU, as forward does), pooled, normalised, then concatenated."""
    caught: dict[int, torch.Tensor] = {}
    hooks = [net.layers[2 * s - 1].register_forward_hook(lambda _m, _i, out, s=s: caught.__setitem__(s, out)) for s in stages]
    net(x)
    for h in hooks:
        h.remove()
    parts = []
    for s in stages:
        out = torch.relu(net.bn(caught[s])) if s == 4 else torch.relu(caught[s])
        parts.append(F.normalize(out.mean(dim=(2, 3)), dim=1))
    return torch.cat(parts, 1)


@pytest.mark.parametrize("stages", [(4,), (3, 4), (1, 2, 3, 4), (2,)])
def test_pooled_stages_match_the_naive_reference(stages: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = PreActResNet18(stem="imagenet", width=8).eval()
    x = torch.rand(5, 3, 24, 24)
    model = PooledStages(net, stages).eval()
    with torch.no_grad():
        out, ref = model(x), naive_stages(net, x, stages)
    assert out.shape == (5, model.out_dim) == (5, sum(8 * 2 ** (s - 1) for s in stages))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    if stages == (4,):  # the last stage alone is the network's own output, normalised
        with torch.no_grad():
            torch.testing.assert_close(out, F.normalize(net(x), dim=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stages", [(), (4, 3), (3, 3), (5,), (0, 4)])
def test_pooled_stages_reject_bad_stages(stages: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="stages"):
        PooledStages(PreActResNet18(stem="imagenet", width=8), stages)
