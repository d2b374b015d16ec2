"""`bitlet enhance` and bitlet.enhance.Enhancer: video/folder in, H.264/PNG out,
tiles bit-identical to whole frames, Y and RGB models, reference metrics, errors."""
from __future__ import annotations

import json
import os
import sys

import bitlet
import numpy as np
import pytest
from bitlet.demo import model_path
from bitlet.tools.cli import main
from bitlet.tools.enhance import Enhancer, receptive_radius, tile_plan
from bitlet.tools.imaging import bicubic_resize, draw_label, rgb_to_ycbcr, ssim, ycbcr_planes_to_rgb
from bitlet.tools.imaging import psnr, read_image, write_png

pytestmark = pytest.mark.device


def _smooth_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """Moving smooth colour patterns (photograph-like, so the codecs and the model behave)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = rng.random((3, 2)) * 6.0
    out = []
    for t in range(n):
        chans = [128 + 90 * np.sin((xx + 2 * t) / (3.0 + c) + phase[c, 0])
                 * np.cos(yy / (4.0 + c) + phase[c, 1]) for c in range(3)]
        out.append(np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8))
    return out


def _write_video(path, frames, fps=10):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _read_video(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def device():
    dev = bitlet.open("sim")
    yield dev
    dev.close()


# ------------------------------------------------------------------------------ tiling
def test_receptive_radius_of_the_demo_model():
    # conv 5x5, conv 3x3, conv 3x3 at input resolution, then the pixel shuffle
    assert receptive_radius(model_path()) == (4, "")


def test_tile_plan_cores_cover_the_frame_once():
    for h, w, tile, halo in [(20, 30, (16, 16), 4), (9, 40, (9, 12), 2), (50, 50, (50, 50), 4)]:
        cover = np.zeros((h, w), int)
        for y0, x0, cy0, cy1, cx0, cx1 in tile_plan(h, w, tile, halo):
            cover[cy0:cy1, cx0:cx1] += 1
            assert 0 <= y0 <= cy0 and cy1 <= y0 + tile[0] <= h
            assert 0 <= x0 <= cx0 and cx1 <= x0 + tile[1] <= w
            # a core is `halo` away from every tile edge that is not a frame edge
            assert y0 == 0 or cy0 - y0 >= halo
            assert y0 + tile[0] == h or y0 + tile[0] - cy1 >= halo
        assert (cover == 1).all()
    with pytest.raises(bitlet.BitletValueError, match="too small"):
        tile_plan(40, 40, (8, 8), 4)


def test_tiled_output_is_bit_identical_to_the_whole_frame(device):
    planes = [rgb_to_ycbcr(f)[:1] / np.float32(255) for f in _smooth_frames(2, 20, 30)]
    with Enhancer(device=device) as whole:
        expect = list(whole.super_resolve(iter(planes)))
        assert whole._tile_shape == (20, 30) and len(whole._plan) == 1
    with Enhancer(device=device, tile=16) as tiled:
        got = list(tiled.super_resolve(iter(planes)))
        assert tiled._tile_shape == (16, 16) and len(tiled._plan) == 12
    assert len(got) == 2
    for a, b in zip(got, expect):
        assert a.shape == b.shape == (1, 60, 90)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    # the check can fail: a halo below the receptive field changes pixels near the seams
    with pytest.raises(bitlet.BitletValueError, match="receptive"):
        Enhancer(device=device, tile=16, halo=1)
    with Enhancer(device=device, tile=16, halo=1, exact=False) as short:
        bad = next(short.super_resolve(iter(planes[:1])))
    assert not np.array_equal(bad, expect[0])


# ------------------------------------------------------------------------------ frames
def test_bicubic_resize_reproduces_linear_ramps_and_constants():
    yy, xx = np.mgrid[0:12, 0:10].astype(np.float32)
    ramp = 3.0 * xx + 2.0 * yy
    up = bicubic_resize(ramp, 36, 30)
    # output pixel centres map to ((i + 0.5) / 3 - 0.5) in the input
    cy, cx = np.mgrid[0:36, 0:30].astype(np.float64)
    want = 3.0 * ((cx + 0.5) / 3 - 0.5) + 2.0 * ((cy + 0.5) / 3 - 0.5)
    inner = (slice(6, -6), slice(6, -6))  # away from the clamped edges
    assert np.allclose(up[inner], want[inner], atol=1e-3)
    assert np.allclose(bicubic_resize(np.full((3, 5, 7), 42.0), 15, 21), 42.0, atol=1e-4)


def test_ycbcr_round_trip_and_ssim():
    pytest.importorskip("skimage", reason="SSIM needs scikit-image (not in the board extra)")
    rgb = _smooth_frames(1, 24, 24)[0]
    assert np.abs(ycbcr_planes_to_rgb(rgb_to_ycbcr(rgb)).astype(int) - rgb).max() <= 1
    a = rgb_to_ycbcr(rgb)[0].astype(np.float64)
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 8, a.shape), 0, 255)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 0.0 < ssim(a, noisy) < ssim(a, (a + noisy) / 2) < 1.0
    assert np.isnan(ssim(a[:8, :8], a[:8, :8]))           # smaller than the window


def test_label_is_drawn_in_the_corner_only():
    img = np.full((60, 80, 3), 100, np.uint8)
    out = draw_label(img, "Bitlet x3")
    corner = out[:14, :60]
    assert corner.max() > 200 and corner.min() < 100      # bright text on a darkened box
    assert (out[20:] == 100).all() and (img == 100).all()


# ------------------------------------------------------------------------------ end to end
def test_cli_video_in_h264_out_with_compare(tmp_path, capsys):
    clip = _write_video(tmp_path / "clip.mp4", _smooth_frames(3, 24, 32))
    out = tmp_path / "out.mp4"
    trace = tmp_path / "trace.json"
    assert main(["enhance", str(clip), "-o", str(out), "--compare", "--json",
                 "--trace", str(trace)]) == 0
    report = json.loads(capsys.readouterr().out)
    frames = _read_video(out)
    assert len(frames) == 3 and frames[0].shape == (72, 2 * 96, 3)
    s = report["summary"]
    assert (s["frames"], s["input_size"], s["output_size"], s["scale"]) == (3, "32x24", "96x72", 3)
    assert s["board_kernel_fps"] == pytest.approx(200e6 / s["kernel_cycles_per_frame"], rel=1e-3)
    assert s["board_fps"] <= s["board_kernel_fps"]
    assert len(report["stream"]["frames"]) == 3
    # the labelled halves: bicubic left, Bitlet right, and they differ
    assert not np.array_equal(frames[0][:, :96], frames[0][:, 96:])
    names = {e["name"].split(" ")[0] for e in json.loads(trace.read_text())["traceEvents"]}
    assert {"input", "upload", "kernel", "download", "output"} <= names


def test_png_folder_in_and_out_with_reference(tmp_path, capsys):
    pytest.importorskip("skimage", reason="SSIM needs scikit-image (not in the board extra)")
    hr = _smooth_frames(3, 36, 48, seed=3)
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    for i, f in enumerate(hr):
        write_png(tmp_path / "hr" / f"{i}.png", f)
        lr = np.clip(np.rint(bicubic_resize(f.transpose(2, 0, 1).astype(np.float32), 12, 16)),
                     0, 255).astype(np.uint8).transpose(1, 2, 0)
        write_png(tmp_path / "lr" / f"{i}.png", np.ascontiguousarray(lr))
    out = tmp_path / "sr"
    assert main(["enhance", str(tmp_path / "lr"), "-o", str(out), "--reference",
                 str(tmp_path / "hr"), "--max-frames", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["000000.png", "000001.png"]
    for record, path, ref in zip(report["frames"], written, hr):
        sr = read_image(path)
        assert sr.shape == (36, 48, 3)
        want = psnr(rgb_to_ycbcr(sr)[0], rgb_to_ycbcr(ref)[0], peak=255.0)
        assert record["psnr_db"] == pytest.approx(want, abs=1e-6)
        assert 0 < record["ssim"] <= 1 and np.isfinite(record["psnr_bicubic_db"])
    assert report["summary"]["frames"] == 2


def test_rgb_model_runs_directly_and_matches_onnxruntime(tmp_path, device):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    w = (rng.standard_normal((12, 3, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(12) * 0.05 + 0.4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2, mode="CRD")],
        "rgb_sr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H2", "W2"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = tmp_path / "rgb_x2.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert receptive_radius(path) == (1, "")
    frame = _smooth_frames(1, 14, 18)[0]
    with Enhancer(path, device=device, tile=8) as enhancer:
        assert enhancer.mode == "RGB"
        (sr, bicubic), = list(enhancer.enhance_frames([frame]))
    assert sr.shape == bicubic.shape == (28, 36, 3)
    x = frame.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = np.clip(np.rint(ref[0] * 255), 0, 255).transpose(1, 2, 0)
    assert np.abs(sr.astype(int) - ref).max() <= 1  # fp32 on the kernel vs onnxruntime, rounded


def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["enhance", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bitlet enhance: error: input {tmp_path / 'missing.mp4'}: no such file, "
                   "folder or camera"]
    (tmp_path / "frames").mkdir()
    write_png(tmp_path / "frames" / "a.png", _smooth_frames(1, 12, 12)[0])
    assert main(["enhance", str(tmp_path / "frames"), "--scale", "2"]) == 1
    assert "--scale 2: the model upscales x3" in capsys.readouterr().err
    try:
        import av  # noqa: F401 - the camera is opened through PyAV
        have_av = True
    except ImportError:
        have_av = False
    if sys.platform.startswith("linux") and not os.path.exists("/dev/video63") and have_av:
        assert main(["enhance", "63", "-o", str(tmp_path / "cam")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "camera 63 (/dev/video63): cannot open it" in err[0]
    # without PyAV: the extra is named, nothing half-written
    monkeypatch.setitem(sys.modules, "av", None)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really")
    assert main(["enhance", str(clip), "-o", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'bitlet[video]'" in err[0]
    assert main(["enhance", str(tmp_path / "frames"), "-o", str(tmp_path / "x.mp4")]) == 1
    assert "bitlet[video]" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_predict_reports_modelled_and_measured_figures(capsys):
    # the board's N_PE is its overlay's (boards.tcl, sized by the resource model);
    # a kernel at another N_PE than the header's is built once and cached
    from bitlet.drivers.overlays import find_overlay

    n_pe = find_overlay("zcu104", "bitlet", require_bitstream=False).metadata["n_pe"]
    assert main(["enhance", "--predict", "--board", "zcu104", "--resolution", "48x30",
                 "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert (p["board"], p["n_pe"], p["clock_mhz"]) == ("zcu104", n_pe, 200)
    assert (p["output_size"], p["input_size"], p["frames"]) == ("48x30", "16x10", 2)
    assert p["board_kernel_fps"] == pytest.approx(200e6 / p["kernel_cycles_per_frame"], rel=1e-3)
    assert p["board_fps"] == pytest.approx(
        1e3 / max(1e3 / p["board_kernel_fps"], p["host_ms_per_frame"]), rel=1e-6)
    assert main(["enhance", "--predict", "--board", "nope"]) == 1
    assert "--board 'nope': not one of" in capsys.readouterr().err
    assert main(["enhance", "--predict", "--resolution", "640"]) == 1
    assert "--resolution '640'" in capsys.readouterr().err
    assert main(["enhance"]) == 1
    assert "give INPUT" in capsys.readouterr().err


def test_target_fps_chooses_the_least_loss_setting_that_reaches_it(capsys):
    from bitlet.tools.enhance import choose_setting

    kw = dict(resolution="24x24", precisions=("fp32",), bits=(2,), keep_columns=(), frames=1)
    unreachable = choose_setting(1e9, **kw)
    assert unreachable["chosen"] is None
    tried = unreachable["tried"]
    # the calibration trade-off curve: the baseline first, then plans with more error
    assert tried[0]["setting"] == "fp32, baseline" and tried[0]["plan"] == {}
    assert len(tried) >= 2 and tried[0]["loss_db"] == 0.0
    assert all(t["plan"] for t in tried[1:]) and max(t["loss_db"] for t in tried) > 0.1
    assert all("board_kernel_fps" in t for t in tried)
    fps = [t["board_kernel_fps"] for t in tried]
    assert max(fps[1:]) > fps[0]  # 2 ones a weight: fewer cycles
    # a target just above the baseline's: the least-loss faster setting is chosen
    target = fps[0] * 1.001
    choice = choose_setting(target, **kw)
    chosen = choice["chosen"]
    assert chosen is not None and chosen["board_kernel_fps"] >= target and chosen["plan"]
    for t in choice["tried"]:  # every setting with less loss was predicted and fell short
        if t["loss_db"] < chosen["loss_db"]:
            assert t["board_kernel_fps"] < target
    assert main(["enhance", "--predict", "--target-fps", "5", "--model", "m.onnx"]) == 1
    assert "leave out --model" in capsys.readouterr().err
