"""An independent pure-Python layer model (NUMERICS.md s.5/6) and the kernel's
documented cycle model (hls/README.md "Cycle model"), for tests only.

Built on the group definition of ``pyref.group`` (written from the contract,
no C): the layer split into 64-groups, zero padding, group sums in binary32
(numpy float32 scalars round to nearest even) from +0.0, bias, ReLU,
canonical NaN, 16-bit rounding; fixed mode with exact Python integers.
Shapes must stay tiny: one group costs tens of milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyref
from bitlet import hw

N_PE = hw.N_PE
GROUP = hw.GROUP
CANON_NAN = hw.CANONICAL_NAN
FIX_LO, FIX_HI = -(2 ** 24), 2 ** 24 - 1
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


def is_nan_bits(u: int) -> bool:
    return (u >> 23) & 0xFF == 0xFF and (u & 0x7FFFFF) != 0


def fp16_bits(u: int) -> int:
    """binary32 bits -> binary16 bits, RNE, canonical NaN (numpy's cast is RNE)."""
    if is_nan_bits(u):
        return hw.CANONICAL_NAN_FP16
    with np.errstate(over="ignore"):
        return int(np.float32(b2f(u)).astype(np.float16).view(np.uint16))


def bf16_bits(u: int) -> int:
    """binary32 bits -> bfloat16 bits, RNE on the dropped 16 bits, canonical NaN."""
    if is_nan_bits(u):
        return hw.CANONICAL_NAN_BF16
    hi, lo = u >> 16, u & 0xFFFF
    if lo > 0x8000 or (lo == 0x8000 and hi & 1):
        hi += 1
    return hi


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
