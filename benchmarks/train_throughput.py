"""Training-step and data-loading throughput of `wsicell train`, side by side.

1. Train step (the loop's own ``train_step``: two augmented views, query + momentum
   forward, InfoNCE, backward, Adam, EMA) in crops/s, batch 256, 32-px crops, ResNet-18:
   stems (cifar / cifar_pool / imagenet) x precision (fp32 / bf16 autocast) x channels_last;
   optionally ``torch.compile``. CUDA too when present.
2. Inference (``embed_crops``) crops/s, fp32 vs bf16.
3. Loader: ``CropLoader`` crops/s over a store of REAL nucleus crops (the sample slide
   extracted by ``wsicell.extract``, its crops copied into 8 slide groups, ~20k cells),
   1 and 2 reader threads; raw chunk decode rate per thread; compressed bytes per crop.
4. The ratio loader / train step (target >= 3) and the arithmetic for a 20,000 crops/s GPU.

    .venv/bin/python benchmarks/train_throughput.py [--batch 256] [--steps 3] [--threads 0] [--compile]

The machine is shared: the 1-minute load average is printed next to every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from record import save  # benchmarks/record.py: the figures as JSON

import wsicell
from wsicell.device import choose_precision
from wsicell.embed import embed_crops
from wsicell.store import CellBatch, CellStore
from wsicell.train.augment import Augment
from wsicell.train.config import TrainConfig
from wsicell.train.data import CropLoader
from wsicell.train.loop import train_step
from wsicell.train.method import build_method

WORK = Path(__file__).resolve().parent / "_work"
GPU_TARGET = 20_000


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def step_rate(config: TrainConfig, *, batch: int, steps: int, device: torch.device, crops: np.ndarray) -> float:
    """Median crops/s of ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    method = build_method(config).to(device)
    if config.channels_last:
        method = method.to(memory_format=torch.channels_last)
    model = torch.compile(method) if config.compile else method
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    precision = choose_precision(config.precision, device)[0]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    gen = torch.Generator().manual_seed(0)
    aug = Augment(config)
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        train_step(model, method, crops[:batch], config=config, device=device, precision=precision, optimizer=opt,
                   scaler=scaler, augment=aug, generator=gen)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def infer_rate(stem: str, precision: str, crops: np.ndarray, device: torch.device) -> float:
    method = build_method(TrainConfig(stem=stem))
    model = method.encoder("momentum").to(device).eval()
    model.crop_size = 32
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        embed_crops(model, crops[:256], batch_size=256)
        t = time.perf_counter()
        embed_crops(model, crops, batch_size=256)
    return len(crops) / (time.perf_counter() - t)


def real_crops_store(copies: int = 8) -> tuple[Path, np.ndarray]:
    """The sample slide extracted once, then its crops written as ``copies`` slide groups."""
    from wsicell.extract import ExtractConfig, extract_slides

    WORK.mkdir(parents=True, exist_ok=True)
    extracted = WORK / "train-sample.zarr"
    if not extracted.exists():
        extract_slides([Path(str(wsicell.SAMPLE_SLIDE))], store=extracted, config=ExtractConfig(), progress=False)
    src = CellStore.open(extracted).slides()[0]
    crops = np.asarray(src.array("crops")[:])
    path = WORK / f"train-loader-{copies}x.zarr"
    if not path.exists():
        store = CellStore.create_or_open(path)
        arrays = {n: np.asarray(src.array(n)[:]) for n in ("centroid", "contour", "bbox", "features")}
        for i in range(copies):
            w = store.begin_slide(f"copy-{i}", attrs={"path": src.path, "fingerprint": f"copy-{i}", "mpp": src.mpp},
                                  crop_size=crops.shape[1], contour_points=arrays["contour"].shape[1],
                                  feature_names=src.feature_names)  # fmt: skip
            w.append(CellBatch(crops, arrays["centroid"], arrays["contour"], arrays["bbox"], arrays["features"]))
            w.finish()
    return path, crops


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "crops" in f.parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--stems", default="cifar,cifar_pool,imagenet")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, CUDA {torch.cuda.is_available()}, {load()}")  # fmt: skip

    store, crops = real_crops_store()
    pool = np.concatenate([crops] * (1 + args.batch // len(crops)))
    print(f"\nreal crops: {len(crops)} nuclei of the sample slide, {crops.shape[1]} px; loader store {store.name}")

    # 1. train step
    print(f"\n== train step, batch {args.batch}, 32 px, ResNet-18 (crops/s, median of {args.steps}) ==")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results: dict[tuple, float] = {}
    for device in devices:
        precisions = ("fp32", "bf16") if device.type == "cpu" else ("fp32", "bf16", "fp16")
        for stem in args.stems.split(","):
            for precision in precisions:
                for cl in (False, True):
                    config = TrainConfig(stem=stem, precision=precision, channels_last=cl, batch_size=args.batch,
                                         queue_size=args.batch * 16)  # fmt: skip
                    rate = step_rate(config, batch=args.batch, steps=args.steps, device=device, crops=pool)
                    results[(device.type, stem, precision, cl)] = rate
                    print(f"{device.type:4s} {stem:10s} {precision:4s} channels_last={cl!s:5s} {rate:8.1f} crops/s  {load()}", flush=True)  # fmt: skip
        if args.compile:
            config = TrainConfig(stem="cifar_pool", precision="bf16", compile=True, batch_size=args.batch, queue_size=args.batch * 16)
            t = time.perf_counter()
            rate = step_rate(config, batch=args.batch, steps=args.steps, device=device, crops=pool)
            print(f"{device.type:4s} cifar_pool bf16 torch.compile   {rate:8.1f} crops/s  (incl. compile {time.perf_counter() - t:.0f} s)  {load()}")  # fmt: skip

    print("\nside by side (cpu, best channels_last setting):")
    for stem in args.stems.split(","):
        best = {p: max(results[("cpu", stem, p, c)] for c in (False, True)) for p in ("fp32", "bf16")}
        print(f"  {stem:10s} fp32 {best['fp32']:7.1f}  bf16 {best['bf16']:7.1f}  bf16/fp32 x{best['bf16'] / best['fp32']:.2f}")

    # 2. inference
    print("\n== inference (embed_crops), batch 256 (crops/s) ==")
    inference = {}
    for stem in args.stems.split(","):
        rates = inference[stem] = {p: infer_rate(stem, p, pool[:1024], torch.device("cpu")) for p in ("fp32", "bf16")}
        print(f"cpu  {stem:10s} fp32 {rates['fp32']:7.1f}  bf16 {rates['bf16']:7.1f}  {load()}", flush=True)

    # 3. loader
    print("\n== loader (CropLoader over real crops) ==")
    cells = CellStore.open(store)
    slides = cells.slides()
    n_cells = sum(s.n_cells for s in slides)
    t = time.perf_counter()
    for s in slides:
        for _ in s.iter_chunks("crops"):
            pass
    decode = n_cells / (time.perf_counter() - t)
    per_crop = dir_bytes(store) / n_cells
    raw = crops.shape[1] * crops.shape[2] * 3
    print(f"raw chunk decode, 1 thread: {decode:,.0f} crops/s ({decode * raw / 1e6:.0f} MB/s decoded)  {load()}")
    print(f"bytes per crop: {raw} raw uint8, {per_crop:.0f} compressed on disk (x{raw / per_crop:.1f})")
    loader_rates = {}
    for workers in (1, 2):
        ld = CropLoader(slides, batch_size=args.batch, seed=0, num_workers=workers, shuffle_chunks=16)
        t = time.perf_counter()
        got = sum(len(b.crops) for b in ld.epoch(0))
        loader_rates[workers] = got / (time.perf_counter() - t)
        print(f"CropLoader, {workers} reader thread(s): {loader_rates[workers]:,.0f} crops/s over {got} crops  {load()}", flush=True)

    # 4. ratio and GPU arithmetic
    auto = choose_precision("auto", "cpu")[0]
    default = results.get(("cpu", "cifar", auto, True), 0.0)
    fastest = max(v for k, v in results.items() if k[0] == "cpu")
    loader_best = max(loader_rates.values())
    print("\n== loader vs train step ==")
    print(f"default (cifar stem, precision auto={auto}, channels_last): train {default:.1f} crops/s; "
          f"loader {loader_best:,.0f} crops/s -> ratio x{loader_best / default:.0f} (target >= 3)")  # fmt: skip
    print(f"fastest CPU train step {fastest:.1f} crops/s -> ratio x{loader_best / fastest:.0f}")
    threads = GPU_TARGET / decode
    print(f"\nfeeding a GPU at {GPU_TARGET:,} crops/s: {threads:.1f} decode threads at {decode:,.0f} crops/s each; "
          f"{GPU_TARGET * per_crop / 1e6:.1f} MB/s from disk, {GPU_TARGET * raw / 1e6:.1f} MB/s uint8 to the device "
          f"(augmentation runs there); shuffle buffer 16 chunks x 1024 x {raw} B = {16 * 1024 * raw / 1e6:.0f} MB")  # fmt: skip
    rows = []
    for stem in args.stems.split(","):
        best = {p: max(results[("cpu", stem, p, c)] for c in (False, True)) for p in ("fp32", "bf16")}
        rows.append({"stem": stem, "train_fp32": round(best["fp32"], 1), "train_bf16": round(best["bf16"], 1),
                     "bf16_over_fp32": round(best["bf16"] / best["fp32"], 2), "inference_fp32": round(inference[stem]["fp32"]),
                     "inference_bf16": round(inference[stem]["bf16"])})  # fmt: skip
    save("train_throughput", rows, notes={
        "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(), "unit": "crops/s",
        "all_train_settings": {f"{d} {s} {p} channels_last={c}": round(v, 1) for (d, s, p, c), v in results.items()},
        "decode_crops_per_s": round(decode), "bytes_per_crop_disk": round(per_crop),
        "loader_crops_per_s": {str(k): round(v) for k, v in loader_rates.items()},
        "loader_over_default_step": round(loader_best / default) if default else None,
        "loader_over_fastest_step": round(loader_best / fastest),
    }, title="training step, inference and loader throughput on the CPU")  # fmt: skip


if __name__ == "__main__":
    main()
