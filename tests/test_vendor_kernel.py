"""The vendor-FP baseline kernel (hls/vendor_kernel.c) against an independent
numpy float32 model of its documented summation order (hls/README.md), bit
for bit, and its documented cycle formula exactly."""
from __future__ import annotations

import numpy as np
import pyref_layers as ref
import pytest
from bitlet.numerics import layers as _layers
from bitlet import hw
from bitlet.program import preprocess
from bitlet.errors import BitletValueError
from test_layers import CONV_CASES, relu_like, run_insn, weights

pytestmark = pytest.mark.numerics


def im2col(x, w_shape, stride, pad, dil, groups):
    """x [N, H, W, C] -> columns [N, OH, OW, groups, K] in k = (kh*KW + kw)*Cin_g + ci."""
    n, ih, iw, c = x.shape
    _, kh, kw, cin_g = w_shape
    xp = np.zeros((n, ih + pad[0] + pad[2], iw + pad[1] + pad[3], c), np.float32)
    xp[:, pad[0]:pad[0] + ih, pad[1]:pad[1] + iw] = x
    oh = ref.out_size(ih, kh, stride[0], dil[0], pad[0], pad[2])
    ow = ref.out_size(iw, kw, stride[1], dil[1], pad[1], pad[3])
    cols = np.zeros((n, oh, ow, groups, kh * kw * cin_g), np.float32)
    for oy in range(oh):
        for ox in range(ow):
            taps = [xp[:, oy * stride[0] + r * dil[0], ox * stride[1] + q * dil[1], :]
                    for r in range(kh) for q in range(kw)]
            patch = np.stack(taps, axis=1)                       # [N, taps, C]
            patch = patch.reshape(n, kh * kw, groups, cin_g).transpose(0, 2, 1, 3)
            cols[:, oy, ox] = patch.reshape(n, groups, -1)
    return cols


def vendor_dot(w, a, start=0.0):
    """The documented order: P interleaved partial sums, pairwise tree, + start."""
    parts = hw.VENDOR_PARTIALS
    k = -(-w.size // hw.GROUP) * hw.GROUP
    wp, ap = np.zeros(k, np.float32), np.zeros(k, np.float32)
    wp[:w.size], ap[:a.size] = w, a
    prod = wp * ap                                    # binary32 products, RNE
    s = np.zeros(parts, np.float32)
    for row in prod.reshape(-1, parts):               # ascending k into s[k mod P]
        s = s + row
    while s.size > 1:
        s = s[0::2] + s[1::2]
    return np.float32(np.float32(start) + s[0])


def finish(v, bias=None, relu=False, ofmt="fp32"):
    if bias is not None:
        v = np.float32(v + bias)
    if relu and not v > 0 and not np.isnan(v):
        v = np.float32(0.0)
    u = ref.f2b(v)
    if ref.is_nan_bits(u):
        u = hw.CANONICAL_NAN
    return {"fp32": u, "fp16": ref.fp16_bits(u), "bf16": ref.bf16_bits(u)}[ofmt]


def vendor_model(x, w, *, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1), groups=1, bias=None,
                 relu=False, ofmt="fp32", kg=None, acc_in=None, partial=False):
    cols = im2col(x, w.shape, stride, pad, dil, groups)
    n, oh, ow = cols.shape[:3]
    cout = w.shape[0]
    wm = w.reshape(cout, -1)
    kg0, kg1 = kg or (0, -(-wm.shape[1] // hw.GROUP))
    lo, hi = kg0 * hw.GROUP, kg1 * hw.GROUP
    out = np.zeros((n, oh, ow, cout), np.int64)
    with np.errstate(all="ignore"):
        for idx in np.ndindex(n, oh, ow):
            for co in range(cout):
                cg = co // (cout // groups)
                start = np.float32(0.0) if acc_in is None else ref.b2f(int(acc_in[idx + (co,)]))
                v = vendor_dot(wm[co, lo:hi], cols[idx + (cg,)][lo:hi], start)
                if partial:
                    u = ref.f2b(v)
                    out[idx + (co,)] = hw.CANONICAL_NAN if ref.is_nan_bits(u) else u
                else:
                    out[idx + (co,)] = finish(v, None if bias is None else bias[co], relu, ofmt)
    return out


def vendor_counters(x, w, prof, *, groups=1, kg=None, bias=None, **geo):
    """The oracle's counters of the vendor kernel for this layer (README "Vendor-FP
    baseline": the Bitlet schedule's units and transfers, 64/LANES per group)."""
    layer = ref.Layer(x=x, w=w, groups=groups, kg=kg, bias=bias, **geo)
    return ref.counters(layer, ref.Placement.of(prof["insn"]), kernel="vendor_fp")


@pytest.mark.parametrize("xs, ws, stride, pad, dil, groups", CONV_CASES)
def test_vendor_conv_matches_documented_order_and_cycles(xs, ws, stride, pad, dil, groups):
    rng = np.random.default_rng(11)
    x, w = weights(xs, rng, 1.0), weights(ws, rng)
    b = weights((ws[0],), rng)
    raw, prof = run_insn(x, w, stride=stride, padding=pad, dilation=dil, groups=groups, bias=b,
                         relu=True, kernel="vendor_fp")
    want = vendor_model(x, w, stride=stride, pad=pad, dil=dil, groups=groups, bias=b, relu=True)
    assert np.array_equal(raw.astype(np.int64), want)
    cyc = vendor_counters(x, w, prof, stride=stride, pad=pad, dil=dil, groups=groups,
                          bias=list(b))
    assert cyc["ref_cycles"] == cyc["scan"] == 0
    for name, value in cyc.items():
        assert int(prof[name]) == value, name


def test_vendor_long_k_with_wide_dynamic_range():
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((3, 1, 1, 300)) * np.exp(rng.uniform(-8, 8, 300))).astype(np.float32)
    x = weights((1, 2, 2, 300), rng, 1.0)
    raw, _ = run_insn(x, w, kernel="vendor_fp")
    assert np.array_equal(raw.astype(np.int64), vendor_model(x, w))


def test_vendor_order_is_the_interleaved_one_not_sequential():
    w = np.zeros((1, 64), np.float32)
    w[0, 0], w[0, 1:hw.VENDOR_PARTIALS], w[0, hw.VENDOR_PARTIALS] = 2.0 ** 25, 1.0, -2.0 ** 25
    a = np.ones((64, 1), np.float32)
    got = _layers.matmul(w, a, kernel="vendor_fp")
    # sequentially, 2^25 + 1 rounds back to 2^25 and everything cancels to 0;
    # with P interleaved partials, 2^25 and -2^25 meet in s[0] and the ones survive
    assert got[0, 0] == hw.VENDOR_PARTIALS - 1


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_vendor_16bit(fmt):
    rng = np.random.default_rng(4)
    x, w = relu_like((1, 3, 3, 4), rng), weights((3, 2, 2, 4), rng)
    raw, _ = run_insn(x, w, fmt=fmt, kernel="vendor_fp")
    want = vendor_model(preprocess.round_to(x, fmt), preprocess.round_to(w, fmt), ofmt=fmt)
    assert np.array_equal(raw.astype(np.int64), want)


def test_vendor_k_tiles_start_from_the_partial():
    rng = np.random.default_rng(6)
    x, w = weights((1, 2, 2, 100), rng, 1.0), weights((4, 1, 1, 100), rng)
    part, _ = run_insn(x, w, kernel="vendor_fp", kg_begin=0, kg_end=1, partial=True)
    want_part = vendor_model(x, w, kg=(0, 1), partial=True)
    assert np.array_equal(part.astype(np.int64), want_part)
    out, _ = run_insn(x, w, kernel="vendor_fp", kg_begin=1, kg_end=2, acc_in=part, relu=True)
    want = vendor_model(x, w, kg=(1, 2), acc_in=part, relu=True)
    assert np.array_equal(out.astype(np.int64), want)


def test_vendor_nan_and_inf():
    w = np.zeros((3, 64), np.float32)
    w[0, :2] = [np.inf, -np.inf]
    w[1, 0] = np.nan
    w[2, 0] = 3e38
    a = np.zeros((64, 1), np.float32)
    a[:2, 0] = 1.0
    a[0, 0] = 1e10
    got = _layers.matmul(w, a, kernel="vendor_fp")
    bits = preprocess.f32_bits(got)[:, 0]
    assert bits[0] == hw.CANONICAL_NAN and bits[1] == hw.CANONICAL_NAN
    assert got[2, 0] == np.inf


def test_vendor_rejects_fixed():
    with pytest.raises(BitletValueError, match="vendor"):
        _layers.matmul(np.ones((1, 4)), np.ones((4, 1)), precision="fixed", quant=0,
                       kernel="vendor_fp")
