"""`wsicell map SLIDES... | FOLDER --out DIR`: a whole study's maps in one command.

One GeoJSON (and with ``png`` one overlay picture) per slide in DIR, named after the
slide file. Two phases:

1. in this process, one slide after the other: each slide is found in the store (or
   extracted and embedded, with the ``scheduler`` / ``workers`` of extract) and its cells
   assigned to the current clustering (and classified with ``classes``): the store's only
   writer, as `wsicell extract` is;
2. the files are written by workers (local threads, or a ``dask.distributed`` cluster at
   ``scheduler``), reading the store only.

A slide is skipped when its files all exist and the folder's manifest (``MANIFEST``) says
they were made with the current clustering and settings (names file content, classifier,
object type, ...); ``force`` redoes every slide. Every file is written under a temporary
name and renamed when complete, and a slide enters the manifest only once its files are
written, so after a kill a rerun redoes exactly the unfinished slides; after re-clustering,
every slide. A bad slide is reported and the others go on. With ``nuclei_only`` the nuclei
are written without cell types: a new slide is extracted only, and no clustering is needed.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wsicell.atomic import atomic_path
from wsicell.errors import ConfigError, SlideError, WsicellError
from wsicell.export.geojson import ObjectType
from wsicell.export.names import load_styles
from wsicell.io.slide import require_slides
from wsicell.mapping.slide import check_colouring, current_clustering, map_slide, prepare_slide
from wsicell.store import CellStore
from wsicell.types import PathLikeStr


@dataclass(frozen=True)
class MapJob:
    """One slide's files (plain values: shipped to dask workers)."""

    slide: str
    store: str
    out: str
    png: str | None
    names: str | None
    object_type: str
    png_size: int
    cell_expansion_um: float
    classes: bool
    nuclei_only: bool


@dataclass(frozen=True)
class SlideMap:
    path: str
    status: str  # "done", "skipped", "failed"
    out: str
    n_cells: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class StudyMapReport:
    out_dir: str
    slides: list[SlideMap] = field(default_factory=list)

    @property
    def failed(self) -> list[SlideMap]:
        return [s for s in self.slides if s.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


MANIFEST = ".wsicell-maps.json"
"""In the output folder: slide file name -> the settings its files were made with."""


def read_manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_manifest(out: Path, manifest: dict) -> None:
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def outputs_for(slide: Path, out_dir: Path, *, gzip: bool, png: bool) -> tuple[Path, Path | None]:
    geojson = out_dir / (slide.stem + (".geojson.gz" if gzip else ".geojson"))
    return geojson, (out_dir / (slide.stem + ".png")) if png else None


def run_map_job(job: MapJob) -> SlideMap:
    """Write one slide's files (the slide is already in the store and assigned); never raises."""
    t0 = time.perf_counter()
    try:
        result = map_slide(
            job.slide, store=job.store, out=job.out, names=job.names, object_type=job.object_type,  # type: ignore[arg-type]
            png=Path(job.png) if job.png else False, png_size=job.png_size, force=True,
            cell_expansion_um=job.cell_expansion_um, classes=job.classes, nuclei_only=job.nuclei_only,
            progress=False,
        )  # fmt: skip
    except WsicellError as exc:
        return SlideMap(job.slide, "failed", job.out, error=str(exc))
    except Exception as exc:  # a bug on one slide must not stop a study: report it in full
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return SlideMap(job.slide, "failed", job.out, error=f"{job.slide}: unexpected error: {detail}")
    return SlideMap(job.slide, "done", job.out, result.n_cells, time.perf_counter() - t0)


def map_study(
    slides: list[PathLikeStr], *, store: PathLikeStr, out_dir: PathLikeStr, names: PathLikeStr | None = None,
    object_type: ObjectType = "detection", png: bool = False, png_size: int = 2048, gzip: bool = False,
    cell_expansion_um: float = 5.0, classes: bool = False, nuclei_only: bool = False, force: bool = False,
    slide_mpp: float | None = None, scheduler: str | None = None, workers: int | None = None, progress: bool = True,
    log: Callable[[str], None] = lambda message: None, on_slide: Callable[[SlideMap], None] | None = None,
) -> StudyMapReport:  # fmt: skip
    """Map every slide of ``slides`` (files and folders) into ``out_dir``; see the module doc.
    ``nuclei_only``: the nuclei without cell types, as :func:`~wsicell.mapping.slide.map_slide`."""
    from wsicell.extract.runner import make_runner
    from wsicell.study.classifier import load_classifier

    paths = require_slides(list(slides))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; --out must be a folder when mapping several slides")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise ConfigError(f"{p} and {stems[p.stem]} would both write {p.stem}.geojson; map them into different folders")
        stems[p.stem] = p
    check_colouring(names=names, classes=classes, nuclei_only=nuclei_only)
    cells = CellStore.open(store)
    clustering = None if nuclei_only else current_clustering(cells)
    classifier = load_classifier(cells) if classes else None
    if names is not None and clustering is not None:
        load_styles(names, k=clustering.k)  # a bad names file fails the run before any work
    out.mkdir(parents=True, exist_ok=True)
    report = StudyMapReport(str(out))
    settings = {
        "clustering": clustering.created if clustering else "none (nuclei only)",
        "classifier": classifier.created if classifier else None,
        "names_sha256": hashlib.sha256(Path(names).read_bytes()).hexdigest() if names else None,
        "object_type": object_type, "cell_expansion_um": cell_expansion_um,
    }  # fmt: skip
    manifest = read_manifest(out)
    key_of = {str(p.resolve()): p.name for p in paths}

    def note(outcome: SlideMap) -> None:
        report.slides.append(outcome)
        if outcome.status == "done":
            manifest[key_of.get(outcome.path, Path(outcome.path).name)] = settings
            write_manifest(out, manifest)
        if on_slide is not None:
            on_slide(outcome)

    jobs: list[MapJob] = []
    for p in paths:
        geojson, picture = outputs_for(p, out, gzip=gzip, png=png)
        current = manifest.get(p.name) == settings
        if not force and current and geojson.exists() and (picture is None or picture.exists()):
            note(SlideMap(str(p), "skipped", str(geojson)))
            continue
        try:
            if not p.is_file():
                raise SlideError(p, "file not found" if not p.exists() else "not a file")
            prepare_slide(p, cells_store=cells, clustering=clustering, classifier=classifier, slide_mpp=slide_mpp,
                          progress=progress, log=log, scheduler=scheduler, workers=workers)  # fmt: skip
        except WsicellError as exc:
            note(SlideMap(str(p), "failed", str(geojson), error=str(exc)))
            continue
        jobs.append(MapJob(
            str(p.resolve()), str(cells.path.resolve()), str(geojson.resolve()),
            str(picture.resolve()) if picture else None, str(Path(names).resolve()) if names else None,
            object_type, png_size, cell_expansion_um, classes, nuclei_only,
        ))  # fmt: skip
    if jobs:
        runner = make_runner(scheduler, workers)
        try:
            for outcome in runner.map_ordered(run_map_job, jobs):
                note(outcome)
        finally:
            runner.close()
    order = {str(p): i for i, p in enumerate(paths)} | {str(p.resolve()): i for i, p in enumerate(paths)}
    report.slides.sort(key=lambda s: order.get(s.path, len(order)))
    return report
