"""Train the multi-task U-Net of ``hvnet.py`` on CoNSeP + MoNuSeg; writes ``hvnet_weights.pt``.

    python -m wsicell.segment.train_hvnet --consep ../shared/data/consep-tiles/train \\
        --monuseg ../shared/data/monuseg-train

Data, all resampled to the network's 0.5 µm/px: the CoNSeP train tiles (``NAME.jpg`` +
``NAME.npz`` with ``inst``; 0.25 / 1.024 µm/px) and the MoNuSeg training images (``mask``,
and ``inst`` for 13 of them; 0.2527 µm/px). Images with only a ``mask`` supervise the
nucleus map only. Held out, never trained on: the CoNSeP images ``--val-consep`` (all their
tiles) and the MoNuSeg images ``--val-monuseg`` (4 organs). Every ``--val-every`` epochs the
full segmenter (network + HoVer-Net post-processing + size filters) is scored on them at
their own resolution, and the epoch with the best mean PQ (MoNuSeg held-out, CoNSeP
held-out) is kept; then the two thresholds of the post-processing are swept on them
(``--sweep-only`` repeats that sweep for existing weights). The CoNSeP test split is never read.

Targets: nucleus mask and HoVer-Net's horizontal/vertical maps. Loss (HoVer-Net's):
BCE + Dice on the nucleus logit, MSE of the HV maps + MSE of their Sobel gradients inside
nuclei. Augmentation: random 112² crops at a random scale (x0.8-1.25), flips, rot90, and
stain jitter in the Ruifrok-Johnston HED space (each stain x0.75-1.33, +-0.03, then the whole
optical density x0.7-2.5: whole slides are often stained 2-3x darker than CoNSeP). AdamW,
cosine learning rate with warm-up, seeded, torch threads ``--threads``. ``--channels`` sets
the width per level (default ``hvnet.CHANNELS``); the weights file records it in its
convolutions' shapes, which ``hvnet.load_hvnet`` reads back. ``--gap-weight`` (off; measured,
not adopted: docs/segmentation.md) weighs the nucleus map's BCE more on background pixels
between two nearly touching nuclei (:func:`gaps`), the U-Net paper's border weights.

``--fine`` trains the full-resolution branch of ``method: hvnet-fine`` (``hvnet_fine_weights.pt``):
the branch is added to the network of ``--init`` (default: the shipped ``hvnet_weights.pt``)
and the whole is fine-tuned at the branch's 0.25 µm/px, on 224² crops (the same 56 µm); an
``--init`` that already has a branch continues it. The shipped branch: two runs of 30 epochs
with ``--monuseg-share 0.75 --lr 1e-3 --val-every 5``, seed 3, then seed 4 with ``--init`` the
first run's output (``hvnet_fine_weights.md``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from wsicell.segment.hv_post import hv_targets
from wsicell.segment.hvnet import (
    CHANNELS,
    FINE_WEIGHTS_PATH,
    HVNET_MPP,
    WEIGHTS_PATH,
    HVNetModel,
    build_fine_hvnet,
    build_hvnet,
    load_hvnet,
)
from wsicell.segment.stain import HED_FROM_RGB, OD_LUT, RGB_FROM_HED

CROP_UM = 56.0
"""Side of the training crops in µm: 112 px at the HV-net's 0.5 µm/px."""
CONSEP_MPP = 0.25 / 1.024
MONUSEG_MPP = 0.2527
VAL_MONUSEG = "TCGA-21-5786-01Z-00-DX1,TCGA-A7-A13E-01Z-00-DX1,TCGA-B0-5711-01Z-00-DX1,TCGA-G9-6362-01Z-00-DX1"
"""One held-out image per organ: liver, breast, kidney, prostate (MoNuSeg's organ list)."""
VAL_CONSEP = "3,9,15,21"
MPP = {"consep": CONSEP_MPP, "monuseg": MONUSEG_MPP}
"""Resolution of each dataset's images, by the keys of :func:`split`'s sets."""


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]]:
    """(name, RGB image, instance map or None, nucleus mask) per ``NAME.npz`` of a folder."""
    out = []
    for npz in sorted(folder.glob("*.npz")):
        data = np.load(npz)
        inst = data["inst"].astype(np.int32) if "inst" in data else None
        mask = data["mask"] if inst is None else (inst > 0) | data.get("mask", False)
        out.append((npz.stem, read_rgb(npz.with_suffix(".jpg")), inst, mask.astype(np.uint8)))
    return out


def to_working(image: np.ndarray, inst: np.ndarray | None, mask: np.ndarray, mpp: float, working_mpp: float = HVNET_MPP):
    scale = mpp / working_mpp
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    small_inst = None if inst is None else cv2.resize(inst, size, interpolation=cv2.INTER_NEAREST)
    small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), small_inst, small_mask


def stain_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random HED scale/shift and overall optical-density scale; float32 0-255."""
    hed = OD_LUT[image] @ HED_FROM_RGB
    hed = hed * rng.uniform(0.75, 1.33, size=3) + rng.uniform(-0.03, 0.03, size=3)
    od = (hed @ RGB_FROM_HED.astype(np.float32)) * rng.uniform(0.7, 2.5)
    return np.clip(256 * np.power(10.0, -np.maximum(od, 0)) - 1, 0, 255).astype(np.float32)


GAP_RADII = (1, 2, 3)
"""Gap pixels (``gaps``): background with two different nuclei within these many px."""


def gaps(labels: np.ndarray) -> np.ndarray:
    """HxW float32 in [0, 1]: for each background pixel, the share of ``GAP_RADII`` r at which
    its (2r+1)² window holds two different nuclei (1 = a pixel between two nuclei that almost
    touch, 0 = background near at most one nucleus, and every nucleus pixel). The U-Net
    paper's border weights (Ronneberger et al. 2015) in a form without a loop over nuclei:
    the window's largest and smallest instance label (background left out) differ."""
    none = np.float32(np.finfo(np.float32).max)  # "no nucleus" for the smallest label
    ids = labels.astype(np.float32)
    lowest = np.where(labels > 0, ids, none)
    out = np.zeros(labels.shape, np.float32)
    for r in GAP_RADII:
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        low = cv2.erode(lowest, kernel)
        out += (low < none) & (cv2.dilate(ids, kernel) > low)  # two different labels in the window
    out[labels > 0] = 0
    return out / len(GAP_RADII)


def sample(item, rng: np.random.Generator, crop: int = round(CROP_UM / HVNET_MPP)):
    """(image crop x crop x 3 float32, targets 4 x crop x crop float32, HV supervised?) from a
    random crop of one working-resolution image. Targets: nucleus mask, horizontal and
    vertical maps (with instances), gap pixels between nuclei (:func:`gaps`)."""
    image, inst, mask = item
    h, w = image.shape[:2]
    s = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    win = min(round(crop / s), h, w)
    y, x = rng.integers(0, h - win + 1), rng.integers(0, w - win + 1)
    image = cv2.resize(image[y : y + win, x : x + win], (crop, crop), interpolation=cv2.INTER_LINEAR)
    labels = inst if inst is not None else mask.astype(np.int32)
    labels = cv2.resize(labels[y : y + win, x : x + win], (crop, crop), interpolation=cv2.INTER_NEAREST)
    k = int(rng.integers(4))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    labels = np.ascontiguousarray(labels)
    targets = np.zeros((4, crop, crop), np.float32)
    targets[0] = labels > 0
    if inst is not None:
        targets[1:3] = hv_targets(labels)
        targets[3] = gaps(labels)
    return stain_jitter(np.ascontiguousarray(image), rng), targets, inst is not None


def split(consep: list, monuseg: list, *, val_consep: str = VAL_CONSEP, val_monuseg: str = VAL_MONUSEG,
          working_mpp: float = HVNET_MPP):  # fmt: skip
    """Loaded items (:func:`load`) -> (held out: ``{"consep": tiles, "monuseg": images}`` as
    they are, training: the same keys, items at the working resolution ``working_mpp``).
    ``val_*``: the CoNSeP image numbers and MoNuSeg image names held out, comma-separated."""
    held_consep = {n.strip() for n in val_consep.split(",") if n.strip()}
    held_monuseg = {n.strip() for n in val_monuseg.split(",") if n.strip()}
    val = {
        "consep": [t for t in consep if t[0].split("_")[1] in held_consep],
        "monuseg": [t for t in monuseg if t[0] in held_monuseg],
    }
    train = {
        "consep": [to_working(im, i, m, CONSEP_MPP, working_mpp) for n, im, i, m in consep
                   if n.split("_")[1] not in held_consep],
        "monuseg": [to_working(im, i, m, MONUSEG_MPP, working_mpp) for n, im, i, m in monuseg if n not in held_monuseg],
    }
    return val, train


def calibration_inputs(train: dict[str, list], *, n: int = 100, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` random ``size``² crops (1x3xHxW float32 network inputs) of the training images
    (:func:`split`'s second part, at the working resolution), images drawn uniformly, each
    with the training's stain jitter (slides 2-3x darker than CoNSeP are common): the
    calibration set of the int8 network (``python -m wsicell.segment.export_openvino --int8``)."""
    from wsicell.segment.hvnet import to_input

    images = [item[0] for items in train.values() for item in items if min(item[0].shape[:2]) >= size]
    if not images:
        raise SystemExit(f"no training image of at least {size}² px at the working resolution to calibrate on")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = images[rng.integers(len(images))]
        y, x = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        crop = stain_jitter(image[y : y + size, x : x + size], rng)  # the training's stain range: darker slides too
        out.append(to_input(crop.round().astype(np.uint8)).numpy())
    return out


def sobel_kernels():  # -> torch.Tensor 2x1x5x5 (d/dx, d/dy)
    import torch

    deriv, smooth = cv2.getDerivKernels(1, 0, 5, normalize=True)  # x kernel, y kernel
    kx = np.outer(smooth.ravel(), deriv.ravel())  # rows: smoothing in y; columns: d/dx
    return torch.from_numpy(np.stack([kx, kx.T])[:, None].astype(np.float32))


def lovasz_hinge(logit, fg):
    """Berman et al.'s Lovász hinge (a convex surrogate of 1 - IoU), per crop, averaged;
    ``logit``, ``fg``: NxHxW. All crops at once: errors sorted per row, the Jaccard loss'
    gradient read off the cumulative sums of the sorted labels."""
    import torch
    import torch.nn.functional as F

    logit, fg = logit.flatten(1), fg.flatten(1)
    errors, order = torch.sort(1 - logit * (2 * fg - 1), dim=1, descending=True)
    gt = torch.gather(fg, 1, order)
    total = gt.sum(1, keepdim=True)
    jaccard = 1 - (total - gt.cumsum(1)) / (total + (1 - gt).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (F.relu(errors) * grad).sum(1).mean()


def loss_fn(out, y, has_hv, kernels, lovasz: float = 0.0, gap_weight: float = 0.0):
    """HoVer-Net's loss; ``y``: Nx4xHxW targets of :func:`sample`. ``gap_weight`` > 0 weighs
    the nucleus map's BCE by 1 + gap_weight x the gap target (background between nuclei)."""
    import torch
    import torch.nn.functional as F

    logit, hv = out[:, 0], out[:, 1:]
    fg = y[:, 0]
    weight = 1 + gap_weight * y[:, 3] if gap_weight else None
    bce = F.binary_cross_entropy_with_logits(logit, fg, weight=weight)
    p = torch.sigmoid(logit)
    dice = 1 - (2 * (p * fg).sum() + 1) / (p.sum() + fg.sum() + 1)
    loss = bce + dice
    if lovasz:
        loss = loss + lovasz * lovasz_hinge(logit, fg)
    if has_hv.any():
        hv, t, m = hv[has_hv], y[has_hv, 1:3], fg[has_hv]
        mse = ((hv - t) ** 2).mean()
        gx = F.conv2d(torch.cat([hv[:, :1], t[:, :1]]), kernels[:1], padding=2)
        gy = F.conv2d(torch.cat([hv[:, 1:], t[:, 1:]]), kernels[1:], padding=2)
        n = len(hv)
        msge = (((gx[:n] - gx[n:]) ** 2 + (gy[:n] - gy[n:]) ** 2)[:, 0] * m).sum() / (2 * m.sum() + 1)
        loss = loss + 2 * mse + msge
    return loss


def validate(model, sets: dict[str, list], mpp: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(DQ, PQ) of the full segmenter around ``model`` (an ``hvnet.HVNetModel``, any
    runtime) per held-out set: means over images (MoNuSeg) or tiles (CoNSeP, as the benchmark)."""
    from wsicell.segment.config import SegmentConfig
    from wsicell.segment.hv_segmenter import HVNetSegmenter
    from wsicell.segment.metrics import panoptic

    segmenter = HVNetSegmenter(SegmentConfig(method="hvnet", precision="fp32"))
    segmenter._model = model
    out = {}
    for key, items in sets.items():
        scores = [panoptic(inst, segmenter.segment(image, mpp=mpp[key])) for _, image, inst, _ in items]
        out[key] = (float(np.mean([s.dq for s in scores])), float(np.mean([s.pq for s in scores])))
    return out


def sweep(net, sets: dict[str, list], mpp: dict[str, float], min_areas: tuple[float, ...] = (3.0,)):
    """Mean held-out PQ (and each set's DQ, PQ) per (hv_threshold, hv_marker_threshold,
    min_area_um2); the maps are computed once per image, the instances once per threshold pair."""
    from wsicell.segment.hv_post import hv_instances
    from wsicell.segment.metrics import panoptic
    from wsicell.segment.watershed import filter_sizes

    net.eval()
    model = HVNetModel.from_net(net)
    maps = {key: [(model.maps(image, mpp=mpp[key]), inst) for _, image, inst, _ in items] for key, items in sets.items()}
    rows = []
    for threshold in (0.4, 0.5, 0.6):
        for marker in (0.4, 0.45, 0.5, 0.55, 0.6):
            found = {key: [(hv_instances(*out, mpp=mpp[key], threshold=threshold, marker_threshold=marker), inst)
                           for out, inst in pairs] for key, pairs in maps.items()}  # fmt: skip
            for area in min_areas:
                scores = {}
                for key, pairs in found.items():
                    m = mpp[key]
                    result = [panoptic(inst, filter_sizes(labels, min_px=area / m**2, max_px=400 / m**2,
                                                          max_side_px=30 / m)) for labels, inst in pairs]  # fmt: skip
                    scores[key] = (float(np.mean([r.dq for r in result])), float(np.mean([r.pq for r in result])))
                mean_pq = (scores["consep"][1] + scores["monuseg"][1]) / 2
                rows.append((threshold, marker, area, mean_pq, scores))
                print(f"  hv_threshold {threshold:.2f} hv_marker_threshold {marker:.2f} min_area_um2 {area:g}: "
                      f"mean PQ {mean_pq:.4f}"
                      + "".join(f", {k} DQ {dq:.3f} PQ {pq:.3f}" for k, (dq, pq) in scores.items()), flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--consep", required=True, type=Path, help="CoNSeP train tiles folder")
    parser.add_argument("--monuseg", required=True, type=Path, help="MoNuSeg training images folder")
    parser.add_argument("--val-consep", default=VAL_CONSEP, help="CoNSeP image numbers held out")
    parser.add_argument("--val-monuseg", default=VAL_MONUSEG, help="MoNuSeg image names held out")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--val-every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help=f"weights to write [{WEIGHTS_PATH.name}; --fine: {FINE_WEIGHTS_PATH.name}]")
    parser.add_argument("--fine", action="store_true",
                        help="train the full-resolution branch of method: hvnet-fine on the --init network [shipped]")  # fmt: skip
    parser.add_argument("--sweep-only", action="store_true", help="load --out, only sweep the thresholds")
    parser.add_argument("--sweep-min-areas", type=float, nargs="+", default=[3.0],
                        help="min_area_um2 values the sweep also tries [3]")  # fmt: skip
    parser.add_argument("--init", type=Path, help="start from these weights (a continuation run; their channels)")
    parser.add_argument("--channels", default=",".join(map(str, CHANNELS)),
                        help=f"channels per level, full resolution first [{','.join(map(str, CHANNELS))}]")  # fmt: skip
    parser.add_argument("--monuseg-share", type=float, default=0.5, help="share of each batch from MoNuSeg [0.5]")
    parser.add_argument("--gap-weight", type=float, default=0.0,
                        help="extra BCE weight on background between nearly touching nuclei [0 = off]")  # fmt: skip
    parser.add_argument("--lovasz", type=float, default=0.0,
                        help="weight of a Lovász hinge (IoU surrogate) on the nucleus map [0 = off]")  # fmt: skip
    args = parser.parse_args()
    if args.gap_weight < 0 or args.lovasz < 0:
        raise SystemExit("--gap-weight and --lovasz are loss weights: 0 (off) or more")
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    if args.out is None:
        args.out = FINE_WEIGHTS_PATH if args.fine else WEIGHTS_PATH
    if args.sweep_only:
        net = load_hvnet(args.out)
    else:
        try:
            channels = tuple(int(c) for c in args.channels.split(","))
        except ValueError:
            raise SystemExit(f"--channels {args.channels}: expected whole numbers separated by commas, e.g. 8,16,32,64,128") from None
        if (args.init or args.fine) and channels != CHANNELS:
            raise SystemExit("--channels sets the width of a network trained from scratch; --init and --fine "
                             "start from existing weights, whose width they keep")  # fmt: skip
        init = args.init or (WEIGHTS_PATH if args.fine else None)
        net = load_hvnet(init) if init else build_hvnet(channels)
        if args.fine and not hasattr(net, "base"):
            net = build_fine_hvnet(net)  # its correction starts at zero: the network's own maps
    crop = round(CROP_UM / net.mpp)
    val, train = split(load(args.consep), load(args.monuseg), val_consep=args.val_consep, val_monuseg=args.val_monuseg,
                       working_mpp=net.mpp)  # fmt: skip
    held_monuseg = {n.strip() for n in args.val_monuseg.split(",") if n.strip()}
    if len(val["monuseg"]) != len(held_monuseg) or any(t[2] is None for t in val["monuseg"]):
        raise SystemExit("--val-monuseg: every held-out image must exist and have an instance map")
    train_consep, train_monuseg = train["consep"], train["monuseg"]
    print(
        f"train: {len(train_consep)} CoNSeP tiles, {len(train_monuseg)} MoNuSeg images "
        f"({sum(t[1] is not None for t in train_monuseg)} with instances); held out: {len(val['consep'])} "
        f"CoNSeP tiles, {len(val['monuseg'])} MoNuSeg images; loaded in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    mpp = MPP
    if args.sweep_only:
        print(f"sweep on the held-out images ({args.out}):", flush=True)
        sweep(net, val, mpp, tuple(args.sweep_min_areas))
        return
    core = getattr(net, "base", net)  # the HV-net (inside the branch's network with --fine)
    print(f"channels {core.enc[0][0].out_channels}..{core.enc[-1][0].out_channels}"
          f"{', full-resolution branch' if core is not net else ''}, {net.mpp} µm/px, {crop}² crops, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters", flush=True)
    kernels = sobel_kernels()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    total = args.epochs * args.steps
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, total) / total))
    )
    best, best_epoch = -1.0, 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        losses = []
        for _ in range(args.steps):
            # a fixed share of the batch from each dataset, interleaved (default half: even
            # places MoNuSeg, odd CoNSeP): CoNSeP is one colon, MoNuSeg seven organs
            items = [train_monuseg[rng.integers(len(train_monuseg))] if (b * args.monuseg_share) % 1 < args.monuseg_share
                     else train_consep[rng.integers(len(train_consep))] for b in range(args.batch)]  # fmt: skip
            batch = [sample(item, rng, crop) for item in items]
            x = torch.from_numpy(np.stack([b[0] for b in batch]).transpose(0, 3, 1, 2) / 255.0).float()
            y = torch.from_numpy(np.stack([b[1] for b in batch]))
            has_hv = torch.tensor([b[2] for b in batch])
            loss = loss_fn(net(x), y, has_hv, kernels, args.lovasz, args.gap_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        msg = (f"epoch {epoch}: loss {np.mean(losses):.4f}, {(time.perf_counter() - t0) / 60:.1f} min, "
               f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        if epoch % args.val_every == 0 or epoch == args.epochs:
            scores = validate(HVNetModel.from_net(net.eval()), val, mpp)
            score = (scores["consep"][1] + scores["monuseg"][1]) / 2
            msg += "".join(f", {k} DQ {dq:.3f} PQ {pq:.3f}" for k, (dq, pq) in scores.items())
            if score > best:
                best, best_epoch = score, epoch
                tmp = args.out.with_name(args.out.name + ".tmp")
                torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, tmp)
                os.replace(tmp, args.out)
                msg += " (best)"
        print(msg, flush=True)
    print(f"best mean held-out PQ {best:.4f} at epoch {best_epoch}; wrote {args.out}; "
          f"{(time.perf_counter() - t0) / 60:.1f} min", flush=True)  # fmt: skip
    net.load_state_dict(torch.load(args.out, map_location="cpu", weights_only=True))
    print("sweep on the held-out images:", flush=True)
    sweep(net, val, mpp, tuple(args.sweep_min_areas))


if __name__ == "__main__":
    main()
