"""A wider HV-net against the shipped one: network speed on OpenVINO bf16 and int8, held-out PQ.

    .venv/bin/python benchmarks/segment_capacity.py --weights WIDE.pt [--calibration 100]

Networks (``hvnet.load_hvnet``: the channels come from the weights file): the shipped
``hvnet_weights.pt`` and ``--weights`` (e.g. ``train_hvnet --channels 12,24,48,96,192``),
each converted to OpenVINO (``hv_openvino.convert``) and compiled as extraction compiles it
(one thread, one stream); each also quantized to int8 by NNCF's post-training
quantization (``nncf.quantize``, ``pip install nncf``) calibrated on ``--calibration`` random
``--crop``² crops of the train_hvnet TRAIN images at 0.5 µm/px (never the held-out ones), and
compiled with the rest of the graph in bf16 (``--weights``: in f32 too).

Speed: the network alone on a ``--size``² region of the bundled sample slide, MP/s per core
from this process's CPU time (median of ``--repeats``), as ``segment_runtimes.py``.
Quality: DQ / PQ of the full segmenter (default thresholds) on train_hvnet's held-out images
(CoNSeP train images 3, 9, 15, 21; the 4 held-out MoNuSeg images), as its validation.
The CoNSeP test split is not read.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from segment_runtimes import timed

import wsicell
from wsicell.io.slide import open_slide
from wsicell.segment.hvnet import HVNET_MPP, WEIGHTS_PATH, HVNetModel, load_hvnet, to_input
from wsicell.segment.train_hvnet import MPP, calibration_inputs, load, split, validate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, type=Path, help="the wider network's weights")
    parser.add_argument("--consep", type=Path, default=DATA / "consep-tiles" / "train")
    parser.add_argument("--monuseg", type=Path, default=DATA / "monuseg-train")
    parser.add_argument("--calibration", type=int, default=100, help="calibration crops [100]")
    parser.add_argument("--crop", type=int, default=256, help="calibration crop side, px at 0.5 µm/px [256]")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--int8-out", type=Path, help="also save the int8 OpenVINO model here (.xml)")
    args = parser.parse_args()
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    import nncf

    from wsicell.segment.hv_openvino import compile_model, convert, import_openvino

    ov = import_openvino()
    with open_slide(wsicell.SAMPLE_SLIDE) as slide:
        region = slide.read((600, 1200, 600 + args.size, 1200 + args.size), slide.mpp)
    x = to_input(region).numpy()
    val, train = split(load(args.consep), load(args.monuseg))
    calibration = calibration_inputs(train, n=args.calibration, size=args.crop)
    print(f"held out: {len(val['consep'])} CoNSeP tiles, {len(val['monuseg'])} MoNuSeg images; "
          f"calibration: {args.calibration} {args.crop}² crops of the train images "
          f"at {HVNET_MPP} µm/px", flush=True)  # fmt: skip
    models = {}
    for name, weights in (("shipped", WEIGHTS_PATH), ("wide", args.weights)):
        net = load_hvnet(weights)
        channels = tuple(block[0].out_channels for block in net.enc)
        params = sum(p.numel() for p in net.parameters())
        fp32 = convert(net)
        models[f"{name} {channels} bf16"] = (net, fp32, True, params)
        t0 = time.process_time()
        data = nncf.Dataset(calibration)
        int8 = nncf.quantize(fp32, data, subset_size=args.calibration)
        print(f"nncf.quantize: {time.process_time() - t0:.0f} CPU-s", flush=True)
        if args.int8_out and name == "wide":
            ov.save_model(int8, str(args.int8_out), compress_to_fp16=False)
        models[f"{name} {channels} int8 (rest bf16)"] = (net, int8, True, params)
        if name == "wide":
            models[f"{name} {channels} int8 (rest f32)"] = (net, int8, False, params)
    rows = []
    for label, (net, model, bf16, params) in models.items():
        compiled = compile_model(model, bf16=bf16)
        request = compiled.create_infer_request()
        _, cpu, wall = timed(lambda a, request=request: request.infer({0: a})[0].copy(), x, args.repeats)
        wrapped = HVNetModel.from_net(net, bf16=bf16)
        wrapped.compiled, wrapped.request = compiled, request
        scores = validate(wrapped, val, MPP)
        rows.append((label, params, cpu, wall, scores))
        print(f"  {label}: {cpu:.2f} MP/s per core ({wall:.2f} wall), "
              + ", ".join(f"{k} DQ {dq:.3f} PQ {pq:.3f}" for k, (dq, pq) in scores.items())
              + f", mean PQ {(scores['consep'][1] + scores['monuseg'][1]) / 2:.4f}", flush=True)  # fmt: skip
    base = rows[0][2]
    print(f"HV-net alone on a {args.size}² region of the sample slide, OpenVINO {ov.__version__.split('-')[0]}, "
          f"1 thread, load average {os.getloadavg()[0]:.1f}; held-out PQ at the default thresholds:")  # fmt: skip
    print(f"  {'network':44} {'params':>9} {'MP/s/core':>9} {'cost':>5} {'CoNSeP PQ':>9} {'MoNuSeg PQ':>10} {'mean':>6}")
    for label, params, cpu, _, scores in rows:
        c, m = scores["consep"][1], scores["monuseg"][1]
        print(f"  {label:44} {params:9,d} {cpu:9.2f} {base / cpu:5.2f} {c:9.3f} {m:10.3f} {(c + m) / 2:6.4f}")


if __name__ == "__main__":
    main()
