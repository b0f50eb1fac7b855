"""`wsicell extract`: slides -> nuclei in a Zarr cell store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from wsicell.cli.common import DefaultFrom, doubted_notes, doubted_text, pick_store, user_errors

EXTRACT = "wsicell.extract.config:ExtractConfig"  # option defaults shown in --help come from here


@click.command(
    "extract",
    epilog="Example: wsicell extract slides/ more/slide.svs --store cells.zarr --mpp 0.5 --workers 2",
)
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-s", "--store", type=click.Path(path_type=Path), help="The cell store to write (a .zarr folder).  [required]")
@click.option("-o", "--out", "legacy_out", type=click.Path(path_type=Path), hidden=True)  # deprecated spelling of --store
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML file of extraction settings.")
@click.option("--preset", type=click.Choice(["balanced", "quality"]),
              help="Better nuclei for more time, instead of a config file: balanced (the default segmenter with "
                   "test-time flips and the annotator filter, ~2.6x the default's time) or quality (the same "
                   "with hvnet-fine, ~8x). Other options still apply.")  # fmt: skip
@click.option("--mpp", type=float, help="Working resolution in µm/px.", cls=DefaultFrom, default_from=(EXTRACT, "mpp"))
@click.option("--slide-mpp", type=float, help="Level-0 µm/px for slides whose metadata lacks it or is wrong.")
@click.option("--tile-size", type=int, help="Tile side in working px, overlap included.", cls=DefaultFrom, default_from=(EXTRACT, "tile_size"))
@click.option("--overlap", type=int, help="Tile overlap per side in px [default: from the largest nucleus].")
@click.option("--tissue", type=click.Choice(["hsv", "otsu", "none"]), help="Tissue detection.", cls=DefaultFrom, default_from=(EXTRACT, "tissue_method"))
@click.option("--crop-size", type=int, help="Side of the stored nucleus crops in px.", cls=DefaultFrom, default_from=(EXTRACT, "crop_size"))
@click.option("--window-scale", type=float, help="Crop window = this x nucleus size.", cls=DefaultFrom, default_from=(EXTRACT, "window_scale"))
@click.option("--segmenter", type=click.Choice(["watershed", "hvnet", "hvnet-fine", "tiatoolbox"]), help="Nucleus segmenter: hvnet (multi-task U-Net + HoVer-Net post-processing on OpenVINO, else torch; weights CC BY-NC-SA 4.0), hvnet-fine (hvnet + a 0.25 µm/px branch: better outlines, more nuclei, about half the extraction speed; the presets add test-time flips and the annotator filter), watershed (the earlier CoNSeP-only U-Net + watershed) or tiatoolbox.", cls=DefaultFrom, default_from=(EXTRACT, "segment.method"))
@click.option("--weights", type=click.Path(path_type=Path), help="tiatoolbox: a local weights file.")
@click.option("--scheduler", metavar="ADDRESS", help="A dask.distributed scheduler (e.g. tcp://host:8786).")
@click.option("--workers", type=int, help="Local worker threads [default: all cores].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary (errors still print).")
@user_errors
def extract_command(
    slides: tuple[Path, ...], store: Path | None, legacy_out: Path | None, config_path: Path | None,
    preset: str | None, mpp: float | None, slide_mpp: float | None,
    tile_size: int | None, overlap: int | None, tissue: str | None, crop_size: int | None,
    window_scale: float | None, segmenter: str | None, weights: Path | None, scheduler: str | None,
    workers: int | None, quiet: bool,
) -> None:  # fmt: skip
    """Find every nucleus of SLIDES (files or folders) and store crops, outlines and
    measurements in the cell store --store.

    Rerunning skips slides already complete in the store and redoes interrupted ones.
    Exit status is 1 if any slide failed (the others are still extracted).
    """
    from wsicell.config import from_mapping, read_yaml
    from wsicell.extract import ExtractConfig, extract_slides
    from wsicell.progress import stderr_console

    if preset and config_path:
        raise click.UsageError("give --preset or --config, not both (a preset is a config file: copy and edit it)")
    if preset:
        from wsicell.extract.presets import preset_path

        config_path = preset_path(preset)
    out = pick_store(store, legacy_out, legacy_name="--out", quiet=quiet)
    values = read_yaml(config_path) if config_path else {}
    overrides = {"mpp": mpp, "tile_size": tile_size, "overlap": overlap, "tissue_method": tissue,
                 "crop_size": crop_size, "window_scale": window_scale}  # fmt: skip
    values.update({k: v for k, v in overrides.items() if v is not None})
    segment = dict(values.get("segment") or {})
    if segmenter is not None:
        segment["method"] = segmenter
    if weights is not None:
        segment["weights"] = str(weights)
    if segment:
        values["segment"] = segment
    config = from_mapping(ExtractConfig, values, source=str(config_path or "options"))
    report = extract_slides(list(slides), store=out, config=config, slide_mpp=slide_mpp,
                            scheduler=scheduler, workers=workers, progress=not quiet)  # fmt: skip
    console = stderr_console()
    if not quiet:
        console.print(summary_table(report))
        for line in doubted_notes([(Path(s.path).name, s.doubted_share) for s in report.slides if s.status != "failed"]):
            console.print(line, highlight=False)
    for failed in report.failed:
        click.echo(f"Error: {failed.error}", err=True)
    if not report.ok:
        sys.exit(1)


def summary_table(report):  # noqa: ANN001, ANN201 - rich types imported lazily
    from rich.table import Table

    table = Table(title=f"extract -> {report.store}")
    for name, justify in (("slide", "left"), ("status", "left"), ("cells", "right"),
                          ("doubted", "right"), ("tiles", "right"), ("seconds", "right"), ("cells/s", "right")):  # fmt: skip
        table.add_column(name, justify=justify)
    styles = {"done": "green", "skipped": "cyan", "failed": "red"}
    for s in report.slides:
        rate = f"{s.n_cells / s.seconds:,.0f}" if s.status == "done" and s.seconds > 0 else "-"
        table.add_row(Path(s.path).name, f"[{styles[s.status]}]{s.status}", f"{s.n_cells:,}",
                      doubted_text(s.doubted_share), str(s.n_tiles), f"{s.seconds:.1f}", rate)  # fmt: skip
    return table


COMMANDS = [extract_command]
