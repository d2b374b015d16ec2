"""PE-array cycles of the Bitlet kernel's schedule vs the reference schedule
(NUMERICS.md s.5) on the real layers of a MobileNetV3-class network.

Network: the PP-OCRv4 text detector shipped with ``rapidocr_onnxruntime``
(``models/ch_PP-OCRv4_det_infer.onnx``): a MobileNetV3-style backbone with
depthwise convolutions, squeeze-excite blocks and an FPN head.  Every Conv
node runs on the kernel (``bitlet.numerics``-level ``conv2d`` through the
cffi reference of hls/bitlet_kernel.c): BatchNormalization nodes that
follow a Conv are folded into its weights and bias here.  ConvTranspose
nodes (not an ISA operation) are left out.

Activations are real: every Conv input is captured with onnxruntime while
the network runs on a sample image from scikit-image (``skimage.data.page``,
a scanned text page, as RGB, resized to ``--size``), normalised as PP-OCR
does.  All spatial positions of every layer are computed (no sampling).

Every figure comes from the same kernel run (the profile record's
``pe_cycles``, ``ref_cycles``, ``kernel_cycles`` and ``ddr_bytes``): all are
**modelled** (the kernel's counted cycle model, hls/README.md), nothing is
measured on a board.  Reported: PE cycles of the kernel schedule against the
reference schedule, the kernel/PE cycle ratio (how much DDR time the
load/compute/store overlap leaves exposed) and the DDR bytes per inference
(bus bytes of the m_axi port).

Usage::

    python benchmarks/kernel_schedule.py [--size 160x320] [--limit N] [--engine E]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def model_path() -> str:
    import rapidocr_onnxruntime

    return os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models",
                        "ch_PP-OCRv4_det_infer.onnx")


def sample_image(height: int, width: int) -> np.ndarray:
    """skimage's text page as normalised NCHW float32 [1, 3, H, W]."""
    from skimage import data, transform

    page = data.page().astype(np.float32) / 255.0
    page = transform.resize(page, (height, width), anti_aliasing=True).astype(np.float32)
    rgb = np.stack([page] * 3, axis=0)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    return ((rgb - mean) / std)[None].astype(np.float32)


def _constants(graph) -> dict:
    from onnx import numpy_helper

    table = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            table[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return table


def conv_layers(model) -> list[dict]:
    """Conv nodes with weights [Cout, KH, KW, Cin_g] (BN folded), bias and geometry."""
    import onnx

    graph = model.graph
    const = _constants(graph)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    layers = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w = const[node.input[1]].astype(np.float32)                  # [Co, Ci_g, KH, KW]
        b = const[node.input[2]].astype(np.float32) if len(node.input) > 2 \
            else np.zeros(w.shape[0], np.float32)
        nxt = consumers.get(node.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "BatchNormalization":
            bn = nxt[0]
            scale, shift, mean, var = (const[n].astype(np.float64) for n in bn.input[1:5])
            eps = onnx.helper.get_attribute_value(
                next(a for a in bn.attribute if a.name == "epsilon"))
            g = scale / np.sqrt(var + eps)
            w = (w * g[:, None, None, None]).astype(np.float32)
            b = ((b - mean) * g + shift).astype(np.float32)
        t, l, bo, r = attr.get("pads", [0, 0, 0, 0])
        layers.append({
            "name": node.name, "input": node.input[0],
            "w": np.ascontiguousarray(w.transpose(0, 2, 3, 1)), "b": b,
            "stride": tuple(attr.get("strides", [1, 1])),
            "dilation": tuple(attr.get("dilations", [1, 1])),
            "padding": (t, l, bo, r), "groups": int(attr.get("group", 1)),
        })
    return layers


def capture_inputs(model, names: list[str], image: np.ndarray) -> dict:
    """Run the network with onnxruntime and return the named tensors (NCHW)."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = {o.name for o in m.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: image}
    outs = sess.run(list(dict.fromkeys(names)), feed)
    return dict(zip(dict.fromkeys(names), outs))


def kind(layer: dict) -> str:
    _, kh, kw, ci_g = layer["w"].shape
    if layer["groups"] > 1 and ci_g == 1:
        return f"dw{kh}x{kw}"
    return f"conv{kh}x{kw}" if kh * kw > 1 else "pw1x1"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="160x320", help="input HxW (multiples of 32)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N conv layers")
    parser.add_argument("--engine", default=None,
                        help="'reference' (hls/ C) or 'fast' (emulator; same counters); "
                             "default: bitlet.numerics.default_engine()")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))

    import onnx
    from bitlet import _layers, hw

    model = onnx.load(model_path())
    layers = conv_layers(model)
    if args.limit:
        layers = layers[:args.limit]
    image = sample_image(height, width)
    acts = capture_inputs(model, [layer["input"] for layer in layers], image)
    print(f"PP-OCRv4 det, input {height}x{width} (skimage page), N_PE = {hw.N_PE}, "
          f"{len(layers)} conv layers, real activations")
    print(f"{'layer':<22}{'type':<9}{'in (HxWxC)':<16}{'Cout':>5}{'groups':>8}"
          f"{'ref cycles':>14}{'PE cycles':>14}{'ratio':>8}{'kernel cyc':>14}{'kern/PE':>8}"
          f"{'DDR KB':>10}")
    totals = {}
    start = time.perf_counter()
    for layer in layers:
        x = np.ascontiguousarray(acts[layer["input"]].transpose(0, 2, 3, 1)).astype(np.float32)
        _, prof = _layers.conv2d(x, layer["w"], stride=layer["stride"], padding=layer["padding"],
                                 dilation=layer["dilation"], groups=layer["groups"],
                                 bias=layer["b"], return_profile=True, engine=args.engine)
        t = kind(layer)
        for key in (t[:2], "all"):
            ref, pe, kc, ddr = totals.get(key, (0, 0, 0, 0))
            totals[key] = (ref + prof["ref_cycles"], pe + prof["pe_cycles"],
                           kc + prof["kernel_cycles"], ddr + prof["ddr_bytes"])
        shape = "x".join(str(v) for v in x.shape[1:])
        print(f"{layer['name']:<22}{t:<9}{shape:<16}{layer['w'].shape[0]:>5}"
              f"{layer['groups']:>8}{prof['ref_cycles']:>14,}{prof['pe_cycles']:>14,}"
              f"{prof['pe_cycles'] / prof['ref_cycles']:>8.3f}{prof['kernel_cycles']:>14,}"
              f"{prof['kernel_cycles'] / prof['pe_cycles']:>8.3f}"
              f"{prof['ddr_bytes'] / 1024:>10.1f}")
    print()
    print("all figures modelled (the kernel's counted cycle model), N_PE = "
          f"{hw.N_PE}, m_axi {8 * hw.AXI_BYTES} bits")
    for key, label in (("dw", "depthwise"), ("pw", "pointwise 1x1"), ("co", "other conv"),
                       ("all", "TOTAL")):
        if key in totals:
            ref, pe, kc, ddr = totals[key]
            print(f"{label:<16} ref {ref:>14,}  PE {pe:>14,}  PE/ref {pe / ref:.3f}x  "
                  f"kernel {kc:>14,}  kernel/PE {kc / pe:.3f}  DDR {ddr / 2**20:.2f} MiB")
    print(f"(kernel runs took {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
