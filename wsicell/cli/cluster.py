"""`wsicell cluster`: cell types from every cell's embedding and morphology in the store."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import DefaultFrom, user_errors


def parse_k(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an integer nor 'auto'") from None


CLUSTER = "wsicell.cluster.config:ClusterConfig"  # option defaults shown in --help come from here


@click.command("cluster", epilog="Example: wsicell cluster --store cells.zarr -k auto --k-max 15 --context-radius 20")
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="The cell store (embedded).")
@click.option("-k", "k", metavar="K|auto", help="Number of clusters, or 'auto' (elbow rule).", cls=DefaultFrom, default_from=(CLUSTER, "k"))
@click.option("--algorithm", type=click.Choice(["spectral", "kmeans"]),
              help="spectral = partition the cells' nearest-neighbour graph; kmeans = FAISS k-means.",
              cls=DefaultFrom, default_from=(CLUSTER, "algorithm"))  # fmt: skip
@click.option("--morphology-weight", type=float, metavar="W",
              help="Share of the morphology measurements in each cell's vector, 0..1 (0 = the embedding alone).",
              cls=DefaultFrom, default_from=(CLUSTER, "morphology_weight"))  # fmt: skip
@click.option("--k-max", type=int, help="Largest k tried by -k auto.", cls=DefaultFrom, default_from=(CLUSTER, "k_max"))
@click.option("--k-min", type=int, help="Smallest k tried by -k auto.", cls=DefaultFrom, default_from=(CLUSTER, "k_min"))
@click.option("--iterations", type=int, help="k-means iterations.", cls=DefaultFrom, default_from=(CLUSTER, "iterations"))
@click.option("--restarts", type=int, help="k-means runs from different seeds; the best is kept.", cls=DefaultFrom, default_from=(CLUSTER, "restarts"))
@click.option("--seed", type=int, help="Random seed (sample, initialisation).", cls=DefaultFrom, default_from=(CLUSTER, "seed"))
@click.option("--metric", type=click.Choice(["cosine", "l2"]), help="cosine = unit-normalised vectors.", cls=DefaultFrom, default_from=(CLUSTER, "metric"))
@click.option("--sample-size", type=int, help="Cells the clustering is fitted on (all are assigned).", cls=DefaultFrom, default_from=(CLUSTER, "sample_size"))
@click.option(
    "--context-radius", type=float, metavar="UM",
    help="Blend in the mean embedding of the neighbours within UM µm before clustering; 0 = off.",
    cls=DefaultFrom, default_from=(CLUSTER, "context_radius_um"),
)  # fmt: skip
@click.option("--context-weight", type=float, help="Weight of the neighbours' mean in --context-radius.", cls=DefaultFrom, default_from=(CLUSTER, "context_weight"))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML file of cluster settings.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or tables (errors still print).")
@user_errors
def cluster_command(
    store: Path, k: str | None, algorithm: str | None, morphology_weight: float | None, k_max: int | None, k_min: int | None, iterations: int | None,
    restarts: int | None, seed: int | None, metric: str | None, sample_size: int | None,
    context_radius: float | None, context_weight: float | None, config_path: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """Group the cells of the store into clusters (cell types).

    Each cell is described by its learned embedding joined with its morphology (size, shape,
    stain measurements); a random sample of cells is clustered (spectral clustering of their
    nearest-neighbour graph, or k-means), then every cell gets the cluster of its nearest
    sampled cells (k-means: its nearest centroid). Writes `cluster` and `distance` per cell
    and the fitted model (with the embedding model, k and seed) into the store. FAISS runs
    on the GPU when it sees one.

    With --context-radius, each cell is clustered by its embedding blended with the mean
    embedding of the cells around it (tissue context); `wsicell map` then does the same.
    """
    from wsicell.cluster import ClusterConfig, cluster_store, gpu_count
    from wsicell.config import load_config
    from wsicell.progress import progress_bars, stderr_console
    from wsicell.store import CellStore

    config = load_config(
        ClusterConfig, config_path, k=parse_k(k), algorithm=algorithm, morphology_weight=morphology_weight, k_max=k_max, k_min=k_min, iterations=iterations,
        restarts=restarts, seed=seed, metric=metric, sample_size=sample_size,
        context_radius_um=context_radius, context_weight=context_weight,
    )  # fmt: skip
    cells = CellStore.open(store, mode="r+")
    console = stderr_console()
    tasks: dict[str, int] = {}
    with progress_bars(not quiet, unit="") as bars:

        def progress(step: str, advance: int, total: int) -> None:
            if total:
                tasks[step] = bars.add_task(step, total=total, info="")
            elif step in tasks:
                bars.advance(tasks[step], advance)

        result = cluster_store(cells, config=config, progress=progress)
    if quiet:
        return
    device = f"GPU x{gpu_count()}" if result.gpu else "CPU"
    if result.choice is not None:
        console.print(k_curve_table(result.choice))
    console.print(cluster_table(result))
    console.print(
        f"k = {result.k} ({result.algorithm}, morphology weight {config.morphology_weight:g}, {result.metric}) on "
        f"{device}: fitted on {result.n_train:,} of {result.n_cells:,} "
        f"cells; objective (sum of squared distances) {result.objective_sample:,.1f} on the sample, "
        f"{result.objective_all:,.1f} over all cells (mean {result.objective_all / result.n_cells:.4f}). "
        + ", ".join(f"{name} {sec:.1f} s" for name, sec in result.seconds.items())
    )


def k_curve_table(choice):  # noqa: ANN001, ANN201 - rich types imported lazily
    from rich.table import Table

    table = Table(title=f"-k auto: elbow of the explained variance ({choice.n_points:,} cells)",
                  caption="★ best silhouette (for information; the elbow is the rule, see docs/clustering.md)")
    for name in ("k", "objective", "explained variance", "", "silhouette", "choice"):
        table.add_column(name, justify="left" if name in ("", "choice") else "right")
    best = max(p.explained for p in choice.curve) or 1.0
    for p in choice.curve:
        bar = "█" * max(0, round(12 * p.explained / best))
        mark = "[bold green]◀ elbow[/]" if p.k == choice.k else ""
        if p.k == choice.silhouette_k:
            mark += " ★"
        table.add_row(str(p.k), f"{p.objective:,.1f}", f"{p.explained:.3f}", bar, f"{p.silhouette:.3f}", mark)
    return table


def cluster_table(result, *, max_slides: int = 8):  # noqa: ANN001, ANN201
    """Cluster, size, share and share per slide (the first ``max_slides`` slides)."""
    import numpy as np
    from rich.table import Table

    from wsicell.export.names import default_styles

    sizes = {sid: np.asarray(v) for sid, v in result.sizes.items()}
    total = sum(sizes.values())
    n = int(total.sum())
    table = Table(title=f"{result.k} clusters, {n:,} cells")
    for name in ("cluster", "size", "share"):
        table.add_column(name, justify="right")
    shown = list(sizes)[:max_slides]
    for sid in shown:
        table.add_column(f"{sid}\n(% of slide)", justify="right")
    if len(sizes) > max_slides:
        table.add_column(f"+{len(sizes) - max_slides} slides", justify="right")
    for c, style in enumerate(default_styles(result.k)):
        r, g, b = style.color
        row = [f"[rgb({r},{g},{b})]■[/] {c}", f"{int(total[c]):,}", f"{100 * total[c] / max(n, 1):.1f} %"]
        row += [f"{100 * sizes[s][c] / max(int(sizes[s].sum()), 1):.1f}" for s in shown]
        if len(sizes) > max_slides:
            row.append("")
        table.add_row(*row)
    return table


COMMANDS = [cluster_command]
