"""Host/runtime time per inference, separately from kernel execution time.

Compiles a model with ``bitlet.compile`` and runs it ``--runs`` times on a
device (default: ``bitlet.open()``, i.e. the simulator without a board).
For every run the runtime records:

* ``kernel``  -- wall time inside ``KernelDriver.run`` (ap_start..ap_done;
  on the simulator this is the C reference kernel computing);
* ``host ops`` -- numpy host operations (activations, pooling, resize, ...);
* ``transfers`` -- packing, NHWC transposes and cache syncs of uploads and
  downloads;
* ``overhead`` -- everything but kernel execution: total minus ``kernel``
  (host ops, transfers and the runtime's own bookkeeping).

The baseline measured in the same run is onnxruntime (CPU) on the same
model and input, so the host overhead is reported as a ratio to it; the
kernel's *predicted* time at the overlay clock (profile cycles / clock) is
printed too, since simulator wall time says nothing about a board.

Model: the PP-OCRv4 text detector of ``rapidocr_onnxruntime`` on
``skimage.data.page`` (a scanned page) resized to ``--size``; with
``--model tiny`` (or when rapidocr is absent) a small built-in CNN.

Usage::

    python benchmarks/runtime_overhead.py [--model det|tiny] [--size 64x64] [--runs 3]
                                          [--device SPEC] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def det_model_and_input(size: tuple[int, int]):
    import onnx
    import rapidocr_onnxruntime
    from skimage import data, transform

    path = os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models",
                        "ch_PP-OCRv4_det_infer.onnx")
    page = transform.resize(data.page().astype(np.float32) / 255.0, size, anti_aliasing=True)
    x = ((np.stack([page] * 3) - 0.5) / 0.5)[None].astype(np.float32)
    return onnx.load(path), x


def tiny_model_and_input(size: tuple[int, int]):
    """Conv-BN-ReLU x3, global pooling and a classifier, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x, cin = [], [], "x", 3
    for i, cout in enumerate((16, 32, 32)):
        w = numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin))
                                    .astype(np.float32), f"w{i}")
        inits.append(w)
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1] * 4, strides=[2, 2]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x, cin = f"r{i}", cout
    inits.append(numpy_helper.from_array(rng.standard_normal((cin, 10)).astype(np.float32), "fc"))
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, *size])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, rng.standard_normal((1, 3, *size)).astype(np.float32)


def onnxruntime_seconds(model, x, runs: int) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {name: x})
    return (time.perf_counter() - t0) / runs


def measure(compiled, x, runs: int) -> dict[str, float]:
    compiled(x)  # warm-up
    rows = []
    for _ in range(runs):
        t0 = time.perf_counter()
        compiled(x)
        total = time.perf_counter() - t0
        t = compiled.last_timings
        host = sum(s for _, _, s in t["host"])
        rows.append({"total": total, "kernel": t["kernel"], "host_ops": host,
                     "transfers": t["upload"] + t["download"], "overhead": total - t["kernel"]})
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("det", "tiny"), default="det")
    parser.add_argument("--size", default="64x64", help="input HxW (default 64x64)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default=None,
                        help="device spec for bitlet.open() (default: a board if present, else the simulator)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    import bitlet

    try:
        model, x = det_model_and_input(size) if args.model == "det" else tiny_model_and_input(size)
    except ImportError as exc:
        print(f"({exc.name} not installed: using the built-in tiny CNN)")
        model, x = tiny_model_and_input(size)
    device = bitlet.open(args.device)
    compiled = bitlet.compile(model, device=device, input_shapes={"x": x.shape})
    med = measure(compiled, x, args.runs)
    prof = compiled.profile(x)
    ort_s = onnxruntime_seconds(model, x, max(args.runs, 5))
    result = {
        "model": args.model, "size": list(size), "device": type(device).__name__,
        "kernel_layers": len(compiled.meta["layers"]),
        "host_op_count": sum(s["op"] == "host" for s in compiled.meta["steps"]),
        "seconds": med, "onnxruntime_seconds": ort_s,
        "overhead_vs_onnxruntime": med["overhead"] / ort_s,
        "overhead_per_layer_ms": 1e3 * med["overhead"] / max(1, len(compiled.meta["layers"])),
        "predicted_kernel_ms": prof.totals["predicted_ms"],
        "clock_mhz": prof.clock_mhz,
    }
    print(f"model {args.model} {size[0]}x{size[1]} on {result['device']}: "
          f"{result['kernel_layers']} kernel layers, {result['host_op_count']} host ops")
    for key in ("total", "kernel", "overhead", "host_ops", "transfers"):
        print(f"  {key:<10} {med[key] * 1e3:10.2f} ms per inference (median of {args.runs})")
    print(f"  onnxruntime (CPU, same model and input): {ort_s * 1e3:.2f} ms; runtime overhead = "
          f"{result['overhead_vs_onnxruntime']:.2f}x onnxruntime")
    print(f"  predicted kernel time at {prof.clock_mhz} MHz: {prof.totals['predicted_ms']:.2f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    compiled.close()
    device.close()
    return result


if __name__ == "__main__":
    main()
