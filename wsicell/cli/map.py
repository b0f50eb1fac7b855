"""`wsicell map` (a slide's clusters as QuPath GeoJSON + overlay PNG) and `wsicell gallery`."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import user_errors


@click.command(
    "map",
    epilog="Example: wsicell map slide.svs --store cells.zarr --out slide.geojson.gz --names names.yaml --png",
)
@click.argument("slide", type=click.Path(path_type=Path))
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The clustered cell store.")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="GeoJSON to write (.geojson or .geojson.gz) [default: SLIDE-NAME.geojson here].")  # fmt: skip
@click.option("--names", type=click.Path(path_type=Path), help="YAML of cluster names and colours.")
@click.option("--object-type", type=click.Choice(["detection", "cell"]), default="detection", show_default=True,
              help="QuPath object type; 'cell' adds the nucleus expanded by --cell-expansion as the cell.")  # fmt: skip
@click.option("--cell-expansion", type=float, default=5.0, show_default=True, help="µm, for --object-type cell.")
@click.option("--png", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Also write a PNG (PATH, or OUT-NAME.png): the thumbnail with nuclei coloured by cluster.")  # fmt: skip
@click.option("--png-size", type=int, default=2048, show_default=True, help="Longest side of the PNG's thumbnail.")
@click.option("--slide-mpp", type=float, help="Level-0 µm/px for a new slide whose metadata lacks it.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary (errors still print).")
@user_errors
def map_command(
    slide: Path, store: Path, out: Path | None, names: Path | None, object_type: str, cell_expansion: float,
    png: str | None, png_size: int, slide_mpp: float | None, force: bool, quiet: bool,
) -> None:  # fmt: skip
    """Write SLIDE's nuclei, coloured by cluster, as a GeoJSON FeatureCollection QuPath
    imports (File > Import objects, or drag the file onto the slide).

    A slide already in the store uses its cells; a new slide is extracted with the store's
    settings, embedded with the store's model and assigned to the nearest centroid (no
    retraining), and added to the store.
    """
    from wsicell.mapping import map_slide
    from wsicell.progress import stderr_console

    console = stderr_console()
    result = map_slide(
        slide, store=store, out=out, names=names, object_type=object_type,
        png=(True if png == "" else Path(png)) if png is not None else False, png_size=png_size,
        force=force, slide_mpp=slide_mpp, cell_expansion_um=cell_expansion, progress=not quiet,
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
