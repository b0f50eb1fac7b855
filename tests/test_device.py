"""The device and precision policy: one choice, with its reason, for every command."""

from __future__ import annotations

import pytest
import torch

from wsicell import device as D
from wsicell.errors import ConfigError


def test_explicit_choices_are_honoured() -> None:
    compute = D.choose("cpu", "fp32")
    assert compute.device == torch.device("cpu") and compute.precision == "fp32"
    assert compute.reason == "Chose cpu because device cpu was asked for, fp32 because precision fp32 was asked for"
    with D.autocast("cpu", D.choose("cpu", "bf16").precision):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with D.autocast("cpu", D.choose("cpu", "fp32").precision):
        assert not torch.is_autocast_enabled("cpu")


def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "cpu_has_bf16", lambda: True)
    compute = D.choose()
    assert compute.device.type == "cpu" and compute.precision == "bf16"
    assert "no CUDA GPU is present" in compute.reason and "natively" in compute.reason
    monkeypatch.setattr(D, "cpu_has_bf16", lambda: False)
    assert D.choose().precision == "fp32"
    assert D.choose_precision("auto", "cpu") == ("fp32", "the CPU has no native bf16")
    assert D.DEFAULT_PRECISION == "auto"


def test_impossible_choices_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        D.choose("cuda")
    with pytest.raises(ConfigError, match="fp16' is for CUDA"):
        D.choose("cpu", "fp16")
    with pytest.raises(ConfigError, match="precision must be one of"):
        D.choose_precision("half", "cpu")
    with pytest.raises(ConfigError, match="device must be one of"):
        D.choose_device("tpu")


def test_autocast_runs_in_the_chosen_precision() -> None:
    x = torch.ones(2, 4)
    w = torch.ones(4, 3)
    with D.autocast("cpu", "bf16"):
        assert (x @ w).dtype == torch.bfloat16
    with D.autocast("cpu", "fp32"):
        assert (x @ w).dtype == torch.float32


def test_to_float_batch_scales_and_resizes() -> None:
    import numpy as np

    crops = np.full((2, 8, 8, 3), 255, np.uint8)
    x = D.to_float_batch(crops, size=4, device=torch.device("cpu"))
    assert x.shape == (2, 3, 4, 4) and torch.allclose(x, torch.ones_like(x))
