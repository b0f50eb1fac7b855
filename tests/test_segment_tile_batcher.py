"""Tiles from many threads joined in one network call (the GPU path, run here on the CPU with
the same code): each caller gets the result a call on its tile alone gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from wsicell.io.slide import open_slide
from wsicell.segment.hvnet import WEIGHTS_PATH, HVNetModel, load_hvnet
from wsicell.segment.tile_batcher import TileBatcher


@pytest.fixture(scope="module")
def tiles(sample_slide):
    """Four 256² tiles and one 128 x 256 tile of the sample slide (at its own 0.5 µm/px)."""
    with open_slide(sample_slide) as slide:
        big = slide.read((800, 1200, 1824, 1712), slide.mpp)  # 1024 x 512
    return [big[:256, i * 256 : (i + 1) * 256] for i in range(4)] + [big[256:384, :256]]


def alone(net, work: np.ndarray):
    """The raw maps and levels of one tile in a call of its own."""
    with torch.inference_mode():
        x = torch.from_numpy(work.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        maps, levels = net.forward_levels(x)
    return maps[0].numpy(), [m[0].permute(1, 2, 0).numpy() for m in levels]


def test_tiles_of_one_shape_share_a_call_and_get_their_own_results(tiles, torch_one_thread):
    net = load_hvnet(WEIGHTS_PATH)
    batcher = TileBatcher(net, device=torch.device("cpu"), precision="fp32", max_batch=4)
    with batcher.held():  # all five queued before the first call forms
        futures = [batcher.submit(t) for t in tiles]
    results = [f.result(timeout=120) for f in futures]
    assert batcher.largest == 4  # the four 256² tiles in one call
    assert batcher.calls == 2  # the 128 x 256 tile in a call of its own shape
    for tile, (maps, levels) in zip(tiles, results, strict=True):
        ref_maps, ref_levels = alone(net, tile)
        assert maps.shape == ref_maps.shape == (3, *tile.shape[:2])
        np.testing.assert_allclose(maps, ref_maps, atol=1e-4)
        for got, ref in zip(levels, ref_levels, strict=True):
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, atol=1e-3)
    # a distinct result per tile (not one tile's maps handed to all)
    assert not np.allclose(results[0][0], results[1][0])


def test_an_error_reaches_every_caller_and_the_batcher_serves_on(tiles, torch_one_thread):
    batcher = TileBatcher(load_hvnet(WEIGHTS_PATH), device=torch.device("cpu"), precision="fp32", max_batch=4)
    bad = np.zeros((64, 64, 4), np.uint8)  # four channels: the network's first convolution fails
    with batcher.held():
        futures = [batcher.submit(bad) for _ in range(2)]
    for future in futures:
        with pytest.raises(RuntimeError):
            future.result(timeout=60)
    maps, _ = batcher.infer(tiles[0])
    assert maps.shape == (3, 256, 256)


def test_model_threads_batched_equal_unbatched(tiles, torch_one_thread):
    """HVNetModel with ``batch`` > 1 (as on a GPU): four threads, one shared network, the same
    maps and tile features as each thread's own network."""
    ref = [HVNetModel(precision="fp32", runtime="torch", batch=1).maps_and_features(t, mpp=0.5) for t in tiles[:4]]
    models = [HVNetModel(precision="fp32", runtime="torch", batch=4) for _ in range(4)]
    assert models[0].batcher is not None and all(m.batcher is models[0].batcher for m in models)
    out: list = [None] * 4
    start = threading.Barrier(4)

    def work(i: int) -> None:
        start.wait()
        out[i] = models[i].maps_and_features(tiles[i], mpp=0.5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for (maps, features), (ref_maps, ref_features) in zip(out, ref, strict=True):
        np.testing.assert_allclose(maps, ref_maps, atol=1e-4)
        for got, want in zip(features.levels, ref_features.levels, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3)
    assert HVNetModel(precision="fp32", runtime="torch").batcher is None  # on a CPU: one tile per call


def test_flipped_copies_of_a_tile_go_in_one_call(tiles, torch_one_thread):
    """With ``flips`` 4 the tile's four flipped copies are queued before any is waited for, so
    a GPU runs them in one call; the mean maps are those of the unbatched model."""
    tile = tiles[0][:, :192]  # a non-square tile: a flip must not change the call's shape
    ref = HVNetModel(precision="fp32", runtime="torch", batch=1, flips=4).maps_and_features(tile, mpp=0.5)
    model = HVNetModel(precision="fp32", runtime="torch", batch=1, flips=4)
    # a batcher that waits up to 60 s for four tiles: the four flips, whatever the machine's load
    model.batcher = TileBatcher(model.net, device=torch.device("cpu"), precision="fp32", max_batch=4, wait_s=60)
    maps, features = model.maps_and_features(tile, mpp=0.5)
    assert model.batcher.calls == 1 and model.batcher.largest == 4
    np.testing.assert_allclose(maps, ref[0], atol=1e-4)
    for got, want in zip(features.levels, ref[1].levels, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3)
