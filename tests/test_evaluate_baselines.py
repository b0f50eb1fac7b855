"""The network baselines of `wsicell evaluate`: random-init encoders, seeded."""

from __future__ import annotations

import torch

from wsicell.evaluate.baselines import random_encoder, random_nucleus_encoder
from wsicell.train.nucleus_backbone import NucleusEncoder


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_random_nucleus_encoder_is_the_nucleus_encoder_untrained_and_seeded():
    trained = NucleusEncoder((3, 4, 5))
    a, b = random_nucleus_encoder(stages=(3, 4, 5), seed=0), random_nucleus_encoder(stages=(3, 4, 5), seed=0)
    other = random_nucleus_encoder(stages=(3, 4, 5), seed=1)
    assert not a.training and a.out_dim == trained.out_dim == 224
    assert _weights(a).shape == _weights(trained).shape
    assert not torch.allclose(_weights(a), _weights(trained))  # not the segmenter's weights
    assert torch.equal(_weights(a), _weights(b)) and not torch.equal(_weights(a), _weights(other))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert a(x).shape == (4, 224) and not torch.allclose(a(x), trained.eval()(x), atol=1e-3)


def test_random_resnet_is_seeded():
    a, b = random_encoder(stem="imagenet", width=8, seed=3), random_encoder(stem="imagenet", width=8, seed=3)
    assert not a.training and torch.equal(_weights(a), _weights(b))
