"""`wsicell embed` alone and with a second `wsicell embed` beside it, by OpenMP spin-wait setting.

Two stores are built from the bundled sample slide: the slide itself (one slide, ~2,600
nuclei) and the slide cut into 128² fields of view written as PNGs (many slides of a few
dozen nuclei, as a folder of dataset tiles gives). A run of the untrained CPU encoder embeds
them. Each store is embedded by one process running what `wsicell embed` runs (``embed_store``) alone, then by two at once (on
copies), with:

- nothing set: GNU OpenMP's own defaults, i.e. the command line before ``wsicell/openmp.py``;
- ``GOMP_SPINCOUNT=1000``: the command line's default now (``wsicell.openmp.settle``);
- ``OMP_WAIT_POLICY=PASSIVE``: threads never spin.

Wall-clock seconds per process (the two at once: the slower of the pair).

    .venv/bin/python benchmarks/embed_contention.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from record import save  # benchmarks/record.py: the figures as JSON

import wsicell
from wsicell.io.slide import open_slide

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "nothing set (OpenMP's defaults; before)": {},
    "GOMP_SPINCOUNT=1000 (the command line's default now)": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
EMBED = "import sys; from wsicell.embed import embed_store; embed_store(store=sys.argv[1], run=sys.argv[2], progress=False)"
"""What `wsicell embed` runs, called without the command line, which would set GOMP_SPINCOUNT itself."""


def environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any OpenMP wait setting, then ``settings``."""
    return {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | settings


def wsicell_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wsicell", *args], env=environment(env or {}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None) -> None:
    p = wsicell_cli(*args, env=env)
    _, err = p.communicate()
    if p.returncode:
        sys.exit(f"wsicell {' '.join(args)} failed:\n{err[-2000:]}")


def timed_embeds(store: Path, model: Path, copies: int, env: dict[str, str], work: Path) -> float:
    """Seconds until ``copies`` concurrent `wsicell embed` runs (each on its own copy) end."""
    stores = []
    for i in range(copies):
        copy = work / f"copy{i}.zarr"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(store, copy)
        stores.append(copy)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", EMBED, str(s), str(model)], env=environment(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for s in stores]  # fmt: skip
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(f"wsicell embed failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        slide = Path(str(wsicell.SAMPLE_SLIDE))
        fields = work / "fields"
        fields.mkdir()
        with open_slide(slide) as s:
            w, h = s.dimensions
            image = s.read_region((0, 0), 0, (w, h))
        for y in range(0, h - 127, 128):
            for x in range(0, w - 127, 128):
                cv2.imwrite(str(fields / f"f{y:05d}_{x:05d}.png"), cv2.cvtColor(image[y : y + 128, x : x + 128], cv2.COLOR_RGB2BGR))
        stores = {"sample slide (1 slide)": work / "slide.zarr", f"{len(list(fields.iterdir()))} fields of 128²": work / "fields.zarr"}
        run("extract", str(slide), "--store", str(stores["sample slide (1 slide)"]), "-q")
        run("extract", *map(str, sorted(fields.iterdir())), "--store", str(work / "fields.zarr"),
            "--slide-mpp", "0.499", "--tissue", "none", "-q")  # fmt: skip
        model = work / "run"
        run("train", "--store", str(stores["sample slide (1 slide)"]), "--out", str(model), "--config",
            str(ROOT / "configs" / "cpu-untrained.yaml"))  # fmt: skip
        rows = []
        for where, store in stores.items():
            for name, env in SETTINGS.items():
                alone = timed_embeds(store, model, 1, env, work)
                pair = timed_embeds(store, model, 2, env, work)
                rows.append({"store": where, "setting": name, "alone_s": round(alone, 2), "two_at_once_s": round(pair, 2)})
                print(f"{where:24} {name:48} alone {alone:6.2f} s   two at once {pair:6.2f} s", flush=True)
    save("embed_contention", rows, notes={"cores": os.cpu_count()},
         title="wsicell embed alone and beside a second one, by OpenMP spin-wait setting")  # fmt: skip


if __name__ == "__main__":
    main()
