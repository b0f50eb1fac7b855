"""The HV-net on OpenVINO: the network as an OpenVINO model, read from the shipped IR.

``hvnet_openvino.xml`` / ``.bin`` (beside ``hvnet_weights.pt``) hold the network in
OpenVINO's format, tagged with the SHA-256 of the weights file they were made from. Reading
them takes ~0.04 CPU-s and ~40 MB, where converting the torch module in memory with
``openvino.convert_model`` takes ~1.1 CPU-s and ~130 MB; that is done (once per process)
only for other weights or a stale IR.

Telemetry: ``import openvino`` sends a usage event to Google Analytics from a forked process
unless the user opted out (OpenVINO's telemetry is opt-out since 2024); so does
``convert_model``. wsicell imports openvino only through :func:`import_openvino`, which
makes the ``openvino_telemetry`` package unimportable first, so OpenVINO falls back to its
own no-op stub and sends nothing. The shipped IR is written by
``python -m wsicell.segment.export_openvino`` after retraining.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import warnings
from pathlib import Path

from wsicell.errors import ConfigError
from wsicell.segment.tile_features import TILE_LEVELS

IR_PATH = Path(__file__).with_name("hvnet_openvino.xml")
DIGEST_KEY = "wsicell_weights_sha256"
FORMAT_KEY = "wsicell_ir_format"
IR_FORMAT = "2"
"""What the IR's outputs are: 2 = the maps, then the encoder levels of ``TILE_LEVELS``, channels
last (``convert``); an IR without it (the maps alone) is converted again in memory."""
_LOCK = threading.Lock()
"""Conversions trace the torch module; concurrent traces (one per extraction worker thread)
fail torch's trace sanity check, so loading takes turns."""
_MODELS: dict[Path, object] = {}
"""weights file -> its ``openvino.Model``, read or exported once per process."""


def weights_digest(weights: Path) -> str:
    return hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def import_openvino():  # -> the openvino module
    """``import openvino`` without its usage telemetry (see the module's docstring); raises
    ImportError when openvino is not installed."""
    sys.modules.setdefault("openvino_telemetry", None)  # OpenVINO then uses its no-op stub
    import openvino

    return openvino


def _openvino():
    try:
        return import_openvino()
    except ImportError as e:
        raise ConfigError("runtime: openvino needs the openvino package (pip install openvino)") from e


def convert(net):  # -> openvino.Model
    """``net`` (the HV-net) converted in memory, fp32, with a dynamic height and width. Its
    outputs: the maps, then the encoder levels of ``TILE_LEVELS`` (``net.forward_levels``)."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            maps, levels = self.net.forward_levels(x)
            return (maps, *levels)

    ov = _openvino()
    from openvino.preprocess import PrePostProcessor

    side = 2 * net.multiple
    with warnings.catch_warnings():  # the converter traces with torch.jit (deprecated)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace", category=FutureWarning)
        model = ov.convert_model(Outputs().float().eval(), example_input=torch.rand(1, 3, side, side), input=[(1, 3, -1, -1)])
    steps = PrePostProcessor(model)
    for i in range(1, 1 + len(TILE_LEVELS)):  # levels channels last: 141 -> 131 ms per 1024² tile, and no transpose to pool
        steps.output(i).model().set_layout(ov.Layout("NCHW"))
        steps.output(i).tensor().set_layout(ov.Layout("NHWC"))
    model = steps.build()
    model.set_rt_info(IR_FORMAT, FORMAT_KEY)
    return model


def load_model(net, weights: Path):  # -> openvino.Model
    """The network of ``weights`` as an ``openvino.Model``: the shipped IR when it was made
    from these weights, else ``net`` converted in memory (once per process)."""
    ov = _openvino()
    weights = Path(weights).resolve()
    with _LOCK:
        if weights not in _MODELS:
            core = ov.Core()
            core.set_property({"ENABLE_MMAP": False})  # read, not mapped: a file replaced mid-run (an upgrade) was a SIGBUS
            model = core.read_model(str(IR_PATH)) if IR_PATH.is_file() else None
            digest = weights_digest(weights)
            stale = model is None or not model.has_rt_info(DIGEST_KEY) or model.get_rt_info(DIGEST_KEY).astype(str) != digest
            if stale or not model.has_rt_info(FORMAT_KEY) or model.get_rt_info(FORMAT_KEY).astype(str) != IR_FORMAT:
                model = convert(net)  # other weights, or an IR written before its outputs were these
            _MODELS[weights] = model
        return _MODELS[weights]


def compile_model(model, *, bf16: bool):  # -> openvino.CompiledModel
    """One thread, one stream, no pinning: by default OpenVINO pins the calling thread to a
    core while it infers, the same core (CPU 0) for every compiled model, so two extraction
    workers ran one at a time (measured, docs/segmentation.md)."""
    ov = _openvino()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "INFERENCE_NUM_THREADS": 1,
              "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}  # fmt: skip
    with _LOCK:
        return ov.Core().compile_model(model, "CPU", config)
