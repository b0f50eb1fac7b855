"""`wsicell info`: what a cell store holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from wsicell.cli.common import doubted_notes, doubted_text, pick_store, user_errors


@click.command("info", epilog="Example: wsicell info --store cells.zarr --json")
@click.argument("legacy_store", required=False, metavar="[STORE]", type=click.Path(path_type=Path))
@click.option("-s", "--store", type=click.Path(path_type=Path), help="The cell store.  [required]")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
@user_errors
def info_command(legacy_store: Path | None, store: Path | None, as_json: bool) -> None:
    """Show the slides of a cell store: status, cells, resolution, size, settings, and
    the embedding/clustering state. (A positional STORE still works; -s/--store is the name.)"""
    store = pick_store(store, legacy_store, legacy_name="a positional STORE", quiet=as_json)
    from wsicell.store_summary import store_summary

    summary = store_summary(store)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{store}: {len(summary['slides'])} slide(s), {summary['cells']:,} cells in complete slides")
    for name in ("slide", "status", "cells", "doubted", "mpp", "size (px)", "tiles", "seconds", "embedding", "clusters"):
        table.add_column(name, justify="right" if name in ("cells", "doubted", "mpp", "tiles", "seconds") else "left")
    for s in summary["slides"]:
        table.add_row(
            s["name"] or s["id"],
            "[green]complete" if s["status"] == "complete" else "[yellow]incomplete",
            f"{s['cells']:,}",
            doubted_text(s["doubted"]),
            f"{s['mpp']:.4g}" if s["mpp"] else "-",
            f"{s['width']} x {s['height']}",
            str(s["tiles"] if s["tiles"] is not None else "-"),
            f"{s['seconds']:.1f}" if s["seconds"] is not None else "-",
            "x".join(map(str, s["embedding"])) if s["embedding"] else "-",
            "yes" if s["clustered"] else "-",
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for line in doubted_notes([(s["name"] or s["id"], s["doubted"]) for s in summary["slides"]]):
        console.print(line, highlight=False)
    settings = summary["extract_settings"]
    if settings:
        from wsicell.segment.config import describe_settings

        console.print(
            f"extraction: {settings['mpp']} µm/px, tiles {settings['tile_size']} px, tissue {settings['tissue_method']}, "
            f"crops {settings['crop_size']} px x {settings['window_scale']} nucleus size, segmenter "
            + describe_settings(settings.get("segment", {}))
        )
    with_tiles = [s for s in summary["slides"] if s["tile_features"]]
    if with_tiles:  # what `wsicell embed` joins to the crops by default (docs/store.md)
        console.print(f"tile features: {with_tiles[0]['tile_features']}-d, {len(with_tiles)} of {len(summary['slides'])} slide(s)")
    clustering = summary["clustering"]
    if clustering:
        console.print("clustering: " + ", ".join(f"{k}={v}" for k, v in clustering.items() if not isinstance(v, dict | list)))
        context = clustering.get("context")
        if context:
            console.print(f"  with tissue context: neighbours within {context['radius_um']:g} µm, weight {context['weight']:g}")


COMMANDS = [info_command]
