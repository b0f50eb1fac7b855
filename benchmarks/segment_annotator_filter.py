"""A learned "would an annotator outline it?" filter on the HV-net's nuclei: the lead for issue 13.

Each nucleus the shipped HV-net finds (the default post-processing and size filters) is
described by its 30 measurements (``cells_from_labels``) and its tile features
(``TileFeatureMaps.at``), and labelled by whether a labelled nucleus lies within 3 µm (one to
one). A logistic regression (features standardised, C 0.1, CoNSeP and MoNuSeg weighted
equally) is fitted on the outlined *training* images (CoNSeP train without the held-out
images 3, 9, 15, 21; the 9 MoNuSeg training images with outlines; the network saw them, so
its predictions there are optimistic), and nuclei under a probability threshold are dropped
on the held-out images that ``train_hvnet`` validates with. Printed per threshold: DQ / PQ
per dataset, the share of nuclei kept, and on CoNSeP the share of true nuclei of each type
with a third of their area covered (the cell-type bias a filter can bring). The test split
is never read.

    .venv/bin/python benchmarks/segment_annotator_filter.py     # ~1 min on one core
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.evaluate.dataset import CONSEP_CLASSES
from wsicell.segment.cells import cells_from_labels
from wsicell.segment.config import SegmentConfig
from wsicell.segment.hv_post import hv_instances
from wsicell.segment.hvnet import WEIGHTS_PATH, HVNetModel
from wsicell.segment.metrics import centroid_pairs, instance_centroids, panoptic
from wsicell.segment.train_hvnet import MPP, VAL_CONSEP, VAL_MONUSEG, load
from wsicell.segment.watershed import filter_sizes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7)
DESCRIPTIONS = ("measurements + tile features", "measurements", "tile features")


def nuclei(model: HVNetModel, key: str, image: np.ndarray, inst: np.ndarray) -> dict | None:
    """The segmenter's nuclei of one image: labels, ids, descriptions, and which are labelled."""
    mpp, c = MPP[key], SegmentConfig()
    (prob, h, v), maps = model.maps_and_features(image, mpp=mpp)
    labels = filter_sizes(hv_instances(prob, h, v, mpp=mpp), min_px=c.min_area_um2 / mpp**2,
                          max_px=c.max_area_um2 / mpp**2, max_side_px=c.max_diameter_um / mpp)  # fmt: skip
    ids = np.unique(labels)[1:] if labels.any() else np.zeros(0, int)
    if len(ids) == 0:
        return None
    centre = instance_centroids(labels)[ids - 1]  # pixel centres at +0.5
    cells = cells_from_labels(image, labels, mpp=mpp, origin=(0, 0), scale=1.0)
    row = np.linalg.norm(cells.centroid[:, None].astype(np.float64) - centre[None], axis=2).argmin(1)  # cell -> id
    measurements = np.zeros((len(ids), cells.features.shape[1]))
    measurements[row] = np.nan_to_num(cells.features)
    truth = instance_centroids(inst)
    found, _ = centroid_pairs(centre, truth[np.isfinite(truth[:, 0])], radius=3.0 / mpp)
    real = np.zeros(len(ids), bool)
    real[found] = True
    return {"key": key, "labels": labels, "ids": ids, "inst": inst, "real": real,
            "x": {"measurements": measurements, "tile features": maps.at(centre - 0.5)}}  # fmt: skip


def described(item: dict, description: str) -> np.ndarray:
    return np.concatenate([item["x"][part] for part in ("measurements", "tile features") if part in description], axis=1)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    folders = {"consep": DATA / "consep-tiles" / "train", "monuseg": DATA / "monuseg-train"}
    for folder in folders.values():
        if not folder.is_dir():
            sys.exit(f"{folder}: not found (the shared data; see its README)")
    held = {"consep": {f"train_{n}" for n in VAL_CONSEP.split(",")}, "monuseg": set(VAL_MONUSEG.split(","))}
    model = HVNetModel(WEIGHTS_PATH, precision="fp32", runtime="torch")
    sets: dict[str, list[dict]] = {"train": [], "held-out": []}
    for key, folder in folders.items():
        for name, image, inst, _ in load(folder):
            if inst is None:
                continue  # a MoNuSeg image with a foreground mask only
            item = nuclei(model, key, image, inst)
            if item is None:
                continue
            source = name.rsplit("_", 1)[0] if key == "consep" else name
            if key == "consep":
                item["types"] = np.load(folder / f"{name}.npz")["type"]
            sets["held-out" if source in held[key] else "train"].append(item)
    train = sets["train"]
    share = {key: sum(len(i["ids"]) for i in train if i["key"] == key) for key in folders}
    weight = np.concatenate([np.full(len(i["ids"]), 1 / share[i["key"]]) for i in train])
    rows = []
    for description in DESCRIPTIONS:
        x = np.concatenate([described(i, description) for i in train])
        scale = StandardScaler().fit(x)
        fit = LogisticRegression(C=0.1, max_iter=3000).fit(scale.transform(x), np.concatenate([i["real"] for i in train]),
                                                        sample_weight=weight * len(x))  # fmt: skip
        print(description)
        for threshold in THRESHOLDS:
            row = {"description": description, "threshold": threshold}
            for key in folders:
                dq, pq, kept, covered = [], [], [], {t: [] for t in range(1, len(CONSEP_CLASSES) + 1)}
                for item in (i for i in sets["held-out"] if i["key"] == key):
                    p = fit.predict_proba(scale.transform(described(item, description)))[:, 1]
                    drop = item["ids"][p < threshold]
                    labels = np.where(np.isin(item["labels"], drop), 0, item["labels"])
                    score = panoptic(item["inst"], labels)
                    dq.append(score.dq)
                    pq.append(score.pq)
                    kept.append(1 - len(drop) / len(item["ids"]))
                    for k, t in enumerate(item.get("types", [])):  # CoNSeP: coverage of each true nucleus
                        mask = item["inst"] == k + 1
                        if mask.any():
                            covered[int(t)].append((labels[mask] > 0).mean() >= 1 / 3)
                row.update({f"{key} DQ": round(float(np.mean(dq)), 3), f"{key} PQ": round(float(np.mean(pq)), 3),
                            f"{key} kept": round(float(np.mean(kept)), 3)})  # fmt: skip
                if key == "consep":
                    row.update({f"covered {CONSEP_CLASSES[t - 1]}": round(float(np.mean(v)), 3) for t, v in covered.items() if v})
            row["mean PQ"] = round((row["consep PQ"] + row["monuseg PQ"]) / 2, 4)
            rows.append(row)
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "description"), flush=True)
    save("segment_annotator_filter", rows, notes={"weights": WEIGHTS_PATH.name, "runtime": "torch fp32"},
         title="a learned annotator filter on the HV-net's nuclei, held-out images")  # fmt: skip


if __name__ == "__main__":
    main()
