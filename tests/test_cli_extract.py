"""`wsicell extract` and `wsicell info` through the command line: bad input, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.io.pyramid import write_pyramidal_tiff
from wsicell.store import CellStore

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_old_spellings_of_the_store_still_work(tmp_path: Path, extracted_store: Path) -> None:
    code, out = run("info", extracted_store, "--json")  # positional STORE (deprecated)
    assert code == 0 and json.loads(out)["complete_slides"] == 1
    code, out = run("info", extracted_store)
    assert code == 0 and "deprecated; use -s/--store" in out
    code, out = run("info")
    assert code == 2 and "Missing option '-s' / '--store'" in out


def corrupt_tiff(path: Path, sample: Path) -> Path:
    """A 2048 x 2048 pyramidal TIFF of the sample's pixels whose middle tiles are garbage."""
    from wsicell.io.slide import open_slide

    with open_slide(sample) as s:
        image = s.read_region((0, 0), 0, (2048, 2048))
    def render(b: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
        return cv2.resize(image[b[1] : b[3], b[0] : b[2]], size, interpolation=cv2.INTER_AREA)

    write_pyramidal_tiff(path, render, size=(2048, 2048), mpp=0.5, tile=256)
    size = path.stat().st_size  # level 0 is the first ~80 % of the file
    with path.open("r+b") as fh:
        fh.seek(size // 5)
        fh.write(b"\xff\xd9garbage" * (size * 3 // 10 // 9))
    return path


def test_bad_inputs_fail_alone_and_lose_nothing(tmp_path: Path, extracted_store: Path, sample_slide: Path) -> None:
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)  # a store that already holds the sample slide
    before = CellStore.open(store).slides()[0].array("centroid")[:]
    text = tmp_path / "notes.svs"
    text.write_text("not a slide\n" * 50)
    truncated = tmp_path / "truncated.svs"
    data = sample_slide.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    blank = write_pyramidal_tiff(tmp_path / "blank.tiff", lambda b, s: np.full((s[1], s[0], 3), 255, np.uint8),
                                 size=(2500, 2500), mpp=0.5)  # fmt: skip
    missing = tmp_path / "missing.svs"
    corrupt = corrupt_tiff(tmp_path / "corrupt.tiff", sample_slide)  # opens; fails mid-slide
    code, out = run("extract", missing, text, truncated, blank, corrupt, sample_slide, "--store", store, "--quiet")
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[:3] == [
        f"Error: {missing}: file not found",
        f"Error: {text}: not a slide format OpenSlide can read",
        f"Error: {truncated}: a TIFF-based file OpenSlide cannot parse: truncated or corrupt, "
        "or a plain untiled TIFF (save those as PNG)",
    ]
    assert lines[3].startswith(f"Error: {corrupt}: cannot read pixels, file corrupt or truncated (") and len(lines) == 4
    assert "Traceback" not in out
    cs = CellStore.open(store)
    assert [s.attrs["name"] for s in cs.slides()] == ["CMU-1-Small-Region.svs", "blank.tiff"]
    assert np.array_equal(cs.slides()[0].array("centroid")[:], before)  # the sample kept, not redone
    assert cs.slides()[1].n_cells == 0


def test_progress_and_summary_go_to_stderr(tmp_path: Path) -> None:
    blank = write_pyramidal_tiff(tmp_path / "blank.tiff", lambda b, s: np.full((s[1], s[0], 3), 255, np.uint8),
                                 size=(1500, 1500), mpp=0.5)  # fmt: skip
    result = CliRunner().invoke(main, ["extract", str(blank), "--store", str(tmp_path / "c.zarr")])
    assert result.exit_code == 0 and result.stdout == ""
    assert "extract ->" in result.stderr and "blank.tiff" in result.stderr and "done" in result.stderr
    assert "doubted" in result.stderr and "nuclei doubted" not in result.stderr  # no nuclei: no share, no warning
    quiet = CliRunner().invoke(main, ["extract", str(blank), "--store", str(tmp_path / "c.zarr"), "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_slide_lacking_mpp(shared_data: Path, tmp_path: Path) -> None:
    tcga = shared_data / "slides" / "TCGA-CR-7395-01A-01-TS1.svs"
    code, out = run("extract", tcga, "--store", tmp_path / "c.zarr", "--quiet")
    assert code == 1 and out.strip() == (
        f"Error: {tcga}: no resolution (microns-per-pixel) metadata; "
        "pass --slide-mpp (for example 0.25 for a 40x scan, 0.5 for 20x)"
    )


def test_plain_images_named_with_their_resolution(tmp_path: Path, sample_slide: Path) -> None:
    """Fields of view saved as PNG / JPEG (public datasets, camera images): named, with
    --slide-mpp, they are extracted like slides; a folder of them says how."""
    from wsicell.io.slide import open_slide

    fields = tmp_path / "fields"
    fields.mkdir()
    with open_slide(sample_slide) as s:
        for name, x in (("a.png", 600), ("b.jpg", 1100)):
            region = s.read_region((x, 1200), 0, (500, 500))
            cv2.imwrite(str(fields / name), cv2.cvtColor(region, cv2.COLOR_RGB2BGR))
    store = tmp_path / "c.zarr"
    code, out = run("extract", fields, "--store", store, "--quiet")
    assert code == 1 and out.strip() == (
        f"Error: {fields}: no slide files found, but 2 plain image(s): name them, with their "
        f"resolution, e.g. {fields}/*.png --slide-mpp 0.5"
    )
    code, out = run("extract", fields / "a.png", fields / "b.jpg", "--store", store, "--slide-mpp", "0.499", "--quiet")
    assert code == 0, out
    cells = CellStore.open(store)
    counts = {s.id: s.n_cells for s in cells.slides()}
    assert len(counts) == 2, counts
    assert all(n > 50 for n in counts.values()), counts  # ~100-200 nuclei in 250 x 250 µm of tissue
    code, out = run("extract", fields / "a.png", fields / "b.jpg", "--store", store, "--slide-mpp", "0.499", "--quiet")
    assert code == 0 and {s.id: s.n_cells for s in CellStore.open(store).slides()} == counts  # resumed: same cells


@pytest.mark.parametrize("kind", ["file", "under-file", "read-only"])
def test_unwritable_output(tmp_path: Path, sample_slide: Path, kind: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    if kind == "file":
        out = blocker
    elif kind == "under-file":
        out = blocker / "cells.zarr"
    else:
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "cells.zarr"
    code, text = run("extract", sample_slide, "--store", out, "--quiet")
    assert code == 1 and len(text.strip().splitlines()) == 1 and str(out) in text
    assert blocker.read_text() == "x"


def test_bad_option_values(tmp_path: Path, sample_slide: Path) -> None:
    code, out = run("extract", sample_slide, "--store", tmp_path / "c.zarr", "--crop-size", "2")
    assert code == 1 and "crop_size must be within 8-512" in out and "Traceback" not in out
    code, out = run("extract", sample_slide, "--store", tmp_path / "c.zarr", "--slide-mpp", "400")
    assert code == 1 and "outside the plausible range" in out


def test_info(extracted_store: Path) -> None:
    code, out = run("info", "--store", extracted_store, "--json")
    assert code == 0
    info = json.loads(out)
    [slide] = info["slides"]
    assert slide["status"] == "complete" and slide["cells"] == info["cells"] > 1000
    assert slide["mpp"] == pytest.approx(0.499) and (slide["width"], slide["height"]) == (2220, 2967)
    assert info["extract_settings"]["segment"]["method"] == "hvnet"
    code, out = run("info", "--store", extracted_store)
    assert code == 0 and "complete" in out and f"{info['cells']:,}" in out
    code, out = run("info", "--store", extracted_store.parent / "nope.zarr")
    assert code == 1 and "no cell store here" in out


def test_info_shows_the_share_of_doubted_nuclei(extracted_store: Path) -> None:
    """The slide's count of nuclei the annotator filter doubts is what the filter says of the
    stored measurements and tile features; the sample slide (skin, whose keratohyalin granules
    the network outlines as nuclei) is above the share worth a look, and says so."""
    from wsicell.provenance import DOUBTED
    from wsicell.segment.annotator_filter import (
        DOUBT_BELOW,
        DOUBTED_SHARE_HIGH,
        FILTER_PATHS,
        AnnotatorFilter,
        descriptions,
    )

    s = CellStore.open(extracted_store).slides()[0]
    x = descriptions(s.group["features"][:], s.group["tile_features"][:])
    expected = int((AnnotatorFilter.load(FILTER_PATHS["hvnet"]).probability(x) < DOUBT_BELOW).sum())
    assert s.attrs[DOUBTED] == expected
    share = expected / s.n_cells
    assert DOUBTED_SHARE_HIGH < share < 0.4  # measured: 0.22
    code, out = run("info", "--store", extracted_store, "--json")
    assert code == 0 and json.loads(out)["slides"][0]["doubted"] == pytest.approx(share)
    code, out = run("info", "--store", extracted_store)
    assert code == 0 and "doubted" in out and f"CMU-1-Small-Region.svs: {share:.0%} of its nuclei doubted" in out


def test_info_shows_embedding_and_clusters(tmp_path: Path, extracted_store: Path) -> None:
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)
    s = CellStore.open(store, mode="r+").slides()[0]
    s.create_array("embedding", shape=(s.n_cells, 8), dtype="float16", chunks=(1024, 8))
    s.create_array("cluster", shape=(s.n_cells,), dtype="int32", chunks=(16384,))
    code, out = run("info", "-s", store, "--json")
    [slide] = json.loads(out)["slides"]
    assert code == 0 and slide["embedding"] == [s.n_cells, 8] and slide["clustered"] is True
    assert slide["tile_features"] == 224  # the default segmenter's, kept by extract
    code, out = run("info", "-s", store)
    assert code == 0 and "tile features: 224-d, 1 of 1 slide(s)" in out


@pytest.mark.slow
def test_sigkill_mid_slide_then_rerun_gives_exactly_the_cells(
    tmp_path: Path, extracted_store: Path, sample_slide: Path
) -> None:
    store = tmp_path / "cells.zarr"
    cmd = [sys.executable, "-c", "from wsicell.cli import main; main()", "extract", str(sample_slide),
           "--store", str(store), "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    crops_meta = None
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        groups = list((store / "slides").glob("*/crops/zarr.json")) if store.exists() else []
        if groups:
            crops_meta = json.loads(groups[0].read_text())
            if crops_meta["shape"][0] > 0:  # some cells are in the store: kill mid-slide
                proc.send_signal(signal.SIGKILL)
                killed_at = crops_meta["shape"][0]
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "extraction ended before any cells were written"
    cs = CellStore.open(store)
    [partial] = cs.slides(complete_only=False)
    assert not partial.complete and cs.slides() == []
    code, text = run("info", "-s", store, "--json")
    assert code == 0 and json.loads(text)["slides"][0]["status"] == "incomplete"
    code, text = run("extract", sample_slide, "--store", store, "--quiet")  # resume
    assert code == 0, text
    got = CellStore.open(store).slides()[0]
    ref = CellStore.open(extracted_store).slides()[0]
    assert got.n_cells == ref.n_cells > killed_at
    for name in ("centroid", "crops", "features", "tile_features"):
        assert np.array_equal(got.array(name)[:], ref.array(name)[:]), name
    code, text = run("extract", sample_slide, "--store", store, "--quiet")  # now complete: skipped
    assert code == 0 and CellStore.open(store).slides()[0].attrs["seconds"] == got.attrs["seconds"]


def field_png(path: Path, slide: Path, side: int) -> Path:
    """A side x side field of the sample slide (at (600, 1200), level 0) written as a PNG."""
    from wsicell.io.slide import open_slide

    with open_slide(slide) as s:
        cv2.imwrite(str(path), cv2.cvtColor(s.read_region((600, 1200), 0, (side, side)), cv2.COLOR_RGB2BGR))
    return path


def test_the_opt_in_segmenter_extracts_and_a_store_keeps_its_segmenter(tmp_path: Path, sample_slide: Path) -> None:
    """--segmenter hvnet-fine reaches the extraction and is recorded; adding a slide to the
    store with the default segmenter names the differing setting instead of mixing them."""
    image = field_png(tmp_path / "field.png", sample_slide, 400)
    store = tmp_path / "c.zarr"
    code, out = run("extract", image, "--store", store, "--slide-mpp", "0.499", "--segmenter", "hvnet-fine")
    assert code == 0, out
    assert "segmenter hvnet-fine; hvnet runtime:" in out  # the one line says what it chose
    [slide] = CellStore.open(store).slides()
    assert slide.n_cells > 50
    assert "hvnet-fine" in json.dumps(slide.attrs)
    other = tmp_path / "other.png"
    shutil.copy(image, other)
    code, out = run("extract", other, "--store", store, "--slide-mpp", "0.499", "--quiet")
    assert code != 0 and "segment.method: 'hvnet-fine' in the store" in out and "another --store" in out, out


def test_a_preset_by_name_is_the_packaged_config(tmp_path: Path, sample_slide: Path) -> None:
    """--preset balanced extracts with the packaged preset's settings (recorded, and named in
    the one line and by `info`); the repository's configs/ link to the same files; --preset
    with --config is refused."""
    from wsicell.cli.extract import extract_command
    from wsicell.config import load_config
    from wsicell.extract import ExtractConfig, stored_config
    from wsicell.extract.presets import PRESET_NAMES, preset_path

    (option,) = [p for p in extract_command.params if p.name == "preset"]
    assert tuple(option.type.choices) == PRESET_NAMES  # the CLI names them without importing extraction
    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in PRESET_NAMES:
        assert (configs / f"extract-{name}.yaml").resolve() == preset_path(name).resolve()
    image = field_png(tmp_path / "field.png", sample_slide, 256)
    store = tmp_path / "c.zarr"
    code, out = run("extract", image, "--store", store, "--slide-mpp", "0.499", "--preset", "balanced")
    assert code == 0, out
    assert "segmenter hvnet, 4 test-time flips, annotator filter 0.5; hvnet runtime:" in " ".join(out.split())
    assert stored_config(store) == load_config(ExtractConfig, preset_path("balanced"))
    code, out = run("info", "--store", store)
    assert code == 0 and "segmenter hvnet, 4 test-time flips, annotator filter 0.5" in " ".join(out.split())
    code, out = run("info", "--store", store, "--json")
    assert json.loads(out)["slides"][0]["doubted"] is None  # the filter already dropped them: not counted
    from wsicell.study.doubt import slide_filter

    assert slide_filter(CellStore.open(store).slides()[0]) is None  # nor does the nuclei-only map show doubt
    code, out = run("extract", image, "--store", tmp_path / "d.zarr", "--slide-mpp", "0.499", "--preset", "quality",
                    "--config", preset_path("balanced"))  # fmt: skip
    assert code == 2 and "--preset or --config" in out and not (tmp_path / "d.zarr").exists()
