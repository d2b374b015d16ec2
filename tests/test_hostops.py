"""Host ops (numpy) against onnxruntime, one single-node model per case."""
from __future__ import annotations

import numpy as np
import pytest
from bitlet.compiler.frontend import import_onnx
from bitlet.program.hostops import HOST_OPS
from bitlet.compiler.interp import execute
from models import run_onnxruntime, single_node
from onnx import numpy_helper

pytestmark = pytest.mark.numerics

X = (1, 4, 5, 6)
C4 = np.linspace(-1, 1, 4, dtype=np.float32).reshape(4, 1, 1)

# (id, op, inputs {name: shape}, attrs, consts {name: array}, n_out, opset)
CASES = [
    ("add", "Add", {"x": X}, {}, {"c": C4}, 1, 17),
    ("sub", "Sub", {"x": X}, {}, {"c": C4}, 1, 17),
    ("mul", "Mul", {"x": X, "y": X}, {}, {}, 1, 17),
    ("div", "Div", {"x": X}, {}, {"c": C4 + 3}, 1, 17),
    ("pow", "Pow", {"x": X}, {}, {"c": np.float32(2)}, 1, 17),
    ("sqrt", "Sqrt", {"x": X}, {}, {}, 1, 17),
    ("relu", "Relu", {"x": X}, {}, {}, 1, 17),
    ("leaky", "LeakyRelu", {"x": X}, {"alpha": 0.1}, {}, 1, 17),
    ("prelu", "PRelu", {"x": X}, {}, {"slope": C4}, 1, 17),
    ("clip", "Clip", {"x": X}, {}, {"lo": np.float32(-0.5), "hi": np.float32(0.7)}, 1, 17),
    ("clip_max_only", "Clip", {"x": X}, {"__order__": ["x", "", "hi"]}, {"hi": np.float32(0.2)}, 1, 17),
    ("clip_opset6", "Clip", {"x": X}, {"min": -0.3, "max": 0.4}, {}, 1, 6),
    ("sigmoid", "Sigmoid", {"x": X}, {}, {}, 1, 17),
    ("hardsigmoid", "HardSigmoid", {"x": X}, {"alpha": 0.1666667, "beta": 0.5}, {}, 1, 17),
    ("hardswish", "HardSwish", {"x": X}, {}, {}, 1, 17),
    ("tanh", "Tanh", {"x": X}, {}, {}, 1, 17),
    ("erf", "Erf", {"x": X}, {}, {}, 1, 17),
    ("softmax13", "Softmax", {"x": X}, {"axis": 1}, {}, 1, 13),
    ("softmax11_flatten", "Softmax", {"x": X}, {"axis": 2}, {}, 1, 11),
    ("layernorm", "LayerNormalization", {"x": X},
     {"axis": -2, "epsilon": 1e-3}, {"s": np.linspace(0.5, 1.5, 30, dtype=np.float32).reshape(5, 6),
                                     "b": np.full((5, 6), 0.1, np.float32)}, 1, 17),
    ("batchnorm", "BatchNormalization", {"x": X}, {"epsilon": 1e-5},
     {"g": C4.ravel() + 2, "b": C4.ravel(), "m": C4.ravel() / 3, "v": C4.ravel() ** 2 + 0.5}, 1, 15),
    ("maxpool", "MaxPool", {"x": X}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2]},
     {}, 1, 17),
    ("maxpool_ceil_dil", "MaxPool", {"x": X},
     {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "dilations": [1, 2]}, {}, 1, 17),
    ("avgpool_excl", "AveragePool", {"x": X}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, {}, 1, 17),
    ("avgpool_incl_ceil", "AveragePool", {"x": X},
     {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 1, 0, 0], "count_include_pad": 1,
      "ceil_mode": 1}, {}, 1, 17),
    ("avgpool_same", "AveragePool", {"x": X}, {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"},
     {}, 1, 17),
    ("gap", "GlobalAveragePool", {"x": X}, {}, {}, 1, 17),
    ("reducemean13", "ReduceMean", {"x": X}, {"axes": [2, 3], "keepdims": 1}, {}, 1, 13),
    ("reducemean18", "ReduceMean", {"x": X}, {"keepdims": 0}, {"axes": np.array([-1], np.int64)}, 1, 18),
    ("concat", "Concat", {"x": X, "y": X}, {"axis": 1}, {}, 1, 17),
    ("split", "Split", {"x": X}, {"axis": 1}, {"s": np.array([1, 3], np.int64)}, 2, 13),
    ("split_equal", "Split", {"x": X}, {"axis": 3}, {}, 3, 13),
    ("reshape", "Reshape", {"x": X}, {}, {"s": np.array([0, -1, 3], np.int64)}, 1, 17),
    ("flatten", "Flatten", {"x": X}, {"axis": 2}, {}, 1, 17),
    ("transpose", "Transpose", {"x": X}, {"perm": [0, 2, 3, 1]}, {}, 1, 17),
    ("squeeze", "Squeeze", {"x": (1, 4, 1, 6)}, {}, {"a": np.array([2], np.int64)}, 1, 17),
    ("unsqueeze", "Unsqueeze", {"x": X}, {}, {"a": np.array([0, -1], np.int64)}, 1, 17),
    ("gather", "Gather", {"x": X}, {"axis": 1}, {"i": np.array([[3, 0], [-1, 1]], np.int64)}, 1, 17),
    ("slice", "Slice", {"x": X}, {}, {"s": np.array([1, -1], np.int64), "e": np.array([4, -5], np.int64),
                                      "a": np.array([1, 3], np.int64), "st": np.array([2, -2], np.int64)},
     1, 17),
    ("depth2space_dcr", "DepthToSpace", {"x": (1, 8, 2, 3)}, {"blocksize": 2, "mode": "DCR"}, {}, 1, 17),
    ("depth2space_crd", "DepthToSpace", {"x": (1, 8, 2, 3)}, {"blocksize": 2, "mode": "CRD"}, {}, 1, 17),
    ("resize_nearest_floor", "Resize", {"x": X},
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
      "__order__": ["x", "", "sc"]}, {"sc": np.array([1, 1, 2, 2], np.float32)}, 1, 13),
    ("resize_nearest_sizes", "Resize", {"x": X},
     {"mode": "nearest", "__order__": ["x", "", "", "sz"]}, {"sz": np.array([1, 4, 7, 4], np.int64)}, 1, 13),
    ("resize_linear_half_pixel", "Resize", {"x": X}, {"mode": "linear", "__order__": ["x", "", "sc"]},
     {"sc": np.array([1, 1, 2, 1.5], np.float32)}, 1, 13),
    ("resize_linear_align", "Resize", {"x": X},
     {"mode": "linear", "coordinate_transformation_mode": "align_corners",
      "__order__": ["x", "", "", "sz"]}, {"sz": np.array([1, 4, 9, 4], np.int64)}, 1, 13),
    ("resize_linear_down", "Resize", {"x": X},
     {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel",
      "__order__": ["x", "", "sc"]}, {"sc": np.array([1, 1, 0.5, 0.5], np.float32)}, 1, 13),
    ("pad_constant", "Pad", {"x": X}, {}, {"p": np.array([0, 0, 1, -1, 0, 1, 2, 0], np.int64),
                                           "v": np.float32(0.5)}, 1, 17),
    ("pad_reflect", "Pad", {"x": X}, {"mode": "reflect"},
     {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)}, 1, 17),
    ("pad_edge", "Pad", {"x": X}, {"mode": "edge"}, {"p": np.array([0, 0, 1, 1, 0, 0, 2, 2], np.int64)},
     1, 17),
    ("expand", "Expand", {"x": (4, 1, 1)}, {}, {"s": np.array([2, 4, 3, 1], np.int64)}, 1, 17),
    ("where", "Where", {"x": X, "y": X}, {"__order__": ["c", "x", "y"]},
     {"c": np.array([True, False, True, False, True, True])}, 1, 17),
    ("matmul", "MatMul", {"x": (2, 3, 5), "y": (5, 4)}, {}, {}, 1, 17),
    # host ops beyond the issue's list: every registered op is checked against onnxruntime
    ("logsoftmax", "LogSoftmax", {"x": X}, {"axis": 2}, {}, 1, 13),
    ("reducesum13", "ReduceSum", {"x": X}, {"keepdims": 1}, {"a": np.array([1, 3], np.int64)}, 1, 13),
    ("reducemax", "ReduceMax", {"x": X}, {"axes": [1], "keepdims": 0}, {}, 1, 17),
    ("reducemin", "ReduceMin", {"x": X}, {"axes": [-1]}, {}, 1, 17),
    ("reducemean_all", "ReduceMean", {"x": X}, {"keepdims": 0}, {}, 1, 17),
    ("gmp", "GlobalMaxPool", {"x": X}, {}, {}, 1, 17),
    ("exp", "Exp", {"x": X}, {}, {}, 1, 17),
    ("log", "Log", {"x": X}, {}, {}, 1, 17),
    ("neg", "Neg", {"x": X}, {}, {}, 1, 17),
    ("abs", "Abs", {"x": X}, {}, {}, 1, 17),
    ("reciprocal", "Reciprocal", {"x": X}, {}, {}, 1, 17),
    ("floor", "Floor", {"x": X}, {}, {}, 1, 17),
    ("ceil", "Ceil", {"x": X}, {}, {}, 1, 17),
    ("min", "Min", {"x": X, "y": X}, {}, {"c": C4}, 1, 17),
    ("max", "Max", {"x": X}, {}, {"c": C4}, 1, 17),
    ("sum", "Sum", {"x": X, "y": X}, {}, {"c": C4}, 1, 17),
    ("equal", "Equal", {"x": X}, {}, {"c": np.float32(0)}, 1, 17),
    ("less", "Less", {"x": X}, {}, {"c": C4}, 1, 17),
    ("greater", "Greater", {"x": X}, {}, {"c": C4}, 1, 17),
    ("cast", "Cast", {"x": X}, {"to": 7}, {}, 1, 17),
    ("identity", "Identity", {"x": X}, {}, {}, 1, 17),
    ("dropout_mask", "Dropout", {"x": X}, {}, {}, 2, 17),
    ("space2depth", "SpaceToDepth", {"x": (1, 2, 4, 6)}, {"blocksize": 2}, {}, 1, 17),
    ("tile", "Tile", {"x": X}, {}, {"r": np.array([1, 2, 1, 3], np.int64)}, 1, 17),
    ("shape", "Shape", {"x": X}, {"start": 1, "end": -1}, {}, 1, 17),
    ("size", "Size", {"x": X}, {}, {}, 1, 17),
    ("squeeze_all", "Squeeze", {"x": (1, 4, 1, 6)}, {}, {}, 1, 17),
    ("unsqueeze11", "Unsqueeze", {"x": X}, {"axes": [1]}, {}, 1, 11),
    ("split18", "Split", {"x": (1, 4, 5, 7)}, {"axis": 3, "num_outputs": 3}, {}, 3, 18),
    ("gemm_host", "Gemm", {"x": (5, 3), "y": (5, 4)}, {"transA": 1, "alpha": 0.5}, {}, 1, 17),
    ("pad_wrap", "Pad", {"x": X}, {"mode": "wrap"}, {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)},
     1, 19),
    ("resize_nearest_ceil", "Resize", {"x": X},
     {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "ceil",
      "__order__": ["x", "", "sc"]}, {"sc": np.array([1, 1, 0.6, 1.7], np.float32)}, 1, 13),
    ("not_folded", "Not", {}, {}, {"b": np.array([True, False, True])}, 1, 17),
    ("range_folded", "Range", {}, {}, {"s": np.float32(1), "l": np.float32(7.5), "d": np.float32(1.5)},
     1, 17),
    ("constant_of_shape_folded", "ConstantOfShape", {},
     {"value": numpy_helper.from_array(np.array([2.5], np.float32))}, {"s": np.array([2, 3], np.int64)},
     1, 17),
    ("upsample9", "Upsample", {"x": X}, {"mode": "nearest"}, {"sc": np.array([1, 1, 2, 3], np.float32)},
     1, 9),
    ("upsample9_linear", "Upsample", {"x": X}, {"mode": "linear"},
     {"sc": np.array([1, 1, 2, 1.5], np.float32)}, 1, 9),
    ("resize10_down", "Resize", {"x": X}, {"mode": "nearest"}, {"sc": np.array([1, 1, 0.6, 0.5], np.float32)},
     1, 10),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_host_op_matches_onnxruntime(case):
    _, op, inputs, attrs, consts, n_out, opset = case
    model = single_node(op, inputs, dict(attrs), consts, n_out, opset)
    rng = np.random.default_rng(0)
    feeds = {k: rng.uniform(-2, 2, v).astype(np.float32) for k, v in inputs.items()}
    if op in ("Sqrt", "Log", "Reciprocal"):
        feeds = {k: np.abs(v) + 0.1 for k, v in feeds.items()}
    expected = run_onnxruntime(model, feeds)
    got = execute(import_onnx(model), feeds)
    assert len(got) == len(expected)
    for out, ref in zip(got.values(), expected):
        assert out.shape == ref.shape and out.dtype == ref.dtype
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=2e-6)


def test_every_op_the_issue_names_has_a_host_implementation():
    named = ("Add Sub Mul Div Relu LeakyRelu PRelu Clip Sigmoid HardSigmoid HardSwish Tanh Erf Softmax "
             "LayerNormalization MaxPool AveragePool GlobalAveragePool ReduceMean Concat Split Reshape "
             "Flatten Transpose Squeeze Unsqueeze Gather DepthToSpace Resize Pad Shape ConstantOfShape")
    assert not [op for op in named.split() if op not in HOST_OPS]


def test_every_registered_host_op_is_checked_against_onnxruntime():
    checked = {case[1] for case in CASES}
    assert not sorted(set(HOST_OPS) - checked - {"BitletZeroStuff"})  # that one: the test below


def test_zero_stuff_inserts_zeros_then_pads_and_crops():
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 2, 3)
    y = HOST_OPS["BitletZeroStuff"]([x], {"strides": [2, 3], "pads": [1, 0, 0, -2]})
    expected = np.zeros((1, 1, 4, 5), np.float32)
    expected[0, 0, 1::2, ::3] = x[0, 0, :, :2]
    np.testing.assert_array_equal(y, expected)

