"""The results table, as Markdown and JSON, beside the CCRL paper's CoNSeP rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from wsicell.atomic import output_folder, write_text_atomic

PAPER_CONSEP = [
    # (model, AMI, ARI, purity) in %, CCRL paper Table 2 (CoNSeP, original 1000-px images)
    ("ImageNet pre-trained", 7.3, 7.0, 42.7),
    ("Morphological (30-d)", 12.7, 1.3, 48.8),
    ("Manual features (SIFT+LBP)", 9.5, 6.4, 45.5),
    ("Auto-encoder (DCAE)", 10.1, 7.3, 50.5),
    ("InfoGAN", 14.8, 15.7, 58.4),
    ("CCRL", 24.2, 21.7, 51.8),
]
PAPER_CCRL = {"ami": 24.2, "ari": 21.7, "purity": 51.8}


def _cell(row: dict[str, Any], metric: str) -> str:
    if not row["scores"]:
        return "—"
    mean, std = 100 * row["mean"][metric], 100 * row["std"][metric]
    return f"{mean:.1f} ± {std:.1f}" if len(row["scores"]) > 1 else f"{mean:.1f}"


def _time(row: dict[str, Any]) -> str:
    seconds = [s for s in row["train_seconds"] if not math.isnan(s)]
    if not seconds:
        return "—"
    return f"{sum(seconds) / len(seconds) / 60:.1f} min"


def beats_paper(row: dict[str, Any]) -> bool:
    """True when the row's mean AMI, ARI and purity are all above the paper's CCRL."""
    return bool(row["scores"]) and all(100 * row["mean"][m] > v for m, v in PAPER_CCRL.items())


def markdown(results: dict[str, Any]) -> str:
    """The table: the paper's rows, then ours (mean ± std over seeds, in %), then the curve."""
    lines = [
        f"CoNSeP ({results['dataset']}), {results.get('protocol', 'inductive')} protocol, k = {results['k']}; "
        f"train {results['n_train']} cells, test {results['n_test']} cells; seeds {results['seeds']}."
        + (f" Cells: {results['nuclei']} ({results['n_test']} of {results['labelled_test_nuclei']} labelled test nuclei)."
           if results.get("nuclei") else ""),  # fmt: skip
        "",
        "| Model | AMI | ARI | Purity | Accuracy (Hungarian) | kNN agreement | Training time (mean per seed) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ami, ari, pur in PAPER_CONSEP:
        lines.append(f"| paper: {name} | {ami:.1f} | {ari:.1f} | {pur:.1f} | — | — | — |")
    for row in results["rows"]:
        mark = " **(beats the paper's CCRL)**" if row["kind"] != "baseline" and beats_paper(row) else ""
        cells = " | ".join(_cell(row, m) for m in ("ami", "ari", "purity", "accuracy"))
        knn = row.get("knn_agreement")
        knn_cell = "—" if knn is None else f"{100 * knn:.1f}"
        lines.append(f"| {row['name']}{mark} | {cells} | {knn_cell} | {_time(row)} |")
    lines += ["", "Rows without an arrow: k-means of the representation as it is (the paper's protocol). "
              "\"→ wsicell cluster\": what `wsicell cluster` does with it (joined with the cells' morphology, "
              "then its clustering algorithm; docs/clustering.md). kNN agreement: the share of each cell's "
              "10 nearest cells (in the representation) with its label."]
    context = results.get("context")
    if context:
        lines += ["", f"\"+ context ({context['radius_um']:g} µm)\": the same representation, each cell blended with "
                  f"the mean of its neighbours within {context['radius_um']:g} µm in its tile (weight "
                  f"{context['weight']:g}) before k-means, as `wsicell cluster --context-radius` does."]  # fmt: skip
    for message in results.get("skipped", []):
        lines += ["", f"- {message}"]
    if results.get("curve"):
        lines += [
            "",
            "Accuracy versus training time (one run, seed "
            f"{results['seeds'][0]}; momentum encoder; one k-means per point):",
            "",
            "| Epoch | Training time | AMI | ARI | Purity | Accuracy |",
            "|---|---|---|---|---|---|",
        ]
        for p in results["curve"]:
            lines.append(
                f"| {p['epoch']} | {p['train_seconds'] / 60:.1f} min | {100 * p['ami']:.1f} | "
                f"{100 * p['ari']:.1f} | {100 * p['purity']:.1f} | {100 * p['accuracy']:.1f} |"
            )
    load = results.get("load")
    if load:
        lines += ["", f"Load average at the end: {load} (shared 2-core machine; times are noisy)."]
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], *, out: Path) -> tuple[Path, Path]:
    """Write OUT/results.json and OUT/results.md atomically; returns their paths."""
    out = output_folder(out)
    paths = (out / "results.json", out / "results.md")
    texts = (json.dumps(results, indent=1) + "\n", markdown(results))
    for path, text in zip(paths, texts, strict=True):
        write_text_atomic(path, text)
    return paths
