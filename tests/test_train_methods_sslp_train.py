"""SSLP end to end on a real Zarr store and the real crop loader: set-up, steps, bank, clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsicell.device import to_float_batch
from wsicell.store import CellBatch, CellStore
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.data import CropLoader
from wsicell.train.methods.config import SSLPConfig
from wsicell.train.methods.sslp import SSLP
from wsicell.train.methods.sslp_positives import sslp_targets

pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.slow]  # training end to end


def small_config(**sslp) -> TrainConfig:
    options = SSLPConfig(**{"radius_um": 12.0, "clusters": 4, **sslp})
    return TrainConfig(method="sslp", crop_size=16, width=4, batch_size=20, queue_size=20, projector_dims=(32, 16),
                   temperature=0.1, sslp=options)  # fmt: skip


def make_store(path, counts=(60, 40), mpp=0.5):
    store = CellStore.create_or_open(path)
    rng = np.random.default_rng(0)
    for s, n in enumerate(counts):
        writer = store.begin_slide(f"slide{s}", attrs={"mpp": mpp, "path": f"slide{s}.svs"}, crop_size=16,
                                   contour_points=4, feature_names=["area"])  # fmt: skip
        grid = np.stack(np.meshgrid(np.arange(10), np.arange(n // 10)), -1).reshape(-1, 2)[:n]
        centroid = (grid * 20.0 + 100).astype(np.float32)  # 20 px = 10 µm apart
        crops = rng.integers(0, 255, size=(n, 16, 16, 3), dtype=np.uint8)
        crops[: n // 2] //= 3  # two kinds of cells: dark and light
        writer.append(CellBatch(crops, centroid, np.repeat(centroid[:, None], 4, 1), np.zeros((n, 4), np.int32),
                                np.ones((n, 1), np.float32)))  # fmt: skip
        writer.finish(mpp=mpp)
    return store


def test_sslp_trains_on_a_store(tmp_path) -> None:
    torch.manual_seed(0)
    store = make_store(tmp_path / "cells.zarr")
    slides = store.slides()
    config = small_config()
    method = SSLP(config)
    method.setup(slides)
    assert len(method.bank) == 100
    assert method.global_index(np.array([[0, 5], [1, 3]])).tolist() == [5, 63]
    # 10 µm grid, radius 12 µm: 4-neighbourhood inside a slide, never across slides
    assert set(method.neighbours.of(11).tolist()) == {1, 10, 12, 21}
    assert set(method.neighbours.of(60).tolist()) == {61, 70}

    loader = CropLoader(slides, batch_size=20, seed=0, shuffle_chunks=2, num_workers=1, prefetch=2)
    optimizer = method.make_optimizer()
    augment, gen = Augment(config), torch.Generator().manual_seed(0)
    seen_weights = []
    for epoch in range(3):
        for batch in loader.epoch(epoch):
            method.before_step(batch.index)
            x = to_float_batch(batch.crops, size=16, device=torch.device("cpu"))
            loss = method.loss(method(*method.views(x, augment=augment, generator=gen)))
            assert torch.isfinite(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            method.after_step()
            t = sslp_targets(method._index, neighbours=method.neighbours, labels=method.bank.labels,
                             filled=method.bank.filled, intra_weight=0.5, inter_weight=0.5)  # fmt: skip
            seen_weights.append((epoch, float((t.weights > 1.0).sum()), float(((t.weights > 0) & (t.weights < 1)).sum())))
        method.after_epoch(epoch)
        if epoch == 0:
            assert bool(method.bank.filled.all())  # every cell was seen and written
            assert set(method.bank.labels.tolist()) <= set(range(4)) and len(set(method.bank.labels.tolist())) >= 2
    # before the first clustering only the self term; afterwards cluster mates are positives
    assert all(extra == 0 for e, _, extra in seen_weights if e == 0)
    assert any(extra > 0 for e, _, extra in seen_weights if e > 0)

    # checkpoint round trip: the bank travels in the state dict
    state = method.state_dict()
    fresh = SSLP(config)
    fresh.setup(slides)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.bank.vectors, method.bank.vectors) and torch.equal(fresh.bank.labels, method.bank.labels)
    for_embedding = SSLP(config)  # loaded without setup (embedding): the bank is rebuilt from the state
    for_embedding.load_state_dict(state)
    assert torch.equal(for_embedding.bank.filled, method.bank.filled)
    assert method.encoder() is method.backbone
