"""Training settings. The defaults are the CCRL paper's recipe (``configs/ccrl.yaml``).

Every field can be set from YAML and from the command line (``--set key=value``); the
ablations of the paper are switches: ``local_global``, ``predictor``, ``embed_encoder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

from wsicell.train.methods.config import SimCLRConfig, SSLPConfig
from wsicell.train.methods.registry import METHODS, method_defaults  # the one list of methods

STEMS = ("cifar", "cifar_pool", "imagenet")

EMBED_VIEWS = (1, 2, 4, 8)
"""Test-time views of a crop averaged into its embedding (``wsicell.embed``)."""

BACKBONES = ("resnet18", "nucleus")
"""``resnet18``: the papers' pre-activation ResNet-18 (``stem``, ``width``; random initial
weights, train/backbone.py). ``nucleus``: the encoder of the shipped nucleus segmenter, its
trained weights as the initial ones (train/nucleus_backbone.py; ``stem`` and ``width`` do
not apply)."""
EMBED_FROM = ("crops", "tile", "crops+tile")
"""What a cell's embedding is made from (``TrainConfig.embed_from``): the run's network on the
store's crops, the store's ``tile_features`` (kept by extraction from the HV-net's encoder,
``wsicell.segment.tile_features``), or both joined (crops first)."""
SEGMENTER_STAGES = (3, 4, 5)
"""The levels of the store's ``tile_features``: ``segment.tile_features.TILE_LEVELS`` (not
imported, as NUCLEUS_CHANNELS; a test checks that they agree)."""

EMBED_STAGES = (1, 2, 3, 4)
"""The ResNet's four stages (a pair of blocks each, 1, 2, 4 and 8 x ``width`` channels);
an increasing selection of them forms the embedding (``embed_stages``)."""

NUCLEUS_CHANNELS = (8, 16, 32, 64, 128)
"""Channels of the nucleus segmenter's five encoder levels (``wsicell.segment.hvnet.CHANNELS``,
checked by the tests): its ``embed_stages`` are levels 1-5."""


def backbone_stages(backbone: str = "resnet18") -> tuple[int, ...]:
    """The stages a backbone's embedding can be made of: the ResNet's 1-4, the nucleus encoder's levels 1-5."""
    return tuple(range(1, len(NUCLEUS_CHANNELS) + 1)) if backbone == "nucleus" else EMBED_STAGES


def valid_stages(stages: tuple[int, ...], backbone: str = "resnet18") -> bool:
    """Whether ``stages`` is a non-empty, increasing selection of the backbone's stages."""
    return bool(stages) and list(stages) == sorted(set(stages)) and set(stages) <= set(backbone_stages(backbone))


def stage_channels(width: int, stages: tuple[int, ...]) -> int:
    """Channels of the embedding made of ``stages`` of a ResNet of ``width``."""
    return sum(width * 2 ** (s - 1) for s in stages)


def nucleus_channels(stages: tuple[int, ...]) -> int:
    """Channels of the embedding made of ``stages`` (levels) of the nucleus encoder."""
    return sum(NUCLEUS_CHANNELS[s - 1] for s in stages)


TILE_FEATURES_DIM = nucleus_channels(SEGMENTER_STAGES)
"""Width of the store's ``tile_features`` with the shipped HV-net (224)."""

RESUMABLE_CHANGES = frozenset({"embed_views", "embed_stages", "epochs", "threads", "num_workers", "prefetch_batches", "checkpoint_every", "log_every_steps"})
"""Settings that may differ between a run and its ``--resume`` (everything else must match)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``batch_size`` and ``queue_size`` are global (all processes)."""

    method: str = "ccrl"
    # schedule (paper: Adam 1e-3, wd 1e-4, cosine, 10 warm-up epochs, batch 1024, 500 epochs)
    epochs: int = 500
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    min_lr: float = 0.0
    # contrastive head (paper: m 0.999, T 0.07, projector 512-128-64, predictor 64-32-64)
    momentum: float = 0.999
    temperature: float = 0.07
    queue_size: int = 8192
    projector_dims: tuple[int, int] = (128, 64)
    predictor_hidden: int = 32
    # share of each query's most similar queue keys left out of its negatives (likely the
    # same cell type: false negatives); 0 = the paper's InfoNCE
    negative_drop: float = 0.0
    # BatchNorm over this many sub-batches with the keys regrouped: MoCo's shuffling BN on one
    # device (splitbn.py); 1 = whole-batch BN, as the paper (one V100) presumably trained
    bn_splits: int = 1
    # ablation switches (paper Table 3)
    local_global: bool = True
    predictor: bool = True
    embed_encoder: Literal["momentum", "query"] = "momentum"
    # inference (not the paper's): mean of the normalised features of the crop's 8 dihedral
    # views (rotations by 90 degrees, mirror images); 1 = the crop as it is (docs/results.md)
    embed_views: int = 8
    # the network stages whose pooled outputs form the embedding (4 = the last, the paper's;
    # several: each normalised, then concatenated; train/backbone.py PooledStages)
    embed_stages: tuple[int, ...] = (4,)
    # what a cell's embedding is made from (EMBED_FROM): "crops" (the backbone on the store's
    # crops), "tile" (the store's tile_features: the extraction's HV-net encoder around each
    # nucleus, segment/tile_features.py; nothing to train, so epochs 0) or "crops+tile" (both,
    # joined: the CPU default, configs/nucleus-tile.yaml)
    embed_from: Literal["crops", "tile", "crops+tile"] = "crops"
    # augmentation (paper: jitter 0.4/0.4/0.4/0.1, grayscale, blur 0.1-2.0, flips, rotation 0-180)
    crop_size: int = 32
    local_branch: Literal["query", "key"] = "query"
    local_scale: tuple[float, float] = (0.2, 1.0)
    local_ratio: tuple[float, float] = (0.75, 1.3333333333333333)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.5
    rotation: tuple[float, float] = (0.0, 180.0)
    # lab-to-lab stain change (not the paper's; 0 = off): each crop's haematoxylin, eosin and
    # residual optical densities (Ruifrok-Johnston) and its whole optical density are scaled by
    # factors drawn uniformly in [1 / (1 + s), 1 + s] (docs/results.md, configs/ccrl-cpu-stain.yaml)
    stain_jitter: float = 0.0
    # backbone (BACKBONES); stem and width are the ResNet's
    backbone: Literal["resnet18", "nucleus"] = "resnet18"
    stem: Literal["cifar", "cifar_pool", "imagenet"] = "cifar"
    width: int = 64
    # execution
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    threads: int = 0
    seed: int = 0
    num_workers: int = 2
    prefetch_batches: int = 4
    shuffle_chunks: int = 16
    checkpoint_every: int = 0
    log_every_steps: int = 1
    # the other methods' own settings (docs/methods.md); shared ones are the fields above
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    sslp: SSLPConfig = field(default_factory=SSLPConfig)

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(self.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        check(self.epochs >= 0, f"epochs must be >= 0 (0 = an untrained, seeded encoder), got {self.epochs}")
        check(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        check(0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr], got {self.min_lr}")
        check(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.queue_size >= self.batch_size and self.queue_size % self.batch_size == 0,
              f"queue_size must be a positive multiple of batch_size ({self.batch_size}), got {self.queue_size}")  # fmt: skip
        check(all(d >= 1 for d in self.projector_dims), f"projector_dims must be positive, got {self.projector_dims}")
        check(self.bn_splits >= 1 and self.batch_size % self.bn_splits == 0,
              f"bn_splits must be >= 1 and divide batch_size ({self.batch_size}), got {self.bn_splits}")  # fmt: skip
        check(0.0 <= self.negative_drop < 1.0, f"negative_drop must be in [0, 1), got {self.negative_drop}")
        check(self.predictor_hidden >= 1, f"predictor_hidden must be >= 1, got {self.predictor_hidden}")
        check(self.crop_size >= 8, f"crop_size must be >= 8 px, got {self.crop_size}")
        lo, hi = self.local_scale
        check(0 < lo <= hi <= 1, f"local_scale must satisfy 0 < min <= max <= 1, got {self.local_scale}")
        check(0 < self.local_ratio[0] <= self.local_ratio[1], f"local_ratio must be 0 < min <= max, got {self.local_ratio}")
        b, c, s, h = self.jitter
        check(min(b, c, s) >= 0 and 0 <= h <= 0.5, f"jitter must be (brightness, contrast, saturation >= 0, hue in [0, 0.5]), got {self.jitter}")  # fmt: skip
        for name in ("jitter_p", "grayscale_p", "blur_p"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, f"{name} must be a probability in [0, 1], got {value}")
        check(0 < self.blur_sigma[0] <= self.blur_sigma[1], f"blur_sigma must be 0 < min <= max, got {self.blur_sigma}")
        check(self.rotation[0] <= self.rotation[1], f"rotation must be (min, max) degrees, got {self.rotation}")
        check(0.0 <= self.stain_jitter <= 2.0, f"stain_jitter must be in [0, 2], got {self.stain_jitter}")
        check(self.method != "stain-distill" or self.stain_jitter > 0,
              "stain_jitter must be > 0 for stain-distill (the stain change is what it learns to ignore)")  # fmt: skip
        check(self.embed_views in EMBED_VIEWS, f"embed_views must be one of {EMBED_VIEWS}, got {self.embed_views}")
        check(self.backbone in BACKBONES, f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        check(valid_stages(self.embed_stages, self.backbone),
              f"embed_stages must be increasing, distinct stages among 1-{backbone_stages(self.backbone)[-1]} "
              f"({self.backbone}), got {list(self.embed_stages)}")  # fmt: skip
        check(self.embed_from in EMBED_FROM, f"embed_from must be one of {', '.join(EMBED_FROM)}, got {self.embed_from!r}")
        check(self.embed_from != "tile" or self.epochs == 0,
              f"embed_from: tile embeds with the features extraction keeps (nothing to train): epochs must be 0, "
              f"got {self.epochs}; to train an encoder on the crops beside them: embed_from: crops+tile")  # fmt: skip
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.threads >= 0, f"threads must be >= 0 (0 = PyTorch's default), got {self.threads}")
        check(self.num_workers >= 1, f"num_workers must be >= 1, got {self.num_workers}")
        check(self.prefetch_batches >= 1, f"prefetch_batches must be >= 1, got {self.prefetch_batches}")
        check(self.shuffle_chunks >= 1, f"shuffle_chunks must be >= 1, got {self.shuffle_chunks}")
        check(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (0 = only last.pt), got {self.checkpoint_every}")
        check(self.log_every_steps >= 1, f"log_every_steps must be >= 1, got {self.log_every_steps}")

    @property
    def effective_warmup_epochs(self) -> int:
        """Warm-up epochs, capped at half the run so that short runs still decay."""
        return min(self.warmup_epochs, self.epochs // 2)

    @property
    def embed_dim(self) -> int:
        """Backbone output size, what the heads see (ResNet: 512 for the default width 64;
        nucleus: its embedding, the pooled ``embed_stages``)."""
        return self.embedding_dim if self.backbone == "nucleus" else 8 * self.width

    @property
    def cell_embedding_dim(self) -> int:
        """Size of what ``wsicell embed`` stores per cell: the network's ``embedding_dim`` on
        the crops, the tile features' ``TILE_FEATURES_DIM``, or both (``embed_from``)."""
        return {"crops": self.embedding_dim, "tile": TILE_FEATURES_DIM,
                "crops+tile": self.embedding_dim + TILE_FEATURES_DIM}[self.embed_from]  # fmt: skip

    @property
    def embedding_dim(self) -> int:
        """Size of the network's embedding of a crop: the channels of the ``embed_stages`` (the last: 8 x width)."""
        if self.backbone == "nucleus":
            return nucleus_channels(self.embed_stages)
        return stage_channels(self.width, self.embed_stages)


def train_config(path: str | PathLike[str] | None = None, /, **overrides: object) -> TrainConfig:
    """A ``TrainConfig`` from a YAML file and ``overrides`` (None values ignored). Without a
    file, a ``method`` other than CCRL starts from its paper's shared settings
    (``method_defaults``: e.g. SimCLR's temperature and LARS learning rate for its batch),
    then the overrides: the library does what ``wsicell train --method`` does."""
    from wsicell.config import load_config

    given = {k: v for k, v in overrides.items() if v is not None}
    if path is None and given.get("method") is not None:
        given = {**method_defaults(str(given["method"]), batch_size=given.get("batch_size")), **given}  # type: ignore[arg-type]
    return load_config(TrainConfig, path, **given)
