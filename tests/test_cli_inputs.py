"""What ``bitlet run/profile/compare`` do with their inputs, and say they do:
random inputs in the model's declared dtypes, images converted to the
model's channels and layout with every step printed, NaN/Inf reported,
``--shape`` with ``--input`` refused, ``--quiet``."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from bitlet.demo import model_path
from bitlet.errors import BitletValueError
from bitlet.tools.inputs import input_summary, load_inputs, onnx_input_specs
from bitlet.tools.progress import Progress
from onnx import TensorProto, helper
from PIL import Image
from test_cli import SMALL, run  # each CLI test file runs the CLI the same way

pytestmark = pytest.mark.device


def _identity_model(tmp_path, elem_type, shape, name="x"):
    """A one-node ONNX model (Identity) with an input of the given type and shape."""
    node = helper.make_node("Identity", [name], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(name, elem_type, shape)],
                              [helper.make_tensor_value_info("y", elem_type, shape)])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


def test_without_input_the_cli_says_it_uses_random_inputs(capsys):
    code, out, err = run(capsys, "run", str(model_path()), *SMALL, "--device", "sim")
    assert code == 0, err
    assert "random inputs (seed 0): lr float32 [1, 1, 12, 12]" in err
    assert "input lr: float32 [1, 1, 12, 12] (random)" in out


def test_messages_name_the_models_own_dimension_names(capsys):
    code, _, err = run(capsys, "profile", str(model_path()), "--device", "sim")
    assert code == 1
    assert "[1, 1, H, W]" in err and len(err.strip().splitlines()) == 1, err


def test_quiet_says_nothing_on_stderr(capsys):
    code, _, err = run(capsys, "run", str(model_path()), *SMALL, "--device", "sim", "--quiet")
    assert code == 0 and err == ""


def test_shape_together_with_input_is_an_error(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 12, 12), np.float32))
    code, _, err = run(capsys, "run", str(model_path()), *SMALL, "--input",
                       str(tmp_path / "x.npy"), "--device", "sim")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "--shape" in err and "--input" in err


def test_nan_and_inf_inputs_are_reported(capsys, tmp_path):
    x = np.zeros((1, 1, 12, 12), np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "run", str(model_path()), "--input", str(tmp_path / "x.npy"),
                         "--device", "sim", "--json")
    assert code == 0, err
    assert json.loads(out)["inputs"]["arrays"]["lr"]["nonfinite"] == 3
    assert "input 'lr' has 3 NaN/Inf values" in err


def test_random_inputs_keep_the_declared_integer_dtype(tmp_path):
    path = _identity_model(tmp_path, TensorProto.INT32, [2, 7])
    specs = onnx_input_specs(path)
    assert specs == [{"name": "x", "shape": [2, 7], "dtype": "int32"}]
    feeds = load_inputs(None, specs)
    x = feeds.arrays["x"]
    assert x.dtype == np.int32 and x.shape == (2, 7) and x.min() >= 0 and x.max() < 256
    assert "x int32 [2, 7]" in feeds.steps[0]
    bools = load_inputs(None, [{"name": "m", "shape": [5], "dtype": "bool"}]).arrays["m"]
    assert bools.dtype == np.bool_


def test_an_rgb_image_into_a_one_channel_nchw_input_is_converted_to_grey(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 255                       # pure red: ITU-R 601 luma 76/255 in Pillow's "L"
    Image.fromarray(rgb).save(tmp_path / "red.png")
    feeds = load_inputs(str(tmp_path / "red.png"),
                        [{"name": "lr", "shape": [1, 1, "H", "W"], "dtype": "float32"}])
    x = feeds.arrays["lr"]
    assert x.shape == (1, 1, 6, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.full_like(x, np.float32(76) / np.float32(255)))
    text = "\n".join(feeds.steps)
    assert "RGB -> L" in text and "scale to [0, 1]" in text and "HWC -> NCHW" in text


def test_mean_and_std_apply_per_channel_and_nhwc_stays_nhwc(tmp_path):
    pixels = np.tile(np.array([[[0, 51, 255]]], np.uint8), (2, 2, 1))   # 2x2 RGB
    Image.fromarray(pixels).save(tmp_path / "p.png")
    feeds = load_inputs(str(tmp_path / "p.png"),
                        [{"name": "img", "shape": [1, 2, 2, 3], "dtype": "float32"}],
                        mean=(0.0, 0.1, 0.5), std=(1.0, 0.5, 0.25))
    x = feeds.arrays["img"]
    assert x.shape == (1, 2, 2, 3)                           # NHWC: no transpose
    want = (pixels.astype(np.float32) / 255 - np.float32([0.0, 0.1, 0.5])) \
        / np.float32([1.0, 0.5, 0.25])
    np.testing.assert_allclose(x[0], want, rtol=1e-6)
    assert not any("NCHW" in s for s in feeds.steps)
    with pytest.raises(BitletValueError, match="--mean has 2 values"):
        load_inputs(str(tmp_path / "p.png"),
                    [{"name": "img", "shape": [1, 2, 2, 3], "dtype": "float32"}], mean=(0, 0))


def test_the_image_steps_are_printed_by_the_cli(capsys, tmp_path):
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "f.png")
    code, _, err = run(capsys, "run", str(model_path()), "--input", str(tmp_path / "f.png"),
                       "--device", "sim")
    assert code == 0, err
    assert "read f.png: 12x12 RGB" in err and "RGB -> L" in err and "HWC -> NCHW" in err


def test_input_summary_counts_only_float_nonfinite():
    s = input_summary({"a": np.array([1.0, np.nan], np.float16), "b": np.arange(3, dtype=np.int64)})
    assert s["a"] == {"shape": [2], "dtype": "float16", "nonfinite": 1}
    assert s["b"]["nonfinite"] == 0


def test_progress_draws_a_bar_on_stderr_and_nothing_when_disabled(capsys):
    bar = Progress("demo")
    for i in range(1, 4):
        bar(i, 3, f"frame {i}")
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err
    off = Progress("demo", enabled=False)
    off(1, 3)
    assert capsys.readouterr().err == ""
