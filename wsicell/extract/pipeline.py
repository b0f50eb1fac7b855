"""Orchestration: slides -> tissue -> tiles -> Dask tasks -> the cell store, resumably.

One process (this one) writes the store; tiles are computed on Dask workers and come back
in tile order (see :mod:`wsicell.extract.runner`), so a slide's cells are in a fixed order
whatever the scheduler. A slide group is marked complete last; rerunning skips complete
slides with the same content fingerprint and level-0 mpp, and redoes anything else.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wsicell.config import to_mapping
from wsicell.errors import ConfigError, SlideError, StoreError, WsicellError
from wsicell.extract.config import ExtractConfig
from wsicell.extract.runner import make_runner
from wsicell.extract.tasks import TileJob, TileResult, run_tile
from wsicell.extract.threshold import resolve_threshold, uses_threshold
from wsicell.io.slide import Slide, fingerprint, open_slide, require_slides
from wsicell.io.tiling import core_bounds_level0, tile_grid, tiles_over_tissue
from wsicell.io.tissue import TissueMask, detect_tissue
from wsicell.progress import progress_bars, stderr_console
from wsicell.provenance import DOUBTED, EXTRACT_SETTINGS
from wsicell.segment import CONTOUR_POINTS, FEATURE_NAMES, make_segmenter
from wsicell.segment.annotator_filter import doubted_share
from wsicell.segment.config import HV_METHODS
from wsicell.store import CellStore, SlideCells, slide_id_for
from wsicell.types import PathLikeStr


@dataclass
class SlideReport:
    path: str
    slide_id: str | None
    status: str  # "done" | "skipped" | "failed"
    n_cells: int = 0
    seconds: float = 0.0
    error: str | None = None  # one line naming the file and the reason
    n_tiles: int = 0
    megapixels: float = 0.0  # tissue-tile core area processed, working grid
    doubted: int | None = None  # nuclei the segmenter's annotator filter doubts; None: no such check

    @property
    def doubted_share(self) -> float | None:
        return doubted_share(self.doubted, self.n_cells)


@dataclass
class ExtractReport:
    store: str
    slides: list[SlideReport] = field(default_factory=list)

    @property
    def failed(self) -> list[SlideReport]:
        return [s for s in self.slides if s.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


def settings_mapping(config: ExtractConfig) -> dict:
    """The JSON form of the settings, as stored in the attrs."""
    return json.loads(json.dumps(to_mapping(config)))


def with_defaults(recorded: dict) -> dict:
    """Recorded settings with the settings added since given their defaults (which keep the
    earlier behaviour), so that a store extracted by an earlier version still resumes;
    unreadable records are returned as they are, to be reported as different."""
    from wsicell.config import from_mapping

    try:
        return settings_mapping(from_mapping(ExtractConfig, dict(recorded)))
    except (ConfigError, TypeError, ValueError):
        return dict(recorded)


def stored_config(store: PathLikeStr) -> ExtractConfig:
    """The settings a store was extracted with (``map`` extracts new slides with these)."""
    from wsicell.config import from_mapping

    cs = CellStore.open(store)
    settings = cs.root.attrs.get(EXTRACT_SETTINGS)
    if settings is None:
        raise StoreError(f"{store}: records no extraction settings (not made by `wsicell extract`)")
    return from_mapping(ExtractConfig, dict(settings), source=f"{store} {EXTRACT_SETTINGS}")


def open_output(store: PathLikeStr, config: ExtractConfig) -> CellStore:
    """Open/create the store; refuse one extracted with other settings (nothing is changed)."""
    p = Path(store)
    cs = CellStore.create_or_open(p)
    settings = settings_mapping(config)
    previous = cs.root.attrs.get(EXTRACT_SETTINGS)
    if previous is not None:
        previous = with_defaults(previous)
    if previous is not None and previous != settings:
        diff = _differences(previous, settings)
        raise StoreError(
            f"{p}: was extracted with other settings ({diff}); one store holds one set of "
            "settings: use the same settings or another --store"
        )
    try:
        if previous is None:
            cs.root.attrs[EXTRACT_SETTINGS] = settings
    except OSError as exc:
        raise StoreError(f"{p}: cannot write to the store ({exc.strerror or exc})") from None
    return cs


def extract_slides(
    paths: list[PathLikeStr],
    *,
    store: PathLikeStr,
    config: ExtractConfig,
    slide_mpp: float | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ExtractReport:
    """Extract every slide of ``paths`` (files and folders) into ``store``.

    A slide that fails (missing, not a slide, truncated, no mpp) is reported and the
    others go on; store-wide problems (unwritable, other settings) raise StoreError.
    """
    slides = require_slides(list(paths))
    cs = open_output(store, config)
    report = ExtractReport(str(store))
    runner = make_runner(scheduler, workers)
    _note_runtime(config, progress)
    try:
        with progress_bars(progress) as bars:
            for path in slides:
                report.slides.append(_extract_reporting(path, cs, config, slide_mpp, runner, bars))
    finally:
        runner.close()
    return report


def extract_slide(
    slide_path: PathLikeStr,
    *,
    store: PathLikeStr,
    config: ExtractConfig,
    slide_mpp: float | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SlideCells:
    """Extract one slide (or find it already complete) and return its group.

    Raises the slide's error (SlideError, StoreError) instead of reporting it.
    """
    cs = open_output(store, config)
    runner = make_runner(scheduler, workers)
    _note_runtime(config, progress)
    try:
        with progress_bars(progress) as bars:
            rep = _extract_one(Path(slide_path), cs, config, slide_mpp, runner, bars)
    finally:
        runner.close()
    assert rep.slide_id is not None
    return cs.slide(rep.slide_id)


def _note_runtime(config: ExtractConfig, progress: bool) -> None:
    """One line on stderr: the runtime the HV-net runs on in this process, and why; led by the
    segmenter when it is not the default one (the slower, better opt-ins)."""
    seg = config.segment
    if progress and seg.method in HV_METHODS:
        from wsicell.segment.hvnet import pick_runtime

        opt_ins = "".join(f", {words}" for words in seg.hv_opt_ins)
        lead = "" if seg.method == "hvnet" and not opt_ins else f"segmenter {seg.method}{opt_ins}; "
        stderr_console().print(lead + pick_runtime(seg.runtime)[1], highlight=False)


def _extract_reporting(path: Path, cs: CellStore, config, slide_mpp, runner, bars) -> SlideReport:
    t0 = time.perf_counter()
    try:
        return _extract_one(path, cs, config, slide_mpp, runner, bars)
    except WsicellError as exc:
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: {message}"
        return SlideReport(str(path), None, "failed", seconds=time.perf_counter() - t0, error=message)


def _extract_one(path: Path, cs: CellStore, config: ExtractConfig, slide_mpp, runner, bars) -> SlideReport:
    t0 = time.perf_counter()
    with open_slide(path, mpp=slide_mpp) as slide:
        fp = fingerprint(path)
        slide_id = slide_id_for(path, fp)
        done = _complete_match(cs, slide_id, slide.mpp, config)
        if done is not None:
            return SlideReport(str(path), slide_id, "skipped", n_cells=done.n_cells, seconds=0.0,
                               n_tiles=int(done.attrs.get("n_tiles", 0)), doubted=done.attrs.get(DOUBTED))  # fmt: skip
        return _extract_new(slide, path, fp, slide_id, cs, config, runner, bars, t0)


def _complete_match(cs: CellStore, slide_id: str, mpp: float, config: ExtractConfig) -> SlideCells | None:
    if slide_id not in cs.slide_ids():
        return None
    s = cs.slide(slide_id)
    same = s.complete and s.attrs.get("settings") == settings_mapping(config)
    return s if same and math.isclose(s.mpp, mpp, rel_tol=1e-9) else None


def _extract_new(
    slide: Slide, path: Path, fp: str, slide_id: str, cs: CellStore, config: ExtractConfig, runner, bars, t0: float
) -> SlideReport:
    segmenter = make_segmenter(config.segment)
    try:
        config.check_tile(segmenter.max_nucleus_um)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    overlap = config.overlap_px(segmenter.max_nucleus_um)
    scale = slide.grid_scale(config.mpp)
    tissue = detect_tissue(slide, method=config.tissue_method, tissue_mpp=config.tissue_mpp,
                           margin_um=config.tissue_margin_um)  # fmt: skip
    tiles = tiles_over_tissue(tile_grid(working_extent(slide, config), size=config.tile_size, overlap=overlap),
                              tissue, scale=scale)  # fmt: skip
    segment = resolve_threshold(slide, config.segment, mpp=config.mpp, tissue=tissue) if tiles else config.segment
    width, height = slide.dimensions
    attrs = {
        "path": str(path.resolve()), "name": path.name, "fingerprint": fp, "mpp": slide.mpp,
        "width": width, "height": height, "settings": settings_mapping(config),
        "working_mpp": config.mpp, "overlap_px": overlap, "tissue_fraction": tissue.fraction,
        "tissue_area_mm2": tissue.area_mm2,
        "segment_threshold": segment.threshold if uses_threshold(segment) else None,
    }  # fmt: skip
    writer = cs.begin_slide(slide_id, attrs=attrs, crop_size=config.crop_size,
                            contour_points=CONTOUR_POINTS, feature_names=list(FEATURE_NAMES))  # fmt: skip
    task = bars.add_task(path.name[:40], total=len(tiles), info="0 cells")
    pixels = 0
    doubted: int | None = 0
    try:
        jobs = _jobs(str(path.resolve()), slide.mpp, config, segment, tiles, tissue, scale)
        for result in runner.map_ordered(run_tile, jobs):
            if result.error is not None:
                raise SlideError(path, result.error)
            writer.append(result.cells)
            pixels += result.pixels
            doubted = None if doubted is None or result.doubted is None else doubted + result.doubted
            rate = writer.n_cells / max(time.perf_counter() - t0, 1e-9)
            bars.update(task, advance=1, info=f"{writer.n_cells:,} cells {rate:,.0f}/s")
        seconds = time.perf_counter() - t0
        n = writer.finish(n_tiles=len(tiles), seconds=round(seconds, 3), **{DOUBTED: doubted})
    except (WsicellError, OSError) as exc:  # a bad file or a full disk: drop the partial group
        with contextlib.suppress(OSError):
            cs.discard_slide(slide_id)
        if isinstance(exc, OSError):
            raise StoreError(f"{cs.path}: cannot write ({exc.strerror or exc})") from None
        raise
    finally:  # (an interrupt leaves the group incomplete: the next run redoes it)
        bars.update(task, info=f"{writer.n_cells:,} cells")
    return SlideReport(str(path), slide_id, "done", n_cells=n, seconds=seconds, n_tiles=len(tiles),
                       megapixels=pixels / 1e6, doubted=doubted)  # fmt: skip


def working_extent(slide: Slide, config: ExtractConfig) -> tuple[int, int, int, int]:
    """The working-grid box to cover: the whole slide, or ``config.region``."""
    w, h = slide.grid_size(config.mpp)
    if config.region is None:
        return 0, 0, w, h
    s = slide.grid_scale(config.mpp)
    x0, y0, x1, y1 = config.region
    return (min(math.floor(x0 / s), w), min(math.floor(y0 / s), h),
            min(math.ceil(x1 / s), w), min(math.ceil(y1 / s), h))  # fmt: skip


def _jobs(path, slide_mpp, config, segment, tiles, tissue: TissueMask, scale) -> Iterator[TileJob]:
    for tile in tiles:
        window, origin = tissue.window(core_bounds_level0(tile, scale))
        yield TileJob(
            slide_path=path, slide_mpp=slide_mpp, mpp=config.mpp, tile=tile, segment=segment,
            crop_size=config.crop_size, window_scale=config.window_scale,
            tissue=window.copy(), tissue_origin=origin, tissue_downsample=tissue.downsample,
            region=config.region,
        )  # fmt: skip


def _differences(old: dict, new: dict, prefix: str = "") -> str:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                out.append(inner)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} in the store, {b!r} now")
    return "; ".join(out)


__all__ = ["ExtractReport", "SlideReport", "TileResult", "extract_slide", "extract_slides", "open_output", "stored_config"]
