"""SSLP (Li, Lin & Xu, MICCAI 2021) adapted to cells, on the shared backbone.

Three invariances, one multi-positive contrastive loss (weights in ``sslp:``):

* self  — the two augmented views of a cell;
* intra — its spatial neighbours (centroids within ``radius_um`` in the same slide, from the
  store), taken from the memory bank when they are not in the batch;
* inter — cells of the same k-means cluster of the memory bank (re-clustered every
  ``cluster_every`` epochs), in the batch and among the gathered neighbours.

By default a spatial neighbour is a positive only when it is also a cluster mate
(``intra_gate: cluster``): a tumour cell's neighbours are often stroma or lymphocytes, and
pulling those together would teach "same place", not "same cell type". Before the first
clustering only the self term is active. See docs/methods.md.

One encoder (no momentum branch); views are the shared CCRL augmentation with the random
resized crop on both views. Negatives: the 2B views of the batch and the gathered bank rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from wsicell.neighbours import Neighbours, store_neighbours
from wsicell.train import dist
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.method import Method
from wsicell.train.methods.config import SSLPConfig
from wsicell.train.methods.memory_bank import MemoryBank
from wsicell.train.methods.multipos import multi_positive_loss
from wsicell.train.methods.sslp_positives import sslp_targets
from wsicell.train.model import mlp


class SSLP(Method):
    """``setup(slides)`` before training; per step ``before_step(index)``, ``views``,
    ``forward`` -> projections, ``loss``, ``after_step`` (bank update); ``after_epoch``."""

    name = "sslp"
    needs = ("crops", "centroid")

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.options: SSLPConfig = config.sslp
        hidden, out = config.projector_dims
        self.backbone = self.make_backbone(config)
        self.projector = mlp(config.embed_dim, hidden, out)
        self.out_dim = out
        self.bank: MemoryBank | None = None
        self.neighbours: Neighbours | None = None
        self.offsets = np.zeros(1, np.int64)
        self._index: torch.Tensor | None = None  # (B,) global cell index of the current batch
        self._last: torch.Tensor | None = None  # (B, D) detached projections, for the bank

    # -- set-up from the store -------------------------------------------------------
    def setup(self, slides: Sequence) -> None:
        """Neighbours and an empty bank over ``slides`` (the loader's, in its order)."""
        counts = np.array([s.n_cells for s in slides], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        o = self.options
        self.neighbours = store_neighbours(slides, radius_um=o.radius_um, max_neighbours=o.max_neighbours)
        device = next(self.parameters()).device
        self.bank = MemoryBank(int(self.offsets[-1]), self.out_dim, momentum=o.bank_momentum, device=device)

    def global_index(self, index: np.ndarray) -> torch.Tensor:
        """(B, 2) (slide number, row) -> (B,) global cell index."""
        index = np.asarray(index)
        return torch.from_numpy(self.offsets[index[:, 0]] + index[:, 1])

    def before_step(self, index: np.ndarray) -> None:
        self._index = self.global_index(index)

    # -- the method ------------------------------------------------------------------
    def views(self, x: torch.Tensor, *, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(x, local=True, generator=generator), augment(x, local=True, generator=generator)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = view1.shape[0]
        z = self.projector(self.backbone(torch.cat([view1, view2])))  # 2N x D
        return z[:n], z[n:]

    def loss(self, output: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if self.bank is None or self.neighbours is None or self._index is None:
            raise RuntimeError("SSLP needs setup(slides) and before_step(index) before loss()")
        z1, z2 = (z.float() for z in output)
        o = self.options
        targets = sslp_targets(
            self._index, neighbours=self.neighbours, labels=self.bank.labels, filled=self.bank.filled,
            self_weight=o.self_weight, intra_weight=o.intra_weight, inter_weight=o.inter_weight,
            intra_gate=o.intra_gate,
        )  # fmt: skip
        dev = z1.device
        anchors = torch.cat([z1, z2])  # 2B x D
        bank_rows = self.bank.vectors[targets.bank_index.to(self.bank.vectors.device)].to(dev)  # E x D
        candidates = torch.cat([anchors, bank_rows])  # (2B + E) x D
        self._last = ((z1 + z2) / 2).detach()
        return multi_positive_loss(
            anchors, candidates, targets.weights.to(dev), excluded=targets.excluded.to(dev),
            temperature=self.config.temperature,
        )  # fmt: skip

    @torch.no_grad()
    def after_step(self) -> None:
        if self.bank is None or self._last is None or self._index is None:
            return
        index = dist.concat_all_gather(self._index.to(self._last.device).unsqueeze(1)).squeeze(1)
        z = dist.concat_all_gather(self._last)
        self.bank.update(index, z)
        self._last = None

    def after_epoch(self, epoch: int) -> None:
        """Re-cluster the bank every ``cluster_every`` epochs (``epoch`` counts from 0)."""
        if self.bank is None or (epoch + 1) % self.options.cluster_every:
            return
        filled = int(self.bank.filled.sum())
        k = min(self.options.clusters, filled)
        if k >= 2:
            self.bank.cluster(k, seed=self.config.seed + epoch)
        if dist.is_distributed():  # every rank uses rank 0's clusters
            import torch.distributed as torch_dist

            torch_dist.broadcast(self.bank.labels, src=0)

    # -- checkpoints: the bank travels in the state dict, outside DDP's buffers --------
    def get_extra_state(self) -> dict:
        return {"bank": self.bank.state_dict() if self.bank is not None else None}

    def set_extra_state(self, state: dict) -> None:
        bank = state.get("bank")
        if bank is None:
            return
        if self.bank is None:  # loaded for embedding, without setup(): rebuild from the saved rows
            n, dim = bank["vectors"].shape
            self.bank = MemoryBank(n, dim, momentum=self.options.bank_momentum)
        self.bank.load_state_dict(bank)

    def encoder(self, which: str = "momentum") -> nn.Module:
        if which not in ("momentum", "query"):
            raise ValueError(f"encoder must be 'momentum' or 'query', got {which!r}")
        return self.backbone  # one encoder: both names mean it
