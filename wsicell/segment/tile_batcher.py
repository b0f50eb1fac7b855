"""Tiles from many threads in one network call: the HV-net batched on a GPU.

Extraction's worker threads each segment their own tile. On a CUDA GPU, one network call
per tile leaves the GPU idle between small calls (launches, transfers, one thread at a time
on the device). A :class:`TileBatcher` holds one copy of the network on the device for the
whole process. A thread's :meth:`TileBatcher.infer` queues its tile and waits. One batching
thread joins the queued tiles of the same shape, up to ``max_batch``, into one call, and
hands each caller its own maps and encoder levels. A tile of another shape (a slide's last
row or column of tiles) waits for a call of its own shape, so no tile is padded beyond what
it would be alone, and each tile's result is the one a call on it alone gives (up to the
arithmetic's rounding).

``HVNetModel`` uses it on a CUDA GPU (``GPU_BATCH`` tiles per call); on a CPU the shipped
runtime is OpenVINO with one thread per tile, the fastest measured there, and no batcher is
made. Tiles cross to the device as uint8 (4x fewer bytes than float) from pinned memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from wsicell.device import autocast

GPU_BATCH = 8
"""Tiles per network call on a CUDA GPU (1024² tiles at 0.5 µm/px: ~1 GB of activations
in bf16 for eight)."""
WAIT_S = 0.002
"""How long the batching thread waits for more tiles to join a call it has started to form."""

Levels = list[np.ndarray]
_SHARED: dict[tuple, TileBatcher] = {}
_SHARED_LOCK = threading.Lock()


class TileBatcher:
    """One network (``forward_levels``: maps and encoder levels) on ``device``, shared by
    every thread that calls :meth:`infer`; see the module's docstring."""

    def __init__(self, net, *, device, precision: str, max_batch: int = GPU_BATCH, wait_s: float = WAIT_S) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.net = net
        self.device = device
        self.precision = precision
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.calls = 0
        """Network calls made so far."""
        self.largest = 0
        """The most tiles joined in one call so far."""
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting: list[tuple[np.ndarray, Future]] = []  # tiles of another shape than the last call's
        self._gate = threading.Lock()
        threading.Thread(target=self._serve, name="wsicell-tile-batcher", daemon=True).start()

    def submit(self, work: np.ndarray) -> Future:
        """Queue one tile (HxWx3 uint8, sides a multiple of the network's ``multiple``); the
        future's result is the network's raw output for it (3xHxW float32 maps: the nucleus
        logit, horizontal, vertical; the encoder levels, each hxwxC float32, channels last)."""
        future: Future = Future()
        self._queue.put((work, future))
        return future

    def infer(self, work: np.ndarray) -> tuple[np.ndarray, Levels]:
        """:meth:`submit` and wait for the result."""
        return self.submit(work).result()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No call forms while the block runs (tiles queued in it are joined when it ends)."""
        with self._gate:
            yield

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            self._call(batch)

    def _next_batch(self) -> list[tuple[np.ndarray, Future]]:
        first = self._waiting.pop(0) if self._waiting else self._queue.get()
        with self._gate:
            batch, others = [first], []
            for item in self._waiting:
                fits = len(batch) < self.max_batch and item[0].shape == first[0].shape
                (batch if fits else others).append(item)
            self._waiting = others
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 1e-6))
                except queue.Empty:
                    break
                (batch if item[0].shape == first[0].shape else self._waiting).append(item)
        return batch

    def _call(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        import torch

        try:
            x = torch.from_numpy(np.stack([work for work, _ in batch]))  # x: NxHxWx3 uint8
            if self.device.type == "cuda":
                x = x.pin_memory()
            with torch.inference_mode(), autocast(self.device, self.precision):
                x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
                maps, levels = self.net.forward_levels(x.contiguous(memory_format=torch.channels_last))
                maps = maps.float().cpu().numpy()  # maps: Nx3xHxW, fp32 even under autocast
                levels = [m.float().permute(0, 2, 3, 1).cpu().numpy() for m in levels]  # level k: Nxh_kxw_kxC_k
        except BaseException as exc:  # every caller gets the error; the thread serves on
            for _, future in batch:
                future.set_exception(exc)
            return
        self.calls += 1
        self.largest = max(self.largest, len(batch))
        for i, (_, future) in enumerate(batch):
            future.set_result((maps[i], [m[i] for m in levels]))


def shared_batcher(weights: Path, load: Callable[[Path], Any], *, device, precision: str,
                   max_batch: int = GPU_BATCH) -> TileBatcher:  # fmt: skip
    """The process' batcher for the network of ``weights`` (``load(weights)``: the module, in
    eval mode) on ``device`` in ``precision``: made on first use, then shared by every thread."""
    import torch

    key = (Path(weights).resolve(), str(device), precision, max_batch)
    with _SHARED_LOCK:
        if key not in _SHARED:
            net = load(Path(weights)).to(device, memory_format=torch.channels_last)
            _SHARED[key] = TileBatcher(net, device=device, precision=precision, max_batch=max_batch)
        return _SHARED[key]
