"""The HV-net on each CPU inference runtime, side by side: MP/s per core and agreement.

    .venv/bin/python benchmarks/segment_runtimes.py [--size 1024] [--repeats 3] [--segmenter hvnet-fine]

Runs the shipped ``hvnet_weights.pt`` network alone (no post-processing) on a real
``--size``² region of the bundled sample slide (0.499 µm/px, i.e. at the network's working
resolution) with one thread per runtime; ``--segmenter hvnet-fine``: the network with its
full-resolution branch (``hvnet_fine_weights.pt``) on the same region enlarged 2x to its
0.25 µm/px, MP/s still counted in the region's 0.499 µm/px pixels (the same slide area):

- torch eager, fp32 and bf16 autocast (``channels_last``), as ``HVNetModel`` runs it;
- ONNX Runtime (CPU provider, fp32), on a graph exported with ``torch.onnx.export``;
- OpenVINO (CPU plugin) with the f32 and the bf16 inference-precision hint.

MP/s per core from this process's CPU time (``time.process_time``; median of ``--repeats``),
so other jobs on the machine distort it less than wall time; wall time is printed too.
Agreement: the largest absolute difference of the three output maps from torch fp32, and
the fraction of pixels on the same side of P(nucleus) = 0.5. ONNX Runtime and OpenVINO are
optional for this benchmark (``pip install wsicell[runtimes]`` adds ONNX Runtime; OpenVINO is a
dependency); a missing one is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

import wsicell
from wsicell.io.slide import open_slide
from wsicell.segment.hvnet import FINE_WEIGHTS_PATH, WEIGHTS_PATH, HVNetModel, resize_to, to_input


def timed(run, x, repeats: int, mp: float) -> tuple[np.ndarray, float, float]:
    """(output, MP/s from CPU time, MP/s wall) of ``run(x)`` for ``mp`` megapixels of slide,
    medians over ``repeats``."""
    out = run(x)  # warm-up (graph compilation, allocations)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = run(x)
        cpu.append(mp / (time.process_time() - c0))
        wall.append(mp / (time.perf_counter() - w0))
    return out, float(np.median(cpu)), float(np.median(wall))


def export_onnx(net, path: Path) -> None:
    import torch

    x = torch.rand(1, 3, 256, 256)
    torch.onnx.export(
        net, (x,), str(path), input_names=["image"], output_names=["maps"], opset_version=17, dynamo=False,
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "maps": {0: "n", 2: "h", 3: "w"}},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--segmenter", choices=["hvnet", "hvnet-fine"], default="hvnet",
                        help="the HV-net, or the HV-net with its full-resolution branch")  # fmt: skip
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with open_slide(wsicell.SAMPLE_SLIDE) as slide:
        image = slide.read((600, 1200, 600 + args.size, 1200 + args.size), slide.mpp)
    mp = image.shape[0] * image.shape[1] / 1e6  # slide area, in the region's pixels
    fine = args.segmenter == "hvnet-fine"
    x = to_input(resize_to(image, 2.0) if fine else image).numpy()
    model = HVNetModel(FINE_WEIGHTS_PATH if fine else WEIGHTS_PATH, precision="fp32")
    net = model.net.float().to(memory_format=torch.contiguous_format)
    rows = []

    def torch_run(bf16: bool):
        def run(a):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                t = torch.from_numpy(a).contiguous(memory_format=torch.channels_last)
                return model.net(t).float().numpy()

        return run

    model.net.to(memory_format=torch.channels_last)
    rows.append(("torch eager fp32", *timed(torch_run(False), x, args.repeats, mp)))
    rows.append(("torch eager bf16 autocast", *timed(torch_run(True), x, args.repeats, mp)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hvnet.onnx"
        export_onnx(net.to(memory_format=torch.contiguous_format), path)
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            rows.append((f"ONNX Runtime {ort.__version__} fp32", *timed(lambda a: session.run(None, {"image": a})[0], x, args.repeats, mp)))  # fmt: skip
        except ImportError:
            print("onnxruntime not installed: skipped")
        try:
            from wsicell.segment.hv_openvino import import_openvino

            ov = import_openvino()  # without OpenVINO's usage telemetry

            core = ov.Core()
            for hint in ("f32", "bf16"):
                compiled = core.compile_model(str(path), "CPU", {
                    "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": 1,
                })  # fmt: skip
                request = compiled.create_infer_request()

                def run(a, request=request):
                    return request.infer({0: a})[0].copy()

                rows.append((f"OpenVINO {ov.__version__.split('-')[0]} {hint}", *timed(run, x, args.repeats, mp)))
        except ImportError:
            print("openvino not installed: skipped")
    reference = rows[0][1]
    print(f"{args.segmenter} network alone on a {args.size}² region of the sample slide (0.499 µm/px"
          f"{', enlarged to 0.25 µm/px' if fine else ''}), 1 thread, "
          f"load average {os.getloadavg()[0]:.1f}:")  # fmt: skip
    print(f"  {'runtime':32} {'MP/s/core':>9} {'wall':>6} {'max |diff|':>10} {'P>0.5 agree':>11}")
    ref_fg = reference[0, 0] > 0
    figures = []
    for name, out, cpu, wall in rows:
        diff = np.abs(out - reference)
        diff[:, 1:] = np.abs(np.clip(out[:, 1:], -1, 1) - np.clip(reference[:, 1:], -1, 1))
        agree = float(((out[0, 0] > 0) == ref_fg).mean())
        print(f"  {name:32} {cpu:9.2f} {wall:6.2f} {diff.max():10.4f} {agree:11.5f}")
        figures.append({"runtime": name, "mp_per_s_per_core": round(cpu, 2), "wall_s": round(wall, 2),
                        "max_abs_diff": round(float(diff.max()), 4), "foreground_agreement": round(agree, 5)})  # fmt: skip
    name = "segment_runtimes" + ("-hvnet-fine" if fine else "")
    save(name, figures, notes={"region_px": args.size, "repeats": args.repeats, "threads": 1},
         title="HV-net runtimes on the sample slide" + (" (with its full-resolution branch)" if fine else ""))


if __name__ == "__main__":
    main()
