"""`wsicell embed`: per-cell embeddings from a trained run, written into the store."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import user_errors
from wsicell.device import DEFAULT_PRECISION, DEVICES, PRECISIONS


@click.command("embed", epilog="Example: wsicell embed --store cells.zarr --model runs/ccrl")
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="Cell store to annotate.")
@click.option("--model", "run", required=True, type=click.Path(path_type=Path), help="Run directory (or a checkpoint file) of `wsicell train`.")
@click.option("--encoder", type=click.Choice(["momentum", "query"]),
              help="momentum: the EMA encoder (the paper's ensembling); query: the ablation. Default: the run's embed_encoder.")
@click.option("--views", type=click.Choice(["1", "2", "4", "8"]),
              help="Mean of the normalised features of this many flipped/rotated copies of each crop "
                   "(8 = all rotations by 90 degrees and their mirror images; 1 = the crop only, 8x faster). "
                   "Default: the run's embed_views (8).")  # fmt: skip
@click.option("--batch-size", type=int, default=512, show_default=True, help="Crops per forward pass.")
@click.option("--device", type=click.Choice(list(DEVICES)), default="auto", show_default=True,
              help="auto: CUDA when present, else the CPU.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default=DEFAULT_PRECISION, show_default=True,
              help="auto (as `wsicell train`): bf16 autocast where the hardware multiplies bf16 natively (2-3x faster "
                   "on AMX CPUs; cosine similarity to fp32 features > 0.9999, clustering scores within 0.1 point, "
                   "docs/benchmarks.md), else fp32. fp32: bit-stable features.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def embed_command(
    store: Path, run: Path, encoder: str | None, views: str | None, batch_size: int, device: str, precision: str, quiet: bool
) -> None:
    """Embed every cell of the store (float16, per slide) with a trained encoder.

    The embedding's size is the run's: 448-d for the CPU default, which joins the crop's
    embedding by the segmenter's encoder (224-d) to the tile features `wsicell extract` kept
    (224-d; the run's embed_from, docs/store.md); 512-d for the paper's CCRL.

    Resumable: slides already embedded by the same checkpoint are skipped, an interrupted
    slide continues from its last written chunk.
    """
    from wsicell.device import choose
    from wsicell.embed import embed_store
    from wsicell.errors import ConfigError

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    compute = choose(device, precision)
    if not quiet:
        click.echo(compute.reason, err=True)
    n = embed_store(
        store=store, run=run, encoder=encoder, views=int(views) if views else None, batch_size=batch_size,
        device=device, precision=precision, progress=not quiet,
    )  # fmt: skip
    if not quiet:
        click.echo(f"Embedded {n} cells (model {run}) into {store}")


COMMANDS = [embed_command]
