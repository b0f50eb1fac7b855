"""`wsicell train`: self-supervised training (CCRL; or SimCLR, SSLP) on a cell store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsicell.cli.common import user_errors
from wsicell.device import DEVICES, PRECISIONS
from wsicell.errors import ConfigError
from wsicell.train.methods.registry import METHODS, REGISTRY


def parse_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``("key=value", ...)`` -> {key: YAML-parsed value}."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example --set queue_size=4096")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: {raw!r} is not a valid value") from None
    return out


@click.command(
    "train",
    epilog="Example: wsicell train -s cells.zarr -o runs/ccrl --config configs/ccrl.yaml --epochs 50",
)
@click.option("-s", "--store", required=True, type=click.Path(path_type=Path), help="Cell store written by `wsicell extract`.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Run directory (config, metrics, checkpoints).")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML settings (default: on a CUDA GPU the paper's recipe, configs/ccrl.yaml; on a CPU "
                   "configs/nucleus-tile.yaml (the segmenter's encoder + tile features), or with --method configs/cpu-untrained.yaml for CCRL and "
                   "configs/<method>-cpu-fast.yaml for the others; with --resume: the run's config.yaml).")  # fmt: skip
@click.option("--method", type=click.Choice(list(METHODS)),
              help="Training method (default: ccrl on a CUDA GPU; on a CPU the nucleus segmenter's encoder + tile features, no training); see docs/methods.md. Without --config, its paper's batch size, learning "
                   "rate and temperature (configs/simclr.yaml, configs/sslp.yaml).")  # fmt: skip
@click.option("--epochs", type=int, help="Number of epochs.")
@click.option("--batch-size", type=int, help="Global batch size (all processes).")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--device", type=click.Choice(list(DEVICES)), help="Training device (default auto: CUDA when present).")
@click.option("--precision", type=click.Choice(list(PRECISIONS)),
              help="Autocast precision (default auto, as every command: bf16 where the hardware multiplies it natively, "
                   "fp16 on a GPU without bf16, else fp32).")  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any other setting, e.g. --set queue_size=4096 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its last checkpoint stopped.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def train_command(
    store: Path, out: Path, config_path: Path | None, method: str | None, epochs: int | None, batch_size: int | None, lr: float | None,
    device: str | None, precision: str | None, sets: tuple[str, ...], resume: bool, quiet: bool,
) -> None:  # fmt: skip
    """Train a cell encoder on the crops of a store: CCRL (contrastive cell representation
    learning, the paper's recipe) on a CUDA GPU; on a CPU, keep the nucleus segmenter's
    encoder as it is (no training: the best cell-type embedding measured on a CPU budget).

    --method simclr | sslp trains SimCLR for histopathology or SSLP (spatial neighbours as
    positives) instead, on the same backbone, data and run directory (docs/methods.md);
    --method stain-distill teaches an untrained encoder to ignore stain changes.

    Writes OUT/config.yaml, OUT/store.json, OUT/metrics.jsonl (one line per epoch) and
    OUT/last.pt after every epoch. Under `torchrun --nproc-per-node N` it trains with
    DistributedDataParallel.
    """
    from wsicell.device import choose
    from wsicell.train.config import train_config
    from wsicell.train.loop import train
    from wsicell.train.run_dir import RunDir

    run_dir = RunDir(out)
    if config_path is None and resume and run_dir.config_path.is_file():
        config_path = run_dir.config_path
    named = {"method": method, "epochs": epochs, "batch_size": batch_size, "lr": lr, "device": device, "precision": precision}
    # a named flag wins over --set only when it was given
    overrides = {**parse_sets(sets), **{k: v for k, v in named.items() if v is not None}}
    if config_path is None and not resume:
        from wsicell.atomic import check_writable

        check_writable(run_dir.config_path)  # an unwritable --out fails before the choice is announced
        config_path = default_config(method, device=str(overrides.get("device", "auto")), quiet=quiet)
    config = train_config(config_path, **overrides)  # without a file: the method's paper settings
    compute = choose(config.device, config.precision)  # a bad --device / --precision fails here
    if not quiet and int(os.environ.get("RANK", "0")) == 0:
        click.echo(compute.reason, err=True)
    run = train(store=store, out=out, config=config, resume=resume, progress=not quiet)
    if not quiet:
        kept = "the nucleus segmenter's encoder" if config.backbone == "nucleus" else "the untrained encoder"
        if config.embed_from != "crops" and config.epochs == 0:
            kept = "the run that embeds with the nucleus segmenter's " + ("encoder and " if config.embed_from == "crops+tile" else "") + "tile features"
        done = f"Trained {config.epochs} epochs" if config.epochs else f"Saved {kept}"
        click.echo(f"{done} -> {run} (next: wsicell embed --store {store} --model {run})")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: a deterministic exit
        from wsicell.train import dist

        dist.end_process(0)


def default_config(method: str | None, *, device: str, quiet: bool) -> Path | None:
    """Without --config: on a CUDA GPU the paper's recipe (None: the dataclass defaults); on a
    CPU (the paper's 500 epochs would take days there), without --method the nucleus
    segmenter's encoder as it is (the best on the train split's held-out images), with
    --method that method's CPU preset. A method without a paper uses its preset everywhere.
    Says which, in one line."""
    from wsicell.device import choose_device
    from wsicell.train.presets import CPU_DEFAULT, cpu_preset

    on_cpu = choose_device(device)[0].type == "cpu"
    if method is not None and not REGISTRY[method].paper:  # no paper recipe: its own configuration everywhere
        preset = cpu_preset(method)
        if not quiet:
            click.echo(f"Training {method} with its configuration {preset.name} (it has no paper recipe)", err=True)
        return preset
    if not on_cpu:
        if not quiet:
            click.echo(f"CUDA GPU: training {method or 'ccrl'} with its paper's recipe (--config to change it)", err=True)
        return None
    if method is None:
        if not quiet:
            click.echo(f"No CUDA GPU: the nucleus segmenter's encoder on the crops, joined with its tile features kept by "
                       f"extract ({CPU_DEFAULT.name}, no training time; on new images they cluster cell types better than "
                       "any encoder trained here on a CPU); to train: --method stain-distill or --config "
                       "configs/ccrl-cpu-fast.yaml", err=True)  # fmt: skip
        return CPU_DEFAULT
    preset = cpu_preset(method)
    if not quiet and preset.name == "cpu-untrained.yaml":
        click.echo("No CUDA GPU: an untrained, seeded encoder (configs/cpu-untrained.yaml: no training time); "
                   "to train CCRL: --config configs/ccrl-cpu-fast.yaml", err=True)  # fmt: skip
    elif not quiet:
        click.echo(f"No CUDA GPU: training {method} with the CPU configuration {preset.name} "
                   f"(minutes, not days; the paper's recipe: --config configs/{method}.yaml)", err=True)  # fmt: skip
    return preset


COMMANDS = [train_command]
