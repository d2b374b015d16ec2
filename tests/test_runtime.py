"""bitlet.compile / CompiledModel / save / load / profile on the simulated device."""
from __future__ import annotations

import json
from pathlib import Path

import bitlet
import numpy as np
import pytest
from bitlet.drivers.sim import SimDevice
from bitlet.program import Program
from bitlet.runtime.model import CompiledModel
from models import run_onnxruntime, single_node, tiny_attention, tiny_cnn, tiny_unet

pytestmark = pytest.mark.device


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# (every test module opens its own simulator: these fixtures are alike in shape)
@pytest.fixture(scope="module")
def dev():
    with SimDevice() as device:
        yield device


@pytest.fixture(scope="module")
def cnn(dev):
    compiled = bitlet.compile(tiny_cnn(), device=dev)
    yield compiled
    compiled.close()


X = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("build,shape", [(tiny_cnn, (1, 3, 16, 16)), (tiny_unet, (1, 3, 16, 16)),
                                         (tiny_attention, (1, 8, 16))])
def test_small_models_match_onnxruntime(dev, build, shape):
    model = build()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev)
    try:
        y = compiled(x)
        assert y.shape == ref.shape and y.dtype == np.float32 and y.flags.c_contiguous
        assert rel_l2(y, ref) < 1e-5
        out = compiled.run({"x": x})
        assert list(out) == compiled.output_names
        np.testing.assert_array_equal(out[compiled.output_names[0]], y)
    finally:
        compiled.close()


def test_bad_feeds_are_named(cnn):
    with pytest.raises(bitlet.BitletValueError, match=r"shape \(1, 3, 8, 8\).*compiled for"):
        cnn(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(bitlet.BitletValueError, match="missing"):
        cnn.run({"y": X})
    with pytest.raises(bitlet.BitletTypeError, match="dict"):
        cnn.run([X])


def test_profile_per_layer_and_totals(cnn):
    prof = cnn.profile(X)
    data = prof.as_dict()
    layers = data["layers"]
    assert [l["name"] for l in layers] == [l["name"] for l in cnn.meta["layers"]]
    for layer in layers:
        assert layer["pe_cycles"] > 0 and layer["kernel_cycles"] >= layer["pe_cycles"]
        assert layer["ddr_bytes"] > 0 and layer["macs"] > 0
        assert layer["predicted_ms"] == pytest.approx(layer["kernel_cycles"] / (prof.clock_mhz * 1e3))
    totals = data["totals"]
    assert totals["pe_cycles"] == sum(l["pe_cycles"] for l in layers)
    assert totals["macs"] == sum(l["macs"] for l in layers)
    assert totals["host_ops"] == sum(s["op"] == "host" for s in cnn.meta["steps"])
    table = str(prof)
    assert "kernel cyc" in table and layers[0]["name"][:20] in table
    buffers = cnn.meta["buffers"]
    mem = totals["memory"]
    assert totals["device_bytes"] == mem["total_bytes"] == buffers["total_bytes"] == cnn.peak_device_bytes
    assert mem["activation_bytes"] == buffers["pool_bytes"] <= mem["activation_bytes_without_reuse"]
    assert mem["program_bytes"] + mem["weight_bytes"] <= mem["total_bytes"] - mem["activation_bytes"]
    assert "device memory:" in table and "without buffer reuse" in table
    by_type = prof.host_by_type()
    assert sum(v["count"] for v in by_type.values()) == totals["host_ops"]
    assert "host ops by type: " in table and all(op in table for op in by_type)
    assert json.loads(json.dumps(data)) == data  # plain data


def test_pe_cycles_are_the_sum_of_the_instruction_records(cnn):
    cnn.run({"x": X})
    records = cnn.read_profile_records()
    assert len(records) == cnn.program.n_insn
    assert (records["status"] == bitlet.hw.STATUS_OK).all()
    ids = [l["layer_id"] for l in cnn.meta["layers"] for _ in range(l["insn_count"])]
    assert records["layer"].tolist() == ids


def test_save_and_load_round_trip(cnn, dev, tmp_path):
    path = tmp_path / "cnn.npz"
    cnn.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert "__meta__" in z.files
    again = bitlet.load(path, device=dev)
    try:
        assert again.program.digest() == cnn.program.digest()
        np.testing.assert_array_equal(again(X), cnn(X))
    finally:
        again.close()


def test_load_refuses_another_kernel_configuration(cnn, dev, tmp_path):
    program = Program.load(_saved(cnn, tmp_path))
    program.meta["kernel"]["n_pe"] = 8
    program.meta["kernel"]["wgt_buf_words"] *= 2
    program.save(tmp_path / "other.npz")
    with pytest.raises(bitlet.OverlayMismatch, match=r"n_pe: program 8, device 4.*wgt_buf_words"):
        bitlet.load(tmp_path / "other.npz", device=dev)


def test_load_rejects_files_that_are_not_programs(tmp_path, dev):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(bitlet.BitletValueError, match="not a Bitlet program"):
        bitlet.load(bad, device=dev)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(bitlet.BitletValueError, match="not a Bitlet program"):
        bitlet.load(tmp_path / "junk.npz", device=dev)


def _saved(compiled, tmp_path):
    path = tmp_path / "saved.npz"
    compiled.save(path)
    return path


def test_program_bytes_round_trip_for_the_wire(cnn):
    data = cnn.program.to_bytes()
    again = Program.from_bytes(data)
    assert again.digest() == cnn.program.digest()


def conv_layer(cout=8, cin=8):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return single_node("Conv", {"x": (1, cin, 8, 8)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
                       {"w": w, "b": b}), b


def test_prune_zero_leaves_only_the_bias(dev):
    model, bias = conv_layer()
    compiled = bitlet.compile(model, device=dev, prune=0)
    try:
        y = compiled(np.ones((1, 8, 8, 8), np.float32))
        np.testing.assert_array_equal(y, np.broadcast_to(bias.reshape(1, -1, 1, 1), y.shape))
    finally:
        compiled.close()


@pytest.mark.parametrize("option", [{"prune": 0xFFF000}, {"bits": 2}])
def test_prune_and_bit_budget_save_cycles(dev, option):
    model, _ = conv_layer(16, 16)
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    full = bitlet.compile(model, device=dev)
    cheap = bitlet.compile(model, device=dev, **option)
    try:
        p_full, p_cheap = full.profile(x), cheap.profile(x)
        assert p_cheap.totals["pe_cycles"] < p_full.totals["pe_cycles"]
        assert 1e-6 < rel_l2(cheap(x), ref) < 0.3
    finally:
        full.close()
        cheap.close()


# (the fixed-point test below is alike in shape: other precisions, other tolerances)
@pytest.mark.parametrize("precision,tol", [("fp16", 2e-3), ("bf16", 2e-2)])
def test_16_bit_precisions(dev, precision, tol):
    model = tiny_cnn()
    (ref,) = run_onnxruntime(model, {"x": X})
    compiled = bitlet.compile(model, device=dev, precision=precision)
    try:
        y = compiled(X)
        assert 1e-7 < rel_l2(y, ref) < tol
        assert compiled.meta["precision"] == precision
    finally:
        compiled.close()


def test_device_memory_is_freed_on_close(dev):
    free = dev.describe()["memory"]["free"]
    compiled = bitlet.compile(tiny_cnn(), device=dev)
    assert dev.describe()["memory"]["free"] < free
    compiled.close()
    compiled.close()
    assert dev.describe()["memory"]["free"] == free
    with pytest.raises(bitlet.BitletValueError, match="closed"):
        compiled(X)


@pytest.mark.parametrize("precision,tol", [("fixed8", 2e-3), ("fixed16", 2e-5)])
def test_fixed_precision(dev, precision, tol):
    model = tiny_cnn()
    (ref,) = run_onnxruntime(model, {"x": X})
    compiled = bitlet.compile(model, device=dev, precision=precision)
    try:
        assert 1e-8 < rel_l2(compiled(X), ref) < tol
        assert {layer["precision"] for layer in compiled.meta["layers"]} == {precision}
        words = compiled.program.insn_words()
        fmts = (words[:, bitlet.hw.W_OP] >> bitlet.hw.WFMT_SHIFT) & bitlet.hw.FMT_MASK
        assert (fmts == bitlet.hw.FMT_FIXED).all()
    finally:
        compiled.close()


def test_fixed_precision_keeps_attention_products_in_fp32(dev):
    model = tiny_attention()
    x = np.random.default_rng(0).standard_normal((1, 8, 16)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev, precision="fixed12")
    try:
        kinds = {(layer["op"], layer["precision"]) for layer in compiled.meta["layers"]}
        assert kinds == {("BitletDense", "fixed12"), ("BitletMatMul", "fp32")}
        assert rel_l2(compiled(x), ref) < 5e-3
    finally:
        compiled.close()


@pytest.mark.parametrize("precision", ["fixed1", "fixed25", "int8", "fixedx"])
def test_bad_precisions(dev, precision):
    with pytest.raises(bitlet.CompileError, match="precision"):
        bitlet.compile(tiny_cnn(), device=dev, precision=precision)


def test_weights_are_synced_once_and_only_activations_per_run(dev, monkeypatch):
    w = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    model = single_node("Gemm", {"x": (1, 512)}, {"transB": 1}, {"w": w})
    written = []
    original = type(dev)._write_arena
    monkeypatch.setattr(type(dev), "_write_arena",
                        lambda self, offset, data: (written.append(len(data)), original(self, offset, data))[1])
    compiled = bitlet.compile(model, device=dev)
    try:
        assert sum(written) >= w.nbytes  # the image, weights included, at load
        written.clear()
        compiled(np.ones((1, 512), np.float32))
        assert 0 < sum(written) <= 2 * 512 * 4  # the input (and nothing of the 1 MiB of weights)
    finally:
        compiled.close()


def test_a_tampered_program_is_refused_before_it_touches_the_device(cnn, dev):
    words_field = bitlet.hw.W_OUT_LO
    bad = Program.from_bytes(cnn.program.to_bytes())
    bad.insn_words()[0, words_field] = bad.device_bytes  # write past the program's buffer
    with pytest.raises(bitlet.BitletValueError, match="instruction 0 operand out"):
        CompiledModel(bad, dev)
    bad = Program.from_bytes(cnn.program.to_bytes())
    next(s for s in bad.meta["steps"] if s["op"] == "host")["type"] = "os.system"
    with pytest.raises(bitlet.BitletValueError, match="unknown host op 'os.system'"):
        CompiledModel(bad, dev)
    bad = Program.from_bytes(cnn.program.to_bytes())
    bad.meta["steps"].append({"op": "_kernel_layer_by_layer"})
    with pytest.raises(bitlet.BitletValueError, match="unknown step"):
        CompiledModel(bad, dev)


def test_profile_counters_are_exactly_the_cycle_model(dev):
    """hls/README.md "Cycle model" for one GEMM, recomputed from numerics.group_dot's S values."""
    from bitlet import numerics

    rng = np.random.default_rng(11)
    rows, k, m, prune = 3, 100, 8, 0xFFFF00
    w = rng.standard_normal((m, k)).astype(np.float32)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    compiled = bitlet.compile(single_node("Gemm", {"x": (rows, k)}, {"transB": 1}, {"w": w}),
                              device=dev, prune=prune)
    try:
        prof = compiled.profile(x)
    finally:
        compiled.close()
    (layer,) = prof.layers
    n_pe, lat = bitlet.hw.N_PE, bitlet.hw.LAT_FP32
    pad = -k % bitlet.hw.GROUP  # K zero padded to 64-groups
    wg = np.pad(w, ((0, 0), (0, pad))).reshape(1, m, -1, bitlet.hw.GROUP)
    ag = np.pad(x, ((0, 0), (0, pad))).reshape(rows, 1, -1, bitlet.hw.GROUP)
    _, latency = numerics.group_dot(wg, ag, prune=prune)  # (rows, m, groups) = LAT + S
    s = latency.astype(np.int64) - lat
    blocks = (rows, m // n_pe, n_pe, s.shape[2])
    assert layer["groups"] == s.size and layer["scan"] == s.sum()
    assert layer["ref_cycles"] == (lat + 1 + s.reshape(blocks).max(axis=2)).sum()
    # one unit per (row, batch of N_PE channels): its fill, then per group step
    # 1 + the slowest PE's S, or the weight read (the gather of a GEMM group is one wave)
    step = np.maximum(1 + s.reshape(blocks).max(axis=2),      # (rows, batches, groups)
                      bitlet.hw.GROUP // bitlet.hw.WGT_BANKS)
    assert layer["pe_cycles"] == (lat + step.sum(axis=2)).sum()
    assert layer["prune"] == prune and layer["macs"] == rows * k * m
    assert layer["predicted_ms"] == layer["kernel_cycles"] / (prof.clock_mhz * 1e3)


class _LargerOutputBufferSim(SimDevice):
    """A simulated board whose ID registers report twice the output buffer (another overlay build).

    Only compiled for, never run: the simulated kernel itself keeps its buffers.
    """

    def read_reg(self, offset):
        value = super().read_reg(offset)
        return 2 * value if offset == bitlet.hw.REG_ID_OUT_BUF else value


def test_tiling_follows_the_device_id_registers(dev):
    # a 1x1 conv with a 2100-pixel output row: 2100 x 4 PEs words do not fit 8192, do fit 16384
    w = np.ones((1, 4, 1, 1), np.float32)
    model = single_node("Conv", {"x": (1, 4, 2, 2100)}, {"kernel_shape": [1, 1]}, {"w": w})
    normal = bitlet.compile(model, device=dev)
    with _LargerOutputBufferSim() as larger_dev:
        larger = bitlet.compile(model, device=larger_dev)
        try:
            assert larger.meta["kernel"]["out_buf_words"] == 2 * normal.meta["kernel"]["out_buf_words"]
            assert [layer["name"] for layer in larger.meta["layers"]] == ["the_Conv"]
            assert [layer["name"] for layer in normal.meta["layers"]] == ["the_Conv.strip0",
                                                                          "the_Conv.strip1"]
        finally:
            larger.close()
            normal.close()


def test_dynamic_matmul_runs_on_the_kernel_bit_exactly(dev):
    from bitlet import numerics

    model = single_node("MatMul", {"a": (2, 5, 70), "b": (2, 70, 6)}, {})
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 70), (2, 70, 6)))
    compiled = bitlet.compile(model, device=dev)
    try:
        (layer,) = compiled.meta["layers"]
        assert layer["op"] == "BitletMatMul" and layer["precision"] == "fp32"
        y = compiled.run({"a": a, "b": b})["y0"]
    finally:
        compiled.close()
    for i in range(2):  # the kernel's weights are B^T: numerics.matmul(W [M, K], A [K, N])
        ref = numerics.matmul(b[i].T.copy(), a[i].T.copy()).T
        np.testing.assert_array_equal(y[i].view(np.uint32), ref.view(np.uint32))


def test_per_layer_prune_masks_reach_the_instructions(dev):
    model = tiny_cnn()
    names = [layer["name"] for layer in bitlet.compile(model, device=dev).meta["layers"]]
    compiled = bitlet.compile(model, device=dev, prune={names[1]: 0xFF0000, "*": 0xFFFFF0})
    try:
        words = compiled.program.insn_words()
        for layer in compiled.meta["layers"]:
            rows = words[layer["insn_first"]: layer["insn_first"] + layer["insn_count"]]
            want = 0xFF0000 if layer["name"] == names[1] else 0xFFFFF0
            assert ((rows[:, bitlet.hw.W_PRUNE] & bitlet.hw.PRUNE_MASK) == want).all()
            assert layer["prune"] == want
    finally:
        compiled.close()


def test_load_refuses_another_isa_version(cnn, dev, tmp_path):
    program = Program.load(_saved(cnn, tmp_path))
    program.meta["kernel"]["isa_version"] = bitlet.hw.ISA_VERSION + 1
    program.save(tmp_path / "newer.npz")
    with pytest.raises(bitlet.OverlayMismatch, match=r"isa_version: program \d+, device \d+.*Recompile"):
        bitlet.load(tmp_path / "newer.npz", device=dev)


def test_runtime_overhead_benchmark_separates_host_and_kernel_time(tmp_path, capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "runtime_overhead.py"
    if not path.exists():
        pytest.skip("benchmarks/ not present (installed without a source tree)")
    spec = importlib.util.spec_from_file_location("bitlet_bench_runtime_overhead", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "overhead.json"
    result = bench.main(["--model", "tiny", "--size", "16x16", "--runs", "1", "--device", "sim",
                         "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    sec = result["seconds"]
    assert sec["overhead"] == pytest.approx(sec["total"] - sec["kernel"])  # everything but the kernel
    assert 0 < sec["host_ops"] + sec["transfers"] <= sec["overhead"] and sec["kernel"] > 0
    assert result["kernel_layers"] == 4 and result["predicted_kernel_ms"] > 0
    assert "overhead" in capsys.readouterr().out


def test_unsupported_ops_fail_before_the_device_is_touched(dev):
    from models import Builder

    b = Builder()
    y = b.op("Einsum", [b.op("Relu", [b.conv("x", 2, 2)])], equation="nchw->nhwc")
    model = b.model({"x": (1, 2, 4, 4)}, [b.op("TopK", [y, b.const(np.array([1], np.int64))], n_out=2)[0]])
    before = dev.describe()
    with pytest.raises(bitlet.CompileError, match=r"2 unsupported node\(s\)"):
        bitlet.compile(model, device=dev)
    after = dev.describe()
    assert after["runs"] == before["runs"] and after["memory"] == before["memory"]


def test_gemm_with_transposed_a_runs_on_the_kernel(dev):
    rng = np.random.default_rng(6)
    w, c = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    model = single_node("Gemm", {"x": (6, 3)}, {"transA": 1, "alpha": 0.5, "beta": 2.0}, {"w": w, "c": c})
    x = rng.standard_normal((6, 3)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev)
    try:
        assert [layer["op"] for layer in compiled.meta["layers"]] == ["BitletDense"]
        assert rel_l2(compiled(x), ref) < 1e-6
    finally:
        compiled.close()


@pytest.mark.parametrize("wshape,attrs", [
    ((4, 3, 3, 3), {"kernel_shape": [3, 3], "strides": [2, 2], "group": 2, "pads": [1, 0, 0, 1],
                    "output_padding": [1, 0], "dilations": [1, 2]}),
    ((4, 2, 2, 2), {"kernel_shape": [2, 2], "strides": [2, 2]}),  # the pixel-shuffle lowering
    ((4, 2, 3, 3), {"kernel_shape": [3, 3], "strides": [3, 2], "output_shape": [13, 10]}),
    ((4, 2, 3, 3), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((4, 1, 3, 3), {"kernel_shape": [3, 3], "group": 4, "pads": [2, 2, 2, 2]}),  # depthwise, cropped
], ids=["grouped-dilated-outpad", "shuffle", "output_shape", "same_upper", "depthwise-crop"])
def test_conv_transpose_variants_run_on_the_kernel_and_match_onnxruntime(dev, wshape, attrs):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(wshape[1] * attrs.get("group", 1)).astype(np.float32)
    model = single_node("ConvTranspose", {"x": (1, 4, 5, 4)}, dict(attrs), {"w": w, "b": b})
    x = rng.standard_normal((1, 4, 5, 4)).astype(np.float32)
    (ref,) = run_onnxruntime(model, {"x": x})
    compiled = bitlet.compile(model, device=dev)
    try:
        y = compiled(x)
        assert [layer["op"] for layer in compiled.meta["layers"]] == ["BitletConv"]
    finally:
        compiled.close()
    assert y.shape == ref.shape and rel_l2(y, ref) < 1e-6


def test_profile_labels_cycles_modelled_on_the_simulator_and_stamps_follow_the_clock():
    """On the simulator every cycle figure is modelled (the table says so); the
    END - START stamps of each instruction equal its KERNEL_CYCLES, and the
    device clock (REG_CLOCK) advances by the run's cycles."""
    from bitlet.runtime.model import cycle_source

    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 70)).astype(np.float32)
    x = rng.standard_normal((2, 70)).astype(np.float32)
    with SimDevice(engine="reference") as device:
        compiled = bitlet.compile(single_node("Gemm", {"x": (2, 70)}, {"transB": 1}, {"w": w}),
                                  device=device)
        try:
            before = device.clock
            prof = compiled.profile(x)
            records = compiled.read_profile_records()
        finally:
            compiled.close()
        assert cycle_source(device) == "modelled" and prof.cycles == "modelled"
        text = str(prof)
        assert "modelled" in text and "measured" not in text
        assert (records["end"] - records["start"] == records["kernel_cycles"]).all()
        assert records["start"][0] >= before
        assert (records["start"][1:] == records["end"][:-1]).all()
        assert device.clock == int(records["end"][-1])
        lo, hi = device.read_reg(bitlet.hw.REG_CLOCK_LO), device.read_reg(bitlet.hw.REG_CLOCK_HI)
        assert lo | hi << 32 == device.clock
        assert prof.totals["clock_cycles"] == prof.totals["kernel_cycles"]
