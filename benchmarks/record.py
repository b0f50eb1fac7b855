"""Where every benchmark leaves its figures: ``benchmarks/results/<name>.json``.

Each script prints its table as before and also calls :func:`save` with the same figures,
as a list of rows (one dict per printed row; the keys are the columns) and an optional
``notes`` mapping for single figures. The file records when and on what it ran: the date
(UTC), the command, the machine's cores and its load average at the start and at the end
(the machine is shared: figures under load are not idle figures). It is written atomically,
so an interrupted benchmark leaves the previous file intact. ``benchmarks/report.py`` prints
the tables of docs/benchmarks.md from these files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_STARTED = (datetime.now(timezone.utc), os.getloadavg())


def save(name: str, rows: Sequence[Mapping[str, Any]], *, notes: Mapping[str, Any] | None = None,
         title: str = "") -> Path:  # fmt: skip
    """Write ``rows`` (and ``notes``) to ``benchmarks/results/<name>.json``; returns the path."""
    from wsicell.atomic import write_text_atomic

    started, load_start = _STARTED
    record = {
        "benchmark": name,
        "title": title,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *(_relative(a) for a in sys.argv)]),
        "machine": {
            "cores": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
        },
        "rows": [_finite(dict(r)) for r in rows],
        "notes": _finite(dict(notes or {})),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps(record, indent=1, default=_plain) + "\n")
    print(f"(figures written to benchmarks/results/{path.name}, {time.strftime('%H:%M:%S')})", flush=True)
    return path


def _relative(arg: str) -> str:
    """Arguments that are paths inside the repository, written relative to it (no machine paths)."""
    root = RESULTS.parent.parent
    try:
        return str(Path(arg).resolve().relative_to(root))
    except (ValueError, OSError):
        return arg if not os.path.isabs(arg) else Path(arg).name


def _finite(value: Any) -> Any:
    """NaN and infinities (not JSON) -> None, inside mappings and lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return value.name
    return str(value)
