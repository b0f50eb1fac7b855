"""The CCRL paper's CoNSeP table, reproduced with `wsicell evaluate`'s protocol.

    .venv/bin/python benchmarks/evaluate_consep.py                 # the documented run
    .venv/bin/python benchmarks/evaluate_consep.py --seeds 1 --no-ablations   # quicker

Trains the fast CPU configuration once per seed (and the ablations), scores the baselines,
prints the table beside the paper's rows and whether each of AMI / ARI / purity beats the
paper's CCRL, with the load average (the reference machine is shared: times are noisy).
Results and runs go to benchmarks/_work/evaluate (reused when run again).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ccrl-cpu-fast.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baselines", default="all")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "evaluate")
    args = parser.parse_args()

    import torch

    from wsicell.cli.evaluate import parse_baselines
    from wsicell.config import load_config
    from wsicell.evaluate.protocol import run_protocol
    from wsicell.evaluate.report import PAPER_CCRL, markdown
    from wsicell.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    config = load_config(TrainConfig, args.config, threads=args.threads)
    started = time.time()
    results = run_protocol(
        dataset=args.dataset, out=args.out, config=config, seeds=list(range(args.seeds)),
        baselines=parse_baselines(args.baselines), ablations=not args.no_ablations, progress=False,
        log=lambda m: print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {m}", flush=True),
    )  # fmt: skip
    print()
    print(markdown(results))
    main_row = results["rows"][0]
    print("CCRL (this config) versus the paper's CCRL on CoNSeP:")
    for metric, paper in PAPER_CCRL.items():
        ours = 100 * main_row["mean"][metric]
        verdict = "beats" if ours > paper else "misses"
        print(f"  {metric:7s} ours {ours:5.1f} ± {100 * main_row['std'][metric]:.1f}   paper {paper:5.1f}   {verdict} by {ours - paper:+.1f}")
    print(f"total {time.time() - started:.0f} s, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
