"""Real models end to end on the simulated device, against onnxruntime (fp32).

PP-OCR models ship inside the ``rapidocr_onnxruntime`` wheel; the detector
runs on a rendered text image (Pillow), small enough for the simulator.
NudeNet's YOLOv8n detector ships inside the ``nudenet`` wheel (optional test
dependency); it runs at its native 320 x 320.

The errors README.md's performance table quotes are asserted here at their
stated values (:data:`FIGURES`), within a factor :data:`NOISE` either way: the
simulator is bit-exact and deterministic, but onnxruntime's own fp32 kernels
differ slightly between CPUs.  ``test_readme_quotes_the_figures_asserted_here``
keeps the README and this table the same.
"""
from __future__ import annotations

import re
from pathlib import Path

import bitlet
import numpy as np
import onnx
import pytest
from bitlet.drivers.sim import SimDevice
from models import nudenet_model, rapidocr_model, run_onnxruntime, sample_image, text_image

pytestmark = pytest.mark.device

README = Path(__file__).resolve().parents[1] / "README.md"
#: relative L2 errors against onnxruntime fp32, as README.md states them
FIGURES = {
    "det 64x64": "1.4e-6", "det 128x256": "1.7e-6", "det page 128x128": "7.1e-6",
    "cls": "8.9e-6", "rec 48x160": "6.8e-6", "nudenet": "2.8e-7",
    "det fp16": "3.0e-3", "det bf16": "1.9e-2", "det fixed12": "2.8e-3", "det fixed8": "4.0e-2",
}
#: a measured error may differ from the stated one by this factor (onnxruntime's noise)
NOISE = 1.5


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def assert_figure(key: str, measured: float) -> None:
    stated = float(FIGURES[key])
    assert stated / NOISE <= measured <= stated * NOISE, \
        f"{key}: measured relative L2 {measured:.2e}, README states {FIGURES[key]}"


def test_readme_quotes_the_figures_asserted_here():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Performance"):text.index("## Testing")]
    missing = [f"{key}: {value}" for key, value in FIGURES.items()
               if not re.search(rf"(?<![\d.]){re.escape(value)}(?!\d)", table)]
    assert not missing, f"README's performance table does not state {missing}"


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
        assert_figure("det 64x64", rel_l2(y, ref))
        assert ((y > 0.3) == (ref > 0.3)).mean() > 0.999  # the same text mask
        ops = {layer["op"] for layer in compiled.meta["layers"]}
        assert ops == {"BitletConv"} and len(compiled.meta["layers"]) == 64
    finally:
        compiled.close()


def _page(size: int) -> np.ndarray | None:
    """skimage's ``page`` (a camera photo of a printed page), normalised like the text image."""
    img = sample_image("page", size)
    return None if img is None else np.ascontiguousarray((img - 0.5) / 0.5, dtype=np.float32)


@pytest.mark.parametrize("key,image", [("det 128x256", lambda: text_image(128, 256)),
                                       ("det page 128x128", lambda: _page(128))])
def test_pp_ocr_v4_detector_on_larger_images(dev, key, image):
    model = _model("det")
    x = image()
    if x is None:
        pytest.skip("Pillow / scikit-image is not installed (test images)")
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, input_shapes={"x": x.shape})
    try:
        assert_figure(key, rel_l2(compiled(x), ref))
    finally:
        compiled.close()


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fixed12", "fixed8"])
def test_pp_ocr_v4_detector_in_other_precisions(dev, precision):
    """README: fp16 3.0e-3, bf16 1.9e-2, fixed12 2.8e-3, fixed8 4.0e-2; text mask >= 99.9 %."""
    model = _model("det")
    x = text_image(64, 64)
    if x is None:
        pytest.skip("Pillow is not installed (renders the text image)")
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, precision=precision, input_shapes={"x": x.shape})
    try:
        y = compiled(x)
    finally:
        compiled.close()
    assert_figure(f"det {precision}", rel_l2(y, ref))
    assert ((y > 0.3) == (ref > 0.3)).mean() >= 0.999


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
        assert_figure("cls", rel_l2(y, ref))
        assert y.argmax() == ref.argmax()
    finally:
        compiled.close()


@pytest.mark.slow
def test_pp_ocr_v4_recognizer_matches_onnxruntime(dev):
    model = _model("rec")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 160)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, input_shapes={"x": x.shape})
    try:
        y = compiled(x)
        assert_figure("rec 48x160", rel_l2(y, ref))
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
    assert_figure("nudenet", rel_l2(y, ref))
    # the DFL head's 2100-pixel output row exceeds the output buffer: it runs as column strips
    assert sum(name.startswith("/model.22/dfl/conv/Conv.strip") for name in layers) >= 2
    best = ref[0, 4:].max(axis=0).argsort()[-20:]  # the 20 most confident anchors
    np.testing.assert_allclose(y[0, :, best], ref[0, :, best], rtol=1e-4, atol=1e-3)
