"""The command line shortens OpenMP's spin-wait before torch loads, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import os, sys, wsicell.cli; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"


def probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", PROBE], env=base | env, capture_output=True, text=True, check=True).stdout.strip()


def test_the_command_line_sets_a_short_spin_count_before_torch_loads() -> None:
    assert probe() == "1000 False"  # set, and torch not yet imported (the runtime reads it at load)


@pytest.mark.parametrize(("env", "expected"), [({"GOMP_SPINCOUNT": "50"}, "50 False"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "None False")])
def test_a_users_own_setting_is_kept(env: dict[str, str], expected: str) -> None:
    assert probe(**env) == expected
