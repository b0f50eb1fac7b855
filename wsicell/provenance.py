"""Typed provenance records of the cell store: what made its embeddings and its clustering.

Each record is a frozen dataclass that reads itself from the store's attributes
(``from_attrs``) and writes itself back (``to_attrs``). Readers are tolerant of older
stores: a key a record does not find gets the default written here, in one place, and
documented in docs/store.md; keys it does not know are ignored (a newer wsicell may add
some). The extraction settings are typed by ``wsicell.extract.ExtractConfig`` itself
(``wsicell.extract.stored_config`` reads them; :data:`EXTRACT_SETTINGS` names the attr).

This module sits beside ``wsicell.store`` and imports nothing above it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsicell.errors import StoreError

EXTRACT_SETTINGS = "extract_settings"
"""Root attr: the ``ExtractConfig`` mapping the store was extracted with."""
DOUBTED = "doubted_nuclei"
"""Slide attr: how many of its nuclei the segmenter's annotator filter doubts (an int; None
when not counted: a segmenter without the filter, the filter applied, or an older store)."""
EMBEDDING_MODEL = "embedding_model"
"""Root attr: the :class:`EmbeddingModel` of the store's embeddings."""


def _known(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


@dataclass(frozen=True)
class EmbeddingModel:
    """The model that embedded the store (root attr ``embedding_model``), so that ``wsicell
    map`` embeds new slides with the same one and ``wsicell cluster`` records what it fitted."""

    run: str = ""  # the run directory
    checkpoint: str = ""  # the checkpoint file (absolute)
    sha256: str = ""  # of the checkpoint file: new slides are embedded only with the same bytes
    encoder: str = "momentum"  # "momentum" (the paper's ensembling) or "query"
    dim: int | None = None  # embedding width D
    crop_size: int | None = None  # px the crops were resized to
    precision: str = "fp32"  # as resolved when embedding (stores before it was recorded: fp32)
    views: int = 1  # test-time views averaged (stores before views existed: 1)
    source: str = "crops"  # the run's embed_from: "crops", "tile" (the extraction's tile features) or "crops+tile"

    def to_attrs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_attrs(cls, value: Mapping[str, Any] | None) -> EmbeddingModel | None:
        """The record of an ``embedding_model`` attr value; None when the store has none."""
        if not value:
            return None
        return cls(**_known(cls, value))

    @classmethod
    def of_store(cls, root_attrs: Mapping[str, Any]) -> EmbeddingModel | None:
        return cls.from_attrs(root_attrs.get(EMBEDDING_MODEL))

    def array_attrs(self) -> dict[str, Any]:
        """The attrs of a slide's ``embedding`` array."""
        return {"model_sha256": self.sha256, "run": self.run, "encoder": self.encoder,
                "precision": self.precision, "views": self.views, "source": self.source}  # fmt: skip


@dataclass(frozen=True)
class SlideEmbedding:
    """How far a slide's ``embedding`` array got, and with what (slide attrs ``embedding_*``)."""

    model: str | None = None  # attr embedding_model: sha256 of the checkpoint
    encoder: str | None = None  # attr embedding_encoder
    views: int = 1  # attr embedding_views (slides embedded before views existed: 1)
    rows: int = 0  # attr embedding_rows: rows written so far (whole chunks)
    complete: bool = False  # attr embedding_complete

    PREFIX = "embedding_"

    def to_attrs(self) -> dict[str, Any]:
        return {self.PREFIX + k: v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_attrs(cls, slide_attrs: Mapping[str, Any]) -> SlideEmbedding:
        values = {k[len(cls.PREFIX):]: v for k, v in slide_attrs.items() if k.startswith(cls.PREFIX)}
        values = _known(cls, values)
        if "rows" in values:
            values["rows"] = int(values["rows"])
        return cls(**values)

    def made_with(self, model: EmbeddingModel) -> bool:
        """Whether the slide's (possibly partial) embedding comes from ``model``, encoder and views."""
        return self.model == model.sha256 and self.encoder == model.encoder and self.views == model.views


@dataclass(frozen=True)
class ClusteringRecord:
    """The attributes of the store's ``clustering`` group (written by ``wsicell cluster``)."""

    k: int
    metric: str  # "cosine" (unit-normalised vectors) or "l2"
    created: str  # UTC ISO time; slides' cluster arrays carry it (attr clustering)
    algorithm: str = "kmeans"  # "spectral" | "kmeans" (clusterings before spectral existed: k-means)
    seed: int = 0
    iterations: int | None = None
    restarts: int | None = None
    sample_size: int | None = None  # cells the model was fitted on
    graph_neighbours: int = 15  # spectral: neighbours of the kNN graph
    objective: float | None = None  # on the fitting sample
    objective_definition: str = ""
    representation: Mapping[str, Any] | None = None  # wsicell.cluster.represent's attrs (None: an older wsicell)
    model: EmbeddingModel | None = None  # the store's embedding_model when clustered
    context: Mapping[str, Any] | None = None  # {radius_um, weight}; None: no tissue context
    k_auto: Mapping[str, Any] | None = None  # --k auto: the rule, the silhouette's k and the curve
    complete: bool = False  # set last
    objective_all: float | None = None  # over every cell (set with complete)
    n_cells: int | None = None
    sizes: Mapping[str, list[int]] = field(default_factory=dict)  # slide id -> cells per cluster

    def to_attrs(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = None if self.model is None else self.model.to_attrs()
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], *, where: str = "clustering") -> ClusteringRecord:
        missing = [k for k in ("k", "metric", "created") if k not in attrs]
        if missing:
            raise StoreError(f"{where}: the clustering records no {', '.join(missing)}; run `wsicell cluster` again")
        values = _known(cls, attrs)
        values["model"] = EmbeddingModel.from_attrs(attrs.get("model"))
        values["sizes"] = dict(attrs.get("sizes") or {})
        return cls(**values)
