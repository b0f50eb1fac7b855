"""`wsicell summarize`, `wsicell export` and `wsicell name`: a whole study's outputs."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import user_errors


def picture_path(out: Path, png: str | None) -> Path | None:
    """--png without a value: OUT's name with .png; with one: that path."""
    if png is None:
        return None
    return Path(png) if png else out.with_suffix(".png")


@click.command("summarize", epilog="Example: wsicell summarize --store cells.zarr --out study.csv --png --names names.yaml")
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The clustered cell store.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Table to write: .csv or .parquet.")
@click.option("--names", type=click.Path(path_type=Path), help="YAML of cluster names and colours.")
@click.option("--png", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Also write the composition picture (PATH, or OUT-NAME.png): a bar per slide.")  # fmt: skip
@click.option("--radius", type=float, default=20.0, show_default=True,
              help="µm: cells closer than this are neighbours for the enrichment z-scores; 0 = none.")  # fmt: skip
@click.option("--permutations", type=int, default=200, show_default=True,
              help="Label shuffles of the enrichment (squidpy's null); 0 = their exact mean and variance, no shuffles.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffles.")
@click.option("--classes", is_flag=True, help="Rows per class of the cell classifier (`wsicell name --classifier`).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary (errors still print).")
@user_errors
def summarize_command(
    store: Path, out: Path, names: Path | None, png: str | None, radius: float, permutations: int, seed: int,
    classes: bool, force: bool, quiet: bool,
) -> None:  # fmt: skip
    """One row per slide and cluster: cells, share, density per mm² of tissue, mean
    morphology, the share of nuclei the segmenter's annotator filter doubts (a cluster made
    mostly of them is likely not a cell type) and neighbourhood enrichment z-scores
    (squidpy's statistic) against every cluster. See docs/study.md for the columns."""
    from wsicell.export.output import check_output
    from wsicell.export.picture import save_png
    from wsicell.progress import progress_bars, stderr_console
    from wsicell.store import CellStore
    from wsicell.study.composition import composition_picture
    from wsicell.study.summary import SummaryConfig, summarize_store, summary_table, write_table

    config = SummaryConfig(radius_um=radius, n_perms=permutations, seed=seed)
    check_output(out, force=force)
    picture = picture_path(out, png)
    if picture is not None:
        check_output(picture, force=force)
    cells = CellStore.open(store)
    with progress_bars(not quiet, unit="cells") as bars:
        task = bars.add_task("summarize", total=cells.total_cells(), info="")
        summary = summarize_store(store, names=names, config=config, classes=classes,
                                  progress=lambda s: bars.advance(task, int(s.counts.sum())))  # fmt: skip
    table = summary_table(summary)
    write_table(table, out, force=force)
    if picture is not None:
        counts = summary.counts()
        image = composition_picture(
            [s.name for s in summary.slides], counts, styles=summary.styles,
            title=f"{cells.path.name}: {len(summary.slides)} slides, {int(counts.sum()):,} cells, k = {summary.k}",
        )  # fmt: skip
        save_png(image, picture, force=force)
    if quiet:
        return
    console = stderr_console()
    console.print(study_table(table, styles=summary.styles, label=summary.label))
    sources = sorted({s.tissue.source for s in summary.slides})
    plural = "s" if len(summary.slides) != 1 else ""
    kinds = "clusters" if summary.label == "cluster" else "classes"
    console.print(
        f"{out}: {len(table):,} rows ({len(summary.slides)} slide{plural} x {summary.k} {kinds}); tissue area from "
        + " and ".join(sources)
        + (f"; enrichment within {radius:g} µm, " + (f"{permutations} permutations" if permutations else "exact permutation moments")
           if radius > 0 else "")
        + (f"; {picture}" if picture else "")
    )
    for sid in summary.skipped:
        console.print(f"[yellow]skipped {sid}: no current {summary.label} labels (run `wsicell map` on it)")


def study_table(table, *, styles, label: str = "cluster", max_rows: int = 60):  # noqa: ANN001, ANN201 - rich imported lazily
    """The first ``max_rows`` rows: slide, cluster, cells, share, density, mean area, share of
    doubted nuclei, and the cluster it is most enriched with (highest z-score other than itself)."""
    import numpy as np
    from rich.table import Table

    z_cols = [c for c in table.columns if c.startswith("nhood_z_")]
    more = f"... {len(table) - max_rows:,} more rows in the file" if len(table) > max_rows else None
    out = Table(title=f"study: cells per slide and {label}", caption=more)
    heads = ["slide", label, "cells", "share", "per mm²", "area µm²", "doubted"] + (["z self", "most enriched with"] if z_cols else [])
    for h in heads:
        out.add_column(h, justify="left" if h in ("slide", label, "most enriched with") else "right")
    for r in table.head(max_rows).to_dict("records"):  # (itertuples would rename "class", a keyword)
        c = int(r[label])
        red, green, blue = styles[c].color
        cells = [str(r["slide"])[:32], f"[rgb({red},{green},{blue})]■[/] {r['name']}", f"{int(r['count']):,}",
                 f"{100 * r['fraction']:.1f} %", f"{r['density_per_mm2']:,.0f}",
                 "-" if np.isnan(r.get("mean_area_um2", np.nan)) else f"{r['mean_area_um2']:.1f}",
                 "-" if np.isnan(r.get("doubted_fraction", np.nan)) else f"{100 * r['doubted_fraction']:.0f} %"]  # fmt: skip
        if z_cols:
            z = np.array([r[col] for col in z_cols], float)
            others = np.where(np.arange(len(z)) == c, np.nan, z)
            best = int(np.nanargmax(others)) if np.isfinite(others).any() else None
            cells += ["-" if np.isnan(z[c]) else f"{z[c]:.1f}",
                      "-" if best is None else f"{styles[best].name} (z {others[best]:.1f})"]  # fmt: skip
        out.add_row(*cells)
    return out


@click.command("export", epilog="Example: wsicell export --store cells.zarr --anndata study.h5ad --names names.yaml")
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The clustered cell store.")
@click.option("-o", "--out", "--anndata", "out", required=True, type=click.Path(path_type=Path),
              help="AnnData file to write (.h5ad).")  # fmt: skip
@click.option("--names", type=click.Path(path_type=Path), help="YAML of cluster names and colours.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary (errors still print).")
@user_errors
def export_command(store: Path, out: Path, names: Path | None, force: bool, quiet: bool) -> None:
    """Write every clustered cell as an AnnData file for scanpy, squidpy and the rest of
    scverse: morphology as X; slide, cluster, cluster name, centroid (µm) and morphology in
    obs; the embedding (X_wsicell) and `spatial` (µm) in obsm; the clustering's provenance
    and the map's colours in uns. Streams: memory does not grow with the number of cells."""
    from wsicell.errors import ConfigError
    from wsicell.export.output import check_output
    from wsicell.progress import progress_bars, stderr_console
    from wsicell.store import CellStore
    from wsicell.study.h5ad import export_anndata

    if out.suffix.lower() != ".h5ad":
        raise ConfigError(f"{out}: the AnnData file must end in .h5ad")
    check_output(out, force=force)  # an unwritable place fails before any work or progress bar
    total = CellStore.open(store).total_cells()
    with progress_bars(not quiet, unit="cells") as bars:
        task = bars.add_task(out.name[:40], total=total, info="")
        result = export_anndata(store, out, names=names, force=force, progress=lambda m: bars.advance(task, m))
    if quiet:
        return
    console = stderr_console()
    console.print(f"{result.path}: {result.n_cells:,} cells of {result.n_slides} slide{'s' if result.n_slides != 1 else ''} in {result.seconds:.1f} s")
    for sid in result.skipped:
        console.print(f"[yellow]skipped {sid}: not assigned to the current clustering (run `wsicell map` on it)")
    if result.classes_stale:
        console.print("[yellow]no `class` column: some slides were not classified by the current classifier "
                      "(run `wsicell map SLIDE --classes` on them, or `wsicell name --classifier` again)")  # fmt: skip


@click.command(
    "name",
    epilog="Example: wsicell name --store cells.zarr --labels slide1-labels.geojson --out names.yaml --classifier",
)
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The clustered cell store.")
@click.option("--labels", "labels", multiple=True, required=True, type=click.Path(path_type=Path),
              help="QuPath GeoJSON of classified points / detections (repeatable: one file per slide).")  # fmt: skip
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Names YAML to write (for map --names).")
@click.option("--slide", help="The labels' slide (id, file name or stem) [default: from the labels file's name].")
@click.option("--max-distance", type=float, default=5.0, show_default=True,
              help="µm: a label farther than this from every nucleus is reported, not matched.")  # fmt: skip
@click.option("--classifier", is_flag=True,
              help="Also train a logistic regression on the labelled cells' embeddings and classify every cell "
                   "(then `wsicell map --classes`).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the classifier's cross-validation.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing names file.")
@click.option("-q", "--quiet", is_flag=True, help="No tables (errors still print).")
@user_errors
def name_command(
    store: Path, labels: tuple[Path, ...], out: Path, slide: str | None, max_distance: float, classifier: bool,
    seed: int, force: bool, quiet: bool,
) -> None:  # fmt: skip
    """Name the clusters from a pathologist's labels: each label (a QuPath point or
    detection with a class, exported as GeoJSON) is matched to the nearest nucleus within
    --max-distance; each cluster takes the majority class of its labelled cells. Writes the
    names YAML that `wsicell map --names` reads, and prints the confusion table."""
    from wsicell.progress import stderr_console
    from wsicell.study.naming import name_store

    naming = name_store(store, labels=list(labels), out=out, slide=slide, max_distance_um=max_distance,
                        classifier=classifier, force=force, seed=seed)  # fmt: skip
    if quiet:
        return
    console = stderr_console()
    console.print(naming_table(naming))
    console.print(f"{out}: {naming.n_matched} of {naming.n_labels} labels matched within {max_distance:g} µm")
    far = [u for u in naming.unmatched if u.status == "too far"]
    dup = [u for u in naming.unmatched if u.status == "duplicate"]
    for u in far[:20]:
        console.print(f"[yellow]not matched: {u.label} at ({u.x:.0f}, {u.y:.0f}) px in {u.slide_id}: "
                      f"nearest nucleus {u.distance_um:.1f} µm away")  # fmt: skip
    if len(far) > 20:
        console.print(f"[yellow]... and {len(far) - 20} more labels too far from any nucleus")
    if dup:
        console.print(f"[yellow]{len(dup)} labels fell on a nucleus already labelled (the nearer label kept)")
    if naming.ignored_cluster_objects:
        console.print(f"[yellow]ignored {naming.ignored_cluster_objects:,} objects classified 'Cluster N' "
                      "(wsicell's own map exported back): export only the labelled objects")  # fmt: skip
    if naming.classifier is not None:
        acc = naming.classifier.cv_accuracy
        shares = ", ".join(f"{c} {n:,}" for c, n in zip(naming.classes, naming.class_counts, strict=True))
        console.print(
            "classifier: logistic regression on the embeddings"
            + (f", cross-validated accuracy {100 * acc:.1f} %" if acc is not None else " (too few labels to cross-validate)")
            + f"; cells per class: {shares}. Map them with `wsicell map --classes`."
        )


def naming_table(naming):  # noqa: ANN001, ANN201 - rich types imported lazily
    from rich.table import Table

    table = Table(title="labels per cluster (rows) and class (columns)")
    for name in ("cluster", "named", "labels", "agreement", *naming.classes):
        table.add_column(name, justify="left" if name in ("named",) else "right")
    for c, style in enumerate(naming.styles):
        r, g, b = style.color
        row = naming.confusion[c]
        agree = "-" if row.sum() == 0 else f"{100 * naming.agreement[c]:.0f} %"
        table.add_row(f"[rgb({r},{g},{b})]■[/] {c}", style.name, str(int(row.sum())), agree, *map(str, row.tolist()))
    return table


COMMANDS = [summarize_command, export_command, name_command]
