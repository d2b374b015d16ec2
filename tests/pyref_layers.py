"""An independent pure-Python layer model (NUMERICS.md s.5/6) and the kernel's
documented cycle model (hls/README.md "Cycle model"), for tests only.

Independent of the code under test: it imports nothing from ``bitlet`` (no
``bitlet.hw``, no ``preprocess``, no C).  Its constants are typed by hand from
hls/bitlet_hw.h and NUMERICS.md (``tests/test_hw_header.py`` checks that they
still equal ``bitlet.hw``), its fp16/bf16 rounding is its own, in plain Python
integers, and the group arithmetic is ``pyref.group`` (written from the
contract).  numpy is used only for float32 scalars (binary32 sums, round to
nearest even) and for views of float32 bits.

Built on the group definition of ``pyref.group``: the layer split into
64-groups, zero padding, group sums in binary32 from +0.0, bias, ReLU,
canonical NaN, 16-bit rounding; fixed mode with exact Python integers.
Shapes must stay tiny: one group costs tens of milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pyref

#: the hardware constants this model uses, typed by hand from hls/bitlet_hw.h (named
#: like bitlet.hw's so the cycle model reads as the header does; not bitlet.hw)
hw = SimpleNamespace(
    N_PE=4,                        # PEs in the array
    GROUP=pyref.N_PAIRS,           # 64 MACs per PE operation
    WGT_BUF_WORDS=16384,           # weight buffer (words)
    LAT_FP32=pyref.LAT_FP32,       # fp32 group latency = 24 + S
    LAT_FIXED=pyref.LAT_FIXED,     # fixed group latency = 21 + S
    CANONICAL_NAN=pyref.CANONICAL_NAN,
    CANONICAL_NAN_FP16=0x7E00,     # NaN written as a binary16 output
    CANONICAL_NAN_BF16=0x7FC0,     # NaN written as a bfloat16 output
    DDR_BYTES_PER_CYCLE=8,         # m_axi: 64-bit beats, no overlap
    INSN_OVERHEAD_CYCLES=32,       # fetch, decode, checks, profile
    INSN_BYTES=128,                # one instruction in DDR
)

N_PE = hw.N_PE
GROUP = hw.GROUP
CANON_NAN = hw.CANONICAL_NAN
FIX_LO, FIX_HI = pyref.FIX_LO, pyref.FIX_HI
INSN_BYTES = hw.INSN_BYTES
INSN_OVERHEAD = hw.INSN_OVERHEAD_CYCLES
DDR_BYTES_PER_CYCLE = hw.DDR_BYTES_PER_CYCLE


# ----------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------
def f2b(v) -> int:
    return int(np.float32(v).view(np.uint32))


def b2f(u: int) -> np.float32:
    return np.uint32(u).view(np.float32)


def bits32(x) -> np.ndarray:
    """binary32 bits of an array, as uint32 (a view of float32 data)."""
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def is_nan_bits(u: int) -> bool:
    return (u >> 23) & 0xFF == 0xFF and (u & 0x7FFFFF) != 0


def fp16_bits(u: int) -> int:
    """binary32 bits -> binary16 bits: round to nearest even (subnormals, overflow to
    infinity), canonical NaN; plain integer arithmetic."""
    if is_nan_bits(u):
        return hw.CANONICAL_NAN_FP16
    sign = (u >> 16) & 0x8000
    e, m = (u >> 23) & 0xFF, u & 0x7FFFFF
    if e == 0xFF:
        return sign | 0x7C00                       # infinity
    if e == 0:
        return sign                                # binary32 subnormals are < 2^-126: +-0
    exp, sig = e - 127, m | 1 << 23                # value = sig * 2^(exp - 23)
    ulp = exp - 10 if exp >= -14 else -24          # binary16 ulp at this magnitude
    shift = ulp - (exp - 23)                       # >= 13
    q, rem, half = sig >> shift, sig & ((1 << shift) - 1), 1 << (shift - 1)
    if rem > half or (rem == half and q & 1):
        q += 1
    if ulp == -24:
        return sign | q                            # subnormal (q = 1024: the least normal)
    if q == 2048:
        q, exp = 1024, exp + 1
    if exp + 15 >= 31:
        return sign | 0x7C00                       # overflow: infinity
    return sign | (exp + 15) << 10 | (q - 1024)


def bf16_bits(u: int) -> int:
    """binary32 bits -> bfloat16 bits, RNE on the dropped 16 bits, canonical NaN."""
    if is_nan_bits(u):
        return hw.CANONICAL_NAN_BF16
    hi, lo = u >> 16, u & 0xFFFF
    if lo > 0x8000 or (lo == 0x8000 and hi & 1):
        hi += 1
    return hi


def widen16(h: int, fmt: str) -> int:
    """binary16 / bfloat16 bits -> the binary32 bits of the same value (exact)."""
    if fmt == "bf16":
        return h << 16
    sign, e, m = (h & 0x8000) << 16, (h >> 10) & 0x1F, h & 0x3FF
    if e == 0x1F:
        return sign | 0x7F800000 | m << 13
    if e == 0:
        if m == 0:
            return sign
        e = 1
        while not m & 0x400:                       # normalise the subnormal
            m, e = m << 1, e - 1
        m &= 0x3FF
    return sign | (e - 15 + 127) << 23 | m << 13


def round_to(x, fmt: str) -> np.ndarray:
    """float32 array -> float32 array of the values rounded (RNE) to ``fmt`` ("fp16"/"bf16")."""
    to16 = fp16_bits if fmt == "fp16" else bf16_bits
    flat = [widen16(to16(int(u)), fmt) for u in bits32(x).reshape(-1)]
    return np.array(flat, np.uint32).view(np.float32).reshape(np.shape(x))


def fixed_word(v: int) -> int:
    """PE activation word of an int in [-2^24, 2^24)."""
    return (1 << 31 if v < 0 else 0) | (v & 0xFFFFFF)


# ----------------------------------------------------------------------
# the layer
# ----------------------------------------------------------------------
@dataclass
class Layer:
    """One CONV2D (GEMM = 1x1 conv on 1x1 images) in model terms.

    x: [N, H, W, Cin] float32 bits as ints (fixed: ints); w: [Cout, KH, KW, Cin_g]
    likewise (fixed: signed ints).  acc_in: optional [N, OH, OW, Cout] start
    values (float32 bits or ints).
    """

    x: np.ndarray
    w: np.ndarray
    stride: tuple = (1, 1)
    pad: tuple = (0, 0, 0, 0)
    dil: tuple = (1, 1)
    groups: int = 1
    fixed: bool = False
    prune: int = 0xFFFFFF
    quant: int = 0
    bias: list | None = None
    relu: bool = False
    kg: tuple | None = None
    acc_in: np.ndarray | None = None
    partial: bool = False
    ofmt: str = "fp32"
    sums: dict = field(default_factory=dict)   # (n, oy, ox, co) -> [S per group]


def out_size(size, k, s, d, p0, p1):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def geometry(L: Layer):
    n, ih, iw, cin = L.x.shape
    cout, kh, kw, cin_g = L.w.shape
    oh = out_size(ih, kh, L.stride[0], L.dil[0], L.pad[0], L.pad[2])
    ow = out_size(iw, kw, L.stride[1], L.dil[1], L.pad[1], L.pad[3])
    k = kh * kw * cin_g
    n_kg = -(-k // GROUP)
    kg = L.kg or (0, n_kg)
    return n, ih, iw, cin, cout, kh, kw, cin_g, oh, ow, k, kg


def _act_vector(L, n, oy, ox, cg, g, geo):
    _, ih, iw, _, _, _, kw, cin_g, _, _, k, _ = geo
    vec = []
    for j in range(GROUP):
        kk = g * GROUP + j
        if kk >= k:
            vec.append(0)
            continue
        tap, ci = divmod(kk, cin_g)
        r, c = divmod(tap, kw)
        y = oy * L.stride[0] - L.pad[0] + r * L.dil[0]
        x = ox * L.stride[1] - L.pad[1] + c * L.dil[1]
        if 0 <= y < ih and 0 <= x < iw:
            v = int(L.x[n, y, x, cg * cin_g + ci])
            vec.append(fixed_word(v) if L.fixed else v)
        else:
            vec.append(0)                       # padding tap: +0
    return vec


def _weight_ports(L, co, g, geo):
    k = geo[10]
    flat = L.w[co].reshape(-1)
    sig, exp, abs_ = [], [], []
    for j in range(GROUP):
        kk = g * GROUP + j
        v = int(flat[kk]) if kk < k else 0
        if L.fixed:
            s, e, a = (1 if v < 0 else 0), 0, abs(v)
        else:
            s, e, a = pyref.fp32_weight_port(v)
        sig.append(s)
        exp.append(e)
        abs_.append(a)
    return sig, exp, abs_


def _finish_float(L, total: np.float32, co: int) -> int:
    if L.partial:
        u = f2b(total)
        return CANON_NAN if is_nan_bits(u) else u
    if L.bias is not None:
        total = np.float32(total + b2f(L.bias[co]))
    if L.relu and not total > 0 and not np.isnan(total):
        total = np.float32(0.0)
    u = f2b(total)
    if is_nan_bits(u):
        u = CANON_NAN
    return {"fp32": u, "fp16": fp16_bits(u), "bf16": bf16_bits(u)}[L.ofmt]


def _finish_fixed(L, total: int, co: int) -> int:
    if L.partial:
        return total
    if L.bias is not None:
        total += int(L.bias[co])
    r = total >> L.quant                    # Python >> is floor division
    r = max(FIX_LO, min(FIX_HI, r))
    if L.relu and r < 0:
        r = 0
    return r


def run(L: Layer) -> np.ndarray:
    """Outputs [N, OH, OW, Cout] as ints (float bits, 16-bit bits, or fixed ints)."""
    geo = geometry(L)
    n, _, _, _, cout, _, _, _, oh, ow, _, (kg0, kg1) = geo
    cout_g = cout // L.groups
    out = np.zeros((n, oh, ow, cout), dtype=object)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for co in range(cout):
                    cg = co // cout_g
                    if L.fixed:
                        total = int(L.acc_in[b, oy, ox, co]) if L.acc_in is not None else 0
                    else:
                        total = b2f(L.acc_in[b, oy, ox, co]) if L.acc_in is not None \
                            else np.float32(0.0)
                    scans = []
                    for g in range(kg0, kg1):
                        sig, exp, abs_ = _weight_ports(L, co, g, geo)
                        a = _act_vector(L, b, oy, ox, cg, g, geo)
                        r = pyref.group(sig, exp, abs_, a, L.fixed, L.prune, L.quant)
                        total = total + r.acc if L.fixed else np.float32(total + b2f(r.res))
                        scans.append(r.scan)
                    L.sums[(b, oy, ox, co)] = scans
                    out[b, oy, ox, co] = (_finish_fixed if L.fixed else _finish_float)(L, total, co)
    return out


# ----------------------------------------------------------------------
# the documented cycle model (hls/README.md), from the S values of run()
# ----------------------------------------------------------------------
def batches(cout: int, groups: int, n_pe: int = N_PE):
    """Kernel batches: list of channel lists; each a list of reference sub-batches."""
    cout_g = cout // groups
    out = []
    if cout_g >= n_pe:
        for cg in range(groups):
            for j in range(0, cout_g, n_pe):
                chans = list(range(cg * cout_g + j, cg * cout_g + min(j + n_pe, cout_g)))
                out.append([chans])
    else:
        per = n_pe // cout_g
        for g0 in range(0, groups, per):
            out.append([list(range(cg * cout_g, (cg + 1) * cout_g))
                        for cg in range(g0, min(g0 + per, groups))])
    return out


def cycles(L: Layer) -> dict:
    """pe, ref, groups, scan counters of the kernel's cycle model."""
    geo = geometry(L)
    n, _, _, _, cout, _, _, _, oh, ow, _, (kg0, kg1) = geo
    lat = hw.LAT_FIXED if L.fixed else hw.LAT_FP32
    pe = ref = groups = scan = 0
    for b in range(n):
        for oy in range(oh):
            for subs in batches(cout, L.groups):
                # each PE issues a group every S + 1 cycles; the batch's PEs meet at row end
                chans = [co for sub in subs for co in sub]
                pe += max(sum(1 + s for ox in range(ow) for s in L.sums[(b, oy, ox, co)])
                          for co in chans)
                for ox in range(ow):
                    for gi in range(kg1 - kg0):
                        s_all = [L.sums[(b, oy, ox, co)][gi] for co in chans]
                        ref += sum(lat + 1 + max(L.sums[(b, oy, ox, co)][gi] for co in sub)
                                   for sub in subs)
                        groups += len(s_all)
                        scan += sum(s_all)
    if groups:
        pe += lat
    return {"pe_cycles": pe, "ref_cycles": ref, "groups": groups, "scan": scan}


def ddr_bytes(L: Layer, *, wfmt_bytes=4, afmt_bytes=4, out_bytes=4,
              wgt_buf_words=hw.WGT_BUF_WORDS) -> int:
    """Bytes moved by one instruction in the kernel model (README "DDR traffic")."""
    n, ih, iw, cin, cout, kh, _, _, oh, ow, _, (kg0, kg1) = geometry(L)
    part = 8 if L.fixed else 4
    row = (kg1 - kg0) * GROUP
    total = INSN_BYTES
    if L.bias is not None:
        total += cout * part
    total += (cout if cout * row <= wgt_buf_words else n * oh * cout) * row * wfmt_bytes
    rows = (kh - 1) * L.dil[0] + 1
    loaded = 0
    for oy in range(oh):
        lo = max(oy * L.stride[0] - L.pad[0], 0)
        hi = min(oy * L.stride[0] - L.pad[0] + rows, ih)
        prev = (max((oy - 1) * L.stride[0] - L.pad[0], 0),
                min((oy - 1) * L.stride[0] - L.pad[0] + rows, ih)) if oy else (-1, -1)
        loaded += sum(1 for y in range(lo, hi) if not prev[0] <= y < prev[1])
    total += n * loaded * iw * cin * afmt_bytes
    if L.acc_in is not None:
        total += n * oh * ow * cout * part
    total += n * oh * ow * cout * (part if L.partial else out_bytes)
    return total


def kernel_cycles(pe: int, ddr: int) -> int:
    return INSN_OVERHEAD + pe + -(-ddr // DDR_BYTES_PER_CYCLE)
