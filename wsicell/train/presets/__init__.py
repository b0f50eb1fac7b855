"""Training configurations shipped with the package (also linked from the repository's
``configs/``): the CPU presets that ``wsicell train`` uses without ``--config`` on a machine
without a CUDA GPU."""

from __future__ import annotations

from pathlib import Path

PRESETS = Path(__file__).resolve().parent


CPU_DEFAULT = PRESETS / "nucleus-tile.yaml"
"""What ``wsicell train`` without --config and --method uses on a machine without a CUDA GPU:
the nucleus segmenter's encoder on the crops, joined to the tile features that extraction keeps
(the best cell-type embedding on the train split's held-out images; docs/results.md)."""


def cpu_preset(method: str) -> Path:
    """The CPU configuration of ``method``: for ``ccrl`` the untrained encoder
    (``cpu-untrained.yaml``: at CPU budgets it clustered better than trained CCRL), for
    ``simclr`` and ``sslp`` their fast CPU configurations, for ``stain-distill`` its only one."""
    path = PRESETS / ("cpu-untrained.yaml" if method == "ccrl" else f"{method}-cpu-fast.yaml")
    if not path.is_file():
        raise ValueError(f"no CPU configuration for method {method!r}")
    return path
