"""Where the HV-net segmenter's errors come from: each of its two parts swapped for the truth.

The segmenter is a nucleus map (the foreground, P(nucleus) > ``hv_threshold``) split into
nuclei by the HV maps (``hv_post.hv_instances``). On the held-out images that ``train_hvnet``
chooses with (CoNSeP train images 3, 9, 15, 21 and 4 MoNuSeg images; never the CoNSeP test
split), each part is replaced by the truth in turn, and DQ / PQ (means over tiles or images)
are printed per combination:

- predicted foreground, predicted split: the segmenter (its size filters);
- predicted foreground, true split: the true instances cut to the predicted foreground;
- true foreground, predicted split: the HV maps split the true nucleus mask;
- true foreground shrunk to the network's 0.5 µm/px and enlarged back (CoNSeP), split by the
  HV maps or not split (connected components): what the working resolution allows;
- true foreground, connected components: how far apart the true nuclei are;
- predicted foreground and boundary energy, the true nuclei's centroids as the watershed's
  markers (a disk of ``MARKER_UM`` at each, kept where the foreground is; with or without a
  marker of its own for each foreground component that holds no centroid): what better
  markers alone would give.

    .venv/bin/python benchmarks/segment_diagnosis.py      # ~2 min on one core

Data: ../shared/data/consep-tiles/train and ../shared/data/monuseg-train (see their README).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON
from scipy import ndimage
from skimage.segmentation import watershed

from wsicell.segment.config import SegmentConfig
from wsicell.segment.hv_post import hv_instances, watershed_inputs
from wsicell.segment.hvnet import HVNET_MPP, WEIGHTS_PATH, HVNetModel
from wsicell.segment.metrics import panoptic
from wsicell.segment.train_hvnet import MPP, load, split
from wsicell.segment.watershed import filter_sizes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sizes(labels: np.ndarray, mpp: float) -> np.ndarray:
    """The segmenter's default size filters (``SegmentConfig``'s area and diameter bounds)."""
    c = SegmentConfig()
    return filter_sizes(labels, min_px=c.min_area_um2 / mpp**2, max_px=c.max_area_um2 / mpp**2,
                        max_side_px=c.max_diameter_um / mpp)  # fmt: skip


def at_working_resolution(mask: np.ndarray, mpp: float) -> np.ndarray:
    """A binary mask shrunk to the network's 0.5 µm/px (area) and enlarged back (linear), 0-1."""
    h, w = mask.shape
    small = cv2.resize(mask.astype(np.float32), (round(w * mpp / HVNET_MPP), round(h * mpp / HVNET_MPP)),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


MARKER_UM = 0.75
"""Radius of the disk drawn at each true centroid as a marker."""


def true_markers(prob: np.ndarray, h: np.ndarray, v: np.ndarray, inst: np.ndarray, mpp: float, *,
                 every_component: bool) -> np.ndarray:  # fmt: skip
    """``hv_post.hv_instances`` with its markers replaced by disks at the true centroids
    (``every_component``: plus one marker per foreground component that holds none)."""
    foreground, _, landscape = watershed_inputs(prob, h, v, mpp=mpp)
    foreground = foreground > 0
    ids = np.unique(inst)[1:]
    markers = np.zeros(inst.shape, np.int32)
    if len(ids):
        centres = np.array(ndimage.center_of_mass(np.ones_like(inst), inst, ids)).reshape(-1, 2)
        for k, (y, x) in enumerate(np.rint(centres).astype(int), 1):
            cv2.circle(markers, (int(x), int(y)), max(1, round(MARKER_UM / mpp)), k, -1)
    markers[~foreground] = 0
    if every_component:
        parts, n = ndimage.label(foreground)
        marked = np.zeros(n + 1, bool)
        marked[np.unique(parts[markers > 0])] = True
        markers = np.where(markers > 0, markers, np.where(~marked[parts] & (parts > 0), parts + len(ids), 0))
    return watershed(landscape, markers, mask=foreground).astype(np.int32)


def combinations(image: np.ndarray, inst: np.ndarray, model: HVNetModel, mpp: float) -> dict[str, np.ndarray]:
    prob, h, v = model.maps(image, mpp=mpp)
    true = (inst > 0).astype(np.float32)
    out = {
        "predicted foreground, predicted split (the segmenter)": sizes(hv_instances(prob, h, v, mpp=mpp), mpp),
        "predicted foreground, true split": sizes(np.where(prob > 0.5, inst, 0), mpp),
        "true foreground, predicted split": sizes(hv_instances(true, h, v, mpp=mpp), mpp),
    }
    if mpp < HVNET_MPP / 1.5:
        shrunk = at_working_resolution(true, mpp)
        out["true foreground at 0.5 µm/px, predicted split"] = sizes(hv_instances(shrunk, h, v, mpp=mpp), mpp)
        out["true foreground at 0.5 µm/px, connected components"] = ndimage.label(shrunk > 0.5)[0]
    out["true foreground, connected components"] = ndimage.label(true > 0)[0]
    out["predicted, true centroids as markers (+ unmarked parts)"] = sizes(
        true_markers(prob, h, v, inst, mpp, every_component=True), mpp)
    out["predicted, true centroids as markers only"] = sizes(true_markers(prob, h, v, inst, mpp, every_component=False), mpp)
    return out


def main() -> None:
    for folder in (DATA / "consep-tiles" / "train", DATA / "monuseg-train"):
        if not folder.is_dir():
            sys.exit(f"{folder}: not found (the shared data; see its README)")
    held_out, _ = split(load(DATA / "consep-tiles" / "train"), load(DATA / "monuseg-train"))
    model = HVNetModel(WEIGHTS_PATH, precision="fp32", runtime="torch")
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for key, items in held_out.items():
        print(f"{key}: {len(items)} held-out images or tiles ...", flush=True)
        for _, image, inst, _ in items:
            for name, labels in combinations(image, inst, model, MPP[key]).items():
                p = panoptic(inst, labels)
                scores.setdefault(name, {}).setdefault(key, []).append((p.dq, p.pq))
    rows = []
    print(f"{'foreground, split':58s} {'CoNSeP held-out DQ / PQ':>24s} {'MoNuSeg held-out DQ / PQ':>25s}")
    for name, per_set in scores.items():
        row = {"combination": name}
        cells = []
        for key in ("consep", "monuseg"):
            if key in per_set:
                dq, pq = np.mean(per_set[key], axis=0)
                row[f"{key} DQ"], row[f"{key} PQ"] = round(float(dq), 3), round(float(pq), 3)
                cells.append(f"{dq:.3f} / {pq:.3f}")
            else:
                cells.append("")
        rows.append(row)
        print(f"{name:58s} {cells[0]:>24s} {cells[1]:>25s}")
    save("segment_diagnosis", rows, notes={"weights": WEIGHTS_PATH.name, "runtime": "torch fp32"},
         title="HV-net errors: each part swapped for the truth, held-out images")  # fmt: skip


if __name__ == "__main__":
    main()
