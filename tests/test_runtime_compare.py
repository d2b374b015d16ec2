"""bitlet.compare: per-layer and final errors against onnxruntime."""
from __future__ import annotations

import bitlet
import numpy as np
import pytest
from bitlet.tools.accuracy import error_metrics
from bitlet.drivers.sim import SimDevice
from models import tiny_cnn, tiny_unet

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def dev():
    with SimDevice() as device:
        yield device


def test_error_metrics_exact_values():
    ref = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    y = np.array([[1.0, 2.0, 3.5], [1.0, 4.0, 0.0]])
    m = error_metrics(y, ref)
    assert m["max_abs"] == 3.0
    assert m["rel_l2"] == pytest.approx(np.sqrt(0.25 + 4 + 9) / np.sqrt(24))
    assert m["top1_agree"] == 0.5 and m["top3_overlap"] == pytest.approx(1.0)  # 3 classes: top-3
    img = np.zeros((1, 1, 2, 2))
    img[0, 0, 0, 0] = 2.0
    noisy = img.copy()
    noisy[0, 0, 1, 1] = 0.2
    assert error_metrics(noisy, img)["psnr_db"] == pytest.approx(10 * np.log10(4 / (0.04 / 4)))


def test_compare_reports_every_kernel_layer_and_the_output(dev):
    compiled = bitlet.compile(tiny_cnn(), device=dev)
    try:
        x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
        report = bitlet.compare(compiled, x)
        kernel_rows = [r for r in report.layers if r["kind"] == "kernel"]
        # 5 kernel layers; the depthwise conv's fused ReLU (of a Clip(0, 6)) has no ONNX
        # counterpart (the host Min completes the Clip, reported as a host value)
        assert len(kernel_rows) == 4 and any(r["value"] == "clip_18" for r in report.layers)
        assert all(r["rel_l2"] < 1e-5 for r in report.layers)
        (out,) = report.outputs.values()
        assert out["top1_agree"] == 1.0 and out["rel_l2"] < 1e-6
        assert "rel L2" in str(report) and report.as_dict()["precision"] == "fp32"
    finally:
        compiled.close()


def test_compare_images_gives_psnr_and_needs_the_model_after_load(dev, tmp_path):
    model = tiny_unet()
    compiled = bitlet.compile(model, device=dev, precision="bf16")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    try:
        report = bitlet.compare(compiled, {"x": x})
        (out,) = report.outputs.values()
        assert 20 < out["psnr_db"] < 120 and out["rel_l2"] > 1e-6  # bf16 is visibly coarser
        compiled.save(tmp_path / "unet.npz")
    finally:
        compiled.close()
    loaded = bitlet.load(tmp_path / "unet.npz", device=dev)
    try:
        with pytest.raises(bitlet.BitletValueError, match="model="):
            bitlet.compare(loaded, x)
        assert bitlet.compare(loaded, x, model=model).worst_rel_l2 == report.worst_rel_l2
    finally:
        loaded.close()
