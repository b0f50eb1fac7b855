"""Cell embeddings from a trained run: backbone features (``embed_stages``), float16, per slide in the store.

A run's ``embed_from`` says what an embedding is made of: the run's network on the crops, the
cells' ``tile_features`` (which ``wsicell extract`` keeps from the segmenter's own network call,
``wsicell.segment.tile_features``; copied, no network runs here), or both joined, crops first
(``crops+tile``, the CPU default, ``configs/nucleus-tile.yaml``).

``embed_store`` writes ``embedding`` (n, D) float16, chunks (4096, D), into every complete
slide group, in whole chunks, and is resumable: a slide's ``embedding_rows`` attribute
records how far it got and ``embedding_complete`` marks it done, both tied to the sha256 of
the checkpoint that produced them (a slide done with the same model is skipped; another
model redoes it). The store's root attribute ``embedding_model`` names the run, checkpoint,
sha256 and encoder, so ``wsicell map`` can embed new slides with the same model.

A run is read through its published parts only: the run directory (``RunDir``), its
checkpoint format, its ``TrainConfig`` and the method registry that builds the model; the
device and precision come from :mod:`wsicell.device`, as in training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsicell.config import from_mapping
from wsicell.device import (
    DEFAULT_PRECISION,
    autocast,
    choose_device,
    choose_precision,
    to_float_batch,
)
from wsicell.errors import CheckpointError, StoreError
from wsicell.progress import progress_bars
from wsicell.provenance import EMBEDDING_MODEL, EmbeddingModel, SlideEmbedding
from wsicell.store import CellStore
from wsicell.train import checkpoint
from wsicell.train.backbone import embedding_module
from wsicell.train.config import EMBED_VIEWS, TILE_FEATURES_DIM, TrainConfig
from wsicell.train.method import build_method
from wsicell.train.run_dir import RunDir
from wsicell.types import PathLikeStr

EMBED_CHUNK = 4096
ENCODERS = ("momentum", "query")
VIEWS = EMBED_VIEWS
"""Test-time views: 1 = the crop as it is; 2 = and its mirror image; 4 = its rotations by
0/90/180/270 degrees; 8 = the rotations of the crop and of its mirror image (the dihedral
group). With more than one view the embedding is the mean of the L2-normalised features of
the views: a nucleus has no orientation, and averaging removes what the network has not
learned to ignore (docs/results.md measures it)."""


def load_encoder(
    run_or_checkpoint: PathLikeStr, *, encoder: str | None = "momentum", device: str | torch.device = "auto"
) -> tuple[nn.Module, TrainConfig]:
    """The trained backbone (eval mode, on ``device``) and the run's config.

    The module maps crops to the run's embedding: the backbone itself, or its
    ``PooledStages`` when the run's ``embed_stages`` are not just the last stage.
    ``encoder="momentum"`` is the paper's ensembling (the EMA encoder); ``"query"`` the
    ablation; ``None`` the run's ``embed_encoder``. The module has a ``crop_size``
    attribute: crops are resized to it.
    """
    if encoder is not None and encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    path = RunDir.resolve_checkpoint(run_or_checkpoint)
    state = checkpoint.load(path)
    config = from_mapping(TrainConfig, dict(state["config"]), source=str(path))
    method = build_method(config)
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model of its config ({str(exc).splitlines()[0]})") from None
    dev = device if isinstance(device, torch.device) else choose_device(device)[0]
    backbone = embedding_module(method.encoder(encoder or config.embed_encoder), config.embed_stages).to(dev).eval()
    backbone.crop_size = config.crop_size  # type: ignore[assignment]
    return backbone, config


@torch.no_grad()
def embed_crops(
    model: nn.Module,
    crops: np.ndarray,
    *,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    crop_size: int | None = None,
    precision: str = DEFAULT_PRECISION,
    views: int = 1,
) -> np.ndarray:
    """Backbone features of uint8 crops NxSxSx3 -> NxD float32 (model in eval mode).

    Crops are resized to ``crop_size`` (default: the model's ``crop_size`` attribute set by
    :func:`load_encoder`, else their own size). ``precision`` as :func:`wsicell.device.choose`
    (``auto``, the default of every command: bf16 autocast where the hardware multiplies
    bf16 natively, 1.2-3x faster on AMX CPUs depending on the stem; features within cosine
    0.9999 of fp32 and clustering scores within 0.1 point, docs/benchmarks.md); ``fp32``
    for bit-stable features.
    ``views`` (:data:`VIEWS`) > 1 averages the normalised features of flipped/rotated copies.
    """
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be (N, S, S, 3) uint8, got {crops.shape} {crops.dtype}")
    dev = next(model.parameters()).device if device is None else torch.device(device)
    size = crop_size or getattr(model, "crop_size", None) or crops.shape[1]
    precision = choose_precision(precision, dev)[0]
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(crops), batch_size):
        x = to_float_batch(crops[start : start + batch_size], size=size, device=dev)  # x: Bx3xSxS
        with autocast(dev, precision):
            out.append(_features(model, x, views).cpu().numpy())  # B x D
    model.train(was_training)
    dim = getattr(model, "out_dim", 0)
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def _features(model: nn.Module, x: torch.Tensor, views: int) -> torch.Tensor:
    """Bx3xSxS -> BxD float32: the features of ``x``, or the mean normalised features of its views."""
    if views == 1:
        return model(x).float()
    total = torch.zeros(())
    for mirror in (False, True) if views in (2, 8) else (False,):
        y = x.flip(3) if mirror else x
        for k in range(4 if views >= 4 else 1):
            total = total + F.normalize(model(torch.rot90(y, k, (2, 3))).float(), dim=1)  # B x D
    return total / views


def embed_store(
    *,
    store: CellStore | PathLikeStr,
    run: PathLikeStr,
    encoder: str | None = None,
    batch_size: int = 512,
    device: str = "auto",
    progress: bool = True,
    precision: str = DEFAULT_PRECISION,
    views: int | None = None,
) -> int:
    """Embed every complete slide of ``store`` with ``run``; returns the number of cells
    embedded by this call (0 when every slide is already done with this model and views).

    ``encoder`` and ``views`` default to the run's ``embed_encoder`` and ``embed_views``.
    """
    if views is not None and views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    cells = store if isinstance(store, CellStore) else CellStore.open(store, mode="r+")
    ckpt = RunDir.resolve_checkpoint(run).resolve()
    model, config = load_encoder(ckpt, encoder=encoder, device=device)
    precision = choose_precision(precision, next(model.parameters()).device)[0]  # recorded as resolved
    encoder = encoder or config.embed_encoder
    uses_crops, uses_tiles = config.embed_from != "tile", config.embed_from != "crops"
    views = (views or config.embed_views) if uses_crops else 1  # tile features have no views
    dim = config.cell_embedding_dim
    record = EmbeddingModel(
        run=str(RunDir.of(ckpt).path), checkpoint=str(ckpt), sha256=checkpoint.sha256(ckpt), encoder=encoder, dim=dim,
        crop_size=config.crop_size if uses_crops else None, precision=precision, views=views, source=config.embed_from,
    )  # fmt: skip
    if uses_tiles:
        check_tile_features(cells)
    todo = []
    for s in cells.slides():
        state = SlideEmbedding.from_attrs(s.attrs)
        done = state.made_with(record)
        if done and state.complete:
            continue
        start = state.rows if done and s.has("embedding") else 0
        todo.append((s, start))
    total = sum(s.n_cells - start for s, start in todo)
    embedded = 0
    with progress_bars(progress and total > 0, unit="cells") as bars:
        task = bars.add_task("embed", total=total, info="")
        for s, start in todo:
            if start == 0:
                s.set_attrs(**SlideEmbedding(model=record.sha256, encoder=encoder, views=views).to_attrs())
                arr = s.create_array(
                    "embedding", shape=(s.n_cells, dim), dtype="float16", chunks=(EMBED_CHUNK, dim), attrs=record.array_attrs()
                )  # fmt: skip
            else:
                arr = s.array("embedding")
            for a in range(start, s.n_cells, EMBED_CHUNK):  # whole embedding chunks
                b = min(a + EMBED_CHUNK, s.n_cells)
                parts = []  # crops first, then tile features (embed_from)
                if uses_crops:
                    crops = np.asarray(s.array("crops")[a:b])
                    parts.append(embed_crops(model, crops, batch_size=batch_size, precision=precision, views=views))
                if uses_tiles:
                    parts.append(np.asarray(s.array("tile_features")[a:b], np.float32))
                arr[a:b] = np.concatenate(parts, axis=1).astype(np.float16)
                s.set_attrs(embedding_rows=b)
                embedded += b - a
                bars.advance(task, b - a)
            s.set_attrs(embedding_complete=True)
    cells.root.attrs[EMBEDDING_MODEL] = record.to_attrs()
    return embedded


def check_tile_features(cells: CellStore) -> None:
    """StoreError naming every complete slide with cells but no ``tile_features`` of width
    ``TILE_FEATURES_DIM`` (a run with ``embed_from`` tile or crops+tile embeds with them)."""
    dim = TILE_FEATURES_DIM
    missing = [s for s in cells.slides() if s.n_cells and (not s.has("tile_features") or s.array("tile_features").shape != (s.n_cells, dim))]
    if missing:
        names = ", ".join(f"{s.id} ({s.attrs.get('settings', {}).get('segment', {}).get('method', 'unknown')} segmenter)" for s in missing)
        raise StoreError(
            f"{cells.path}: no {dim}-d tile features for {len(missing)} slide(s): {names}. This run embeds with the "
            "HV-net's encoder features that `wsicell extract` keeps; re-extract those slides with the default "
            "segmenter (hvnet), or embed with a crops-only run (wsicell train --config configs/nucleus-untrained.yaml)"
        )


def embed_cells(run_or_checkpoint: PathLikeStr, *, crops: np.ndarray, tile_features: np.ndarray | None,
                encoder: str | None = None, views: int | None = None) -> np.ndarray:  # fmt: skip
    """Embeddings (n x D float32) of cells held in memory, as :func:`embed_store` makes them
    (``embed_from``): the run's network on ``crops`` (``views`` defaults to the run's), the
    cells' ``tile_features``, or both joined."""
    model, config = load_encoder(run_or_checkpoint, encoder=encoder, device="cpu")
    parts = []
    if config.embed_from != "tile":
        parts.append(embed_crops(model, crops, views=views or config.embed_views))
    if config.embed_from != "crops":
        if tile_features is None or tile_features.shape != (len(crops), TILE_FEATURES_DIM):
            got = None if tile_features is None else tile_features.shape
            raise StoreError(f"{run_or_checkpoint}: embeds with the cells' {TILE_FEATURES_DIM}-d tile features; got {got}")
        parts.append(np.asarray(tile_features, np.float32))
    return np.concatenate(parts, axis=1)
