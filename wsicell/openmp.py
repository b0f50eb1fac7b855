"""How long OpenMP's idle threads spin before they sleep, for the command line.

torch (and FAISS) run their CPU kernels on OpenMP threads. By default GNU OpenMP (the
``libgomp`` in the Linux wheels) lets a thread that waits for work spin for 300,000
iterations before it sleeps. That is fast on an idle machine and pathological on a busy one:
a spinning thread holds a core that the thread it waits for needs. Measured on the 2-core
reference machine (``benchmarks/embed_contention.py``), embedding the sample slide took
3.05 s alone and 6.6 s when a second embedding ran beside it; embedding 391 small fields of
view (many slides of a few dozen nuclei), 12.3 s alone and 206 s beside another. With a spin
count of 1,000 the same runs took 3.1 / 4.5 s and 11.4 / 23 s. ``OMP_WAIT_POLICY=PASSIVE``
(never spin) did about as well under contention but cost 11–45 % alone.

:func:`settle` sets ``GOMP_SPINCOUNT=1000`` unless the user chose an OpenMP wait policy
(``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``). It must run before torch is first imported: the
OpenMP runtime reads its environment when it loads. The command line calls it first thing;
processes it starts (Dask workers) inherit the setting.
"""

from __future__ import annotations

import os

SPIN_COUNT = "1000"


def settle() -> None:
    """Shorten OpenMP's spin-wait unless the user set a wait policy; call before importing torch."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
