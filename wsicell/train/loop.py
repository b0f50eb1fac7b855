"""The training loop.

It writes a run directory (``out``; its files: :class:`wsicell.train.run_dir.RunDir`) and
runs where :func:`wsicell.device.choose` says. ``--resume`` reloads ``last.pt``: model
(query + momentum branches), queue, optimiser, schedule position, epoch and every RNG
(torch, CUDA, numpy, python, augmentation); the data order is a pure function of (seed,
epoch), so the resumed run is the straight run.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsicell.config import to_mapping
from wsicell.device import autocast, choose, to_float_batch
from wsicell.errors import CheckpointError, ConfigError, StoreError, WsicellError
from wsicell.store import CellStore
from wsicell.train import checkpoint, dist
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.data import CropLoader
from wsicell.train.method import Method, build_method
from wsicell.train.run_dir import RunDir, store_fingerprint
from wsicell.types import PathLikeStr


# -- schedule ----------------------------------------------------------------------------------
def lr_at(step: int, *, config: TrainConfig, steps_per_epoch: int) -> float:
    """Linear warm-up over the warm-up epochs, then cosine decay to ``min_lr`` (per step)."""
    total = config.epochs * steps_per_epoch
    warm = config.effective_warmup_epochs * steps_per_epoch
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# -- store and RNG state -----------------------------------------------------------------------
def _open_store(store: CellStore | PathLikeStr) -> CellStore:
    return store if isinstance(store, CellStore) else CellStore.open(store)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "augment": generator.get_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["augment"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the loop ----------------------------------------------------------------------------------
def train(
    *,
    store: CellStore | PathLikeStr,
    out: PathLikeStr,
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train ``config.method`` on the crops of ``store``; returns the run directory ``out``.

    ``stop_after`` ends this call after that many epochs (a time-boxed job); the schedule
    is still the one of ``config.epochs`` and ``resume=True`` continues the run.
    """
    cells = _open_store(store)
    slides = [s for s in cells.slides() if s.n_cells > 0]
    if not slides:
        raise StoreError(f"{cells.path}: the store has no cells to train on (no complete slide with cells)")
    run = RunDir(out)
    last = run.checkpoint()
    if resume and not last.exists():
        raise CheckpointError(f"{last}: nothing to resume (no checkpoint in the run directory)")
    if not resume and last.exists():
        raise WsicellError(f"{run.path}: a run is already here; pass --resume to continue it or choose another --out")

    compute = choose(config.device, config.precision)
    device, precision = compute.device, compute.precision
    joins_group = not dist.is_distributed()  # under torchrun: join here, leave at the end
    distributed = dist.init_from_env(device.type)
    world, rank = dist.world_size(), dist.rank()
    if config.batch_size % world:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    fingerprint = store_fingerprint(cells, slides)

    loader = CropLoader(
        slides, batch_size=config.batch_size // world, seed=config.seed, shuffle_chunks=config.shuffle_chunks,
        num_workers=config.num_workers, prefetch=config.prefetch_batches, rank=rank, world_size=world,
    )  # fmt: skip
    steps = len(loader)
    if steps == 0 and config.epochs > 0:  # an untrained encoder (epochs 0) needs no batch
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {loader.n_cells} cells of {cells.path} "
            f"(batches are always full); lower --batch-size"
        )

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    method = build_method(config).to(device)
    method.setup(loader.slides)  # e.g. SSLP: spatial neighbours and its memory bank
    if config.channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = method.make_optimizer()  # Adam; SimCLR: LARS
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    augment = Augment(config)

    start_epoch = 0
    if resume:
        state = checkpoint.load(last)
        run.check_config_matches(config, saved=state["config"], source=last,
                                 remedy="--resume continues a run with its own settings (only epochs, threads and the like may change)")  # fmt: skip
        run.check_fingerprint(fingerprint, saved=state.get("store_fingerprint"), store=cells.path)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], generator)
        start_epoch = int(state["epoch"])
    if dist.is_main():
        run.write_config(config)
        run.write_fingerprint(fingerprint)
        run.reset_metrics(start_epoch)

    model: torch.nn.Module = method
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)

    end_epoch = config.epochs if stop_after is None else min(config.epochs, start_epoch + max(0, stop_after))
    bar = _Progress(enabled=progress and dist.is_main() and end_epoch > start_epoch, total=(end_epoch - start_epoch) * steps)
    try:
        for epoch in range(start_epoch, end_epoch):
            record = _train_epoch(
                model, method, loader, epoch=epoch, steps=steps, config=config, device=device, precision=precision,
                optimizer=optimizer, scaler=scaler, augment=augment, generator=generator, bar=bar,
            )  # fmt: skip
            method.after_epoch(epoch)  # e.g. SSLP re-clusters its memory bank
            if dist.is_main():
                state = {
                    "config": to_mapping(config), "epoch": epoch + 1, "step": (epoch + 1) * steps,
                    "model": method.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "rng": _rng_state(generator), "store_fingerprint": fingerprint["fingerprint"],
                    "precision": precision, "world_size": world,
                }  # fmt: skip
                checkpoint.save(last, state)
                if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
                    checkpoint.save(run.checkpoint(epoch + 1), state)
                run.append_metrics(record)
            dist.barrier()
    finally:
        bar.close()
    if config.epochs == 0 and dist.is_main():  # an untrained encoder: the seeded initial weights
        checkpoint.save(last, {
            "config": to_mapping(config), "epoch": 0, "step": 0, "model": method.state_dict(),
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": _rng_state(generator),
            "store_fingerprint": fingerprint["fingerprint"], "precision": precision, "world_size": world,
        })  # fmt: skip
    if distributed and joins_group:
        dist.shutdown()  # the caller ends the process with dist.end_process (see there)
    return run.path


def train_step(
    model: torch.nn.Module, method: Method, crops: np.ndarray, *, config: TrainConfig, device: torch.device,
    precision: str, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, augment: Augment,
    generator: torch.Generator,
) -> torch.Tensor:  # fmt: skip
    """One optimisation step on a batch of uint8 crops (BxSxSx3): views, forward, loss,
    backward, optimiser, ``after_step``. Returns the detached loss."""
    x = to_float_batch(crops, size=config.crop_size, device=device)  # x: Bx3xSxS
    views = method.views(x, augment=augment, generator=generator)
    if config.channels_last:
        views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
    with autocast(device, precision):
        output = model(*views)
    loss = method.loss(output)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    method.after_step()
    return loss.detach()


def _train_epoch(
    model: torch.nn.Module, method: Method, loader: CropLoader, *, epoch: int, steps: int, config: TrainConfig,
    device: torch.device, precision: str, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    augment: Augment, generator: torch.Generator, bar: _Progress,
) -> dict[str, Any]:  # fmt: skip
    method.train()
    # augmentation randomness is a pure function of (seed, epoch, rank): exact resume on every rank
    generator.manual_seed(int(np.random.SeedSequence([config.seed, epoch, dist.rank()]).generate_state(1)[0]))
    t0 = time.perf_counter()
    total_loss = torch.zeros((), device=device)
    crops = 0
    lr = config.lr
    for i, batch in enumerate(loader.epoch(epoch)):
        lr = lr_at(epoch * steps + i, config=config, steps_per_epoch=steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        method.before_step(batch.index)
        loss = train_step(
            model, method, batch.crops, config=config, device=device, precision=precision, optimizer=optimizer,
            scaler=scaler, augment=augment, generator=generator,
        )  # fmt: skip
        total_loss += loss
        crops += len(batch.crops) * dist.world_size()
        if (i + 1) % config.log_every_steps == 0 or i + 1 == steps:
            value = float(loss.item())
            if not math.isfinite(value):
                raise WsicellError(
                    f"training diverged: loss is {value} at epoch {epoch + 1} step {i + 1}; "
                    f"lower --lr or use --precision fp32"
                )
            bar.update(i + 1 - bar.epoch_done, epoch=epoch + 1, loss=value, lr=lr, rate=crops / (time.perf_counter() - t0))
            bar.epoch_done = i + 1
    bar.epoch_done = 0
    seconds = time.perf_counter() - t0
    mean_loss = dist.all_reduce_mean(float(total_loss.item()) / steps, device)
    return {
        "epoch": epoch + 1, "loss": round(mean_loss, 6), "lr": lr, "crops_per_s": round(crops / seconds, 2),
        "seconds": round(seconds, 3), "steps": steps, "load": round(os.getloadavg()[0], 2),
    }  # fmt: skip


class _Progress:
    """A rich progress bar with loss, lr and crops/s (or nothing when disabled)."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self.epoch_done = 0
        self._progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from wsicell.progress import stderr_console

        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[rate]:.0f} crops/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=stderr_console(),
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, epoch=0, loss=float("nan"), lr=0.0, rate=0.0)

    def update(self, advance: int, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
