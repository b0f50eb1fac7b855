"""CCRL model: EMA update math, FIFO queue with wrap-around, forward shapes, ablations."""

from __future__ import annotations

import torch

from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.method import build_method
from wsicell.train.model import CCRL

SMALL = {"width": 4, "crop_size": 16, "batch_size": 4, "queue_size": 12, "threads": 1}


def small(**kw) -> CCRL:
    torch.manual_seed(0)
    method = build_method(TrainConfig(**{**SMALL, **kw}))
    assert isinstance(method, CCRL)
    return method


def test_architecture_follows_the_paper() -> None:
    m = build_method(TrainConfig(stem="imagenet"))  # width 64: 512-d backbone
    assert m.backbone_q(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    dims = [(layer.in_features, layer.out_features) for layer in m.projector_q if isinstance(layer, torch.nn.Linear)]
    assert dims == [(512, 128), (128, 64)]
    dims = [(layer.in_features, layer.out_features) for layer in m.predictor if isinstance(layer, torch.nn.Linear)]
    assert dims == [(64, 32), (32, 64)]
    assert m.queue.shape == (8192, 64)
    assert all(not p.requires_grad for p in m.key_parameters())
    assert not any(p is q for p in m.key_parameters() for q in m.query_parameters())


def test_momentum_update_is_exact_ema() -> None:
    m = small(momentum=0.9)
    with torch.no_grad():
        for p in m.query_parameters():
            p.add_(torch.randn_like(p))
    before_k = [p.detach().clone() for p in m.key_parameters()]
    q = [p.detach().clone() for p in m.query_parameters()]
    m.momentum_update()
    for pk, k0, q0 in zip(m.key_parameters(), before_k, q, strict=True):
        assert torch.allclose(pk, k0 * 0.9 + q0 * 0.1, rtol=0, atol=1e-6)  # key = m key + (1 - m) query
    assert not torch.equal(before_k[0], m.key_parameters()[0])


def test_queue_is_fifo_with_wrap_around() -> None:
    m = small()  # K = 12, D = 64
    d = m.queue.shape[1]
    keys = [torch.full((5, d), float(i)) for i in range(1, 5)]  # 20 rows > K
    for batch in keys:
        m.enqueue(batch)
    # 20 rows written into 12 slots: slots 0-7 hold rows 12-19, slots 8-11 rows 8-11
    rows = torch.cat(keys)[:, 0]
    expected = torch.cat([rows[12:20], rows[8:12]])
    assert torch.equal(m.queue[:, 0], expected)
    assert int(m.queue_ptr) == 20 % 12
    m.enqueue(torch.full((30, d), 9.0))  # more than K at once: only the newest K stay
    assert torch.equal(m.queue[:, 0], torch.full((12,), 9.0))
    assert int(m.queue_ptr) == (8 + 30) % 12


def test_forward_returns_logits_and_labels_and_enqueues_keys() -> None:
    m = small()
    aug = Augment(m.config)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    old_queue = m.queue.clone()
    logits, labels = m(*m.views(x, augment=aug, generator=g))
    assert logits.shape == (4, 1 + 12) and labels.shape == (4,) and labels.sum() == 0
    assert int(m.queue_ptr) == 4
    assert not torch.equal(m.queue[:4], old_queue[:4]) and torch.equal(m.queue[4:], old_queue[4:])
    assert torch.allclose(m.queue[:4].norm(dim=1), torch.ones(4), atol=1e-5)
    loss = m.loss((logits, labels))
    loss.backward()
    assert m.backbone_q.stem.weight.grad is not None and m.backbone_k.stem.weight.grad is None


def test_predictor_ablation_and_encoders() -> None:
    m = small(predictor=False)
    assert isinstance(m.predictor, torch.nn.Identity)
    assert m.encoder("momentum") is m.backbone_k and m.encoder("query") is m.backbone_q


def test_split_batchnorm_option_keys_never_share_statistics_with_their_queries() -> None:
    """bn_splits: every BN of both branches is split; the keys are the key encoder's outputs
    for regrouped sub-batches, in the batch's order; eval mode is plain BN."""
    from wsicell.train.splitbn import SplitBatchNorm, regrouped

    m = small(batch_size=16, queue_size=32, bn_splits=4)
    for branch in (m.backbone_q, m.backbone_k, m.projector_q, m.projector_k, m.predictor):
        bns = [mod for mod in branch.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
        assert bns and all(isinstance(b, SplitBatchNorm) and b.splits == 4 for b in bns)
    x = torch.rand(16, 3, 16, 16)
    view_q, view_k = m.views(x, augment=Augment(m.config), generator=torch.Generator().manual_seed(0))
    logits, _ = m(view_q, view_k)
    keys = m.queue[:16].clone()
    with torch.no_grad():
        want = torch.nn.functional.normalize(regrouped(lambda v: m.projector_k(m.backbone_k(v)), view_k, splits=4), dim=1)
        plain_order = torch.nn.functional.normalize(m.projector_k(m.backbone_k(view_k)), dim=1)
    torch.testing.assert_close(keys, want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(keys, plain_order, atol=1e-3)  # other sub-batches: other statistics
    assert torch.isfinite(m.loss((logits, torch.zeros(16, dtype=torch.long)))).all()


def test_negative_drop_leaves_out_each_querys_nearest_queue_keys() -> None:
    m = small(negative_drop=0.25)  # 25 % of a 12-key queue: the 3 nearest keys per query
    g = torch.Generator().manual_seed(0)
    logits, labels = m(*m.views(torch.rand(4, 3, 16, 16), augment=Augment(m.config), generator=g))
    negatives = logits[:, 1:]
    assert (torch.isinf(negatives).sum(dim=1) == 3).all() and torch.isfinite(logits[:, 0]).all()
    for row in negatives:  # 9 of the 12 keys stay negatives (which ones: test_train_loss.py)
        assert row[torch.isfinite(row)].numel() == 9
    assert torch.isfinite(m.loss((logits, labels)))
    plain = small()
    out, _ = plain(*plain.views(torch.rand(4, 3, 16, 16), augment=Augment(plain.config), generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(out).all()  # 0 (the default) = the paper's InfoNCE, every key a negative
