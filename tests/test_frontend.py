"""ONNX frontend: shapes, folding, fusion, errors; the rewritten graph (with float
reference kernels) must still compute what onnxruntime computes."""
from __future__ import annotations

import bitlet
import numpy as np
import onnx
import pytest
from bitlet.compiler.fold import optimize
from bitlet.compiler.frontend import import_onnx
from bitlet.compiler.interp import execute
from models import (
    Builder,
    rapidocr_model,
    run_onnxruntime,
    single_node,
    text_image,
    tiny_attention,
    tiny_cnn,
    tiny_unet,
)

pytestmark = pytest.mark.numerics


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("build,shape", [(tiny_cnn, (1, 3, 16, 16)), (tiny_unet, (1, 3, 16, 16)),
                                         (tiny_attention, (1, 8, 16))])
def test_rewritten_graph_matches_onnxruntime(build, shape):
    model = build()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    graph = optimize(import_onnx(model))
    (out,) = execute(graph, {"x": x}).values()
    assert out.shape == ref.shape
    assert rel_l2(out, ref) < 1e-6


def test_batchnorm_and_bias_fold_and_relu_fuses():
    graph = optimize(import_onnx(tiny_cnn()))
    ops = graph.op_counts()
    assert "BatchNormalization" not in ops and "Relu" not in ops
    convs = [n for n in graph.nodes if n.op == "BitletConv"]
    assert [n.attrs["relu"] for n in convs] == [True, True, False, True]
    # Clip(0, 6) after the depthwise conv: kernel ReLU + host Min(y, 6)
    (low,) = [n for n in graph.nodes if n.op == "Min"]
    assert float(graph.constants[low.inputs[1]]) == 6.0


def test_conv_transpose_lowerings():
    graph = optimize(import_onnx(tiny_unet()))
    ops = graph.op_counts()
    assert "ConvTranspose" not in ops
    assert ops["DepthToSpace"] == 1 and ops["BitletZeroStuff"] == 1
    shuffle = next(n for n in graph.nodes if n.op == "DepthToSpace")
    conv = graph.producers()[shuffle.inputs[0]]
    assert conv.op == "BitletConv" and conv.attrs["relu"]  # Add + BN + Relu folded through the shuffle
    assert graph.constants[conv.inputs[1]].shape == (16, 8, 1, 1)


def test_attention_matmuls_are_kernel_ops():
    ops = optimize(import_onnx(tiny_attention())).op_counts()
    assert ops["BitletMatMul"] == 2 and ops["BitletDense"] == 6 and "MatMul" not in ops


def test_shape_subgraph_is_folded():
    b = Builder()
    shp = b.op("Shape", ["x"])
    n = b.op("Gather", [shp, b.const(np.array(0, np.int64))], axis=0)
    new_shape = b.op("Concat", [b.op("Unsqueeze", [n, b.const(np.array([0], np.int64))]),
                                b.const(np.array([-1], np.int64))], axis=0)
    out = b.op("Reshape", ["x", new_shape])
    graph = import_onnx(b.model({"x": (2, 3, 4)}, [out]))
    assert graph.op_counts() == {"Reshape": 1}
    assert graph.values[out].shape == (2, 12)


def test_unsupported_ops_are_all_listed_in_one_error():
    b = Builder()
    t = b.op("TopK", ["x", b.const(np.array([2], np.int64))], n_out=2)[0]
    u = b.op("Einsum", [t], equation="ij->ji")
    r = b.op("Resize", [u, "", b.const(np.array([2, 2], np.float32))], mode="cubic")
    model = b.model({"x": (3, 4)}, [r])
    with pytest.raises(bitlet.CompileError) as info:
        import_onnx(model)
    text = str(info.value)
    assert "3 unsupported node(s)" in text
    for node in model.graph.node:
        assert f"{node.name} ({node.op_type})" in text
    assert "cubic" in text


def test_dynamic_dimensions_need_input_shapes():
    model = tiny_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    with pytest.raises(bitlet.CompileError, match="input_shapes"):
        import_onnx(model)
    with pytest.raises(bitlet.CompileError, match="does not match"):
        import_onnx(model, {"x": (1, 4, 16, 16)})
    with pytest.raises(bitlet.CompileError, match="unknown input"):
        import_onnx(model, {"y": (1, 3, 16, 16)})
    graph = import_onnx(model, {"x": (1, 3, 32, 16)})
    assert graph.inputs[0].shape == (1, 3, 32, 16)


def test_bad_model_argument():
    with pytest.raises(bitlet.CompileError, match="no such file"):
        import_onnx("/nonexistent/model.onnx")
    with pytest.raises(bitlet.CompileError, match="expected a path"):
        import_onnx(42)


def test_conv_with_runtime_weights_is_unsupported():
    model = single_node("Conv", {"x": (1, 2, 5, 5), "w": (3, 2, 3, 3)}, {"kernel_shape": [3, 3]})
    with pytest.raises(bitlet.CompileError, match="weights are not constant"):
        import_onnx(model)


@pytest.mark.parametrize("kind,shape", [("det", (1, 3, 64, 64)), ("cls", (1, 3, 48, 192)),
                                        ("rec", (1, 3, 48, 160))])
def test_pp_ocr_models_import_and_match_onnxruntime(kind, shape):
    path = rapidocr_model(kind)
    if path is None:
        pytest.skip("rapidocr_onnxruntime (with its PP-OCR models) is not installed")
    x = text_image(*shape[2:]) if kind == "det" else None
    if x is None:
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    model = onnx.load(path)
    (ref,) = run_onnxruntime(model, {"x": x})
    graph = optimize(import_onnx(model, {"x": shape}))
    ops = graph.op_counts()
    assert not {"Conv", "BatchNormalization", "ConvTranspose"} & set(ops)
    (out,) = execute(graph, {"x": x}).values()
    assert out.shape == ref.shape
    assert rel_l2(out, ref) < 1e-5


def test_1d_convolution_is_listed_as_unsupported():
    w = np.ones((2, 3, 3), np.float32)
    model = single_node("Conv", {"x": (1, 3, 10)}, {"kernel_shape": [3]}, {"w": w})
    with pytest.raises(bitlet.CompileError, match=r"the_Conv \(Conv\): only 2-D convolutions"):
        import_onnx(model)


def test_matmul_with_a_vector_operand_stays_on_the_host():
    model = single_node("MatMul", {"x": (2, 5), "v": (5,)}, {})
    graph = optimize(import_onnx(model))
    assert graph.op_counts() == {"MatMul": 1}


def test_unsupported_attributes_and_outputs_are_listed_with_the_nodes():
    b = Builder()
    r = b.op("Resize", ["x", "", b.const(np.array([1, 1, 0.5, 0.5], np.float32))], mode="linear",
             antialias=1)
    y, mean = b.op("LayerNormalization", [r, b.const(np.ones(4, np.float32))], n_out=2, axis=-1)
    p = b.op("Resize", [y, "", b.const(np.array([1, 1, 2, 2], np.float32))],
             coordinate_transformation_mode="tf_half_pixel_for_nearest")
    model = b.model({"x": (1, 2, 8, 8)}, [p, mean], opset=18)
    with pytest.raises(bitlet.CompileError) as info:
        import_onnx(model)
    text = str(info.value)
    assert "3 unsupported node(s)" in text
    assert "antialias=1" in text and "training statistics" in text and "tf_half_pixel_for_nearest" in text
