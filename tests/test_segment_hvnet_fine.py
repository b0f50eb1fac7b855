"""``method: hvnet-fine``: the HV-net + its full-resolution branch. The untrained branch
against a naive reference (the network's own maps, enlarged), the shipped weights on real
CoNSeP pixels, OpenVINO against torch, and the training command's ``--fine`` path."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsicell.segment import SegmentConfig, make_segmenter
from wsicell.segment.hvnet import (
    FINE_MPP,
    FINE_WEIGHTS_PATH,
    WEIGHTS_PATH,
    HVNetModel,
    build_fine_hvnet,
    load_hvnet,
)
from wsicell.segment.metrics import centroids_of, match_centroids, panoptic

CONSEP_MPP = 0.25 / 1.024


@pytest.fixture(scope="module")
def consep_tile(shared_data):
    name = shared_data / "consep-tiles" / "test" / "test_1_005"
    image = cv2.cvtColor(cv2.imread(f"{name}.jpg"), cv2.COLOR_BGR2RGB)
    data = np.load(f"{name}.npz")
    return image, data["inst"].astype(np.int32), data["centroid"]


def test_an_untrained_branch_gives_the_networks_maps_enlarged():
    """The correction starts at zero: the output is the HV-net's output on the input
    shrunk 2x (area average), enlarged 2x (bilinear), whatever the branch's other weights."""
    base = load_hvnet(WEIGHTS_PATH)
    torch.manual_seed(0)
    fine = build_fine_hvnet(base).eval()
    x = torch.rand(2, 3, 96, 64)
    with torch.no_grad():
        naive = F.interpolate(base(F.avg_pool2d(x, 2)), size=(96, 64), mode="bilinear", align_corners=False)
        torch.testing.assert_close(fine(x), naive)
        fine.correct.weight.add_(0.1)  # a trained correction moves it
        assert (fine(x) - naive).abs().max() > 0.01


def test_the_shipped_weights_are_small_and_load_with_weights_only():
    assert FINE_WEIGHTS_PATH.stat().st_size < 10_000_000
    state = torch.load(FINE_WEIGHTS_PATH, map_location="cpu", weights_only=True)
    net = load_hvnet(FINE_WEIGHTS_PATH)
    assert set(state) == set(net.state_dict())
    assert (net.mpp, net.multiple, net.base.mpp) == (FINE_MPP, 32, 0.5)
    assert float(net.correct.weight.detach().abs().max()) > 0  # trained: not the untrained zero correction


def test_hvnet_fine_finds_and_outlines_the_labelled_nuclei_of_a_consep_test_tile(consep_tile):
    image, inst, centroids = consep_tile
    found = {}
    for method in ("hvnet", "hvnet-fine"):
        segmenter = make_segmenter(SegmentConfig(method=method, runtime="torch", precision="fp32"))
        assert segmenter.name == method
        labels = segmenter.segment(image, mpp=CONSEP_MPP)
        assert labels.shape == image.shape[:2] and labels.dtype == np.int32
        found[method] = (match_centroids(centroids_of(labels), centroids, radius=6.0), panoptic(inst, labels))
    detection, quality = found["hvnet-fine"]
    assert detection.recall > 0.6 and detection.precision > 0.6
    assert quality.sq > 0.7  # matched nuclei overlap their true outline by IoU > 0.7 on average
    assert quality.pq >= found["hvnet"][1].pq - 0.05  # not worse than the network alone here


def test_openvino_agrees_with_torch_for_the_branch(consep_tile):
    """Weights other than the shipped IR's are converted in memory (hv_openvino.load_model)."""
    from wsicell.segment.hv_openvino import import_openvino

    try:
        import_openvino()
    except ImportError:
        pytest.skip("openvino is not installed")
    image = consep_tile[0][:160, :200]  # sides not a multiple of 32: padded inside
    expected = HVNetModel(FINE_WEIGHTS_PATH, precision="fp32", runtime="torch").maps(image, mpp=FINE_MPP)
    got = HVNetModel(FINE_WEIGHTS_PATH, precision="fp32", runtime="openvino").maps(image, mpp=FINE_MPP)
    assert got.shape == expected.shape == (3, 160, 200)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_train_hvnet_fine_adds_a_branch_to_the_shipped_network_and_writes_it(shared_data, tmp_path, monkeypatch, capsys):
    """One tiny run of the training command with --fine: the weights it writes load as the
    network with its branch, at 0.25 µm/px on 224² crops, and the branch has learned."""
    from wsicell.segment import train_hvnet

    out = tmp_path / "fine.pt"
    args = ["train_hvnet", "--consep", str(shared_data / "consep-tiles" / "train"),
            "--monuseg", str(shared_data / "monuseg-train"), "--fine", "--epochs", "1", "--steps", "2",
            "--batch", "2", "--lr", "1e-4", "--val-consep", "3", "--val-monuseg", "TCGA-21-5786-01Z-00-DX1",
            "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.setattr(train_hvnet, "sweep", lambda *a, **k: [])  # the threshold sweep is not under test
    train_hvnet.main()
    printed = capsys.readouterr().out
    assert "full-resolution branch, 0.25 µm/px, 224² crops" in printed
    net = load_hvnet(out)
    assert net.mpp == FINE_MPP and hasattr(net, "base")
    assert float(net.correct.weight.detach().abs().max()) > 0  # started at zero, moved by training


def test_chunks_split_a_side_into_the_fewest_pieces_on_the_pooling_grid():
    from wsicell.segment.hvnet import chunks

    for n in (1, 31, 1024, 1025, 2048, 2100, 5000):
        pieces = chunks(n, 1024, 32)
        assert len(pieces) == -(-n // 1024)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))  # no gap, no overlap
        assert all(start % 32 == 0 and 0 < end - start <= 1024 + 32 for start, end in pieces)


def test_a_large_tile_goes_in_pieces_that_find_the_nuclei_one_call_finds(sample_slide):
    """A 1024² tile at 0.5 µm/px is 2048² for the branch: run in 2 x 2 pieces (bounded
    memory), against the naive reference, the whole tile in one call."""
    from wsicell.io.slide import open_slide
    from wsicell.segment.hv_post import hv_instances

    with open_slide(sample_slide) as slide:
        image, mpp = slide.read((1000, 1000, 2024, 2024), slide.mpp), slide.mpp
    model = HVNetModel(FINE_WEIGHTS_PATH, precision="fp32", runtime="torch")
    calls = []
    infer = model._infer
    model._infer = lambda work: calls.append(work.shape[:2]) or infer(work)
    pieces, piece_levels = model.maps_and_features(image, mpp=mpp)
    assert len(calls) == 4 and max(max(c) for c in calls) <= 1024 + 128  # core + 32 µm of context
    model.net.chunk = None  # this instance only: one call
    whole, whole_levels = model.maps_and_features(image, mpp=mpp)
    assert len(calls) == 5
    assert ((pieces[0] > 0.5) == (whole[0] > 0.5)).mean() > 0.999
    a, b = hv_instances(*pieces, mpp=mpp), hv_instances(*whole, mpp=mpp)
    assert b.max() > 300
    assert match_centroids(centroids_of(a), centroids_of(b), radius=1.0 / mpp).f1 > 0.98  # within 1 µm
    # the encoder levels are joined on the pooling grid: the tile features of the nuclei agree
    for x, y in zip(piece_levels.levels, whole_levels.levels, strict=True):
        assert x.shape == y.shape
    xy = centroids_of(b)
    cosine = (piece_levels.at(xy) * whole_levels.at(xy)).sum(1) / 3  # 3 levels, each unit length
    assert np.median(cosine) > 0.999 and cosine.min() > 0.95
