"""Write the shipped OpenVINO IR of the HV-net (``hvnet_openvino.xml`` / ``.bin``) from its weights.

    python -m wsicell.segment.export_openvino      # after retraining hvnet_weights.pt

The IR is tagged with the SHA-256 of the weights file; a test fails while the two disagree,
and until then the runtime converts the new weights in memory at first use
(``hv_openvino.py``). ``--int8 --consep DIR --monuseg DIR`` writes NNCF's post-training int8
quantization instead (``pip install nncf``; calibrated on stain-jittered crops of the
training images, ``train_hvnet.calibration_inputs``). It is not shipped: ~1.5x faster on this
CPU and as good on the held-out images, but on the darker bundled slide it found 6 % more
nuclei than the fp32 network (docs/segmentation.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsicell.segment.hv_openvino import (
    DIGEST_KEY,
    FORMAT_KEY,
    IR_FORMAT,
    IR_PATH,
    convert,
    import_openvino,
    weights_digest,
)
from wsicell.segment.hvnet import WEIGHTS_PATH, load_hvnet
from wsicell.segment.train_hvnet import calibration_inputs, load, split


def main() -> None:
    """Regenerate the shipped IR from the shipped weights (fp32; int8 with ``--int8``)."""
    parser = argparse.ArgumentParser(description="Write the shipped OpenVINO IR of the HV-net from its weights.")
    parser.add_argument("--int8", action="store_true", help="NNCF int8 quantization (needs nncf and the data)")
    parser.add_argument("--consep", type=Path, help="CoNSeP train tiles folder (int8 calibration)")
    parser.add_argument("--monuseg", type=Path, help="MoNuSeg training images folder (int8 calibration)")
    parser.add_argument("--calibration", type=int, default=100, help="int8 calibration crops [100]")
    args = parser.parse_args()
    try:
        ov = import_openvino()
    except ImportError:
        raise SystemExit("the OpenVINO export needs the openvino package (pip install openvino)") from None
    model = convert(load_hvnet(WEIGHTS_PATH))
    if args.int8:
        if args.consep is None or args.monuseg is None:
            raise SystemExit("--int8 needs --consep and --monuseg to calibrate on")
        for folder in (args.consep, args.monuseg):
            if not folder.is_dir():
                raise SystemExit(f"{folder}: not a folder (the training data to calibrate on)")
        import nncf

        data = calibration_inputs(split(load(args.consep), load(args.monuseg))[1], n=args.calibration)
        model = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data))
    model.set_rt_info(weights_digest(WEIGHTS_PATH), DIGEST_KEY)
    model.set_rt_info(IR_FORMAT, FORMAT_KEY)  # what its outputs are (convert's; kept through quantization)
    ov.save_model(model, str(IR_PATH), compress_to_fp16=False)
    print(f"wrote {IR_PATH} and {IR_PATH.with_suffix('.bin')} ({'int8' if args.int8 else 'fp32'}) from {WEIGHTS_PATH}")


if __name__ == "__main__":
    main()
