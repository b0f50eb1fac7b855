"""Does the share of nuclei the annotator filter doubts say how right an image's segmentation is?

With the filter off (the default), ``wsicell extract`` counts per slide the nuclei the shipped
filter doubts (P(annotated) < 0.5, ``annotator_filter.count_doubted``) and ``wsicell info``
shows the share. This script checks that the share means something: per labelled image
(CoNSeP images, their 16 tiles together; MoNuSeg images), the default segmenter's share of
doubted nuclei beside its precision (the share of its nuclei with a labelled nucleus within
3 µm, HoVer-Net's radius), and their rank correlation. The held-out images (CoNSeP train
images 3, 9, 15, 21 and the 4 MoNuSeg held-out images; never fitted on) chose the share
that counts as high (``annotator_filter.DOUBTED_SHARE_HIGH``); the CoNSeP test split
chose nothing and is reported apart.

    .venv/bin/python benchmarks/segment_doubted.py    # ~2 min
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON
from scipy.stats import spearmanr

from wsicell.segment.annotator_filter import DOUBTED_SHARE_HIGH, count_doubted
from wsicell.segment.cells import cells_from_labels
from wsicell.segment.config import SegmentConfig
from wsicell.segment.hv_segmenter import HVNetSegmenter
from wsicell.segment.metrics import centroids_of, match_centroids
from wsicell.segment.train_hvnet import CONSEP_MPP, MONUSEG_MPP, VAL_CONSEP, VAL_MONUSEG, load

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MATCH_UM = 3.0


def images(part: str) -> dict[str, tuple[float, list]]:
    """{image name: (mpp, [(RGB, instance map), ...])} of one part: its tiles or image."""
    if part == "consep test":
        items, mpp = load(DATA / "consep-tiles" / "test"), CONSEP_MPP
    elif part == "consep held-out":
        held = set(VAL_CONSEP.split(","))
        items, mpp = [t for t in load(DATA / "consep-tiles" / "train") if t[0].split("_")[1] in held], CONSEP_MPP
    else:
        held = set(VAL_MONUSEG.split(","))
        items, mpp = [t for t in load(DATA / "monuseg-train") if t[0] in held], MONUSEG_MPP
    out: dict[str, tuple[float, list]] = defaultdict(lambda: (mpp, []))
    for name, image, inst, _ in items:
        out[name.rsplit("_", 1)[0] if part.startswith("consep") else name][1].append((image, inst))
    return dict(out)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    segmenter = HVNetSegmenter(SegmentConfig(method="hvnet"))  # the default, on its default runtime
    rows = []
    for part in ("consep held-out", "monuseg held-out", "consep test"):
        for name, (mpp, tiles) in images(part).items():
            doubted = nuclei = tp = 0
            for image, inst in tiles:
                labels, maps = segmenter.segment_with_features(image, mpp=mpp)
                cells = cells_from_labels(image, labels, mpp=mpp, origin=(0, 0), scale=1.0)
                tile = maps.at(cells.centroid.astype(np.float64) - 0.5)
                doubted += count_doubted(segmenter.annotator_filter, features=cells.features, tile_features=tile)
                nuclei += len(cells.features)
                tp += match_centroids(centroids_of(labels), centroids_of(inst), radius=MATCH_UM / mpp).tp
            row = {"part": part, "image": name, "nuclei": nuclei, "doubted": round(doubted / max(nuclei, 1), 4),
                   "precision": round(tp / max(nuclei, 1), 4)}  # fmt: skip
            rows.append(row)
            print(f"{part:16s} {name:26s} {nuclei:6,d} nuclei, doubted {row['doubted']:.3f}, "
                  f"precision at 3 µm {row['precision']:.3f}", flush=True)  # fmt: skip
    notes = {}
    for label, parts in (("held-out", ("consep held-out", "monuseg held-out")), ("consep test", ("consep test",))):
        sel = [r for r in rows if r["part"] in parts]
        rho, p = spearmanr([r["doubted"] for r in sel], [r["precision"] for r in sel])
        high = [r["precision"] for r in sel if r["doubted"] > DOUBTED_SHARE_HIGH]
        low = [r["precision"] for r in sel if r["doubted"] <= DOUBTED_SHARE_HIGH]
        notes[label] = {"images": len(sel), "spearman": round(float(rho), 3), "p": round(float(p), 4),
                        "precision_above": [round(x, 3) for x in sorted(high)],
                        "median_precision_at_or_below": round(float(np.median(low)), 3) if low else None}  # fmt: skip
        print(f"{label}: {len(sel)} images, Spearman {rho:+.2f} (p {p:.3f}) between the share doubted and precision; "
              f"doubted > {DOUBTED_SHARE_HIGH:.0%}: precision {', '.join(f'{x:.2f}' for x in sorted(high)) or '-'}; "
              f"at or below: median {notes[label]['median_precision_at_or_below']}")  # fmt: skip
    save("segment_doubted", rows, notes=notes, title="share of nuclei the annotator filter doubts vs precision, per image")


if __name__ == "__main__":
    main()
