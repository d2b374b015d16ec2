"""Calibration trade-off of the PP-OCRv4 text detector: PE cycles saved against error.

Runs :func:`bitlet.tools.calibrate.calibrate` twice on the detector of
``rapidocr_onnxruntime`` at 64x64, with one rendered text image (Pillow's
bundled font, the image the model tests use): once with column masks only
(the top 16, 12 or 8 of the 24 bit columns per layer), once with bit budgets
only (at most 8, 5 or 3 ones per weight significand), each under an error
budget of 1e-2 against the unmodified fp32 model.  It prints both results
(the greedy steps, and the measured trade-off curve: every plan no other
measured plan beats on both PE cycles and error).  Cycles are modelled (the
simulator's kernel cycle model); the errors are measured.

It compiles and runs the 64-layer model a few hundred times: about 10-20
minutes on 2 cores.

Usage::

    python benchmarks/calibration_tradeoff.py [--size 64] [--budget 1e-2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    import bitlet
    import rapidocr_onnxruntime
    from bitlet.tools.calibrate import calibrate

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from models import text_image  # the model tests' text image (one definition)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--budget", type=float, default=1e-2)
    args = parser.parse_args(argv)
    det = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    x = text_image(args.size, args.size)
    with bitlet.open("sim") as dev:
        for label, options in (("column masks", {"keep_columns": (16, 12, 8), "bits": ()}),
                               ("bit budgets", {"keep_columns": (), "bits": (8, 5, 3)})):
            start = time.perf_counter()
            result = calibrate(str(det), [x], device=dev, budget=args.budget,
                               input_shapes={"x": x.shape}, **options)
            print(f"== {label} (PP-OCRv4 det {args.size}x{args.size}, one text image; cycles "
                  f"modelled, errors measured; {time.perf_counter() - start:.0f} s)")
            print(result)
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
