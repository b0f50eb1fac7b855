"""Train the U-Net of ``unet.py`` on CoNSeP-style tiles; writes ``unet_weights.pt``.

    python -m wsicell.segment.train_unet --dataset ../shared/data/consep-tiles/train

A folder of ``NAME.jpg`` + ``NAME.npz`` (``inst``: instance map, 0 = background) tiles at
``--mpp`` (CoNSeP tiles: 0.25 / 1.024 µm/px). Tiles are resampled to the network's 0.5 µm/px;
targets are the nucleus mask and its interior (>= 1 µm inside the outline, as for the pixel
classifier). Loss: binary cross-entropy on both maps + soft Dice on the nucleus map.
Augmentation: random 96² crops, flips, rot90, stain jitter (optical density scaled
0.7-3 overall, ``--stain-scale``, and 0.92-1.08 per channel). The tiles of ``--val-images`` (whole CoNSeP
images, so no tile of a validation image is trained on) are held out: every few epochs the
full segmenter (U-Net + watershed) is scored on them (detection F1, 6 px, at the tiles'
resolution) and the best epoch is kept; then the probability threshold and interior weight
are swept on them. The test split is never read. Seeded; CPU; torch threads = 2. The shipped
weights ran all 60 epochs in 5.8 min (load ~2): on a slower machine raise ``--minutes`` so the
time limit does not cut the schedule short.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from wsicell.atomic import atomic_path
from wsicell.segment.train_pixels import inner_mask
from wsicell.segment.unet import UNET_MPP, WEIGHTS_PATH, UNetForeground, build_unet

CROP = 96
STAIN_SCALE = (0.7, 3.0)
"""Random optical-density scale: whole slides are often stained 2-3x darker than CoNSeP."""
CHANNEL_SCALE = (0.92, 1.08)


def load_folder(folder: Path, *, mpp: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, instance map) of each tile at its own resolution."""
    out = []
    for npz in sorted(folder.glob("*.npz")):
        image = cv2.imread(str(npz.with_suffix(".jpg")))
        if image is None:
            raise SystemExit(f"{npz.with_suffix('.jpg')}: cannot read image")
        out.append((npz.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.load(npz)["inst"].astype(np.int32)))
    return out


def to_network_scale(image: np.ndarray, inst: np.ndarray, *, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Image (h x w x 3 uint8) and targets (2 x h x w float32) at UNET_MPP."""
    scale = mpp / UNET_MPP
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_inst = cv2.resize(inst, size, interpolation=cv2.INTER_NEAREST)
    targets = np.stack([small_inst > 0, inner_mask(small_inst, mpp=UNET_MPP)]).astype(np.float32)
    return small, targets


def augment(
    image: np.ndarray, targets: np.ndarray, rng: np.random.Generator, stain: tuple[float, float] = STAIN_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    y, x = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
    image, targets = image[y : y + CROP, x : x + CROP], targets[:, y : y + CROP, x : x + CROP]
    k = int(rng.integers(4))
    image, targets = np.rot90(image, k, axes=(0, 1)), np.rot90(targets, k, axes=(1, 2))
    if rng.random() < 0.5:
        image, targets = image[:, ::-1], targets[:, :, ::-1]
    scale = rng.uniform(*stain) * rng.uniform(*CHANNEL_SCALE, size=3)
    od = -np.log((image.astype(np.float32) + 1) / 256)
    image = np.clip(256 * np.exp(-od * scale) - 1, 0, 255).astype(np.float32)
    return image, np.ascontiguousarray(targets)


def validate(net, tiles: list, *, mpp: float, threshold: float = 0.6, interior_weight: float = 2.0) -> float:
    """Detection F1 (6 px) of the full segmenter on the held-out tiles."""
    from wsicell.segment.config import SegmentConfig
    from wsicell.segment.metrics import Detection, centroids_of, match_centroids
    from wsicell.segment.watershed import WatershedSegmenter

    net.eval()
    config = SegmentConfig(method="watershed", foreground="cnn", probability_threshold=threshold, interior_weight=interior_weight)
    segmenter = WatershedSegmenter(config)
    segmenter._classifier = UNetForeground.from_net(net)
    detection = Detection(0, 0, 0)
    for _name, image, inst in tiles:
        pred = segmenter.segment(image, mpp=mpp)
        true = np.array([np.argwhere(inst == i).mean(0)[::-1] + 0.5 for i in np.unique(inst)[1:]]).reshape(-1, 2)
        detection = detection + match_centroids(centroids_of(pred), true, radius=6.0)
    return detection.f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--mpp", type=float, default=0.25 / 1.024)
    parser.add_argument("--val-images", default="3,9,15,21", help="CoNSeP image numbers held out")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=20.0, help="stop training after this wall time")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--val-every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stain-scale", type=float, nargs=2, default=STAIN_SCALE, help="OD scale range")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    held = {f"_{n.strip()}_" for n in args.val_images.split(",") if n.strip()}
    tiles = load_folder(args.dataset, mpp=args.mpp)
    val = [t for t in tiles if any(h in f"_{t[0].split('_')[1]}_" for h in held)]
    train = [to_network_scale(image, inst, mpp=args.mpp) for name, image, inst in tiles if all(
        h not in f"_{name.split('_')[1]}_" for h in held)]  # fmt: skip
    print(f"{len(train)} training tiles, {len(val)} validation tiles (images {args.val_images}); "
          f"loaded in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    net = build_unet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(train) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    best_f1, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        losses = []
        for s in range(steps_per_epoch):
            batch = [augment(*train[i], rng, tuple(args.stain_scale)) for i in order[s * args.batch : (s + 1) * args.batch]]
            x = torch.from_numpy(np.stack([b[0] for b in batch]).transpose(0, 3, 1, 2) / 255.0).float()
            y = torch.from_numpy(np.stack([b[1] for b in batch]))
            logits = net(x)
            bce = F.binary_cross_entropy_with_logits(logits, y)
            p = torch.sigmoid(logits[:, 0])
            dice = 1 - (2 * (p * y[:, 0]).sum() + 1) / (p.sum() + y[:, 0].sum() + 1)
            loss = bce + dice
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        elapsed = (time.perf_counter() - t0) / 60
        out_of_time = elapsed > args.minutes
        msg = f"epoch {epoch}: loss {np.mean(losses):.4f}, {elapsed:.1f} min, load {os.getloadavg()[0]:.1f}"
        if epoch % args.val_every == 0 or epoch == args.epochs or out_of_time:
            f1 = validate(net, val, mpp=args.mpp)
            msg += f", validation F1 {f1:.4f}"
            if f1 > best_f1:
                best_f1, best_epoch = f1, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                with atomic_path(args.out) as tmp:
                    torch.save(best_state, tmp)
        print(msg, flush=True)
        if out_of_time:
            print(f"stopping: over {args.minutes} min", flush=True)
            break
    print(f"best validation F1 {best_f1:.4f} at epoch {best_epoch}; wrote {args.out}", flush=True)
    net.load_state_dict(best_state)
    print("sweep on validation tiles (threshold, interior weight -> F1):", flush=True)
    for threshold in (0.4, 0.5, 0.6):
        for weight in (0.0, 1.0, 2.0, 4.0):
            f1 = validate(net, val, mpp=args.mpp, threshold=threshold, interior_weight=weight)
            print(f"  {threshold:.1f} {weight:.1f} -> {f1:.4f}", flush=True)


if __name__ == "__main__":
    main()
