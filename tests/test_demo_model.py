"""The embedded demo's model and data (package folder ``bitlet/demo``).

``examples/models/train_espcn.py`` trains ESPCN x3 on scikit-image sample
images and writes ``espcn_x3.onnx``, ``frames.npz`` (crops of held-out
images) and ``model_card.json``. These tests load the files as installed
with the package, run the model with onnxruntime (deterministic), and check
that it beats the script's own bicubic baseline (the same function) on
held-out images by the margin measured when it was trained.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import bitlet
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a core dependency) is not installed")
onnx = pytest.importorskip("onnx", reason="onnx (a core dependency) is not installed")

DEMO = Path(bitlet.__file__).parent / "demo"
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "models" / "train_espcn.py"

# Mean PSNR gain (dB) of the model over bicubic on the bundled frames, as the
# training run measured it (model_card.json); asserted less a small tolerance.
MEASURED_FRAMES_GAIN_DB = 0.995
MIN_FRAMES_GAIN_DB = MEASURED_FRAMES_GAIN_DB - 0.02
# The card's PSNR figures must be reproduced to this precision (onnxruntime
# builds may differ in the last float bits).
PSNR_TOLERANCE_DB = 0.005


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((DEMO / "model_card.json").read_text())


@pytest.fixture(scope="module")
def model_path(card) -> Path:
    return DEMO / card["model"]


@pytest.fixture(scope="module")
def session(model_path):
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def frames() -> dict:
    with np.load(DEMO / "frames.npz", allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def script():
    """The training script as a module: its helpers define the data and the baseline.

    Importing it needs only numpy; its image helpers need Pillow.
    """
    pytest.importorskip("PIL", reason="Pillow (dev extra, via scikit-image) is not installed")
    spec = importlib.util.spec_from_file_location("train_espcn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upscale(session, lr_y: np.ndarray) -> np.ndarray:
    """Model output for an (h, w) luma in [0, 1]: (3h, 3w) float32 clipped to [0, 1]."""
    (sr,) = session.run(["sr"], {"lr": np.ascontiguousarray(lr_y, np.float32)[None, None]})
    return np.clip(sr[0, 0], 0.0, 1.0)


def espcn_parameters(scale: int) -> int:
    """Weights + biases of Conv5x5 1->64, Conv3x3 64->32, Conv3x3 32->scale^2."""
    return (1 * 64 * 5 * 5 + 64) + (64 * 32 * 3 * 3 + 32) + (32 * scale**2 * 3 * 3 + scale**2)


def test_onnx_graph_is_the_documented_espcn(model_path, card):
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert int(props["scale"]) == card["scale"] == 3
    assert {op.domain: op.version for op in model.opset_import}[""] == card["onnx"]["opset"] >= 13
    assert [n.op_type for n in model.graph.node] == [
        "Conv", "Relu", "Conv", "Relu", "Conv", "DepthToSpace"]
    depth_to_space = model.graph.node[-1]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in depth_to_space.attribute}
    assert attributes == {"blocksize": 3, "mode": b"CRD"}
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert (graph_input.name, graph_output.name) == ("lr", "sr")
    dims = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    assert dims == [1, 1, "H", "W"]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model_path.stat().st_size == card["onnx"]["bytes"] < 150_000


def test_parameter_count_is_espcn_x3_and_in_the_card(model_path, card):
    model = onnx.load(str(model_path))
    arrays = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert all(a.dtype == np.float32 and np.all(np.isfinite(a)) for a in arrays)
    count = sum(a.size for a in arrays)
    assert count == card["parameters"] == espcn_parameters(3) == 22_729


def test_model_takes_any_frame_size(session):
    lr = np.linspace(0.0, 1.0, 5 * 7, dtype=np.float32).reshape(5, 7)
    assert upscale(session, lr).shape == (15, 21)
    assert upscale(session, lr.T).shape == (21, 15)


def test_frames_layout(frames):
    count = len(frames["names"])
    assert 3 <= count <= 8 and len(set(frames["names"].tolist())) == count
    assert int(frames["scale"]) == 3
    expected = {
        "hr": ((count, 96, 96, 3), np.uint8), "lr": ((count, 32, 32, 3), np.uint8),
        "hr_y": ((count, 96, 96), np.uint8), "lr_y": ((count, 32, 32), np.uint8),
        "bicubic_y": ((count, 96, 96), np.float32),
        "bicubic_cbcr": ((count, 96, 96, 2), np.uint8),
    }
    for key, (shape, dtype) in expected.items():
        assert (frames[key].shape, frames[key].dtype) == (shape, dtype), key
    assert 0.0 <= frames["bicubic_y"].min() and frames["bicubic_y"].max() <= 1.0
    assert (DEMO / "frames.npz").stat().st_size < 400_000


def test_frames_come_from_held_out_images_only(frames, card):
    held_out, train = card["data"]["held_out_images"], card["data"]["train_images"]
    assert held_out and train and not set(held_out) & set(train)
    sources = {name.split("[")[0] for name in frames["names"].tolist()}
    assert sources <= set(held_out) and len(sources) >= 2


def test_frames_are_what_the_script_makes(frames, script):
    """LR = downscale(HR), luma = Pillow YCbCr, bicubic = the script's baseline."""
    for i, hr in enumerate(frames["hr"]):
        lr = script.downscale(hr)
        np.testing.assert_array_equal(frames["lr"][i], lr)
        np.testing.assert_array_equal(frames["hr_y"][i], script.ycbcr(hr)[..., 0])
        np.testing.assert_array_equal(frames["lr_y"][i], script.ycbcr(lr)[..., 0])
        bicubic = script.bicubic_luma(frames["lr_y"][i] / np.float32(255))
        np.testing.assert_allclose(frames["bicubic_y"][i], bicubic, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(frames["bicubic_cbcr"][i], script.bicubic_chroma(lr))


def test_model_beats_bicubic_on_bundled_frames(session, frames, card, script):
    recorded = card["evaluation"]["frames"]["images"]
    gains = []
    for name, hr_y, lr_y in zip(frames["names"].tolist(), frames["hr_y"], frames["lr_y"]):
        hr, lr = hr_y / np.float32(255), lr_y / np.float32(255)
        model_db = script.psnr(hr, upscale(session, lr))
        bicubic_db = script.psnr(hr, script.bicubic_luma(lr))
        figures = recorded[name]
        assert model_db == pytest.approx(figures["model_db"], abs=PSNR_TOLERANCE_DB), name
        assert bicubic_db == pytest.approx(figures["bicubic_db"], abs=PSNR_TOLERANCE_DB), name
        assert model_db > bicubic_db, name
        gains.append(model_db - bicubic_db)
    assert np.mean(gains) >= MIN_FRAMES_GAIN_DB
    assert card["evaluation"]["frames"]["mean_gain_db"] == pytest.approx(
        MEASURED_FRAMES_GAIN_DB, abs=PSNR_TOLERANCE_DB)


def test_model_beats_bicubic_on_whole_held_out_images(session, card, script):
    pytest.importorskip("skimage", reason="scikit-image (dev extra) holds the held-out images")
    recorded = card["evaluation"]["held_out"]["images"]
    assert set(recorded) == set(card["data"]["held_out_images"])
    for name, figures in recorded.items():
        hr_y, lr_y = script.luma_pair(script.load_rgb(name))
        model_db = script.psnr(hr_y, upscale(session, lr_y))
        bicubic_db = script.psnr(hr_y, script.bicubic_luma(lr_y))
        assert model_db == pytest.approx(figures["model_db"], abs=PSNR_TOLERANCE_DB), name
        assert bicubic_db == pytest.approx(figures["bicubic_db"], abs=PSNR_TOLERANCE_DB), name
        assert model_db > bicubic_db, name
