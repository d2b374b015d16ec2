"""Malformed models: every operand and graph error is a CompileError naming the node.

Each bad model is built with onnx.helper and is also refused by onnxruntime (checked
here), so the compiler is held to ONNX's rules, not to its own.
"""
from __future__ import annotations

import bitlet
import numpy as np
import pytest
from bitlet.compiler.frontend import import_onnx
from models import run_onnxruntime, single_node
from onnx import TensorProto, helper, numpy_helper


def ones(*shape):
    return np.ones(shape, np.float32)


def bad_node(op, x_shape, consts, attrs, opset=17):
    """One node on input ``x``, built without onnx's checks (they would refuse it too)."""
    node = helper.make_node(op, ["x", *consts], ["y"], name=f"the_{op}", **attrs)
    graph = helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def refused_by_onnxruntime(model, x_shape) -> bool:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # the refusal is expected: no log line
    try:
        run_onnxruntime(model, {"x": np.ones(x_shape, np.float32)})
    except Exception:  # noqa: BLE001 - onnxruntime raises several types; any refusal counts
        return True
    return False


#: (name, op, input shape, constants, attributes, what the error must say)
BAD_OPERANDS = [
    ("conv_input_channels", "Conv", (1, 3, 8, 8), {"w": ones(4, 5, 3, 3)}, {},
     "input has 3 channels but the weight"),
    ("conv_group_channels", "Conv", (1, 4, 8, 8), {"w": ones(6, 2, 3, 3)}, {"group": 4},
     "input has 4 channels"),
    ("conv_group_outputs", "Conv", (1, 4, 8, 8), {"w": ones(6, 1, 3, 3)}, {"group": 4},
     "not divisible by group=4"),
    ("conv_bias", "Conv", (1, 3, 8, 8), {"w": ones(4, 3, 3, 3), "b": ones(5)}, {}, "bias of shape"),
    ("conv_kernel_shape", "Conv", (1, 3, 8, 8), {"w": ones(4, 3, 3, 3)}, {"kernel_shape": [5, 5]},
     "kernel_shape"),
    ("conv_too_small", "Conv", (1, 3, 2, 2), {"w": ones(4, 3, 3, 3)}, {}, "no output pixel"),
    ("convT_input_channels", "ConvTranspose", (1, 3, 8, 8), {"w": ones(5, 4, 2, 2)},
     {"strides": [2, 2]}, "input has 3 channels"),
    ("convT_group", "ConvTranspose", (1, 3, 8, 8), {"w": ones(3, 4, 3, 3)}, {"group": 2},
     "not divisible by group=2"),
    ("convT_bias", "ConvTranspose", (1, 4, 8, 8), {"w": ones(4, 3, 3, 3), "b": ones(4)},
     {"group": 2}, r"expected \(6,\)"),
    ("gemm_k", "Gemm", (2, 3), {"w": ones(4, 5)}, {}, "K = 3 and 4"),
    ("gemm_transB", "Gemm", (2, 3), {"w": ones(3, 5)}, {"transB": 1}, "K = 3 and 5"),
    ("gemm_transA", "Gemm", (2, 3), {"w": ones(3, 5)}, {"transA": 1}, "K = 2 and 3"),
    ("gemm_rank", "Gemm", (2, 2, 3), {"w": ones(3, 5)}, {}, "must both be 2-D"),
    ("gemm_c", "Gemm", (2, 3), {"w": ones(3, 5), "c": ones(4)}, {}, "does not broadcast"),
    ("matmul_k", "MatMul", (2, 3), {"w": ones(4, 5)}, {}, "inner dimensions 3 and 4"),
    ("matmul_batch", "MatMul", (2, 4, 3), {"w": ones(3, 3, 5)}, {}, "batch dimensions"),
]


@pytest.mark.parametrize("case", BAD_OPERANDS, ids=[c[0] for c in BAD_OPERANDS])
def test_kernel_op_operands_are_checked_against_the_onnx_rules(case):
    _, op, x_shape, consts, attrs, message = case
    model = bad_node(op, x_shape, consts, attrs)
    assert refused_by_onnxruntime(model, x_shape)
    with pytest.raises(bitlet.CompileError, match=rf"node 'the_{op}' \({op}\): .*{message}"):
        bitlet.compile(model)


@pytest.mark.parametrize("op,x_shape,consts,attrs,out_shape", [
    ("Conv", (1, 4, 8, 8), {"w": ones(6, 2, 3, 3)}, {"group": 2}, (1, 6, 6, 6)),
    ("ConvTranspose", (1, 4, 8, 8), {"w": ones(4, 3, 3, 3), "b": ones(6)}, {"group": 2},
     (1, 6, 10, 10)),
    ("Gemm", (3, 2), {"w": ones(5, 3), "c": ones(5)}, {"transA": 1, "transB": 1}, (2, 5)),
    ("MatMul", (2, 4, 3), {"w": ones(3, 5)}, {}, (2, 4, 5)),
])
def test_legal_operands_still_compile_to_onnxruntimes_shape(op, x_shape, consts, attrs, out_shape):
    model = single_node(op, {"x": x_shape}, dict(attrs), consts)
    (ref,) = run_onnxruntime(model, {"x": np.ones(x_shape, np.float32)})
    assert ref.shape == out_shape
    assert import_onnx(model).outputs[0].shape == out_shape
