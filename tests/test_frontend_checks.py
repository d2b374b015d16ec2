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

pytestmark = pytest.mark.numerics


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


# ---------------------------------------------------------------- graph structure (item 11)
def graph_of(nodes, x_shape=(1, 4), inits=(), opset=17, ir_version=8):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


BAD_GRAPHS = {
    "cycle": ([helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
               helper.make_node("Relu", ["a"], ["b"], name="n2"),
               helper.make_node("Neg", ["a"], ["y"], name="n3")], "has a cycle.*'n1' .*'n2'"),
    "self_loop": ([helper.make_node("Add", ["x", "a"], ["a"], name="n1"),
                   helper.make_node("Neg", ["a"], ["y"], name="n2")], "has a cycle.*'n1' "),
    "undefined_input": ([helper.make_node("Add", ["x", "nowhere"], ["y"], name="n1")],
                        "node 'n1' \\(Add\\) reads 'nowhere', which is no graph input"),
    "defined_twice": ([helper.make_node("Neg", ["x"], ["y"], name="n1"),
                       helper.make_node("Relu", ["x"], ["y"], name="n2")],
                      "'y' is written by two nodes, 'n1' \\(Neg\\) and 'n2' \\(Relu\\)"),
}


@pytest.mark.parametrize("kind", sorted(BAD_GRAPHS))
def test_malformed_graphs_are_refused_naming_the_nodes(kind):
    nodes, message = BAD_GRAPHS[kind]
    model = graph_of(nodes)
    assert refused_by_onnxruntime(model, (1, 4))
    with pytest.raises(bitlet.CompileError, match=message):
        import_onnx(model)


def test_unsorted_nodes_are_sorted_as_onnxruntime_does():
    model = graph_of([helper.make_node("Relu", ["a"], ["y"], name="second"),
                      helper.make_node("Neg", ["x"], ["a"], name="first")])
    x = np.array([[1, -2, 3, -4]], np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model)
    np.testing.assert_array_equal(compiled.run({"x": x})["y"], ref)
    assert [n.name for n in import_onnx(model).nodes] == ["first", "second"]


@pytest.mark.parametrize("op,consts,attrs,message", [
    ("Conv", {"w": ones(4, 3, 3, 3)}, {"strides": [0, 1]}, r"strides=\[0, 1\]: expected 2 integers >= 1"),
    ("Conv", {"w": ones(4, 3, 3, 3)}, {"group": 0}, "group=0: expected an integer >= 1"),
    ("Conv", {"w": ones(4, 3, 3, 3)}, {"dilations": [1, 0]}, "dilations"),
    ("ConvTranspose", {"w": ones(3, 4, 3, 3)}, {"strides": [0, 0]}, "strides"),
    ("MaxPool", {}, {"kernel_shape": [2, 2], "strides": [0, 2]}, "strides"),
    ("AveragePool", {}, {"kernel_shape": [0, 2]}, "kernel_shape"),
])
def test_zero_strides_and_groups_are_a_clear_error(op, consts, attrs, message):
    """strides=0 / group=0 raised ZeroDivisionError (issue 13 item 11)."""
    model = bad_node(op, (1, 3, 8, 8), consts, attrs)
    assert refused_by_onnxruntime(model, (1, 3, 8, 8))
    with pytest.raises(bitlet.CompileError, match=rf"node 'the_{op}' \({op}\): {message}"):
        import_onnx(model)


def test_newer_opset_or_ir_version_is_refused_with_the_supported_versions():
    import onnx
    from bitlet.compiler.validate import MAX_OPSET

    relu = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(bitlet.CompileError, match=rf"opset {newest + 1}, newer than this frontend "
                                                  rf"knows: .* opsets up to {newest}"):
        import_onnx(graph_of(relu, opset=newest + 1))
    with pytest.raises(bitlet.CompileError, match=rf"IR version {onnx.IR_VERSION + 1} .*IR "
                                                  rf"versions up to {onnx.IR_VERSION}"):
        import_onnx(graph_of(relu, ir_version=onnx.IR_VERSION + 1))
    # an op whose version at the model's opset is newer than the one implemented
    changed = next(op for op in ("Cast", "Reshape", "Relu", "Add", "Conv")
                   if onnx.defs.get_schema(op, newest).since_version
                   > onnx.defs.get_schema(op, MAX_OPSET).since_version)
    node = helper.make_node(changed, ["x", "s"] if changed == "Reshape" else ["x"], ["y"], name="n",
                            **({"to": TensorProto.FLOAT} if changed == "Cast" else {}))
    shape = [numpy_helper.from_array(np.array([1, 4], np.int64), "s")]
    with pytest.raises(bitlet.CompileError, match=rf"n \({changed}\): opset {newest} selects "
                                                  rf"{changed} version"):
        import_onnx(graph_of([node], inits=shape if changed == "Reshape" else (), opset=newest))
    assert import_onnx(graph_of(relu, opset=MAX_OPSET)).outputs[0].shape == (1, 4)


def test_an_input_beyond_any_device_is_refused_with_its_size():
    """1x3x100000x100000 built full-size arrays (MemoryError at 112 GiB) (issue 13 item 11)."""
    model = bad_node("Conv", (1, 3, 100000, 100000), {"w": ones(4, 3, 3, 3)}, {})
    with pytest.raises(bitlet.CompileError, match=r"graph input 'x' of shape \(1, 3, 100000, "
                                                  r"100000\) float32 takes 120000000000 bytes"):
        import_onnx(model)


def test_shape_inference_builds_no_tensor_of_the_activations_size():
    """A 256 MiB input through kernel, element-wise, pooling and reshaping ops: import
    allocates a small fraction of it (the shapes come from formulas, one-element probes
    and onnx's symbolic inference)."""
    import tracemalloc

    from models import Builder

    b = Builder()
    c = b.op("Conv", ["x", b.const(ones(4, 4, 3, 3)), b.const(ones(4))], pads=[1, 1, 1, 1])
    r = b.op("Relu", [c])
    a = b.op("Add", [r, b.const(ones(4, 1, 1))])
    p = b.op("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2])
    t = b.op("Transpose", [p], perm=[0, 2, 3, 1])
    f = b.op("Reshape", [t, b.const(np.array([1, -1], np.int64))])
    s = b.op("Softmax", [f], axis=-1)
    model = b.model({"x": (1, 4, 4096, 4096)}, [s])
    tracemalloc.start()
    try:
        graph = import_onnx(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert graph.outputs[0].shape == (1, 4 * 2048 * 2048)
    assert peak < 16 << 20, peak
