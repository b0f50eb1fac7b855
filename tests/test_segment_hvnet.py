"""``method: hvnet``: HV targets and post-processing against naive references; the shipped
network on real pixels; agreement of the runtimes (ONNX export, OpenVINO, torch) and the
choice of the default one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.segmentation import watershed

from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, make_segmenter
from wsicell.segment.hv_post import (
    MIN_OBJECT_UM2,
    OPEN_UM,
    SMOOTH_UM,
    SOBEL_UM,
    drop_unsure,
    hv_instances,
    hv_targets,
    odd,
)
from wsicell.segment.hvnet import WEIGHTS_PATH, HVNetModel, build_hvnet
from wsicell.segment.metrics import centroids_of, match_centroids

CONSEP_MPP = 0.25 / 1.024


def openvino_or_skip():
    """openvino imported as wsicell imports it (without its telemetry), or skip."""
    from wsicell.segment.hv_openvino import import_openvino

    try:
        return import_openvino()
    except ImportError:
        pytest.skip("openvino is not installed")


def naive_hv_targets(inst: np.ndarray) -> np.ndarray:
    """HoVer-Net's target maps, one nucleus at a time."""
    out = np.zeros((2, *inst.shape), np.float32)
    for i in np.unique(inst)[1:]:
        ys, xs = np.nonzero(inst == i)
        for k, coord in enumerate((xs, ys)):
            d = coord - coord.mean()
            if (d < 0).any():
                d[d < 0] /= -d[d < 0].min()
            if (d > 0).any():
                d[d > 0] /= d[d > 0].max()
            out[k, ys, xs] = d
    return out


def naive_hv_instances(prob, h, v, *, mpp, threshold=0.5, marker_threshold=0.5) -> np.ndarray:
    """The same post-processing written with scipy.ndimage and per-object loops."""
    eight = np.ones((3, 3), bool)
    min_px = MIN_OBJECT_UM2 / mpp**2

    def drop_small(mask):
        lab, n = ndimage.label(mask, structure=eight)
        for i in range(1, n + 1):
            if (lab == i).sum() < min_px:
                lab[lab == i] = 0
        return lab

    fg = (drop_small(prob > threshold) > 0).astype(np.float64)
    k = odd(SOBEL_UM / mpp, high=31)
    deriv, smooth = cv2.getDerivKernels(1, 0, k)
    kx = np.outer(smooth.ravel(), deriv.ravel())

    unit = kx[kx > 0].sum()  # the kernel's response to a unit step
    sh = 0.5 - ndimage.correlate(h.astype(np.float64), kx, mode="mirror") / (4 * unit)
    sv = 0.5 - ndimage.correlate(v.astype(np.float64), kx.T, mode="mirror") / (4 * unit)
    energy = np.clip(np.maximum(sh, sv) - (1 - fg), 0, None)
    g = odd(SMOOTH_UM / mpp)
    gk = cv2.getGaussianKernel(g, 0).ravel()
    landscape = -ndimage.correlate((1 - energy) * fg, np.outer(gk, gk), mode="mirror")
    marker = ndimage.binary_fill_holes((fg > 0) & (energy < marker_threshold))
    r = odd(OPEN_UM / mpp)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r)).astype(bool)
    marker = ndimage.binary_dilation(ndimage.binary_erosion(marker, disk, border_value=1), disk)
    return watershed(landscape, drop_small(marker), mask=fg > 0)


def same_partition(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose label in ``a`` maps to the label in ``b`` it overlaps most."""
    pairs = a.astype(np.int64) * (int(b.max()) + 1) + b
    counts = np.bincount(pairs.ravel())
    best = np.zeros(int(a.max()) + 1, np.int64)
    np.maximum.at(best, np.arange(len(counts)) // (int(b.max()) + 1), counts)
    return best.sum() / a.size


@pytest.fixture(scope="module")
def region(sample_slide):
    with open_slide(sample_slide) as slide:
        return slide.read((1000, 1400, 1512, 1912), slide.mpp), slide.mpp


@pytest.fixture(scope="module")
def maps(region):
    image, mpp = region
    return HVNetModel(precision="fp32", runtime="torch").maps(image, mpp=mpp)


def test_hv_targets_match_the_per_nucleus_reference(shared_data):
    inst = np.load(shared_data / "consep-tiles" / "test" / "test_1_005.npz")["inst"].astype(np.int32)
    np.testing.assert_allclose(hv_targets(inst), naive_hv_targets(inst), atol=1e-5)


def test_post_processing_matches_the_naive_reference(maps, region):
    _, mpp = region
    fast = hv_instances(*maps, mpp=mpp)
    slow = naive_hv_instances(*maps, mpp=mpp)
    assert fast.max() > 30
    assert same_partition(fast, slow) > 0.995 and same_partition(slow, fast) > 0.995
    assert abs(len(np.unique(fast)) - len(np.unique(slow))) <= 0.02 * len(np.unique(slow))


def test_post_processing_splits_touching_nuclei_from_true_maps(shared_data):
    """With perfect maps, the instances come back (a check of the whole rule)."""
    inst = np.load(shared_data / "consep-tiles" / "test" / "test_1_005.npz")["inst"].astype(np.int32)
    h, v = hv_targets(inst)
    labels = hv_instances((inst > 0).astype(np.float32), h, v, mpp=CONSEP_MPP)
    from wsicell.segment.metrics import panoptic

    assert panoptic(inst, labels).dq > 0.85


def test_weights_are_small_and_load_with_weights_only():
    assert WEIGHTS_PATH.stat().st_size < 10_000_000
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    net = build_hvnet()
    net.load_state_dict(state)
    assert set(state) == set(net.state_dict())


def test_hvnet_finds_the_labelled_nuclei_of_a_consep_test_tile(shared_data):
    data = np.load(shared_data / "consep-tiles" / "test" / "test_1_005.npz")
    image = cv2.cvtColor(cv2.imread(str(shared_data / "consep-tiles" / "test" / "test_1_005.jpg")), cv2.COLOR_BGR2RGB)
    labels = make_segmenter(SegmentConfig(method="hvnet")).segment(image, mpp=CONSEP_MPP)
    detection = match_centroids(centroids_of(labels), data["centroid"], radius=6.0)
    assert len(data["centroid"]) > 20
    assert detection.recall > 0.6 and detection.precision > 0.6


def test_hvnet_on_the_sample_slide(region):
    image, mpp = region  # 512² at 0.499 µm/px, stained darker than the training data
    config = SegmentConfig(method="hvnet")
    labels = make_segmenter(config).segment(image, mpp=mpp)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    n = int(labels.max())
    assert set(np.unique(labels)) == set(range(n + 1))
    assert 100 <= n <= 3000
    areas_um2 = np.bincount(labels.ravel())[1:] * mpp**2
    assert areas_um2.min() >= config.min_area_um2 - 1e-6
    assert 5 <= np.median(areas_um2) <= 150


def test_maps_follow_the_input_resolution(region):
    image, mpp = region
    model = HVNetModel(precision="fp32", runtime="torch")
    at_native = model.maps(image[:250, :250], mpp=mpp)  # odd side: padded inside
    assert at_native.shape == (3, 250, 250) and at_native.dtype == np.float32
    assert at_native[0].min() >= 0 and at_native[0].max() <= 1
    assert at_native[1:].min() >= -1 and at_native[1:].max() <= 1
    doubled = cv2.resize(image[:250, :250], (500, 500), interpolation=cv2.INTER_LINEAR)
    at_double = model.maps(doubled, mpp=mpp / 2)  # 40x input: the network still sees 0.5 µm/px
    back = cv2.resize(at_double[0], (250, 250), interpolation=cv2.INTER_AREA)
    assert ((back > 0.5) == (at_native[0] > 0.5)).mean() > 0.9


def test_onnx_export_agrees_with_torch(region, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    image, _ = region
    model = HVNetModel(precision="fp32", runtime="torch")
    net = model.net.to(memory_format=torch.contiguous_format)
    path = tmp_path / "hvnet.onnx"
    torch.onnx.export(
        net, (torch.rand(1, 3, 64, 64),), str(path), input_names=["image"], opset_version=17, dynamo=False,
        dynamic_axes={"image": {2: "h", 3: "w"}},
    )  # fmt: skip
    x = torch.from_numpy(np.ascontiguousarray(image[:256, :256].transpose(2, 0, 1))).float()[None] / 255
    with torch.inference_mode():
        expected = net(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_drop_unsure_matches_the_per_instance_reference(maps, region):
    """Instances whose highest P(nucleus) is below the bar go; the rest keep their labels."""
    _, mpp = region
    labels = hv_instances(*maps, mpp=mpp)
    prob = maps[0]
    for bar in (0.0, 0.85, 0.95):
        naive = labels.copy()
        for i in np.unique(labels)[1:]:
            if prob[labels == i].max() < bar:
                naive[labels == i] = 0
        np.testing.assert_array_equal(drop_unsure(labels, prob, bar), naive)
    kept = np.unique(drop_unsure(labels, prob, 0.85))[1:]
    assert 0.5 * (len(np.unique(labels)) - 1) < len(kept) < len(np.unique(labels)) - 1  # the bar bites, not everything


def test_the_object_probability_bar_keeps_a_subset_of_the_default_nuclei(region):
    image, mpp = region
    default = make_segmenter(SegmentConfig(method="hvnet", runtime="torch", precision="fp32")).segment(image, mpp=mpp)
    strict = make_segmenter(SegmentConfig(method="hvnet", runtime="torch", precision="fp32",
                                          hv_min_object_probability=0.85)).segment(image, mpp=mpp)  # fmt: skip
    assert 0 < strict.max() < default.max()
    # every nucleus kept is one of the default's, pixel for pixel
    for i in np.unique(strict)[1:]:
        j = np.bincount(default[strict == i]).argmax()
        assert j > 0 and np.array_equal(default == j, strict == i)


def test_config_validates_hv_thresholds():
    with pytest.raises(ValueError, match="hv_min_object_probability"):
        SegmentConfig(method="hvnet", hv_min_object_probability=1.0)
    with pytest.raises(ValueError, match="hv_marker_threshold"):
        SegmentConfig(method="hvnet", hv_marker_threshold=1.5)
    with pytest.raises(ValueError, match="method"):
        SegmentConfig(method="hover")


def test_openvino_runtime_agrees_with_torch(region):
    openvino_or_skip()
    image, mpp = region
    expected = HVNetModel(precision="fp32", runtime="torch").maps(image[:256, :256], mpp=mpp)
    got = HVNetModel(precision="fp32", runtime="openvino").maps(image[:256, :256], mpp=mpp)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_both_runtimes_find_the_same_nuclei_with_the_default_settings(region):
    """The default (``runtime: auto`` = OpenVINO when installed, bf16 where the CPU has it)
    and the torch fallback give the same nuclei up to a few at the threshold margin."""
    openvino_or_skip()
    image, mpp = region
    found = {rt: centroids_of(make_segmenter(SegmentConfig(runtime=rt)).segment(image, mpp=mpp))
             for rt in ("openvino", "torch")}  # fmt: skip
    a, b = found["openvino"], found["torch"]
    assert abs(len(a) - len(b)) <= 0.03 * len(b) and len(b) > 100
    assert match_centroids(a, b, radius=1.0 / mpp).f1 > 0.95  # within 1 µm


def test_openvino_models_do_not_pin_threads_and_read_the_shipped_ir_once(monkeypatch):
    """Pinning put every worker's inference on CPU 0 (two workers ran one at a time)."""
    openvino_or_skip()
    from wsicell.segment import hv_openvino

    monkeypatch.setattr(hv_openvino, "_MODELS", {})  # the process's cache, as if new (other tests fill it)
    models = [HVNetModel(runtime="openvino") for _ in range(2)]
    for model in models:
        assert model.runtime == "openvino"
        assert model.compiled.get_property("ENABLE_CPU_PINNING") is False
        assert model.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert list(hv_openvino._MODELS) == [WEIGHTS_PATH.resolve()]


def test_the_shipped_openvino_ir_was_made_from_the_shipped_weights():
    """After retraining, regenerate it: python -m wsicell.segment.export_openvino."""
    ov = openvino_or_skip()
    from wsicell.segment.hv_openvino import (
        DIGEST_KEY,
        FORMAT_KEY,
        IR_FORMAT,
        IR_PATH,
        weights_digest,
    )

    model = ov.Core().read_model(str(IR_PATH))
    assert model.get_rt_info(DIGEST_KEY).astype(str) == weights_digest(WEIGHTS_PATH)
    # its outputs are what the runtime reads: the maps, then the tile-feature levels channels last
    assert model.get_rt_info(FORMAT_KEY).astype(str) == IR_FORMAT
    assert len(model.outputs) == 4


def test_an_ir_of_an_older_format_is_converted_again(tmp_path, monkeypatch):
    """An IR written before the tile features (the maps alone, no format tag) is not used."""
    ov = openvino_or_skip()
    from wsicell.segment import hv_openvino

    old = ov.Core().read_model(str(hv_openvino.IR_PATH))
    single = ov.Model([old.get_results()[0]], old.get_parameters())
    single.set_rt_info(hv_openvino.weights_digest(WEIGHTS_PATH), hv_openvino.DIGEST_KEY)
    ov.save_model(single, str(tmp_path / "old.xml"), compress_to_fp16=False)
    monkeypatch.setattr(hv_openvino, "IR_PATH", tmp_path / "old.xml")
    monkeypatch.setattr(hv_openvino, "_MODELS", {})
    model = HVNetModel(runtime="openvino", precision="fp32")
    assert len(hv_openvino._MODELS[WEIGHTS_PATH.resolve()].outputs) == 4  # converted from the weights
    _, maps = model.maps_and_features(np.full((64, 64, 3), 180, np.uint8), mpp=0.5)
    assert maps.dim == 224


def test_other_weights_are_converted_in_memory(tmp_path, region):
    openvino_or_skip()
    weights = tmp_path / "other.pt"
    torch.manual_seed(0)
    torch.save(build_hvnet().state_dict(), weights)
    image, mpp = region
    expected = HVNetModel(weights, precision="fp32", runtime="torch").maps(image[:128, :128], mpp=mpp)
    got = HVNetModel(weights, precision="fp32", runtime="openvino").maps(image[:128, :128], mpp=mpp)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_the_openvino_runtime_sends_no_telemetry(tmp_path):
    """`import openvino` and `convert_model` send usage events from a forked process
    (opt-out telemetry); wsicell's import blocks them. A fresh interpreter, so no earlier
    import hides it; the shipped IR and a conversion of other weights."""
    openvino_or_skip()
    import subprocess
    import sys

    weights = tmp_path / "other.pt"
    torch.save(build_hvnet().state_dict(), weights)
    code = (
        "import sys\n"
        "forks = []\n"
        "sys.addaudithook(lambda event, args: forks.append(event) if event in ('os.fork', 'os.posix_spawn') else None)\n"
        "import numpy as np\n"
        "from wsicell.segment.hvnet import HVNetModel, pick_runtime\n"
        "assert pick_runtime('auto')[0] == 'openvino'\n"
        "HVNetModel(runtime='openvino').maps(np.zeros((64, 64, 3), np.uint8), mpp=0.5)\n"
        f"HVNetModel({str(weights)!r}, runtime='openvino').maps(np.zeros((64, 64, 3), np.uint8), mpp=0.5)\n"
        "print('forks', len(forks))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "forks 0" in out.stdout


def test_the_default_is_the_hvnet_on_the_auto_runtime():
    config = SegmentConfig()
    assert (config.method, config.runtime) == ("hvnet", "auto")
    assert make_segmenter(config).name == "hvnet"


def test_auto_runtime_falls_back_to_torch_without_openvino(monkeypatch, region):
    import sys

    from wsicell.segment import hvnet

    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    hvnet.pick_runtime.cache_clear()
    try:
        runtime, why = hvnet.pick_runtime("auto")
        assert runtime == "torch" and "openvino is not installed" in why
        image, mpp = region
        segmenter = make_segmenter(SegmentConfig())
        assert segmenter.segment(image[:128, :128], mpp=mpp).shape == (128, 128)
        assert segmenter.model.runtime == "torch"
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        hvnet.pick_runtime.cache_clear()
        runtime, why = hvnet.pick_runtime("auto")
        assert runtime == "torch" and why.startswith("hvnet runtime: torch on the GPU (a CUDA device is available)")
        assert f"up to {hvnet.GPU_BATCH} per network call" in why
        assert hvnet.pick_runtime("openvino")[0] == "openvino"  # as configured
    finally:
        hvnet.pick_runtime.cache_clear()


def test_openvino_asked_for_but_missing_is_a_config_error(monkeypatch):
    import sys

    from wsicell.errors import ConfigError

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ConfigError, match="pip install openvino"):
        HVNetModel(runtime="openvino")


def test_weights_of_any_width_load(tmp_path):
    """load_hvnet reads the channels from the weights' shapes (train_hvnet --channels)."""
    from wsicell.segment.hvnet import load_hvnet

    torch.manual_seed(0)
    wide = build_hvnet((12, 24, 48, 96, 192)).eval()
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    net = load_hvnet(tmp_path / "wide.pt")
    assert tuple(block[0].out_channels for block in net.enc) == (12, 24, 48, 96, 192)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), wide(x))


def test_int8_calibration_uses_only_training_images(shared_data, tmp_path):
    """hv_openvino --int8 calibrates on seeded, stain-jittered crops of the images train_hvnet
    trains on; the held-out ones are never used."""
    from wsicell.segment.train_hvnet import VAL_MONUSEG, calibration_inputs, load, split

    monuseg = shared_data / "monuseg-train"
    held = VAL_MONUSEG.split(",")[0]
    train = next(p.stem for p in sorted(monuseg.glob("*.npz")) if p.stem not in VAL_MONUSEG.split(","))
    folder = tmp_path / "monuseg"
    folder.mkdir()
    for name in (held, train):
        for ext in (".jpg", ".npz"):
            (folder / f"{name}{ext}").symlink_to(monuseg / f"{name}{ext}")
    val, training = split([], load(folder))
    assert [t[0] for t in val["monuseg"]] == [held] and len(training["monuseg"]) == 1
    first = calibration_inputs(training, n=3, size=64)
    assert [c.shape for c in first] == [(1, 3, 64, 64)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(first, calibration_inputs(training, n=3, size=64), strict=True))
    (folder / f"{train}.jpg").unlink()
    (folder / f"{train}.npz").unlink()
    with pytest.raises(SystemExit, match="no training image"):
        calibration_inputs(split([], load(folder))[1], n=3, size=64)


def test_flips_average_the_maps_of_the_flipped_tile(region):
    """hv_flips 2 / 4 against a naive reference: the one-view maps of the flipped tiles,
    flipped back, the horizontal map negated under a left-right flip, the vertical one under
    an up-down flip, averaged."""
    image, mpp = region
    tile = image[:200, :240]
    one = HVNetModel(precision="fp32", runtime="torch")

    def back(flip_y: bool, flip_x: bool) -> np.ndarray:
        axes = tuple(a for a, f in ((0, flip_y), (1, flip_x)) if f)
        maps = np.flip(one.maps(np.ascontiguousarray(np.flip(tile, axes)), mpp=mpp), tuple(a + 1 for a in axes)).copy()
        maps[1] *= -1 if flip_x else 1
        maps[2] *= -1 if flip_y else 1
        return maps

    views = [back(False, False), back(False, True), back(True, False), back(True, True)]
    for flips in (2, 4):
        got = HVNetModel(precision="fp32", runtime="torch", flips=flips).maps(tile, mpp=mpp)
        np.testing.assert_allclose(got, np.mean(views[:flips], axis=0), atol=1e-5)
    # the flipped views really differ (the network is not flip-invariant), so the test can fail
    assert np.abs(views[0] - views[3]).max() > 0.05


def test_flips_are_validated():
    with pytest.raises(ValueError, match="hv_flips"):
        SegmentConfig(hv_flips=3)
    with pytest.raises(ValueError, match="flips"):
        HVNetModel(flips=8)
