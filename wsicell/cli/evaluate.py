"""`wsicell evaluate`: the CCRL paper's CoNSeP protocol on labelled tiles."""

from __future__ import annotations

from pathlib import Path

import click

from wsicell.cli.common import user_errors
from wsicell.errors import ConfigError

BASELINE_CHOICES = ("morphology", "manual", "random", "imagenet")


def parse_baselines(value: str) -> list[str]:
    """``all`` | ``none`` | a comma-separated list of baseline names."""
    value = value.strip().lower()
    if value == "all":
        return list(BASELINE_CHOICES)
    if value in ("", "none"):
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in BASELINE_CHOICES]
    if unknown:
        raise ConfigError(f"--baselines: unknown {', '.join(unknown)}; choose all, none or from {', '.join(BASELINE_CHOICES)}")
    return names


@click.command(
    "evaluate",
    epilog="Example: wsicell evaluate --dataset ../shared/data/consep-tiles --config configs/ccrl-cpu-fast.yaml "
    "--seeds 3 --baselines all --ablations --out results/consep",
)
@click.option("--dataset", required=True, type=click.Path(path_type=Path),
              help="Labelled tiles: DATASET/{train,test}/NAME.jpg + NAME.npz (inst, type, centroid).")  # fmt: skip
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Training settings (YAML), trained once per seed, e.g. configs/ccrl-cpu-fast.yaml (required unless --model).")  # fmt: skip
@click.option("--model", type=click.Path(path_type=Path),
              help="Evaluate this trained run (or checkpoint) instead of training; seeds then vary k-means only.")  # fmt: skip
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True, help="Number of seeds (0..N-1).")
@click.option("--baselines", default="all", show_default=True,
              help="all, none, or a comma-separated list of: " + ", ".join(BASELINE_CHOICES) + ".")  # fmt: skip
@click.option("--ablations", is_flag=True, help="Also train the paper's ablations (w/o local-global, w/o predictor) and score the query encoder.")
@click.option("--ablation-seeds", type=click.IntRange(1), help="Train the ablations for only the first N seeds (default: all).")
@click.option("--curve/--no-curve", default=True, show_default=True,
              help="Score every saved epoch checkpoint of the first seed's run (accuracy vs training time).")  # fmt: skip
@click.option("--imagenet-weights", type=click.Path(path_type=Path),
              help="Local torchvision ResNet-18 ImageNet weights (.pth); never downloaded.")  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a training setting, e.g. --set epochs=10 (repeatable).")
@click.option("--context-radius", type=click.FloatRange(min=0), default=20.0, show_default=True, metavar="UM",
              help="Also score every representation with tissue context: each cell blended with the mean of its "
                   "neighbours within UM µm (as `wsicell cluster --context-radius`); 0 = off.")  # fmt: skip
@click.option("--context-weight", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Weight of the neighbours' mean with --context-radius.")  # fmt: skip
@click.option("--protocol", type=click.Choice(["inductive", "transductive"]), default="inductive", show_default=True,
              help="inductive: train on the train split only; transductive: train on the train and test images "
                   "together, labels unused (what the product does: it trains on the slides it maps).")  # fmt: skip
@click.option("--cluster-config", type=click.Path(path_type=Path),
              help="`wsicell cluster` settings (YAML) for the \"→ wsicell cluster\" rows [default: its defaults].")
@click.option("--nuclei", type=click.Choice(["labelled", "segmented"]), default="labelled", show_default=True,
              help="Score the dataset's labelled nuclei (the paper's protocol), or the nuclei `wsicell extract` finds "
                   "(--segmenter), each matched to a labelled nucleus within 3 µm; unmatched ones are left out.")  # fmt: skip
@click.option("--segmenter", type=click.Choice(["watershed", "hvnet", "hvnet-fine"]),
              help="Segmenter for --nuclei segmented [default: the extraction's default].")  # fmt: skip
@click.option("--extract-config", "extract_config", type=click.Path(path_type=Path),
              help="For --nuclei segmented: segment as this `wsicell extract` config does (its `segment:` settings, "
                   "e.g. configs/extract-quality.yaml), instead of --segmenter.")  # fmt: skip
@click.option("--scale", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Resize the tiles by this factor first: 0.5 shows a 40x dataset as 20x.")  # fmt: skip
@click.option("--train-split", default="train", show_default=True, help="Split trained on (labels unused).")
@click.option("--test-split", default="test", show_default=True, help="Split embedded, clustered and scored.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Folder for cell stores, runs, results.json and results.md (reused when run again).")  # fmt: skip
# -- linear evaluation (issue 6, docs/methods.md) --
@click.option("--linear", is_flag=True,
              help="Also fit a logistic-regression probe on the train split's frozen embeddings and report macro F1 "
                   "on the test split (OUT/linear.json).")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Only the final table.")
@user_errors
def evaluate_command(
    dataset: Path, config_path: Path | None, model: Path | None, seeds: int, baselines: str, ablations: bool,
    ablation_seeds: int | None, curve: bool, imagenet_weights: Path | None, sets: tuple[str, ...],
    context_radius: float, context_weight: float, protocol: str, cluster_config: Path | None, nuclei: str, segmenter: str | None,
    extract_config: Path | None, scale: float, train_split: str, test_split: str, out: Path, linear: bool, quiet: bool,
) -> None:  # fmt: skip
    """Score cell representations on labelled tiles, as in the CCRL paper (CoNSeP).

    Trains CCRL on the train split without labels (once per seed), embeds the test split,
    clusters it with k-means (k = number of classes) and reports AMI, ARI, purity and
    Hungarian-matched accuracy (mean ± std over seeds) beside the paper's table, with the
    baselines (morphology, SIFT+LBP, random encoder, ImageNet when its weights are local)
    and, with --ablations, the paper's ablations. Each representation is also scored with
    tissue context (--context-radius; 0 turns it off) and as `wsicell cluster` clusters it
    (joined with the cells' morphology, spectral clustering: "→ wsicell cluster" rows), with
    the label agreement of each cell's 10 nearest neighbours as a diagnostic.
    With --nuclei segmented (and --scale 0.5 for 20x) it scores what a user's slides give:
    the nuclei the segmenter finds, matched to the labelled ones.
    Writes OUT/results.md and OUT/results.json.
    """
    import torch

    from wsicell.atomic import output_folder
    from wsicell.cli.train import parse_sets
    from wsicell.cluster import ClusterConfig
    from wsicell.cluster.context import Context
    from wsicell.config import load_config
    from wsicell.evaluate.nuclei import Nuclei
    from wsicell.evaluate.protocol import run_protocol
    from wsicell.evaluate.report import markdown
    from wsicell.segment.config import SegmentConfig
    from wsicell.train.config import train_config

    if (segmenter is not None or extract_config is not None) and nuclei != "segmented":
        raise ConfigError("--segmenter and --extract-config choose the segmentation of --nuclei segmented")
    if segmenter is not None and extract_config is not None:
        raise ConfigError("give --segmenter or --extract-config, not both")
    if extract_config is not None:
        from wsicell.extract import ExtractConfig

        seg = load_config(ExtractConfig, extract_config).segment
    else:
        seg = None if nuclei == "labelled" else SegmentConfig() if segmenter is None else SegmentConfig(method=segmenter)
    names = parse_baselines(baselines)
    output_folder(out)  # an unwritable --out fails before any work
    if model is not None and (config_path is not None or sets or ablations):
        raise ConfigError("--model evaluates a trained run: it cannot be combined with --config, --set or --ablations")
    config = None
    if model is None:
        if config_path is None:
            raise ConfigError("give --config (e.g. configs/ccrl-cpu-fast.yaml) or --model RUN")
        config = train_config(config_path, **parse_sets(sets))
    if config is not None and config.threads:
        torch.set_num_threads(config.threads)

    def log(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    results = run_protocol(
        dataset=dataset, out=out, config=config, seeds=list(range(seeds)), baselines=names, ablations=ablations,
        ablation_seeds=ablation_seeds, model=model, with_curve=curve, imagenet_weights=imagenet_weights, train_split=train_split,
        test_split=test_split, context=Context(radius_um=context_radius, weight=context_weight), protocol=protocol,
        product=load_config(ClusterConfig, cluster_config, k=2), nuclei=Nuclei(segmenter=seg, scale=scale),
        progress=not quiet, log=log,
    )  # fmt: skip
    click.echo(markdown(results))
    if linear:  # issue 6: the linear probe of the trained run(s), on the same split stores
        import json

        from wsicell.atomic import write_text_atomic
        from wsicell.evaluate.linear import linear_markdown, probe_runs

        run_dir = out / ("runs-transductive" if protocol == "transductive" else "runs")
        runs = [model] if model is not None else [run_dir / f"{config.method}-seed{s}" for s in range(seeds)]
        rows = probe_runs(runs, train_store=out / "cells" / f"{train_split}.zarr", test_store=out / "cells" / f"{test_split}.zarr")
        write_text_atomic(out / "linear.json", json.dumps(rows, indent=1) + "\n")
        click.echo("\nLinear evaluation (logistic regression on frozen embeddings, train -> test):\n" + linear_markdown(rows))
    if not quiet:
        click.echo(f"Wrote {out / 'results.md'} and {out / 'results.json'}", err=True)


COMMANDS = [evaluate_command]
