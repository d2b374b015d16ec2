"""Inputs keep the model's declared dtypes, as onnxruntime does: the right
dtype or an exact widening runs; anything else is refused naming both."""
from __future__ import annotations

import bitlet
import numpy as np
import pytest
from bitlet.drivers.sim import SimDevice
from models import tiny_cnn
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.device


def _token_model(dtype=TensorProto.INT64):
    """tokens [2, 5] -> Gather from an embedding table [50, 64] -> MatMul [64, 8]."""
    rng = np.random.default_rng(1)
    table = numpy_helper.from_array(rng.standard_normal((50, 64)).astype(np.float32), "table")
    w = numpy_helper.from_array(rng.standard_normal((64, 8)).astype(np.float32), "w")
    nodes = [helper.make_node("Gather", ["table", "tokens"], ["emb"], axis=0),
             helper.make_node("MatMul", ["emb", "w"], ["y"])]
    graph = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("tokens", dtype, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])],
                              [table, w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float16_into_a_float32_input_is_widened_exactly():
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float16)
    with SimDevice() as dev:
        model = bitlet.compile(tiny_cnn(), device=dev)
        assert model(x).tobytes() == model(x.astype(np.float32)).tobytes()
        model.close()


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8])
def test_other_dtypes_into_a_float32_input_are_refused_naming_both(dtype):
    x = np.zeros((1, 3, 16, 16), dtype)
    with SimDevice() as dev:
        model = bitlet.compile(tiny_cnn(), device=dev)
        with pytest.raises(bitlet.BitletTypeError,
                           match=f"input 'x' is {np.dtype(dtype).name}, but the model's input is "
                                 "float32"):
            model(x)
        model.close()


def test_integer_token_inputs_keep_their_dtype_and_run_exactly():
    tokens = np.array([[1, 7, 49, 0, 3], [2, 2, 8, 13, 21]], np.int64)
    import onnxruntime as ort  # onnxruntime: the reference for the result

    proto = _token_model()
    want = ort.InferenceSession(proto.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"tokens": tokens})[0]
    with SimDevice() as dev:
        model = bitlet.compile(proto, device=dev)
        assert model.meta["inputs"][0]["dtype"] == "int64"
        y = model(tokens)
        assert y.tobytes() == model(tokens.astype(np.int32)).tobytes()   # exact widening
        with pytest.raises(bitlet.BitletTypeError, match="'tokens' is float32"):
            model(tokens.astype(np.float32))
        model.close()
    rel = np.linalg.norm(y - want) / np.linalg.norm(want)
    assert y.shape == (2, 5, 8) and rel < 1e-5
