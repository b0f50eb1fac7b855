"""The training methods, named once: what each is called, where its class lives, and the
shared settings its paper uses where they differ from CCRL's (the ``TrainConfig`` defaults).

Everything that lists methods reads this table: ``TrainConfig`` validation, the method
factory (``wsicell.train.method.build_method``, used by training and by embedding), the CLI's
``--method`` choice, the paper defaults (``method_defaults``) and the evaluation's row names.
A new method is a new file with a ``Method`` subclass plus one entry here. The table imports
nothing of the package: the classes are named as text and imported on use.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodInfo:
    title: str  # how results name it
    target: str  # "module:class", imported on use
    paper_defaults: dict[str, object] = field(default_factory=dict)  # shared settings of its paper
    paper: bool = True  # False: no paper recipe; its configuration (the preset) serves every device


REGISTRY: dict[str, MethodInfo] = {
    "ccrl": MethodInfo("CCRL", "wsicell.train.model:CCRL"),
    "simclr": MethodInfo(
        "SimCLR", "wsicell.train.methods.simclr:SimCLR",
        {"batch_size": 512, "weight_decay": 1e-6, "temperature": 0.1, "projector_dims": (512, 128)},
    ),  # fmt: skip
    "sslp": MethodInfo("SSLP", "wsicell.train.methods.sslp:SSLP", {"batch_size": 512, "temperature": 0.1}),
    "stain-distill": MethodInfo(
        "Stain self-distillation", "wsicell.train.methods.stain_distill:StainDistill",
        {"stain_jitter": 0.3, "lr": 1e-4, "min_lr": 1e-4, "weight_decay": 0.0, "warmup_epochs": 0}, paper=False,
    ),  # fmt: skip
}
METHODS: tuple[str, ...] = tuple(REGISTRY)


def method_defaults(method: str, *, batch_size: int | None = None) -> dict[str, object]:
    """The shared settings ``method``'s paper uses where they differ from CCRL's defaults (the
    ``configs/simclr.yaml`` / ``configs/sslp.yaml`` values). SimCLR's LARS learning rate
    follows the batch: 0.3 x batch / 256."""
    if method not in REGISTRY:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    defaults = dict(REGISTRY[method].paper_defaults)
    if batch_size is not None and "batch_size" in defaults:
        defaults["batch_size"] = batch_size
    if method == "simclr":
        defaults["lr"] = 0.3 * int(defaults["batch_size"]) / 256
    return defaults


def method_title(method: str) -> str:
    return REGISTRY[method].title if method in REGISTRY else method
