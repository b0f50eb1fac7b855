"""The annotator filter of the HV-nets' nuclei (``wsicell/segment/annotator_filter.py``) on held-out images.

``python -m wsicell.segment.train_annotator_filter`` fits the filter on the outlined training
images (CoNSeP train without the held-out images 3, 9, 15, 21; the MoNuSeg training images
with outlines). This script refits it the same way (also on the measurements alone and on the
tile features alone, for comparison) and scores the held-out images that ``train_hvnet``
validates with, nuclei below each probability threshold dropped: DQ / PQ per dataset, the
share of nuclei kept, and on CoNSeP the share of true nuclei of each type with a third of
their area covered (the cell-type bias a filter can bring). The test split is never read.

    .venv/bin/python benchmarks/segment_annotator_filter.py                                   # hvnet, ~1 min
    .venv/bin/python benchmarks/segment_annotator_filter.py --segmenter hvnet-fine --flips 4  # the quality preset's nuclei
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.evaluate.dataset import CONSEP_CLASSES
from wsicell.segment.cells import FEATURE_NAMES
from wsicell.segment.metrics import panoptic
from wsicell.segment.train_annotator_filter import (
    MPP,
    fit,
    labelled_images,
    predicted_nuclei,
    segmenter_of,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7)
M = len(FEATURE_NAMES)
COLUMNS = {"measurements + tile features (the filter)": slice(None), "measurements": slice(0, M), "tile features": slice(M, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", choices=["hvnet", "hvnet-fine"], default="hvnet")
    parser.add_argument("--flips", type=int, choices=[1, 2, 4], default=1, help="test-time flips (hv_flips) [1]")
    args = parser.parse_args()
    segmenter = segmenter_of(args.segmenter, args.flips)
    images = labelled_images(DATA / "consep-tiles" / "train", DATA / "monuseg-train")
    found = {part: [(key, name, predicted_nuclei(segmenter, image, inst, mpp=MPP[key])) for key, name, image, inst in items]
             for part, items in images.items()}  # fmt: skip
    found = {part: [(k, n, f) for k, n, f in items if f is not None] for part, items in found.items()}
    types = {n: np.load(DATA / "consep-tiles" / "train" / f"{n}.npz")["type"] for k, n, _ in found["held-out"] if k == "consep"}
    rows = []
    for description, columns in COLUMNS.items():
        keep = fit([(k, {**f, "x": f["x"][:, columns]}) for k, _, f in found["train"]])
        print(description)
        for threshold in THRESHOLDS:
            row = {"description": description, "threshold": threshold}
            for key in ("consep", "monuseg"):
                dq, pq, kept, covered = [], [], [], {t: [] for t in range(1, len(CONSEP_CLASSES) + 1)}
                for _, name, f in (item for item in found["held-out"] if item[0] == key):
                    drop = f["ids"][keep.probability(f["x"][:, columns]) < threshold]
                    labels = np.where(np.isin(f["labels"], drop), 0, f["labels"])
                    score = panoptic(f["inst"], labels)
                    dq.append(score.dq)
                    pq.append(score.pq)
                    kept.append(1 - len(drop) / len(f["ids"]))
                    if key == "consep":  # coverage of each true nucleus, by type
                        for i, t in enumerate(types[name]):
                            mask = f["inst"] == i + 1
                            if mask.any():
                                covered[int(t)].append((labels[mask] > 0).mean() >= 1 / 3)
                row.update({f"{key} DQ": round(float(np.mean(dq)), 3), f"{key} PQ": round(float(np.mean(pq)), 3),
                            f"{key} kept": round(float(np.mean(kept)), 3)})  # fmt: skip
                if key == "consep":
                    row.update({f"covered {CONSEP_CLASSES[t - 1]}": round(float(np.mean(v)), 3) for t, v in covered.items() if v})
            row["mean PQ"] = round((row["consep PQ"] + row["monuseg PQ"]) / 2, 4)
            rows.append(row)
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "description"), flush=True)
    tag = "" if (args.segmenter, args.flips) == ("hvnet", 1) else f"-{args.segmenter}-flips{args.flips}"
    save(f"segment_annotator_filter{tag}", rows, notes={"segmenter": args.segmenter, "flips": args.flips, "runtime": "torch fp32"},
         title="the annotator filter on the HV-net's nuclei, held-out images")  # fmt: skip


if __name__ == "__main__":
    main()
