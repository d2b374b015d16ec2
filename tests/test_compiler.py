"""Lowering, tiling, weights and the buffer plan, run on the simulated device."""
from __future__ import annotations

import dataclasses

import bitlet
import numpy as np
import pytest
from bitlet import numerics
from bitlet.compiler.fold import optimize
from bitlet.compiler.frontend import import_onnx
from bitlet.compiler.lower import lower
from bitlet.program.schedule import KernelConfig, LayerGeometry, plan_layer
from bitlet.program.weights import limit_ones
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.model import CompiledModel
from models import Builder, single_node, tiny_cnn
from onnx import numpy_helper

pytestmark = pytest.mark.device


# (every test module opens its own simulator: these fixtures are alike in shape)
@pytest.fixture(scope="module")
def dev():
    with SimDevice() as device:
        yield device


@pytest.fixture(scope="module")
def cfg(dev):
    return KernelConfig.from_driver(KernelDriver(dev))


def run_with(model, dev, cfg, feeds, **changes):
    program = lower(optimize(import_onnx(model)), dataclasses.replace(cfg, **changes))
    compiled = CompiledModel(program, dev)
    try:
        return compiled.run(feeds), program
    finally:
        compiled.close()


def conv_model(cin, cout, group, size=(6, 7), k=3):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    model = single_node("Conv", {"x": (1, cin, *size)},
                        {"kernel_shape": [k, k], "pads": [1, 1, 1, 1], "group": group},
                        {"w": w, "b": b})
    x = rng.standard_normal((1, cin, *size)).astype(np.float32)
    return model, x, w, b


@pytest.mark.parametrize("cin,cout,group,changes", [
    (96, 40, 1, {"wgt_buf_words": 4 * 64 * 4, "bias_buf_words": 16}),   # K tiles x Cout tiles
    (64, 32, 4, {"act_buf_words": 700}),                                 # group tiles (channel slices)
    (16, 16, 16, {"bias_buf_words": 4, "act_buf_words": 64}),            # depthwise, 4 channels a tile
])
def test_tiled_conv_is_bit_identical_to_the_whole_layer(dev, cfg, cin, cout, group, changes):
    model, x, w, b = conv_model(cin, cout, group)
    whole, p_whole = run_with(model, dev, cfg, {"x": x})
    tiled, p_tiled = run_with(model, dev, cfg, {"x": x}, **changes)
    assert p_tiled.n_insn > p_whole.n_insn
    ref = numerics.conv2d(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), padding=1, groups=group,
                          bias=b).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(whole["y0"].view(np.uint32), ref.view(np.uint32))
    np.testing.assert_array_equal(tiled["y0"].view(np.uint32), ref.view(np.uint32))


def test_tiled_gemm_is_bit_identical_to_numerics_matmul(dev, cfg):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((300, 70)).astype(np.float32)
    model = single_node("Gemm", {"x": (5, 300)}, {}, {"w": w, "c": np.full(70, 0.5, np.float32)})
    x = rng.standard_normal((5, 300)).astype(np.float32)
    out, program = run_with(model, dev, cfg, {"x": x}, wgt_buf_words=4 * 64 * 2, bias_buf_words=32)
    # ceil(5 groups / 2) = 3 K tiles, times channel tiles of <= 32 (bias buffer) rows
    assert program.n_insn % 3 == 0 and program.n_insn >= 3 * 3
    ref = numerics.matmul(w.T.copy(), x.T.copy(), bias=np.full(70, 0.5, np.float32)).T
    np.testing.assert_array_equal(out["y0"].view(np.uint32), ref.view(np.uint32))


def test_streamed_or_resident_weights_chosen_by_ddr_estimate(cfg):
    big = LayerGeometry("big", n=1, ih=32, iw=32, cin=64, cout=256, kh=3, kw=3, pads=(1, 1, 1, 1))
    plan = plan_layer(big, cfg)
    from bitlet.program.schedule import channel_tiles
    tiles = channel_tiles(big, plan, cfg)
    assert len(tiles) > 1  # weights (256 x 576) do not fit: tiles that stay resident win
    rows = tiles[0][1] - tiles[0][0]
    assert rows * (plan.k_tiles[0][1] - plan.k_tiles[0][0]) * 64 <= cfg.wgt_buf_words
    one_row = LayerGeometry("gemv", n=1, ih=1, iw=1, cin=576, cout=256, gemm=True)
    assert len(channel_tiles(one_row, plan_layer(one_row, cfg), cfg)) == 1  # read once either way


def test_buffer_plan_reuses_memory_without_overlap(dev, cfg):
    _, program = run_with(tiny_cnn(), dev, cfg, {"x": np.zeros((1, 3, 16, 16), np.float32)})
    buffers, values = program.meta["buffers"], program.meta["devices"].values()
    assert buffers["pool_bytes"] <= buffers["pool_naive_bytes"]
    for a in values:
        for b in values:
            if a is b or a["live"][1] < b["live"][0] or b["live"][1] < a["live"][0]:
                continue
            assert a["offset"] + a["nbytes"] <= b["offset"] or b["offset"] + b["nbytes"] <= a["offset"]


def test_chain_of_convs_reuses_the_pool():
    b = Builder(4)
    x = "x"
    for _ in range(6):
        x = b.op("Relu", [b.conv(x, 8, 8)])
    graph = optimize(import_onnx(b.model({"x": (1, 8, 16, 16)}, [x])))
    cfg = KernelConfig(4, 65536, 16384, 8192, 8192, "bitlet", ("fp32",), 200, bitlet.hw.ISA_VERSION)
    program = lower(graph, cfg)
    assert [s["op"] for s in program.meta["steps"]] == ["upload", "kernel", "download"]
    one = 16 * 16 * 8 * 4
    assert program.meta["buffers"]["pool_bytes"] == 2 * one  # ping-pong, not 7 buffers


def test_layer_whose_rows_cannot_fit_the_line_buffer_reports_sizes(dev):
    w = np.ones((1, 4096, 3, 1), np.float32)  # dilation 8: 17 rows x 1 column x 4096 channels
    model = single_node("Conv", {"x": (1, 4096, 20, 2)}, {"kernel_shape": [3, 1], "dilations": [8, 1]},
                        {"w": w})
    with pytest.raises(bitlet.CompileError, match=r"line buffer \(17 rows.*needs 69632 words.*65536"):
        bitlet.compile(model, device=dev)


def test_model_larger_than_device_memory_reports_sizes():
    model, *_ = conv_model(64, 64, 1, size=(64, 64))
    with SimDevice(memory=1 << 16) as small, \
            pytest.raises(bitlet.CompileError, match=r"needs \d+ bytes of device memory.*weights"):
        bitlet.compile(model, device=small)


def test_nan_weights_name_the_layer(dev):
    model, *_ = conv_model(4, 4, 1)
    w = np.ones((4, 4, 3, 3), np.float32)
    w[1, 2, 0, 0] = np.nan
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w"))
    with pytest.raises(bitlet.CompileError, match=r"layer 'the_Conv'.*NaN or Inf"):
        bitlet.compile(model, device=dev)


def test_unknown_precision_and_prune_options(dev):
    model, *_ = conv_model(4, 4, 1)
    with pytest.raises(bitlet.CompileError, match="precision"):
        bitlet.compile(model, device=dev, precision="int3")
    with pytest.raises(bitlet.CompileError, match="unknown layers"):
        bitlet.compile(model, device=dev, prune={"nope": 0xFF0000})
    with pytest.raises(bitlet.CompileError, match="24-bit"):
        bitlet.compile(model, device=dev, prune=1 << 24)
    with pytest.raises(bitlet.CompileError, match=r"prune of layer 'the_Conv' must be an integer, got 'all'"):
        bitlet.compile(model, device=dev, prune="all")
    for bad in (0, 25):
        with pytest.raises(bitlet.CompileError, match=rf"bits of layer 'the_Conv' must .* 1..24.*got {bad}"):
            bitlet.compile(model, device=dev, bits={"the_Conv": bad})
    with pytest.raises(bitlet.CompileError, match="calibration must be"):
        bitlet.compile(model, device=dev, calibration=[1, 2])
    with pytest.raises(bitlet.CompileError, match="unknown option 'quant'"):
        bitlet.compile(model, device=dev, calibration={"the_Conv": {"quant": 3}})


def _nearest_with_two_ones(v: float) -> float:
    """Brute force over every significand with <= 2 ones: the nearest to ``v``."""
    m, e = np.frexp(np.float64(v))
    sig = round(abs(m) * 2**24)
    cands = [0] + [1 << i for i in range(26)] + [(1 << i) | (1 << j) for i in range(26) for j in range(i)]
    best = min(cands, key=lambda c: (abs(c - sig), c))
    return float(np.sign(v) * best * 2.0 ** (e - 24))


def test_limit_ones_rounds_to_the_nearest_sparse_significand():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(64).astype(np.float32)
    for k in (1, 3, 8):
        out = limit_ones(w, k)
        sig = (out.view(np.uint32) & 0x7FFFFF) | 0x800000
        assert max(int(s).bit_count() for s in sig) <= k or k >= 24
        err = np.abs(out.astype(np.float64) - w)
        assert np.all(err <= np.abs(w) * 2.0 ** (-k + 1))
    assert limit_ones(np.float32([1.75]), 1)[0] == 2.0 and limit_ones(np.float32([1.25]), 1)[0] == 1.0
    for v in w[:16]:
        assert limit_ones(np.float32([v]), 2)[0] == np.float32(_nearest_with_two_ones(float(v)))
    assert np.array_equal(limit_ones(w, 24), w)


def test_too_wide_conv_runs_as_column_strips_bit_identically(dev, cfg):
    model, x, *_ = conv_model(8, 4, 1, size=(5, 40), k=3)
    whole, _ = run_with(model, dev, cfg, {"x": x})
    strips, p_strips = run_with(model, dev, cfg, {"x": x}, act_buf_words=3 * 8 * 12)
    names = [layer["name"] for layer in p_strips.meta["layers"]]
    assert len(names) == 4 and names[0] == "the_Conv.strip0"  # 12-column inputs: 10 outputs each
    np.testing.assert_array_equal(strips["y0"].view(np.uint32), whole["y0"].view(np.uint32))


def test_conv_whose_output_row_exceeds_the_output_buffer_runs_as_strips(dev, cfg):
    # 40 output columns x 4 PEs > 48 words: strips of 48 // 4 = 12 columns (YOLOv8's DFL head case)
    model, x, *_ = conv_model(8, 4, 1, size=(4, 40), k=3)
    whole, _ = run_with(model, dev, cfg, {"x": x})
    strips, p_strips = run_with(model, dev, cfg, {"x": x}, out_buf_words=4 * 12)
    assert [layer["name"] for layer in p_strips.meta["layers"]] == [f"the_Conv.strip{i}" for i in range(4)]
    assert [layer["output_shape"][3] for layer in p_strips.meta["layers"]] == [12, 12, 12, 4]
    np.testing.assert_array_equal(strips["y0"].view(np.uint32), whole["y0"].view(np.uint32))
    # fixed mode needs two words per output value: strips of 6 columns
    program = lower(optimize(import_onnx(model)), dataclasses.replace(cfg, out_buf_words=4 * 12), "fixed8")
    assert [layer["output_shape"][3] for layer in program.meta["layers"]] == [6] * 6 + [4]


def test_quantize_fixed_per_channel_scales_exact():
    from bitlet.program.weights import fixed_quant, quantize_fixed

    w = np.array([[0.5, -1.0, 0.25], [0, 0, 0], [3, 1.5, -0.75]], np.float32)
    q, scale = quantize_fixed(w, 4)  # |q| <= 7, one scale per output channel (row)
    np.testing.assert_array_equal(scale, [1 / 7, 1.0, 3 / 7])
    np.testing.assert_array_equal(q, [[4, -7, 2], [0, 0, 0], [7, 4, -2]])  # rint: 3.5 -> 4, 1.75 -> 2
    # worst output 2 * (7 + 4 + 2) * (2^15 - 1) = 851942 fits 25 bits: no shift; x 2^5 needs 1
    assert fixed_quant(q, 16) == 0 and fixed_quant(q * 32, 16) == 1
    with pytest.raises(bitlet.CompileError, match="2..24 weight bits"):
        quantize_fixed(w, 1)


def test_fixed_gemm_is_exactly_the_documented_quantisation(dev):
    """bitlet.program.weights' fixed-mode recipe, recomputed in integers, equals the device output."""
    from bitlet.compiler.lower import FIXED_ACT_BITS
    from bitlet.program.weights import fixed_quant, quantize_fixed

    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 90)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((3, 90)).astype(np.float32)
    model = single_node("Gemm", {"x": (3, 90)}, {"transB": 1}, {"w": w, "c": b})
    compiled = bitlet.compile(model, device=dev, precision="fixed6")
    try:
        y = compiled(x)
    finally:
        compiled.close()
    q, s_w = quantize_fixed(w, 6)
    top = (1 << (FIXED_ACT_BITS - 1)) - 1
    s_a = float(np.abs(x).max()) / top
    a = np.clip(np.rint(x.astype(np.float64) / s_a), -top, top).astype(np.int64)
    bias = np.rint(b.astype(np.float64) / (s_w * s_a)).astype(np.int64)
    quant = fixed_quant(q, FIXED_ACT_BITS)
    acc = a @ q.T + bias  # exact integer accumulation, then one floor shift, saturated to 25 bits
    out = np.clip(acc >> quant, -(1 << 24), (1 << 24) - 1)
    np.testing.assert_array_equal(y, (out * (s_w * s_a * 2.0 ** quant)).astype(np.float32))


def test_inf_bias_names_the_layer(dev):
    c = np.zeros(4, np.float32)
    c[2] = np.inf
    model = single_node("Gemm", {"x": (2, 3)}, {"transB": 1}, {"w": np.ones((4, 3), np.float32), "c": c})
    with pytest.raises(bitlet.CompileError,
                       match=r"layer 'the_Gemm': 1 bias value\(s\) are NaN or Inf \(first at index \(2,\)\)"):
        bitlet.compile(model, device=dev)


def test_dilated_strided_asymmetric_grouped_conv_is_bit_exact_with_its_profile(dev):
    rng = np.random.default_rng(12)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((1, 4, 9, 11)).astype(np.float32)
    pads = [1, 2, 3, 0]  # ONNX order: top, left, bottom, right
    model = single_node("Conv", {"x": x.shape}, {"kernel_shape": [3, 3], "pads": pads, "strides": [2, 1],
                                                 "dilations": [2, 3], "group": 2}, {"w": w, "b": b})
    compiled = bitlet.compile(model, device=dev, prune=0xFFFFC0)
    try:
        prof = compiled.profile(x)
        y = compiled(x)
    finally:
        compiled.close()
    ref, counters = numerics.conv2d(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), stride=(2, 1),
                                    padding=(1, 2, 3, 0), dilation=(2, 3), groups=2, bias=b,
                                    prune=0xFFFFC0, return_profile=True)
    np.testing.assert_array_equal(y.view(np.uint32), ref.transpose(0, 3, 1, 2).view(np.uint32))
    (layer,) = prof.layers
    assert {k: layer[k] for k in counters} == counters
