"""Slide readers on real files: the bundled sample, the shared slides, broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsicell.errors import SlideError
from wsicell.io.pyramid import write_pyramidal_tiff
from wsicell.io.slide import VirtualSlide, find_slides, fingerprint, open_slide, require_slides


def test_sample_slide_metadata(sample_slide: Path) -> None:
    with open_slide(sample_slide) as s:
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)
        assert s.grid_size(0.5) == (2216, 2962)  # ceil(2220 * 0.499 / 0.5), ...


def test_read_grid_is_identical_in_overlapping_windows(sample_slide: Path) -> None:
    with open_slide(sample_slide) as s:
        for mpp in (0.5, 1.0, 2.3):  # ~level-0 grid, 2x reduction, non-integer reduction
            big = s.read_grid((-20, 100), (600, 500), mpp=mpp)
            small = s.read_grid((217, 301), (150, 120), mpp=mpp)
            assert np.array_equal(big[201:321, 237:387], small), mpp
            assert (big[:, :20] == 255).all()  # left of the slide: white


def test_read_grid_matches_plain_resampling(sample_slide: Path) -> None:
    with open_slide(sample_slide) as s:
        grid = s.read_grid((50, 100), (800, 800), mpp=1.0).astype(int)
        plain = s.read((100, 200, 100 + 1596, 200 + 1596), 1.0).astype(int)  # ~798 px
    # same place (no offset): a one-pixel shift is far worse than the filter difference
    aligned = np.abs(grid[5:790, 5:790] - plain[5:790, 5:790]).mean()
    shifted = np.abs(grid[5:790, 5:790] - plain[5:790, 6:791]).mean()
    assert aligned < 4 < shifted


def test_virtual_slide_reads_like_its_array() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    s = VirtualSlide(image, mpp=0.5)
    assert np.array_equal(s.read_grid((10, 20), (50, 40), mpp=0.5), image[20:60, 10:60])


def test_missing_file() -> None:
    with pytest.raises(SlideError, match="nope.svs: file not found"):
        open_slide("nope.svs")


def test_text_file_named_svs(tmp_path: Path) -> None:
    bad = tmp_path / "notes.svs"
    bad.write_text("this is not a slide\n" * 100)
    with pytest.raises(SlideError, match="notes.svs: not a slide format"):
        open_slide(bad)


def test_truncated_slide(tmp_path: Path, sample_slide: Path) -> None:
    data = sample_slide.read_bytes()
    bad = tmp_path / "truncated.svs"
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(SlideError, match="truncated.svs: .*(corrupt|truncated)"):
        open_slide(bad)


def test_slide_without_mpp_needs_override(shared_data: Path) -> None:
    path = shared_data / "slides" / "TCGA-CR-7395-01A-01-TS1.svs"
    with pytest.raises(SlideError, match="no resolution .*--slide-mpp"):
        open_slide(path, check=False)
    with open_slide(path, mpp=0.5, check=False) as s:
        assert s.mpp == 0.5 and s.level_count == 2


def test_implausible_mpp_is_an_error(shared_data: Path) -> None:
    path = shared_data / "slides" / "small_HE_levels.tiff"
    with pytest.raises(SlideError, match="implausible resolution"):
        open_slide(path)
    with open_slide(path, mpp=0.5) as s:
        assert s.mpp == 0.5


def test_pyramidal_tiff_roundtrip(tmp_path: Path) -> None:
    def render(bounds, size):  # a gradient: value = level-0 x // 16
        x0, _, x1, _ = bounds
        xs = np.linspace(x0, x1, size[0], endpoint=False) // 16
        return np.broadcast_to(xs.astype(np.uint8)[None, :, None], (size[1], size[0], 3)).copy()

    path = write_pyramidal_tiff(tmp_path / "g.tiff", render, size=(2500, 2100), mpp=0.25, tile=256, compression="zlib")
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(0.25)
        assert s.dimensions == (2500, 2100) and s.level_count == 2
        assert s.read_region((1600, 0), 0, (1, 1))[0, 0, 0] == 100
    assert not list(tmp_path.glob(".*tmp*"))


def test_find_slides_and_fingerprint(tmp_path: Path, sample_slide: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(sample_slide, tmp_path / "a" / "b" / "one.svs")
    shutil.copy(sample_slide, tmp_path / "a" / "two.SVS")
    (tmp_path / "a" / "readme.txt").write_text("x")
    found = find_slides([tmp_path / "a", tmp_path / "a" / "two.SVS", tmp_path / "missing.svs"])
    assert [f.name for f in found] == ["one.svs", "two.SVS", "missing.svs"]
    assert fingerprint(found[0]) == fingerprint(sample_slide)


def sample_region(sample_slide: Path) -> np.ndarray:
    with open_slide(sample_slide) as s:
        return s.read_region((800, 1200), 0, (300, 200))  # a real field of view, 300 x 200 px


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_plain_image_is_a_slide_at_the_given_resolution(tmp_path: Path, sample_slide: Path, suffix: str) -> None:
    region = sample_region(sample_slide)
    path = tmp_path / f"field{suffix}"
    assert cv2.imwrite(str(path), cv2.cvtColor(region, cv2.COLOR_RGB2BGR))
    with open_slide(path, mpp=0.5) as s:
        assert (s.dimensions, s.mpp, s.path) == ((300, 200), 0.5, str(path))
        pixels = s.read_grid((0, 0), (300, 200), mpp=0.5).astype(int)
    # PNG and BMP are lossless; JPEG within its compression error, and in place (not shifted)
    error = np.abs(pixels - region.astype(int)).mean()
    assert error < (8 if suffix == ".jpg" else 1e-9)
    assert error < np.abs(pixels[:, 1:] - region[:, :-1].astype(int)).mean()


def test_plain_image_needs_its_resolution_and_intact_bytes(tmp_path: Path, sample_slide: Path) -> None:
    path = tmp_path / "field.png"
    cv2.imwrite(str(path), cv2.cvtColor(sample_region(sample_slide), cv2.COLOR_RGB2BGR))
    with pytest.raises(SlideError, match="field.png: a plain image has no resolution metadata; pass --slide-mpp"):
        open_slide(path)
    with pytest.raises(SlideError, match="field.png: --slide-mpp 40.0 is outside the plausible range"):
        open_slide(path, mpp=40.0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SlideError, match="broken.png: cannot decode the image"):
        open_slide(broken, mpp=0.5)
    header_only = tmp_path / "header.png"
    header_only.write_bytes(path.read_bytes()[:40])  # the size is there, the pixels are not
    with pytest.raises(SlideError, match="header.png: cannot decode the image"):
        open_slide(header_only, mpp=0.5)
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((1, 5, 3), 200, np.uint8))
    with pytest.raises(SlideError, match="tiny.png: image of 5 x 1 px: too small to segment"):
        open_slide(tiny, mpp=0.5)


def test_plain_image_too_large_to_read_whole(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("1", (12_000, 9_000)).save(path)  # 108 MP, 1 bit each: a small file, never decoded
    with pytest.raises(SlideError, match="huge.png: a plain image of 12,000 x 9,000 px is too large .*pyramidal TIFF"):
        open_slide(path, mpp=0.5)
    Image.new("1", (15_000, 12_000)).save(path)  # 180 MP: over Pillow's own ceiling too
    with pytest.raises(SlideError, match="huge.png: a plain image too large to read whole .*pyramidal TIFF"):
        open_slide(path, mpp=0.5)


def test_folders_give_slides_not_plain_images(tmp_path: Path, sample_slide: Path) -> None:
    (tmp_path / "fields").mkdir()
    cv2.imwrite(str(tmp_path / "fields" / "a.png"), np.full((8, 8, 3), 200, np.uint8))
    assert find_slides([tmp_path / "fields"]) == []  # thumbnails and overlays live beside slides
    assert find_slides([tmp_path / "fields" / "a.png"]) == [tmp_path / "fields" / "a.png"]  # named: taken
    with pytest.raises(SlideError) as found_none:
        require_slides([tmp_path / "fields"])
    reason = found_none.value.reason
    assert "1 plain image(s)" in reason and "fields/*.png --slide-mpp" in reason
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlideError) as found_none:
        require_slides([tmp_path / "empty"])
    assert found_none.value.reason == "no slide files found"
    assert require_slides([tmp_path / "fields" / "a.png"]) == [tmp_path / "fields" / "a.png"]
