"""Modelled cycles of the Bitlet kernel: its PE-array schedule against the
reference schedule (NUMERICS.md s.5), how much of the DDR time hides under PE
time (kernel/PE cycle ratio), and the DDR bytes per inference.

Two networks (``--net det|mnv2|both``):

- ``det``: the PP-OCRv4 text detector shipped with ``rapidocr_onnxruntime``
  (``models/ch_PP-OCRv4_det_infer.onnx``): a MobileNetV3-style backbone with
  depthwise convolutions, squeeze-excite blocks and an FPN head.  Every Conv
  node runs on the kernel; BatchNormalization nodes that follow a Conv are
  folded into its weights and bias here; ConvTranspose nodes (not an ISA
  operation) are left out.  Activations are real: every Conv input is
  captured with onnxruntime while the network runs on ``skimage.data.page``
  (RGB, resized to ``--size``, normalised as PP-OCR does).
- ``mnv2``: the 52 convolutions of MobileNetV2 (width 1.0; the layer
  geometry of the paper's Table 2) at ``--mnv2-size``.  No pretrained
  MobileNetV2 is available offline, so the weights are He-initialised
  (seeded normal, per layer) and the activations are the network's own:
  ``skimage.data.astronaut`` normalised, then each layer's kernel output
  (ReLU6 after expansion and depthwise layers, linear bottlenecks, residual
  adds) feeds the next layer.  Bit-level sparsity of trained weights differs
  from random ones: treat these figures as geometry-driven.

All spatial positions of every layer are computed (no sampling).  Every
figure is **modelled** (the kernel's cycle model as counted in C simulation;
hls/README.md "Cycle model"): PE and reference cycles come from the same
profile record, so each ratio is measured in one run.

Usage::

    python benchmarks/kernel_schedule.py [--net both] [--size 160x320] [--mnv2-size 224]
                                         [--engine fast|reference]

``--engine reference`` runs the kernel's own C (hls/ through cffi); the fast
emulator (the default engine) gives the same counters, bit for bit.
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


# MobileNetV2 (Sandler et al. 2018, Table 2): expansion t, output channels c,
# repeats n, first stride s of each bottleneck sequence.
MNV2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _he(rng, cout: int, kh: int, kw: int, cin_g: int) -> np.ndarray:
    std = np.sqrt(2.0 / (kh * kw * cin_g))
    return (rng.standard_normal((cout, kh, kw, cin_g)) * std).astype(np.float32)


def mnv2_layers(seed: int = 0):
    """MobileNetV2's convolutions in order: (name, w [Co,KH,KW,Ci_g], stride, groups, act, role).

    act: "relu6" or "linear"; role: "start" / "end" of a residual bottleneck
    (the block's input is added to its projection when stride 1 and the
    channel counts agree) or "".
    """
    rng = np.random.default_rng(seed)
    out = [("conv1", _he(rng, 32, 3, 3, 3), 2, 1, "relu6", "")]
    cin = 32
    for bi, (t, c, n, s) in enumerate(MNV2_BLOCKS):
        for r in range(n):
            stride = s if r == 0 else 1
            hidden = cin * t
            residual = stride == 1 and cin == c
            tag = f"b{bi}.{r}"
            if t != 1:
                out.append((f"{tag}.expand", _he(rng, hidden, 1, 1, cin), 1, 1, "relu6",
                            "start" if residual else ""))
            out.append((f"{tag}.dw", _he(rng, hidden, 3, 3, 1), stride, hidden, "relu6",
                        "start" if residual and t == 1 else ""))
            out.append((f"{tag}.project", _he(rng, c, 1, 1, hidden) * 0.5, 1, 1, "linear",
                        "end" if residual else ""))
            cin = c
    out.append(("conv_last", _he(rng, 1280, 1, 1, cin), 1, 1, "relu6", ""))
    return out


def mnv2_image(size: int) -> np.ndarray:
    """skimage's astronaut, normalised, NHWC float32 [1, size, size, 3]."""
    from skimage import data, transform

    img = transform.resize(data.astronaut().astype(np.float32) / 255.0, (size, size),
                           anti_aliasing=True)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((img - mean) / std)[None].astype(np.float32)


class Totals:
    """Per-kind sums of the profile counters of the layers run."""

    KEYS = ("ref_cycles", "pe_cycles", "kernel_cycles", "ddr_bytes")

    def __init__(self):
        self.by_kind: dict[str, dict[str, int]] = {}

    def add(self, kind_key: str, prof: dict) -> None:
        for key in (kind_key, "all"):
            acc = self.by_kind.setdefault(key, dict.fromkeys(self.KEYS, 0))
            for k in self.KEYS:
                acc[k] += int(prof[k])

    def report(self, title: str) -> None:
        print(f"\n{title} (modelled)")
        print(f"{'':<16}{'ref cycles':>15}{'PE cycles':>15}{'PE/ref':>8}"
              f"{'kernel cycles':>16}{'kernel/PE':>11}{'DDR MB':>9}")
        for key, label in (("dw", "depthwise"), ("pw", "pointwise 1x1"), ("co", "other conv"),
                           ("all", "TOTAL")):
            if key not in self.by_kind:
                continue
            t = self.by_kind[key]
            print(f"{label:<16}{t['ref_cycles']:>15,}{t['pe_cycles']:>15,}"
                  f"{t['pe_cycles'] / t['ref_cycles']:>8.3f}{t['kernel_cycles']:>16,}"
                  f"{t['kernel_cycles'] / t['pe_cycles']:>11.3f}{t['ddr_bytes'] / 1e6:>9.2f}")


def _row(name: str, t: str, shape: str, cout: int, groups: int, prof: dict) -> None:
    print(f"{name:<22}{t:<9}{shape:<16}{cout:>5}{groups:>8}{prof['ref_cycles']:>14,}"
          f"{prof['pe_cycles']:>14,}{prof['pe_cycles'] / prof['ref_cycles']:>8.3f}"
          f"{prof['kernel_cycles'] / prof['pe_cycles']:>10.3f}")


def _header() -> None:
    print(f"{'layer':<22}{'type':<9}{'in (HxWxC)':<16}{'Cout':>5}{'groups':>8}"
          f"{'ref cycles':>14}{'PE cycles':>14}{'PE/ref':>8}{'kern/PE':>10}")


def run_det(height: int, width: int, limit: int, engine=None) -> Totals:
    import onnx

    from bitlet import hw, numerics

    model = onnx.load(model_path())
    layers = conv_layers(model)
    if limit:
        layers = layers[:limit]
    image = sample_image(height, width)
    acts = capture_inputs(model, [layer["input"] for layer in layers], image)
    print(f"PP-OCRv4 det, input {height}x{width} (skimage page), N_PE = {hw.N_PE}, "
          f"{len(layers)} conv layers, real activations")
    _header()
    totals = Totals()
    for layer in layers:
        x = np.ascontiguousarray(acts[layer["input"]].transpose(0, 2, 3, 1)).astype(np.float32)
        _, prof = numerics.conv2d(x, layer["w"], stride=layer["stride"], padding=layer["padding"],
                                 dilation=layer["dilation"], groups=layer["groups"],
                                 bias=layer["b"], return_profile=True, engine=engine)
        t = kind(layer)
        totals.add(t[:2], prof)
        _row(layer["name"], t, "x".join(str(v) for v in x.shape[1:]), layer["w"].shape[0],
             layer["groups"], prof)
    totals.report(f"PP-OCRv4 det {height}x{width}")
    return totals


def run_mnv2(size: int, limit: int, engine=None) -> Totals:
    from bitlet import hw, numerics

    layers = mnv2_layers()
    if limit:
        layers = layers[:limit]
    print(f"\nMobileNetV2 (He-initialised weights), input {size}x{size} (skimage astronaut), "
          f"N_PE = {hw.N_PE}, {len(layers)} conv layers, the network's own activations")
    _header()
    totals = Totals()
    x = mnv2_image(size)
    block_in = None
    for name, w, stride, groups, act, role in layers:
        if role == "start":
            block_in = x
        pad = (w.shape[1] // 2,) * 4
        y, prof = numerics.conv2d(x, w, stride=stride, padding=pad, groups=groups,
                                 return_profile=True, engine=engine)
        if act == "relu6":
            y = np.clip(y, 0.0, 6.0)
        if role == "end":
            y = y + block_in
        layer = {"w": w, "groups": groups}
        t = kind(layer)
        totals.add(t[:2], prof)
        _row(name, t, "x".join(str(v) for v in x.shape[1:]), w.shape[0], groups, prof)
        x = np.ascontiguousarray(y, dtype=np.float32)
    totals.report(f"MobileNetV2 {size}x{size}")
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", choices=("det", "mnv2", "both"), default="both")
    parser.add_argument("--size", default="160x320", help="detector input HxW (multiples of 32)")
    parser.add_argument("--mnv2-size", type=int, default=224, help="MobileNetV2 input size")
    parser.add_argument("--limit", type=int, default=0, help="only the first N conv layers")
    parser.add_argument("--engine", default=None,
                        help="'reference' (hls/ C) or 'fast' (emulator; same counters); "
                             "default: bitlet.numerics.default_engine()")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    start = time.perf_counter()
    if args.net in ("det", "both"):
        run_det(height, width, args.limit, args.engine)
    if args.net in ("mnv2", "both"):
        run_mnv2(args.mnv2_size, args.limit, args.engine)
    print(f"\n(kernel runs took {time.perf_counter() - start:.1f} s; every cycle figure is "
          f"modelled: the kernel's cycle model as counted in C simulation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
