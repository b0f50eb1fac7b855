"""The nucleus segmenter's encoder as a cell embedder (``backbone: nucleus``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsicell.embed import embed_crops, embed_store, load_encoder
from wsicell.segment.hvnet import CHANNELS, WEIGHTS_PATH, load_hvnet
from wsicell.store import CellStore
from wsicell.train.config import NUCLEUS_CHANNELS, TrainConfig
from wsicell.train.loop import train
from wsicell.train.nucleus_backbone import NucleusEncoder


def naive_embedding(x: torch.Tensor, stages: tuple[int, ...]) -> torch.Tensor:
    """The reference: the whole shipped HV-net run on ``x`` with forward hooks on its encoder
    levels; each hooked output averaged over its pixels one crop at a time, normalised, joined."""
    net = load_hvnet(WEIGHTS_PATH)
    seen: dict[int, torch.Tensor] = {}
    for level, block in enumerate(net.enc, start=1):
        block.register_forward_hook(lambda _m, _i, out, level=level: seen.__setitem__(level, out))
    with torch.no_grad():
        net(x)
    rows = []
    for n in range(x.shape[0]):
        parts = []
        for s in stages:
            v = seen[s][n].reshape(seen[s].shape[1], -1).mean(dim=1)
            parts.append(v / v.norm())
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def test_channels_are_the_segmenters() -> None:
    assert tuple(CHANNELS) == NUCLEUS_CHANNELS


def test_embedding_is_the_segmenters_pooled_levels(crop_store: Path) -> None:
    """On real crops (32 px, the H&E sample slide), the encoder's embedding equals the pooled
    outputs of the levels inside the full HV-net, read by hooks: the shipped weights, as they are."""
    crops = np.asarray(CellStore.open(crop_store).slides()[0].array("crops")[:16])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    for stages in ((3, 4, 5), (1, 5), (2,)):
        encoder = NucleusEncoder(stages).eval()
        with torch.no_grad():
            got = encoder(x)
        assert got.shape == (16, sum(CHANNELS[s - 1] for s in stages)) == (16, encoder.out_dim)
        torch.testing.assert_close(got, naive_embedding(x, stages), atol=1e-5, rtol=1e-4)
    # every choice of stages holds the same weights (a run's embed_stages may change on --resume)
    assert NucleusEncoder((2,)).state_dict().keys() == NucleusEncoder((3, 4, 5)).state_dict().keys()
    # the trained weights matter: a freshly initialised encoder embeds the same crops otherwise
    torch.manual_seed(0)
    fresh = NucleusEncoder((3, 4, 5), pretrained=False).eval()
    with torch.no_grad():
        assert F.cosine_similarity(fresh(x), NucleusEncoder((3, 4, 5)).eval()(x), dim=1).mean() < 0.95


def test_config_checks_stages_per_backbone() -> None:
    assert TrainConfig(backbone="nucleus", embed_stages=(3, 4, 5)).embedding_dim == 32 + 64 + 128
    assert TrainConfig(backbone="nucleus", embed_stages=(3, 4, 5)).embed_dim == 224
    with pytest.raises(ValueError, match="among 1-5"):
        TrainConfig(backbone="nucleus", embed_stages=(4, 6))
    with pytest.raises(ValueError, match="among 1-4"):
        TrainConfig(embed_stages=(4, 5))
    with pytest.raises(ValueError, match="backbone must be one of"):
        TrainConfig(backbone="vit")


@pytest.mark.slow
def test_an_untrained_run_embeds_with_the_segmenters_weights(extracted_store: Path, tmp_path: Path) -> None:
    """``epochs: 0`` with the nucleus backbone: the run's checkpoint carries the shipped
    encoder, ``wsicell embed`` stores its 224-d embedding of every cell."""
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)
    config = TrainConfig(epochs=0, backbone="nucleus", embed_stages=(3, 4, 5), crop_size=32, predictor=False,
                         batch_size=256, queue_size=512, device="cpu", precision="fp32", threads=1)  # fmt: skip
    run = train(store=store, out=tmp_path / "run", config=config, progress=False)
    model, loaded = load_encoder(run, device="cpu")
    assert isinstance(model, NucleusEncoder) and loaded.backbone == "nucleus"
    embed_store(store=store, run=run, progress=False, precision="fp32")
    slide = CellStore.open(store).slides()[0]
    crops = np.asarray(slide.array("crops")[:64])
    stored = np.asarray(slide.array("embedding")[:64], np.float32)
    assert stored.shape == (64, 224)
    reference = embed_crops(NucleusEncoder((3, 4, 5)).eval(), crops, crop_size=32, views=8, precision="fp32")
    np.testing.assert_allclose(stored, reference, atol=2e-3)
