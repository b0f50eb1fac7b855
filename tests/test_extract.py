"""Extraction end to end on the real sample slide (OpenSlide, real segmenter, real Zarr)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from wsicell.config import load_config
from wsicell.errors import StoreError
from wsicell.extract import ExtractConfig, extract_slide, extract_slides, stored_config
from wsicell.io.pyramid import write_pyramidal_tiff
from wsicell.provenance import EXTRACT_SETTINGS
from wsicell.segment import CONTOUR_POINTS, FEATURE_NAMES, SegmentConfig
from wsicell.store import CellStore

REGION = (300, 900, 1500, 2100)  # level-0 box with dense tissue: ~1/5 of the sample
SMALL = (500, 1200, 1300, 1800)  # a smaller one, for tests about the machinery


def test_extracted_store_contents(extracted_store: Path, sample_slide: Path) -> None:
    store = CellStore.open(extracted_store)
    assert store.root.attrs["extract_settings"]["mpp"] == 0.5
    [s] = store.slides()
    a = s.attrs
    assert a["complete"] and a["path"] == str(sample_slide.resolve()) and a["name"] == sample_slide.name
    assert (a["width"], a["height"], a["mpp"]) == (2220, 2967, pytest.approx(0.499))
    assert a["settings"] == store.root.attrs["extract_settings"] and a["n_tiles"] > 0 and a["seconds"] > 0
    n = s.n_cells
    assert 1000 < n < 20000
    crops, centroid = s.array("crops"), s.array("centroid")[:]
    assert crops.shape == (n, 32, 32, 3) and crops.dtype == np.uint8 and crops.chunks[0] == 1024
    assert s.array("contour").shape == (n, CONTOUR_POINTS, 2)
    assert s.array("features").shape == (n, len(FEATURE_NAMES)) and s.feature_names == list(FEATURE_NAMES)
    bbox = s.array("bbox")[:]
    assert ((centroid >= bbox[:, :2]) & (centroid <= bbox[:, 2:])).all()
    assert (centroid[:, 0] < 2220).all() and (centroid[:, 1] < 2967).all()
    assert len(np.unique(centroid.round(1), axis=0)) == n  # no duplicates at seams
    area = s.array("features")[:, FEATURE_NAMES.index("area_um2")]
    assert (area >= ExtractConfig().segment.min_area_um2).all() and np.median(area) < 100  # nucleus-sized, µm²
    assert crops[:256].mean() < 200  # dark nuclei in the middle of the crops, not background


def _cells(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = CellStore.open(path).slides()[0]
    return s.array("centroid")[:], s.array("crops")[:], s.array("features")[:]


def _two_tilings(tmp_path: Path, sample: Path, segment: SegmentConfig) -> tuple[tuple, tuple]:
    runs = []
    for size in (512, 768):  # seams fall in different places
        config = ExtractConfig(tile_size=size, region=REGION, segment=segment)
        extract_slides([sample], store=tmp_path / f"{size}.zarr", config=config, progress=False)
        runs.append(_cells(tmp_path / f"{size}.zarr"))
    return runs[0], runs[1]


def test_two_tile_sizes_give_the_same_nuclei(tmp_path: Path, sample_slide: Path) -> None:
    """Tiling, overlap, core ownership, resampling and the per-slide threshold are exact:
    with a translation-invariant segmenter (haematoxylin threshold), identical results."""
    (ca, xa, fa), (cb, xb, fb) = _two_tilings(tmp_path, sample_slide, SegmentConfig(method="watershed", foreground="haematoxylin"))
    assert len(ca) == len(cb) > 500
    dist, match = cKDTree(cb).query(ca)
    assert (dist == 0).all() and len(np.unique(match)) == len(ca)  # same nuclei, one to one
    assert np.array_equal(xa, xb[match])  # same crops
    fa, fb = fa.copy(), fb[match]
    # orientation is undefined for round nuclei (float noise flips it); same axis otherwise
    angle, ecc = FEATURE_NAMES.index("orientation_deg"), FEATURE_NAMES.index("eccentricity")
    turn = np.abs(fa[:, angle] - fb[:, angle]) % 180
    assert (np.minimum(turn, 180 - turn)[fa[:, ecc] > 0.1] < 0.01).all()
    fa[:, angle] = fb[:, angle] = 0
    assert np.allclose(fa, fb, rtol=1e-4, atol=1e-4)  # float noise of moments at other offsets


def test_two_tile_sizes_with_the_unet_segmenter(tmp_path: Path, sample_slide: Path) -> None:
    """The watershed with the U-Net foreground is not exactly translation-invariant (zero
    padding at tile borders), so a few outlines move between tilings. (With the pixel
    classifier, measured on this region: 1448 vs 1448 nuclei, 7 (0.5 %) moved > 1 px.)"""
    (ca, _, _), (cb, _, _) = _two_tilings(tmp_path, sample_slide, SegmentConfig(method="watershed"))
    assert abs(len(ca) - len(cb)) <= 0.01 * len(ca) and len(ca) > 500
    dist, _ = cKDTree(cb).query(ca)
    assert (dist < 1.0).mean() > 0.98


def test_two_tile_sizes_with_the_default_hvnet_segmenter(tmp_path: Path, sample_slide: Path) -> None:
    """The HV post-processing uses fixed scales (not HoVer-Net's per-tile min-max), so other
    seams give the same nuclei. Measured on this region (torch): 1213 vs 1213, all centroids equal."""
    (ca, _, _), (cb, _, _) = _two_tilings(tmp_path, sample_slide, SegmentConfig())
    assert abs(len(ca) - len(cb)) <= 0.005 * len(ca) and len(ca) > 500
    dist, _ = cKDTree(cb).query(ca)
    assert (dist < 1.0).mean() > 0.99


def test_rerun_skips_complete_and_refuses_other_settings(tmp_path: Path, extracted_store: Path, sample_slide: Path) -> None:
    store = tmp_path / "copy.zarr"
    shutil.copytree(extracted_store, store)
    before = _cells(store)[0]
    report = extract_slides([sample_slide], store=store, config=ExtractConfig(), progress=False)
    assert [s.status for s in report.slides] == ["skipped"] and report.slides[0].n_cells == len(before)
    with pytest.raises(StoreError, match="other settings .*crop_size: 32 in the store, 48 now"):
        extract_slides([sample_slide], store=store, config=ExtractConfig(crop_size=48), progress=False)
    assert np.array_equal(_cells(store)[0], before)  # nothing lost
    # a store recorded by an earlier version, without a setting added since: still the same settings
    cs = CellStore.open(store, mode="r+")
    recorded = dict(cs.root.attrs[EXTRACT_SETTINGS])
    recorded["segment"] = {k: v for k, v in recorded["segment"].items() if k != "hv_min_object_probability"}
    cs.root.attrs[EXTRACT_SETTINGS] = recorded
    report = extract_slides([sample_slide], store=store, config=ExtractConfig(), progress=False)
    assert [s.status for s in report.slides] == ["skipped"]


def test_region_threads_and_slide_mpp(tmp_path: Path, sample_slide: Path) -> None:
    config = ExtractConfig(region=SMALL, tile_size=512)
    one = extract_slide(sample_slide, store=tmp_path / "a.zarr", config=config, workers=1, progress=False)
    two = extract_slide(sample_slide, store=tmp_path / "b.zarr", config=config, workers=2, progress=False)
    c1 = one.array("centroid")[:]
    assert len(c1) > 200 and np.array_equal(c1, two.array("centroid")[:])  # same order too
    assert np.array_equal(one.array("crops")[:], two.array("crops")[:])
    x0, y0, x1, y1 = SMALL
    assert ((c1 >= (x0, y0)) & (c1 < (x1, y1))).all()
    # another level-0 mpp for the same file: redone in place (same slide id), not skipped
    redo = extract_slide(sample_slide, store=tmp_path / "a.zarr", config=config, slide_mpp=0.25, progress=False)
    assert redo.id == one.id and redo.mpp == 0.25 and redo.complete
    assert CellStore.open(tmp_path / "a.zarr").slide_ids() == [one.id]


def test_slide_without_tissue_is_done_with_no_cells(tmp_path: Path) -> None:
    blank = write_pyramidal_tiff(tmp_path / "blank.tiff", lambda b, s: np.full((s[1], s[0], 3), 255, np.uint8),
                                 size=(3000, 2000), mpp=0.5)  # fmt: skip
    report = extract_slides([blank], store=tmp_path / "c.zarr", config=ExtractConfig(), progress=False)
    [r] = report.slides
    assert r.status == "done" and r.n_cells == 0 and r.n_tiles == 0
    [s] = CellStore.open(tmp_path / "c.zarr").slides()
    assert s.complete and s.array("crops").shape == (0, 32, 32, 3)


def test_stored_config_and_yaml_defaults(extracted_store: Path) -> None:
    assert stored_config(extracted_store) == ExtractConfig()
    root = Path(__file__).resolve().parents[1]
    assert load_config(ExtractConfig, root / "configs" / "extract.yaml") == ExtractConfig()
    region = ExtractConfig(region=(1, 2, 3, 4), overlap=10)
    from wsicell.config import from_mapping
    from wsicell.extract.pipeline import settings_mapping

    assert from_mapping(ExtractConfig, settings_mapping(region)) == region


@pytest.mark.parametrize(("preset", "method"), [("balanced", "hvnet"), ("quality", "hvnet-fine")])
def test_segmentation_presets_change_only_the_segmenter(preset: str, method: str) -> None:
    from wsicell.extract.presets import preset_path

    config = load_config(ExtractConfig, preset_path(preset))
    assert (config.segment.method, config.segment.hv_flips, config.segment.hv_annotator_threshold) == (method, 4, 0.5)
    assert replace(config, segment=ExtractConfig().segment) == ExtractConfig()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="tile_size"):
        ExtractConfig(tile_size=10)
    with pytest.raises(ValueError, match="region"):
        ExtractConfig(region=(5, 5, 1, 1))
    assert ExtractConfig().overlap_px(30.0) == 128  # (30 µm x (1 + 2/2) + 4 µm) / 0.5
    with pytest.raises(ValueError, match="too small"):
        ExtractConfig(tile_size=256).check_tile(30.0)


def test_too_small_tiles_fail_the_slide_with_a_clear_reason(tmp_path: Path, sample_slide: Path) -> None:
    report = extract_slides([sample_slide], store=tmp_path / "c.zarr", config=ExtractConfig(tile_size=256),
                            progress=False)  # fmt: skip
    assert report.slides[0].status == "failed" and "tile_size 256 is too small" in report.slides[0].error
    assert CellStore.open(tmp_path / "c.zarr").slide_ids() == []
