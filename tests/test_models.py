"""Real models end to end on the simulated device, against onnxruntime (fp32).

PP-OCR models ship inside the ``rapidocr_onnxruntime`` wheel; the detector
runs on a rendered text image (Pillow), small enough for the simulator.
NudeNet's YOLOv8n detector ships inside the ``nudenet`` wheel (optional test
dependency); it runs at its native 320 x 320.
"""
from __future__ import annotations

import bitlet
import numpy as np
import onnx
import pytest
from bitlet.drivers.sim import SimDevice
from models import nudenet_model, rapidocr_model, run_onnxruntime, sample_image, text_image

pytestmark = pytest.mark.device


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _model(kind):
    path = rapidocr_model(kind)
    if path is None:
        pytest.skip("rapidocr_onnxruntime (with its PP-OCR models) is not installed")
    return onnx.load(path)


@pytest.fixture(scope="module")
def dev():
    with SimDevice() as device:
        yield device


def test_pp_ocr_v4_detector_matches_onnxruntime(dev):
    model = _model("det")
    x = text_image(64, 64)
    if x is None:
        pytest.skip("Pillow is not installed (renders the text image)")
    (ref,) = run_onnxruntime(model, {"x": x})
    assert (ref > 0.5).mean() > 0.02  # the detector does see text here
    compiled = bitlet.compile(model, device=dev, input_shapes={"x": x.shape})
    try:
        y = compiled(x)
        assert y.shape == ref.shape == (1, 1, 64, 64)
        err = rel_l2(y, ref)
        assert err <= 1e-4, f"relative L2 error {err:.2e} (target 1e-3, goal 1e-4)"
        assert ((y > 0.3) == (ref > 0.3)).mean() > 0.999  # the same text mask
        ops = {layer["op"] for layer in compiled.meta["layers"]}
        assert ops == {"BitletConv"} and len(compiled.meta["layers"]) == 64
    finally:
        compiled.close()


def test_pp_ocr_direction_classifier_matches_onnxruntime(dev):
    model = _model("cls")
    img = sample_image("coffee", 48)
    if img is None:
        pytest.skip("scikit-image is not installed (sample images)")
    x = np.ascontiguousarray(np.concatenate([img] * 4, axis=3)[:, :, :, :192] * 2 - 1)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, input_shapes={"x": x.shape})
    try:
        y = compiled(x)
        assert rel_l2(y, ref) <= 1e-4
        assert y.argmax() == ref.argmax()
    finally:
        compiled.close()


@pytest.mark.slow
def test_pp_ocr_v4_recognizer_matches_onnxruntime(dev):
    model = _model("rec")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 32)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, input_shapes={"x": x.shape})
    try:
        y = compiled(x)
        assert rel_l2(y, ref) <= 1e-4
        assert (y.argmax(-1) == ref.argmax(-1)).all()
        assert {"BitletMatMul", "BitletDense"} <= {layer["op"] for layer in compiled.meta["layers"]}
    finally:
        compiled.close()


def test_nudenet_yolov8n_at_320_matches_onnxruntime():
    path = nudenet_model()
    if path is None:
        pytest.skip("nudenet (which ships the YOLOv8n ONNX detector) is not installed")
    img = sample_image("astronaut", 320)
    x = img if img is not None else np.random.default_rng(0).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    model = onnx.load(path)
    (ref,) = run_onnxruntime(model, {"images": x})
    with SimDevice() as dev:  # the fast engine when built (bit-identical to the reference, ~40x faster)
        compiled = bitlet.compile(model, device=dev, input_shapes={"images": x.shape})
        try:
            y = compiled(x)
            layers = [layer["name"] for layer in compiled.meta["layers"]]
        finally:
            compiled.close()
    assert y.shape == ref.shape == (1, 4 + 18, 2100)  # boxes + 18 classes for 2100 anchors
    assert rel_l2(y, ref) <= 1e-4
    # the DFL head's 2100-pixel output row exceeds the output buffer: it runs as column strips
    assert sum(name.startswith("/model.22/dfl/conv/Conv.strip") for name in layers) >= 2
    best = ref[0, 4:].max(axis=0).argsort()[-20:]  # the 20 most confident anchors
    np.testing.assert_allclose(y[0, :, best], ref[0, :, best], rtol=1e-4, atol=1e-3)
