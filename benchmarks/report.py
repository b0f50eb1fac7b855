"""Print the figures tables of docs/benchmarks.md (and the README's) from benchmarks/results/*.json.

    .venv/bin/python benchmarks/report.py                  # every benchmark that has results
    .venv/bin/python benchmarks/report.py embed_speed ...  # only these

One markdown table per benchmark: a heading with its title, the date it ran, the command,
the machine's cores and its load average; then its rows (the keys are the columns) and its
single figures (``notes``). Nothing is measured here: run a benchmark to refresh its file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,}"  # as recorded: each benchmark rounds its figures
    if isinstance(value, (list, tuple)):
        return " / ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|")


def table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def render(record: dict[str, Any]) -> str:
    machine = record.get("machine", {})
    load = machine.get("load_average_start", [])
    end = machine.get("load_average_end", [])
    lines = [
        f"### {record.get('title') or record['benchmark']} (`{record['benchmark']}.json`)",
        "",
        f"{record.get('date', '?')[:10]}, {machine.get('cores', '?')} cores, load average "
        f"{' '.join(f'{v:.1f}' for v in load[:1])} at the start, {' '.join(f'{v:.1f}' for v in end[:1])} at the end; "
        f"`{record.get('command', '')}`",
        "",
    ]
    if record.get("rows"):
        lines += table(record["rows"])
    notes = {k: v for k, v in record.get("notes", {}).items() if not isinstance(v, dict) or len(v) <= 8}
    if notes:
        lines += ["", "; ".join(f"{k}: {cell(v)}" for k, v in notes.items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmark names (file stems in benchmarks/results/)")
    args = parser.parse_args()
    paths = [RESULTS / f"{n}.json" for n in args.names] if args.names else sorted(RESULTS.glob("*.json"))
    missing = [p.stem for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no results for {', '.join(missing)}: run benchmarks/{missing[0].split('-')[0]}.py first")
    print("\n\n".join(render(json.loads(p.read_text())) for p in paths))


if __name__ == "__main__":
    main()
