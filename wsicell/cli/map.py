"""`wsicell map` (a slide's clusters as QuPath GeoJSON + overlay PNG) and `wsicell gallery`."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import user_errors


@click.command(
    "map",
    epilog="Example: wsicell map slide.svs --store cells.zarr --out slide.geojson.gz --names names.yaml --png\n\n"
    "Example: wsicell map slides/ --store cells.zarr --out maps/ --png --workers 2\n\n"
    "Example: wsicell map slide.svs --store cells.zarr --nuclei-only --png   # the nuclei, right after extract",
)
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path),
              help="The clustered cell store (with --nuclei-only, any cell store).")  # fmt: skip
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="One slide: the GeoJSON (.geojson or .geojson.gz) [default: SLIDE-NAME.geojson here]. "
                   "Several slides or a folder: the output folder (SLIDE-NAME.geojson per slide).")  # fmt: skip
@click.option("--names", type=click.Path(path_type=Path), help="YAML of cluster names and colours.")
@click.option("--object-type", type=click.Choice(["detection", "cell"]), default="detection", show_default=True,
              help="QuPath object type; 'cell' adds the nucleus expanded by --cell-expansion as the cell.")  # fmt: skip
@click.option("--cell-expansion", type=float, default=5.0, show_default=True, help="µm, for --object-type cell.")
@click.option("--png", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Also write a PNG (PATH, or OUT-NAME.png): the thumbnail with nuclei coloured by cluster.")  # fmt: skip
@click.option("--png-size", type=int, default=2048, show_default=True, help="Longest side of the PNG's thumbnail.")
@click.option("--slide-mpp", type=float, help="Level-0 µm/px for a new slide whose metadata lacks it.")
@click.option("--classes", is_flag=True,
              help="Name and colour cells by the store's cell classifier (`wsicell name --classifier`), not by cluster.")  # fmt: skip
@click.option("--nuclei-only", is_flag=True,
              help="The nuclei without cell types (unclassified, with their measurements and, for the "
                   "HV-net's, P(annotated); the picture marks the doubted ones): no embedding or "
                   "clustering needed, to review the segmentation in QuPath right after `wsicell extract`.")  # fmt: skip
@click.option("--gzip", is_flag=True, help="Folder mode: write SLIDE-NAME.geojson.gz files.")
@click.option("--scheduler", metavar="ADDRESS", help="Folder mode: a dask.distributed scheduler (e.g. tcp://host:8786).")
@click.option("--workers", type=int, help="Folder mode: local worker threads [default: all cores].")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files (folder mode: redo every slide).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary (errors still print).")
@user_errors
def map_command(
    slides: tuple[Path, ...], store: Path, out: Path | None, names: Path | None, object_type: str,
    cell_expansion: float, png: str | None, png_size: int, slide_mpp: float | None, classes: bool, nuclei_only: bool,
    gzip: bool, scheduler: str | None, workers: int | None, force: bool, quiet: bool,
) -> None:  # fmt: skip
    """Write each slide's nuclei, coloured by cluster, as a GeoJSON FeatureCollection
    QuPath imports (File > Import objects, or drag the file onto the slide).

    A slide already in the store uses its cells; a new slide is extracted with the store's
    settings, embedded with the store's model and assigned to the nearest centroid (no
    retraining), and added to the store. With --nuclei-only, the nuclei alone, from a store that
    need not be embedded or clustered (a new slide is extracted only).

    Several slides or a folder (--out a folder): one file per slide; slides already mapped
    there with the same clustering and settings are skipped (rerun after a kill to finish),
    a bad slide is reported and the others go on (exit status 1), and the files are written
    by --workers threads or a dask.distributed --scheduler.
    """
    from wsicell.progress import stderr_console

    console = stderr_console()
    folder_mode = len(slides) > 1 or slides[0].is_dir() or (out is not None and (out.is_dir() or not out.suffix))
    if folder_mode:
        study(slides, store=store, out=out, names=names, object_type=object_type, cell_expansion=cell_expansion,
              png=png, png_size=png_size, slide_mpp=slide_mpp, classes=classes, nuclei_only=nuclei_only, gzip=gzip,
              scheduler=scheduler, workers=workers, force=force, quiet=quiet)  # fmt: skip
        return
    if scheduler or gzip:
        raise click.UsageError("--scheduler and --gzip apply to several slides or a folder (with --out a folder)")
    from wsicell.mapping import map_slide

    slide = slides[0]
    result = map_slide(
        slide, store=store, out=out, names=names, object_type=object_type,
        png=(True if png == "" else Path(png)) if png is not None else False, png_size=png_size,
        force=force, slide_mpp=slide_mpp, cell_expansion_um=cell_expansion, classes=classes, nuclei_only=nuclei_only,
        progress=not quiet,
        log=(lambda m: None) if quiet else console.print,
    )  # fmt: skip
    if quiet:
        return
    g = result.geojson
    console.print(
        f"{g.path}: {g.written:,} {object_type}s in {g.seconds:.1f} s"
        + (f" ({g.repaired:,} outlines repaired, {g.skipped:,} skipped as invalid)" if g.repaired or g.skipped else "")
        + (f"; {result.png}" if result.png else "")
        + ("; the slide was added to the store" if result.added else "")
    )


def study(slides, *, store, out, names, object_type, cell_expansion, png, png_size, slide_mpp, classes, nuclei_only,
          gzip, scheduler, workers, force, quiet) -> None:  # noqa: ANN001 - the map command's values
    """Folder mode of `wsicell map` (wsicell.mapping.map_study), with a per-slide table."""
    import sys

    from rich.table import Table

    from wsicell.mapping.batch import map_study
    from wsicell.progress import progress_bars, stderr_console

    if out is None:
        raise click.UsageError("mapping several slides or a folder needs --out FOLDER")
    if png not in (None, ""):
        raise click.UsageError("with several slides, --png takes no path: each picture is OUT/SLIDE-NAME.png")
    console = stderr_console()
    with progress_bars(not quiet, unit="slides") as bars:
        task = bars.add_task(f"maps -> {out}"[:40], total=None, info="")
        report = map_study(
            list(slides), store=store, out_dir=out, names=names, object_type=object_type, png=png is not None,
            png_size=png_size, gzip=gzip, cell_expansion_um=cell_expansion, classes=classes, nuclei_only=nuclei_only,
            force=force, slide_mpp=slide_mpp, scheduler=scheduler, workers=workers, progress=not quiet,
            log=(lambda m: None) if quiet else console.print, on_slide=lambda s: bars.advance(task, 1),
        )  # fmt: skip
    if not quiet:
        table = Table(title=f"map -> {report.out_dir}")
        for name, justify in (("slide", "left"), ("status", "left"), ("cells", "right"), ("seconds", "right")):
            table.add_column(name, justify=justify)
        colour = {"done": "green", "skipped": "cyan", "failed": "red"}
        for s in report.slides:
            table.add_row(Path(s.path).name, f"[{colour[s.status]}]{s.status}", f"{s.n_cells:,}", f"{s.seconds:.1f}")
        console.print(table)
    for failed in report.failed:
        click.echo(f"Error: {failed.error}", err=True)
    if not report.ok:
        sys.exit(1)


@click.command("gallery", epilog="Example: wsicell gallery --store cells.zarr --out gallery.png --per-cluster 32")
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The clustered cell store.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="PNG to write.")
@click.option("--per-cluster", type=int, default=32, show_default=True, help="Crops shown per cluster.")
@click.option("--per-row", type=int, default=16, show_default=True, help="Crops per line of a cluster's band.")
@click.option("--names", type=click.Path(path_type=Path), help="YAML of cluster names and colours.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the sample.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing file.")
@click.option("-q", "--quiet", is_flag=True, help="No summary (errors still print).")
@user_errors
def gallery_command(
    store: Path, out: Path, per_cluster: int, per_row: int, names: Path | None, seed: int, force: bool, quiet: bool
) -> None:
    """A montage of random cell crops per cluster, one labelled band each: look at it to
    name the clusters (then write the names into a --names YAML for `wsicell map`)."""
    from wsicell.export.gallery import write_gallery
    from wsicell.progress import stderr_console

    result = write_gallery(store=store, out=out, per_cluster=per_cluster, per_row=per_row, names=names, seed=seed, force=force)
    if not quiet:
        stderr_console().print(f"{result.path}: {result.k} clusters x up to {per_cluster} crops ({result.width}x{result.height} px)")


COMMANDS = [map_command, gallery_command]
