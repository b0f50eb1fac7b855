"""Tiles joined per network call (the GPU path, ``segment/tile_batcher.py``) against one call
per tile, side by side: the HV-net's network on real tiles from several threads.

    .venv/bin/python benchmarks/segment_batching.py [--threads 4] [--tiles 32] [--batch 8]

``--threads`` threads each run ``HVNetModel.maps_and_features`` (the network, no
post-processing) on their share of ``--tiles`` 1024² tiles of the bundled sample slide (0.499
µm/px, the network's working resolution), with torch on the device ``wsicell`` picks (CUDA
when present, else the CPU) and its default precision: once with one network per thread and
one tile per call, once with the process' one network and up to ``--batch`` tiles per call.
Prints tiles per second (wall), the network calls made and the largest batch formed.

On a GPU this is the comparison that chose ``GPU_BATCH``'s role. On a CPU (this project's
machine) it only shows what batching costs there; the CPU default is OpenVINO, one tile per
call per thread, and never batches.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

import wsicell
from wsicell.io.slide import open_slide
from wsicell.segment.hvnet import HVNetModel


def run(models: list[HVNetModel], tiles: list[np.ndarray], mpp: float) -> float:
    """Wall seconds for the threads (one per model) to run the network on all ``tiles``."""
    start = threading.Barrier(len(models) + 1)

    def work(i: int) -> None:
        start.wait()
        for tile in tiles[i :: len(models)]:
            models[i].maps_and_features(tile, mpp=mpp)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(models))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tiles", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="most tiles per call when batched [8]")
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)  # one core per thread, as extraction's workers
    with open_slide(wsicell.SAMPLE_SLIDE) as slide:
        w, h = slide.dimensions
        side = min(1024, w, h)
        region = slide.read((0, 0, w, h), slide.mpp)
        mpp = slide.mpp
    rng = np.random.default_rng(0)
    tiles = []
    for _ in range(args.tiles):
        y, x = rng.integers(0, region.shape[0] - side + 1), rng.integers(0, region.shape[1] - side + 1)
        tiles.append(np.ascontiguousarray(region[y : y + side, x : x + side]))
    rows = []
    for batch in (1, args.batch):
        models = [HVNetModel(runtime="torch", batch=batch) for _ in range(args.threads)]
        run(models, tiles[: args.threads], mpp)  # warm-up
        seconds = run(models, tiles, mpp)
        batcher = models[0].batcher
        row = {"tiles per call": f"up to {batch}" if batch > 1 else "1", "device": device,
               "precision": models[0].precision, "threads": args.threads, "tiles": len(tiles),
               "tiles/s": round(len(tiles) / seconds, 2),
               "largest batch": batcher.largest if batcher else 1}  # fmt: skip
        rows.append(row)
        print(f"{row['tiles per call']:>9s} tiles per call on {device} ({row['precision']}), {args.threads} threads: "
              f"{row['tiles/s']:.2f} {side}² tiles/s, largest batch {row['largest batch']}", flush=True)  # fmt: skip
    print(f"batched / one per call: {rows[1]['tiles/s'] / rows[0]['tiles/s']:.2f}x")
    save("segment_batching", rows, title="HV-net network: tiles joined per call vs one per call")


if __name__ == "__main__":
    main()
