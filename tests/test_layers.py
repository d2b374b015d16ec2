"""Kernel layers (hls/bitlet_kernel.c through the cffi reference) against the
independent pure-Python layer model tests/pyref_layers.py, bit for bit, and
its documented cycle model exactly.  Shapes stay tiny (the model is slow).

The model's operands come from the test's own float32 arrays (bits viewed with
``pyref_layers.bits32``, 16-bit formats rounded by ``pyref_layers.round_to``);
the SDK's ``preprocess`` is used only on the path under test, to lay the
operands out in device memory for the kernel."""
from __future__ import annotations

import numpy as np
import pyref_layers as ref
import pytest
from bitlet.numerics import layers as _layers
from bitlet import hw, isa
from bitlet.program import preprocess
from bitlet.errors import BitletTypeError, BitletValueError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripts import load_script

pytestmark = pytest.mark.numerics


@pytest.fixture(autouse=True, params=["reference", "fast"])
def engine(request):
    """Every layer test runs on both engines: the kernel's C source and the fast
    emulator must give the same bits and the same profile counters."""
    from bitlet import numerics

    previous = numerics.default_engine()
    numerics.set_default_engine(request.param)
    yield request.param
    numerics.set_default_engine(previous)

RNG = np.random.default_rng(1234)


def relu_like(shape, rng=RNG, zeros=0.4):
    x = np.exp(rng.uniform(-4, 2, size=shape)).astype(np.float32)
    x[rng.random(shape) < zeros] = 0
    return x


def weights(shape, rng=RNG, scale=0.1):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def run_insn(x, w, *, fmt="fp32", ofmt=None, bias=None, acc_in=None, kernel="bitlet", **kw):
    """One CONV2D instruction on the kernel; returns (raw out [N,OH,OW,Cout], profile),
    the profile a dict of the record's fields plus ``insn`` (the instruction run)."""
    fixed = fmt == "fixed"
    code, ocode = isa.fmt_code(fmt), isa.fmt_code(ofmt or fmt)
    arena = _layers.memory_image()
    act = arena.add(preprocess.to_words(preprocess.pack_activations(x, code)))
    insn = isa.conv2d(n=x.shape[0], ih=x.shape[1], iw=x.shape[2], cin=x.shape[3],
                      cout=w.shape[0], kh=w.shape[1], kw=w.shape[2], act=act, wgt=0, out=0,
                      wfmt=code, afmt=code, ofmt=ocode, **kw)
    k_groups = None if not insn.kg_end else insn.kg_range
    wgt = arena.add(preprocess.to_words(preprocess.to_device_weights(w, code, k_groups=k_groups)))
    insn = insn.replace(wgt=wgt)
    if bias is not None:
        insn = insn.replace(bias=arena.add(preprocess.to_words(preprocess.pack_bias(bias, fixed))),
                            flags=insn.flags | hw.FLAG_BIAS)
    if acc_in is not None:
        insn = insn.replace(acc=arena.add(preprocess.to_words(acc_in)),
                            flags=insn.flags | hw.FLAG_ACCUM)
    sizes = isa.operand_bytes(insn)
    out = arena.reserve(sizes["out"])
    insn = insn.replace(out=out)
    mem, prof = _layers.run_program(arena, [insn], kernel=kernel)
    oh, ow = insn.out_hw
    count = x.shape[0] * oh * ow * insn.out_cstride
    esize = (8 if fixed else 4) if insn.flags & hw.FLAG_PARTIAL else isa.fmt_bytes(ocode)
    off = (out - arena.base) // 4
    raw = preprocess.from_words(mem[off:off + -(-count * esize // 4)], count, esize)
    rec = {name: prof[0][name] for name in prof.dtype.names}
    rec["insn"] = insn
    return raw.reshape(x.shape[0], oh, ow, insn.out_cstride), rec


def model(x, w, *, fixed=False, **kw) -> ref.Layer:
    xb = x.astype(np.int64) if fixed else ref.bits32(x)
    wb = w.astype(np.int64) if fixed else ref.bits32(w)
    return ref.Layer(x=xb, w=wb, fixed=fixed, **kw)


def check_cycles(layer: ref.Layer, prof, **fmt_bytes):
    """Every counter of the record equals the Python oracle of the cycle model."""
    want = ref.counters(layer, ref.Placement.of(prof["insn"]), **fmt_bytes)
    for name, value in want.items():
        assert int(prof[name]) == value, name
    assert int(prof["end"]) - int(prof["start"]) == want["kernel_cycles"]
    assert int(prof["status"]) == hw.STATUS_OK


def as_int(raw) -> np.ndarray:
    return np.asarray(raw).astype(np.int64)


# ----------------------------------------------------------------------
# fp32 convolutions against the model
# ----------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, stride, pad (t, l, b, r), dilation, groups)
    ((1, 5, 6, 3), (5, 3, 3, 3), (2, 1), (1, 0, 2, 1), (1, 1), 1),
    ((1, 6, 6, 2), (2, 3, 2, 2), (1, 2), (0, 1, 1, 0), (2, 1), 1),
    ((1, 4, 4, 6), (6, 3, 3, 1), (1, 1), (1, 1, 1, 1), (1, 1), 6),      # depthwise
    ((1, 3, 4, 4), (12, 1, 2, 2), (1, 1), (0, 0, 0, 1), (1, 1), 2),     # cout_g = 6
    ((2, 3, 3, 4), (4, 2, 2, 2), (1, 1), (0, 0, 0, 0), (1, 1), 2),      # cout_g = 2
]


@pytest.mark.parametrize("xs, ws, stride, pad, dil, groups", CONV_CASES)
def test_conv_fp32_matches_model_and_cycle_model(xs, ws, stride, pad, dil, groups):
    x, w = relu_like(xs), weights(ws)
    raw, prof = run_insn(x, w, stride=stride, padding=pad, dilation=dil, groups=groups)
    layer = model(x, w, stride=stride, pad=pad, dil=dil, groups=groups)
    want = ref.run(layer)
    assert raw.shape == want.shape
    assert np.array_equal(as_int(raw), want.astype(np.int64))
    check_cycles(layer, prof)


def test_conv_long_k_spans_several_groups_with_bias_relu():
    x, w = weights((1, 2, 2, 40), scale=1.0), weights((3, 2, 2, 40))   # K = 160: 3 groups
    b = weights((3,))
    raw, prof = run_insn(x, w, bias=b, relu=True)
    layer = model(x, w, bias=[int(v) for v in ref.bits32(b)], relu=True)
    assert np.array_equal(as_int(raw), ref.run(layer).astype(np.int64))
    check_cycles(layer, prof)


def test_public_conv2d_and_matmul_equal_the_model():
    x, w = relu_like((1, 3, 3, 3)), weights((4, 2, 2, 3))
    b = weights((4,))
    got = _layers.conv2d(x, w, padding=(0, 1, 1, 0), bias=b, relu=True)
    layer = model(x, w, pad=(0, 1, 1, 0), bias=[int(v) for v in ref.bits32(b)],
                  relu=True)
    assert np.array_equal(ref.bits32(got), ref.run(layer).astype(np.uint32))
    wm, a = weights((5, 70)), relu_like((70, 2))
    got = _layers.matmul(wm, a)
    layer = model(np.ascontiguousarray(a.T).reshape(2, 1, 1, 70), wm.reshape(5, 1, 1, 70))
    want = ref.run(layer).reshape(2, 5).T.astype(np.uint32)
    assert np.array_equal(ref.bits32(got), want)


def test_prune_mask_changes_results_and_cycles_as_modelled():
    x, w = relu_like((1, 2, 2, 8)), weights((4, 1, 1, 8))
    raw, prof = run_insn(x, w, prune=0xFFF000)
    layer = model(x, w, prune=0xFFF000)
    assert np.array_equal(as_int(raw), ref.run(layer).astype(np.int64))
    check_cycles(layer, prof)
    raw0, prof0 = run_insn(x, w, prune=0)          # F4: +0 and S = 0
    assert not as_int(raw0).any()
    assert int(prof0["scan"]) == 0
    steps = 4                                       # 4 pixels x 1 batch x 1 group
    units = 2                                       # 2 output rows x 1 batch: one fill each
    # S = 0: a step costs the weight read (64 / WGT_BANKS), not 1 + S
    assert int(prof0["pe_cycles"]) == steps * (hw.GROUP // hw.WGT_BANKS) + units * hw.LAT_FP32
    assert int(prof0["ref_cycles"]) == steps * (hw.LAT_FP32 + 1)


# ----------------------------------------------------------------------
# 16-bit formats
# ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_16bit_operands_widen_and_outputs_round(fmt):
    x, w = relu_like((1, 3, 3, 4)), weights((3, 2, 2, 4))
    b = weights((3,))
    xr, wr = ref.round_to(x, fmt), ref.round_to(w, fmt)
    raw, prof = run_insn(x, w, fmt=fmt, bias=b, relu=True)
    layer = model(xr, wr, bias=[int(v) for v in ref.bits32(b)], relu=True, ofmt=fmt)
    assert raw.dtype == np.uint16
    assert np.array_equal(as_int(raw), ref.run(layer).astype(np.int64))
    check_cycles(layer, prof, wfmt_bytes=2, afmt_bytes=2, out_bytes=2)
    raw32, _ = run_insn(x, w, fmt=fmt, ofmt="fp32", bias=b, relu=True)
    layer.ofmt = "fp32"
    assert np.array_equal(as_int(raw32), ref.run(layer).astype(np.int64))


def test_public_functions_round_operands_to_the_precision():
    """conv2d(precision=fmt) equals the model on operands rounded by the model's own
    fp16/bf16 rounding (not the SDK's round_to: that compared the SDK with itself)."""
    x, w = relu_like((1, 2, 2, 4)), weights((2, 1, 1, 4))
    x[0, 0, 0, :2] = [1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11]     # fp16 ties: to even, up
    w[0, 0, 0, :2] = [1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8]       # bf16 ties likewise
    for fmt in ("fp16", "bf16"):
        got = _layers.conv2d(x, w, precision=fmt)
        want = ref.run(model(ref.round_to(x, fmt), ref.round_to(w, fmt)))
        assert np.array_equal(ref.bits32(got), want.astype(np.uint32))


# ----------------------------------------------------------------------
# fixed mode
# ----------------------------------------------------------------------
def test_fixed_conv_matches_model():
    rng = np.random.default_rng(7)
    x = rng.integers(-(1 << 12), 1 << 12, size=(1, 3, 3, 4))
    w = rng.integers(-(1 << 10), 1 << 10, size=(4, 2, 2, 2))
    b = rng.integers(-(1 << 20), 1 << 20, size=4)
    raw, prof = run_insn(x, w, fmt="fixed", groups=2, padding=1, stride=2, quant=6, bias=b,
                         relu=True)
    layer = model(x, w, fixed=True, groups=2, pad=(1, 1, 1, 1), stride=(2, 2), quant=6,
                  bias=list(b), relu=True)
    assert np.array_equal(raw.view(np.int32).astype(np.int64), ref.run(layer).astype(np.int64))
    check_cycles(layer, prof)


def test_fixed_saturates_and_public_matmul_returns_integers():
    w = np.full((2, 64), (1 << 24) - 1, dtype=np.int64)
    w[1] *= -1
    a = np.full((64, 1), (1 << 24) - 1, dtype=np.int64)
    got = _layers.matmul(w, a, precision="fixed", quant=0)
    assert got.dtype == np.float32
    assert got[:, 0].tolist() == [(1 << 24) - 1, -(1 << 24)]
    w[:, 1:] = 0                       # one full-scale product: no saturation at quant 24
    got = _layers.matmul(w, a, precision="fixed", quant=24, bias=np.array([5, -5]))
    exact = [(((1 << 24) - 1) ** 2 + 5) >> 24, (-((1 << 24) - 1) ** 2 - 5) >> 24]
    assert got[:, 0].tolist() == exact


# ----------------------------------------------------------------------
# K tiling: PARTIAL then ACCUM equals the untiled instruction
# ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["fp32", "fixed"])
def test_k_tiling_with_partial_and_accum_equals_untiled(fmt):
    rng = np.random.default_rng(3)
    if fmt == "fixed":
        x = rng.integers(-(1 << 16), 1 << 16, size=(1, 2, 3, 70))
        w = rng.integers(-(1 << 16), 1 << 16, size=(5, 2, 2, 70))
        b = rng.integers(-(1 << 30), 1 << 30, size=5)
        extra = {"quant": 9}
    else:
        x, w, b = weights((1, 2, 3, 70), rng, 1.0), weights((5, 2, 2, 70), rng), weights((5,), rng)
        extra = {}
    full, _ = run_insn(x, w, fmt=fmt, bias=b, relu=True, **extra)      # K = 280: 5 groups
    acc = None
    for kg0, kg1 in ((0, 2), (2, 3), (3, 5)):
        last = kg1 == 5
        raw, _ = run_insn(x, w, fmt=fmt, acc_in=acc, kg_begin=kg0, kg_end=kg1,
                          partial=not last, relu=last, bias=b if last else None, **extra)
        acc = raw
    assert np.array_equal(as_int(acc), as_int(full))


def test_fixed_accum_sum_saturates_at_the_int64_limits():
    """Regression: an extreme ACC partial plus a group accumulator overflowed
    the int64 running sum (undefined behaviour, wrapped in practice); the
    kernel saturates it like the bias add (hls/README.md)."""
    big = (1 << 24) - 1
    x = np.full((1, 1, 1, 64), big, np.int64)
    w = np.stack([np.full((1, 1, 64), big), np.full((1, 1, 64), -big)]).astype(np.int64)
    acc = np.array([[[[2 ** 63 - 10, -(2 ** 63) + 10]]]], np.int64)
    raw, prof = run_insn(x, w, fmt="fixed", acc_in=acc, partial=True)
    assert as_int(raw).tolist() == [[[[2 ** 63 - 1, -(2 ** 63)]]]]
    layer = model(x, w, fixed=True, acc_in=acc, partial=True)
    assert np.array_equal(as_int(raw), ref.run(layer).astype(np.int64))
    check_cycles(layer, prof)


@pytest.mark.parametrize("cin, cout, pixels, what", [
    (2048, 9, 2, "weights reloaded per unit, overlapped (two rows a lane)"),
    (4096, 5, 1, "weights reloaded per unit, serial (one row a lane: no ping-pong)"),
])
def test_weight_reload_schedules_match_the_cycle_model(cin, cout, pixels, what):
    """The non-resident weight paths of the schedule (README "Overlap") against
    the oracle: every counter, for the overlapped and the serial branch."""
    rng = np.random.default_rng(cin + cout)
    x, w = relu_like((1, 1, pixels, cin), rng), weights((cout, 1, 1, cin), rng)
    raw, prof = run_insn(x, w)
    layer = model(x, w)
    assert np.array_equal(as_int(raw), ref.run(layer).astype(np.int64)), what
    check_cycles(layer, prof)


def test_output_channel_slice_with_16bit_edges_matches_the_cycle_model():
    """Outputs written into a channel slice of a wider tensor (per-pixel runs)
    as fp16: runs start and end inside beats, so edge beats are read, merged
    and written whole; the neighbours of the slice keep their bytes."""
    rng = np.random.default_rng(21)
    x, w = relu_like((1, 2, 3, 5), rng), weights((3, 1, 1, 5), rng)
    raw, prof = run_insn(x, w, ofmt="fp16", out_cstride=7, out_coff=3)
    layer = model(x, w, ofmt="fp16")
    assert np.array_equal(as_int(raw[..., 3:6]), ref.run(layer).astype(np.int64))
    assert not as_int(raw[..., :3]).any() and not as_int(raw[..., 6:]).any()
    check_cycles(layer, prof, out_bytes=2)


def test_public_matmul_tiles_long_k_and_matches_model():
    k = hw.WGT_BUF_WORDS // (hw.N_PE * hw.GROUP) * hw.GROUP + 10     # one group past a tile
    rng = np.random.default_rng(5)
    w, a = weights((1, k), rng), relu_like((k, 1), rng, zeros=0.95)
    got, prof = _layers.matmul(w, a, return_profile=True)
    layer = model(a.T.reshape(1, 1, 1, k), w.reshape(1, 1, 1, k))
    assert ref.bits32(got)[0, 0] == ref.run(layer)[0, 0, 0, 0]
    assert prof["groups"] == -(-k // hw.GROUP)


# ----------------------------------------------------------------------
# channel slices, NaN, -0
# ----------------------------------------------------------------------
def test_channel_slices_in_and_out():
    x, w = relu_like((1, 3, 3, 7)), weights((3, 2, 2, 2))
    dense, _ = run_insn(np.ascontiguousarray(x[..., 4:6]), w)
    sliced = _run_sliced(x, w)       # channels 4..5 of a 7-channel tensor -> 5..7 of 8
    assert np.array_equal(sliced[..., 5:8], dense)
    assert not sliced[..., :5].any()


def _run_sliced(x, w):
    arena = _layers.memory_image()
    act = arena.add(preprocess.to_words(preprocess.pack_activations(x, "fp32")))
    wgt = arena.add(preprocess.to_words(preprocess.to_device_weights(w, "fp32")))
    insn = isa.conv2d(n=1, ih=3, iw=3, cin=2, cout=3, kh=2, kw=2, act=act, wgt=wgt, out=0,
                      in_cstride=7, in_coff=4, out_cstride=8, out_coff=5)
    out = arena.reserve(isa.operand_bytes(insn)["out"])
    mem, _ = _layers.run_program(arena, [insn.replace(out=out)])
    off = (out - arena.base) // 4
    return mem[off:off + 2 * 2 * 8].reshape(1, 2, 2, 8)


def test_nan_from_opposite_infinities_is_canonical_and_no_negative_zero():
    w = np.zeros((3, 128), np.float32)
    w[0, 0], w[0, 64] = np.inf, -np.inf       # group results NaN (F3) in both groups
    w[1, :] = -1.0                            # -1 * +0 activations: +0, never -0
    w[2, 5] = np.nan
    a = np.zeros((128, 1), np.float32)
    a[0, 0] = 1.0
    got = _layers.matmul(w, a)
    bits = ref.bits32(got)[:, 0]
    assert bits[0] == hw.CANONICAL_NAN and bits[2] == hw.CANONICAL_NAN
    a = np.zeros((128, 1), np.float32)
    got = _layers.matmul(w[1:2], a, bias=np.array([-0.0], np.float32))
    assert ref.bits32(got)[0, 0] == 0
    got = _layers.matmul(-np.ones((1, 4), np.float32), np.ones((4, 1), np.float32), relu=True)
    assert ref.bits32(got)[0, 0] == 0


# ----------------------------------------------------------------------
# argument errors of the public functions
# ----------------------------------------------------------------------
def test_bad_arguments_name_the_argument():
    w, a = weights((2, 8)), weights((8, 3))
    with pytest.raises(BitletValueError, match="K"):
        _layers.matmul(w, weights((7, 3)))
    with pytest.raises(BitletValueError, match="w"):
        _layers.matmul(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32))
    with pytest.raises(BitletTypeError, match="a must be float32"):
        _layers.matmul(w, a.astype(np.float64))
    with pytest.raises(BitletValueError, match="precision"):
        _layers.matmul(w, a, precision="int8")
    with pytest.raises(BitletValueError, match="prune"):
        _layers.matmul(w, a, prune=1 << 24)
    with pytest.raises(BitletValueError, match="quant"):
        _layers.matmul(w, a, precision="fixed")
    with pytest.raises(BitletValueError, match="bias"):
        _layers.matmul(w, a, bias=np.zeros(3, np.float32))
    x = relu_like((1, 4, 4, 4))
    with pytest.raises(BitletValueError, match="groups"):
        _layers.conv2d(x, weights((3, 1, 1, 2)), groups=2)
    with pytest.raises(BitletValueError, match="Cin"):
        _layers.conv2d(x, weights((4, 1, 1, 3)))
    with pytest.raises(BitletValueError, match="does not fit"):
        _layers.conv2d(x, weights((4, 5, 5, 4)))
    with pytest.raises(BitletValueError, match="stride"):
        _layers.conv2d(x, weights((4, 1, 1, 4)), stride=0)
    with pytest.raises(BitletValueError, match="x out of range"):
        _layers.conv2d(np.full((1, 1, 1, 1), 1 << 24), np.ones((1, 1, 1, 1)), precision="fixed",
                       quant=0)
    with pytest.raises(BitletValueError, match="w out of range"):
        _layers.conv2d(np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), 1 << 24), precision="fixed",
                       quant=0)


def test_more_bad_arguments_name_the_argument():
    w, a = weights((2, 8)), weights((8, 3))
    with pytest.raises(BitletValueError, match=r"^a out of range for fixed mode"):
        _layers.matmul(np.ones((1, 1)), np.full((1, 1), 1 << 24), precision="fixed", quant=0)
    with pytest.raises(BitletValueError, match=r"^bias out of range: \|bias\| must be < 2\^61"):
        _layers.matmul(np.ones((1, 1)), np.ones((1, 1)), precision="fixed", quant=0,
                       bias=np.array([2.0 ** 61]))
    with pytest.raises(BitletValueError, match=r"^bias out of range for fixed mode"):
        _layers.matmul(np.ones((1, 1)), np.ones((1, 1)), precision="fixed", quant=0,
                       bias=np.array([1 << 61]))
    k = hw.FIXED_MAX_K + 1
    with pytest.raises(BitletValueError, match=rf"^w and a: K={k} exceeds the fixed mode limit"):
        _layers.matmul(np.ones((1, k), np.int32), np.ones((k, 1), np.int32), precision="fixed",
                       quant=0)
    with pytest.raises(BitletValueError, match=r"^w: K = KH\*KW\*Cin/groups=32769 exceeds"):
        _layers.conv2d(np.ones((1, 1, 1, k), np.int32), np.ones((1, 1, 1, k), np.int32),
                       precision="fixed", quant=0)
    with pytest.raises(BitletTypeError, match="^relu must be a bool"):
        _layers.matmul(w, a, relu="no")
    with pytest.raises(BitletValueError, match=r"^padding must be in 0\.\.65535 .*, got -1"):
        _layers.conv2d(relu_like((1, 4, 4, 4)), weights((4, 1, 1, 4)), padding=-1)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"relu": "no"}, BitletTypeError, "relu must be a bool, got str"),
    ({"relu": 1}, BitletTypeError, "relu must be a bool, got int"),
    ({"stride": 65536}, BitletValueError, r"stride must be in 1\.\.65535"),
    ({"stride": 2 ** 32}, BitletValueError, r"stride must be in 1\.\.65535"),
    ({"stride": (1, 0)}, BitletValueError, r"stride must be in 1\.\.65535"),
    ({"stride": (1.5, 2)}, BitletValueError, "stride must be an int or 2 ints"),
    ({"dilation": 70000}, BitletValueError, r"dilation must be in 1\.\.65535"),
    ({"padding": 2 ** 32}, BitletValueError, r"padding must be in 0\.\.65535"),
    ({"padding": (1, True)}, BitletValueError, "padding must be an int or 2 or 4 ints"),
    ({"groups": 2 ** 40}, BitletValueError, "groups="),
])
def test_conv2d_arguments_are_refused_alike_by_both_engines(kwargs, error, message):
    """The fast engine applied ReLU for relu="no", returned a wrong shape for
    stride=65536 and raised cffi's OverflowError for 2**32 (issue 13 item 4)."""
    with pytest.raises(error, match="^" + message):
        _layers.conv2d(relu_like((1, 4, 4, 4)), weights((4, 1, 1, 4)), **kwargs)
    if "relu" in kwargs:
        with pytest.raises(error, match="^" + message):
            _layers.matmul(weights((2, 8)), weights((8, 3)), **kwargs)


def test_fixed_n_bit_precisions():
    """"fixed<n>" (n = 1..24): the results of "fixed", weights checked |w| < 2^n,
    n recorded in the instruction's fixbits field."""
    rng = np.random.default_rng(11)
    for bits in (1, 4, 8, 24):
        top = (1 << bits) - 1
        w = rng.integers(-top, top + 1, size=(3, 70))
        a = rng.integers(-(1 << 12), 1 << 12, size=(70, 2))
        want = _layers.matmul(w, a, precision="fixed", quant=2)
        got = _layers.matmul(w, a, precision=f"fixed{bits}", quant=2)
        assert np.array_equal(got, want)
        if bits < hw.FIXED_MAX_BITS:
            w[1, 5] = top + 1
            with pytest.raises(BitletValueError, match=rf"^w: precision='fixed{bits}' takes"):
                _layers.matmul(w, a, precision=f"fixed{bits}", quant=2)
            with pytest.raises(BitletValueError, match=rf"^w: precision='fixed{bits}' takes"):
                _layers.conv2d(a.T.reshape(2, 1, 1, 70), w.reshape(3, 1, 1, 70),
                               precision=f"fixed{bits}", quant=2)
    for bad in ("fixed0", "fixed25", "fixed-3", "fixed8x", 8):
        with pytest.raises(BitletValueError, match="precision"):
            _layers.matmul(np.ones((1, 1)), np.ones((1, 1)), precision=bad, quant=0)
    base = _layers._parse_precision("fixed12")
    assert base == (hw.FMT_FIXED, 12)
    assert _layers._parse_precision("fixed") == (hw.FMT_FIXED, hw.FIXED_MAX_BITS)
    assert _layers._parse_precision("bf16") == (hw.FMT_BF16, 0)


def test_fixed_n_bits_reach_the_instruction(monkeypatch):
    seen = []
    real = _layers.run_program
    monkeypatch.setattr(_layers, "run_program",
                        lambda arena, insns, **kw: (seen.extend(insns), real(arena, insns, **kw))[1])
    _layers.matmul(np.ones((1, 1)), np.ones((1, 1)), precision="fixed6", quant=0,
                   engine="reference")
    _layers.matmul(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32), engine="reference")
    assert [insn.fixbits for insn in seen] == [6, 0]


def test_engine_argument_is_checked_and_both_engines_agree():
    rng = np.random.default_rng(11)
    w, a = rng.standard_normal((5, 130)).astype(np.float32), rng.random((130, 3), dtype=np.float32)
    ref = _layers.matmul(w, a, engine="reference", return_profile=True)
    fast = _layers.matmul(w, a, engine="fast", return_profile=True)
    assert np.array_equal(ref[0].view(np.uint32), fast[0].view(np.uint32)) and ref[1] == fast[1]
    with pytest.raises(BitletValueError, match="engine"):
        _layers.matmul(w, a, engine="gpu")


def test_big_endian_and_non_contiguous_float32_operands():
    w, a = weights((3, 70)), relu_like((70, 2))
    want = ref.bits32(_layers.matmul(w, a))
    got = _layers.matmul(w.astype(">f4"), np.asfortranarray(a).astype(">f4"))
    assert np.array_equal(ref.bits32(got), want)
    got = _layers.matmul(np.repeat(w, 2, axis=1)[:, ::2], a)
    assert np.array_equal(ref.bits32(got), want)


def test_dimensions_beyond_the_kernel_limits_are_refused_by_name():
    big = hw.MAX_DIM + 1
    with pytest.raises(BitletValueError, match=rf"^a: N \(columns\)={big} exceeds .* {hw.MAX_DIM}"):
        _layers.matmul(np.ones((1, 1), np.float32), np.ones((1, big), np.float32))
    with pytest.raises(BitletValueError, match=rf"^w: M \(rows\)={big} exceeds"):
        _layers.matmul(np.ones((big, 1), np.float32), np.ones((1, 1), np.float32))
    with pytest.raises(BitletValueError, match=rf"^w and a: K={big} exceeds"):
        _layers.matmul(np.ones((1, big), np.float32), np.ones((big, 1), np.float32))
    with pytest.raises(BitletValueError, match=rf"^x: H={big} exceeds"):
        _layers.conv2d(np.ones((1, big, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32))


def test_layers_too_big_for_the_buffers_are_refused_with_sizes():
    cin = hw.ACT_BUF_WORDS // 2 + 1                       # two rows do not fit
    with pytest.raises(BitletValueError, match="activation buffer"):
        _layers.conv2d(np.zeros((1, 2, 1, cin), np.float32), np.zeros((1, 2, 1, cin), np.float32))
    ow = hw.OUT_BUF_WORDS // hw.N_PE + 1
    with pytest.raises(BitletValueError, match="output row buffer"):
        _layers.conv2d(np.zeros((1, 1, ow, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32))
    m = hw.BIAS_BUF_WORDS + 1
    with pytest.raises(BitletValueError, match="bias buffer"):
        _layers.matmul(np.zeros((m, 1), np.float32), np.zeros((1, 1), np.float32),
                       bias=np.zeros(m, np.float32))


def test_nan_inputs_give_nan_not_an_error():
    w, a = weights((2, 8)), weights((8, 1))
    a[3, 0] = np.nan
    got = _layers.matmul(w, a)
    assert (ref.bits32(got) == hw.CANONICAL_NAN).all()


# ----------------------------------------------------------------------
# property test: random small geometries against the model
# ----------------------------------------------------------------------

@st.composite
def conv_geometry(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    ih = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pad[0] - pad[2]), 5))
    iw = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pad[1] - pad[3]), 5))
    return {"x": (draw(st.integers(1, 2)), ih, iw, cin), "w": (cout, kh, kw, cin // groups),
            "stride": stride, "pad": pad, "dil": dil, "groups": groups,
            "relu": draw(st.booleans()),
            "prune": draw(st.sampled_from([0xFFFFFF, 0xFFFF00, 0xF0F0F0])),
            "fixed": draw(st.booleans()), "bias": draw(st.booleans()),
            "quant": draw(st.integers(0, 12)), "seed": draw(st.integers(0, 2 ** 16))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_geometry())
def test_random_geometries_match_model_and_cycle_model(g):
    rng = np.random.default_rng(g["seed"])
    cout = g["w"][0]
    if g["fixed"]:
        x = rng.integers(-(1 << 14), 1 << 14, size=g["x"])
        w = rng.integers(-(1 << 12), 1 << 12, size=g["w"])
        b = rng.integers(-(1 << 30), 1 << 30, size=cout) if g["bias"] else None
        extra, mode = {"quant": g["quant"]}, "fixed"
        bias_model = None if b is None else list(b)
    else:
        x, w = relu_like(g["x"], rng), weights(g["w"], rng)
        b = weights((cout,), rng) if g["bias"] else None
        extra, mode = {}, "fp32"
        bias_model = None if b is None else [int(v) for v in ref.bits32(b)]
    geo = {"stride": g["stride"], "groups": g["groups"], "relu": g["relu"], "prune": g["prune"]}
    raw, prof = run_insn(x, w, fmt=mode, padding=g["pad"], dilation=g["dil"], bias=b, **geo,
                         **extra)
    layer = model(x, w, fixed=g["fixed"], pad=g["pad"], dil=g["dil"], bias=bias_model, **geo,
                  **extra)
    got = raw.view(np.int32).astype(np.int64) if g["fixed"] else as_int(raw)
    assert np.array_equal(got, ref.run(layer).astype(np.int64))
    check_cycles(layer, prof)


def test_schedule_benchmark_runs_on_real_layers(capsys):
    """benchmarks/kernel_schedule.py on the first layers of the PP-OCRv4 detector."""
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("skimage")
    pytest.importorskip("onnxruntime")
    bench = load_script("benchmarks/kernel_schedule.py")
    assert bench.main(["--size", "32x64", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("TOTAL"))
    ratio = float(total.split()[3])  # TOTAL ref-cycles PE-cycles PE/ref kernel-cycles kernel/PE
    assert 0 < ratio < 1          # the lockstep PE array beats the reference schedule
    kernel_over_pe = float(total.split()[5])
    assert kernel_over_pe >= 1    # the kernel's cycles include the PE array's
    assert "dw3x3" in out and "modelled" in out


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_narrow_float_operands_are_widened_exactly(precision):
    """float16 (and bfloat16 through ml_dtypes, when installed) operands give the
    bits of the same values in float32: the widening is exact."""
    w = weights((8, 64)).astype(np.float16)
    a = weights((64, 5)).astype(np.float16)
    want = _layers.matmul(w.astype(np.float32), a.astype(np.float32), precision=precision)
    assert _layers.matmul(w, a, precision=precision).tobytes() == want.tobytes()
    x = weights((1, 6, 6, 8)).astype(np.float16)
    k = weights((4, 3, 3, 8)).astype(np.float16)
    assert _layers.conv2d(x, k, padding=1, precision=precision).tobytes() == \
        _layers.conv2d(x.astype(np.float32), k.astype(np.float32), padding=1,
                       precision=precision).tobytes()
    ml_dtypes = pytest.importorskip("ml_dtypes")
    wb, ab = w.astype(ml_dtypes.bfloat16), a.astype(ml_dtypes.bfloat16)
    assert _layers.matmul(wb, ab, precision=precision).tobytes() == \
        _layers.matmul(wb.astype(np.float32), ab.astype(np.float32), precision=precision).tobytes()
