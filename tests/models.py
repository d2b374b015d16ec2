"""Small ONNX models built with onnx.helper, for the compiler and runtime tests.

Every builder is deterministic (seeded) and returns an ``onnx.ModelProto``
that passes onnx's strict shape inference.  Shapes are tiny so the simulator runs them in
well under a second.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
_FLOAT = TensorProto.FLOAT


def rapidocr_model(kind: str) -> Path | None:
    """Path of a PP-OCR model shipped in ``rapidocr_onnxruntime`` (det, cls, rec), or None."""
    try:
        import rapidocr_onnxruntime
    except ImportError:
        return None
    names = {"det": "ch_PP-OCRv4_det_infer.onnx", "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
             "rec": "ch_PP-OCRv4_rec_infer.onnx"}
    path = Path(rapidocr_onnxruntime.__file__).parent / "models" / names[kind]
    return path if path.exists() else None


def nudenet_model() -> Path | None:
    """Path of the YOLOv8n detector (``320n.onnx``) shipped in the ``nudenet`` wheel, or None.

    Located without importing ``nudenet`` (its import pulls in OpenCV).
    """
    import importlib.util

    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"
    return path if path.exists() else None


def sample_image(name: str = "astronaut", size: int = 32) -> np.ndarray | None:
    """A skimage sample image as float32 NCHW (1, 3, size, size) in [0, 1], or None."""
    try:
        from skimage import data, transform
    except ImportError:
        return None
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = transform.resize(img[..., :3], (size, size), anti_aliasing=True)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))


def text_image(h: int = 64, w: int = 64) -> np.ndarray | None:
    """A rendered text image normalised like PP-OCR's detector, (1, 3, h, w) float32, or None."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    try:
        font = ImageFont.load_default(size=20)  # Pillow >= 10.1 (bundled scalable font)
    except TypeError:
        font = ImageFont.load_default()
    im = Image.new("L", (w, h), 255)
    ImageDraw.Draw(im).multiline_text((4, 4), "Bit\nlet", fill=0, font=font)
    a = np.asarray(im, np.float32) / 255
    return ((np.stack([a] * 3)[None] - 0.5) / 0.5).astype(np.float32)


class Builder:
    """Accumulates nodes and initializers; :meth:`model` makes the ModelProto."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        std = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), "w")

    def op(self, op_type: str, inputs: list, n_out: int = 1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k=3, stride=1, pads=None, group=1, dilation=1, bias=True):
        pads = pads if pads is not None else [k // 2 * dilation] * 4
        ins = [x, self.weight(cout, cin // group, k, k)]
        if bias:
            ins.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "b"))
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=pads,
                       group=group, dilations=[dilation, dilation])

    def bn(self, x, c):
        r = self.rng
        params = [(r.uniform(0.5, 1.5, c)), r.standard_normal(c) * 0.1,
                  r.standard_normal(c) * 0.1, r.uniform(0.5, 1.5, c)]
        return self.op("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params],
                       epsilon=1e-5)

    def hardswish(self, x):
        """PaddlePaddle's export of hard-swish: x * Clip(x + 3, 0, 6) / 6."""
        t = self.op("Add", [x, self.const(np.float32(3))])
        t = self.op("Clip", [t, self.const(np.float32(0)), self.const(np.float32(6))])
        return self.op("Div", [self.op("Mul", [x, t]), self.const(np.float32(6))])

    def model(self, inputs: dict, outputs: list, name: str = "tiny", opset: int = OPSET):
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(k, _FLOAT, list(v)) for k, v in inputs.items()],
            [onnx.ValueInfoProto(name=o) for o in outputs], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return _typed_outputs(m)


def tiny_cnn(size: int = 16) -> onnx.ModelProto:
    """Conv+BN+ReLU, depthwise+ReLU6, dilated and asymmetric-pad convs, pooling, Gemm, Softmax."""
    b = Builder(1)
    x = b.conv("x", 3, 8, k=3, stride=2, bias=False)
    x = b.op("Relu", [b.bn(x, 8)])
    y = b.conv(x, 8, 8, k=3, group=8)
    y = b.op("Clip", [y, b.const(np.float32(0)), b.const(np.float32(6))])
    y = b.conv(y, 8, 16, k=1, pads=[0, 0, 0, 0])
    y = b.hardswish(b.bn(y, 16))
    z = b.conv(y, 16, 16, k=3, dilation=2, pads=[1, 2, 3, 2], group=2)
    z = b.op("Add", [b.op("Relu", [z]), b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[1, 1],
                                                        pads=[0, 0, 1, 1])])
    z = b.op("Mul", [z, b.op("HardSigmoid", [b.op("GlobalAveragePool", [z])], alpha=0.2, beta=0.5)])
    f = b.op("Flatten", [b.op("GlobalAveragePool", [z])], axis=1)
    f = b.op("Gemm", [f, b.weight(10, 16), b.const(np.zeros(10, np.float32) + 0.1)], transB=1)
    out = b.op("Softmax", [f], axis=-1)
    return b.model({"x": (1, 3, size, size)}, [out], "tiny_cnn")


def tiny_unet(size: int = 16) -> onnx.ModelProto:
    """Encoder/decoder with ConvTranspose (both lowerings), Resize, Concat and a sigmoid head."""
    b = Builder(2)
    e1 = b.op("Relu", [b.conv("x", 3, 8, k=3, stride=2)])
    e2 = b.op("Relu", [b.conv(e1, 8, 16, k=3, stride=2)])
    up = b.op("Resize", [e2, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    cat = b.op("Concat", [up, e1], axis=1)
    d1 = b.hardswish(b.conv(cat, 24, 8, k=3))
    t1 = b.op("ConvTranspose", [d1, b.weight(8, 4, 2, 2)], kernel_shape=[2, 2], strides=[2, 2])
    t1 = b.op("Relu", [b.bn(b.op("Add", [t1, b.const(np.full((1, 4, 1, 1), 0.05, np.float32))]), 4)])
    t2 = b.op("ConvTranspose", [t1, b.weight(4, 2, 3, 3), b.const(np.float32([0.1, -0.1]))],
              kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    lin = b.op("Resize", [t2, "", b.const(np.array([1, 1, 0.5, 0.5], np.float32))], mode="linear")
    return b.model({"x": (1, 3, size, size)}, [b.op("Sigmoid", [lin])], "tiny_unet")


def tiny_attention(tokens: int = 8, dim: int = 16) -> onnx.ModelProto:
    """One self-attention block: constant MatMuls, a dynamic Q.K^T and P.V, LayerNorm, Erf-GELU."""
    b = Builder(3)
    x = "x"
    q = b.op("MatMul", [x, b.weight(dim, dim)])
    k = b.op("MatMul", [x, b.weight(dim, dim)])
    v = b.op("MatMul", [x, b.weight(dim, dim)])
    heads = 2
    def split_heads(t):
        t = b.op("Reshape", [t, b.const(np.array([1, tokens, heads, dim // heads], np.int64))])
        return b.op("Transpose", [t], perm=[0, 2, 1, 3])
    qh, kh, vh = split_heads(q), split_heads(k), split_heads(v)
    s = b.op("MatMul", [qh, b.op("Transpose", [kh], perm=[0, 1, 3, 2])])
    p = b.op("Softmax", [b.op("Mul", [s, b.const(np.float32(1 / np.sqrt(dim // heads)))])], axis=-1)
    o = b.op("Transpose", [b.op("MatMul", [p, vh])], perm=[0, 2, 1, 3])
    o = b.op("Reshape", [o, b.const(np.array([1, tokens, dim], np.int64))])
    o = b.op("Add", [x, b.op("Gemm", [b.op("Reshape", [o, b.const(np.array([tokens, dim], np.int64))]),
                                      b.weight(dim, dim), b.const(np.zeros(dim, np.float32))])])
    ln = b.op("LayerNormalization", [o, b.const(np.ones(dim, np.float32)),
                                     b.const(np.zeros(dim, np.float32))], axis=-1, epsilon=1e-5)
    h = b.op("MatMul", [ln, b.weight(dim, 2 * dim)])
    gelu = b.op("Mul", [h, b.op("Add", [b.const(np.float32(1)),
                                        b.op("Erf", [b.op("Div", [h, b.const(np.float32(np.sqrt(2)))])])])])
    out = b.op("MatMul", [b.op("Mul", [gelu, b.const(np.float32(0.5))]), b.weight(2 * dim, dim)])
    return b.model({"x": (1, tokens, dim)}, [out], "tiny_attention")


def single_node(op_type: str, inputs: dict, attrs: dict | None = None, consts: dict | None = None,
                n_out: int = 1, opset: int = OPSET) -> onnx.ModelProto:
    """A model of one node: ``inputs`` name -> shape (graph inputs), ``consts`` name -> array."""
    consts = consts or {}
    order = list(inputs) + list(consts)
    if "__order__" in (attrs or {}):
        order = attrs.pop("__order__")
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op_type, order, outs, name=f"the_{op_type}", **(attrs or {}))
    graph = helper.make_graph(
        [node], f"single_{op_type}",
        [helper.make_tensor_value_info(k, _FLOAT, list(v)) for k, v in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return _typed_outputs(m)


def _typed_outputs(m: onnx.ModelProto) -> onnx.ModelProto:
    """Give the graph outputs their inferred types (onnxruntime needs them); strict check."""
    inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in m.graph.output:
        out.CopyFrom(known.get(out.name, out))
    return m


def run_onnxruntime(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """Run a model with onnxruntime on the CPU (graph optimisations off: a plain reference)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def espcn_nhw() -> onnx.ModelProto:
    """The demo model (inputs ``(1, 1, H, W)``) with a dynamic batch ``N`` too."""
    from bitlet.demo import model_path  # (the test helpers import no bitlet at module level)

    model = onnx.load(str(model_path()))
    for value in (model.graph.input[0], *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "N"
    return model
