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
    ACT_BUF_WORDS=65536,           # activation line buffer (words)
    OUT_BUF_WORDS=8192,            # output / partial-sum buffer (words)
    AXI_BYTES=8,                   # m_axi beat (64-bit port)
    DDR_LATENCY=32,                # cycles to the first beat of a burst sequence
    DDR_OUTSTANDING=4,             # bursts in flight per direction
    ACT_BANKS=64,                  # line-buffer banks
    WGT_BANKS=8,                   # weight banks per PE lane
    VENDOR_LANES=4,                # vendor-FP: fp32 multipliers per unit
    VENDOR_MUL_LAT=3,              # vendor-FP: multiplier latency
    VENDOR_ADD_LAT=4,              # vendor-FP: adder latency
    VENDOR_TREE_DEPTH=4,           # vendor-FP: log2(partials) adder levels
    INSN_OVERHEAD_CYCLES=32,       # fetch, decode, checks, profile
    INSN_BYTES=128,                # one instruction in DDR
)

N_PE = hw.N_PE
GROUP = hw.GROUP
CANON_NAN = hw.CANONICAL_NAN
FIX_LO, FIX_HI = pyref.FIX_LO, pyref.FIX_HI
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
INSN_BYTES = hw.INSN_BYTES


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
    # (the same K walk as the weight packing further down, written again on purpose: each
    # oracle function stands alone)
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
                        if L.fixed:              # int64 sums saturate (README)
                            total = max(INT64_MIN, min(INT64_MAX, total + r.acc))
                        else:
                            total = np.float32(total + b2f(r.res))
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


AXI = hw.AXI_BYTES
DDR_LAT = hw.DDR_LATENCY
BANKS = hw.ACT_BANKS


@dataclass
class Placement:
    """Where an instruction's operands sit in device memory (byte addresses)
    and its pixel pitches; the DDR figures depend on addresses modulo the
    bus width.  Defaults: every operand AXI-aligned, dense tensors."""

    # (a dataclass of defaults, like drivers/link/testing.Faults: alike in shape only)
    act: int = 0
    wgt: int = 0
    out: int = 0
    acc: int = 0
    bias: int = 0
    in_cs: int | None = None
    in_coff: int = 0
    out_cs: int | None = None
    out_coff: int = 0

    @classmethod
    def of(cls, insn) -> Placement:
        """The placement of a :class:`bitlet.isa.Instruction`."""
        return cls(act=insn.act, wgt=insn.wgt, out=insn.out, acc=insn.acc, bias=insn.bias,
                   in_cs=insn.in_cstride, in_coff=insn.in_coff, out_cs=insn.out_cstride,
                   out_coff=insn.out_coff)


ISSUE = DDR_LAT // hw.DDR_OUTSTANDING        # a burst occupies its channel at least this long


def _read(a: int, n: int) -> tuple[int, int]:
    """(cycles in its stage's sequence, bus bytes) of a burst read of [a, a + n);
    the stage adds DDR_LAT once."""
    beats = (a + n - 1) // AXI - a // AXI + 1
    return max(beats, ISSUE), AXI * beats


def _write(a: int, n: int) -> tuple[int, int]:
    """A burst write; edge beats covered in part are read first (one beat each,
    a full latency: the write waits for it)."""
    beats = (a + n - 1) // AXI - a // AXI + 1
    head, tail = a % AXI != 0, (a + n) % AXI != 0
    edges = (head or tail) if beats == 1 else head + tail
    return max(beats, ISSUE) + edges * (DDR_LAT + 1), AXI * (beats + edges)


def _waves(L, geo, oy, ox, g, cgs, lo, slot_lo, q) -> int:
    """Largest number of words one of the 64 line-buffer banks supplies for
    group g of the channel groups cgs at (oy, ox) (README "Cycle model")."""
    _, ih, iw, cin, _, _, kw, cin_g, _, _, k, _ = geo
    count = [0] * BANKS
    for cg in cgs:
        for j in range(GROUP):
            kk = g * GROUP + j
            if kk >= k:
                break
            tap, ci = divmod(kk, cin_g)
            r, c = divmod(tap, kw)
            y = oy * L.stride[0] - L.pad[0] + r * L.dil[0]
            x = ox * L.stride[1] - L.pad[1] + c * L.dil[1]
            if 0 <= y < ih and 0 <= x < iw:
                slot = (slot_lo + y - lo) % q
                count[((slot * iw + x) * cin + cg * cin_g + ci) % BANKS] += 1
    return max(count)


def counters(L: Layer, place: Placement | None = None, *, kernel: str = "bitlet",
             wfmt_bytes: int = 4, afmt_bytes: int = 4, out_bytes: int = 4) -> dict:
    """Every profile counter of one instruction in the documented model
    (hls/README.md "Cycle model"), from the S values of :func:`run`.

    Returns pe_cycles, ref_cycles, groups, scan, ddr_bytes, kernel_cycles.
    """
    place = place or Placement()
    geo = geometry(L)
    n, ih, iw, cin, cout, kh, _, _cin_g, oh, ow, _, (kg0, kg1) = geo
    in_cs = place.in_cs if place.in_cs is not None else cin
    out_cs = place.out_cs if place.out_cs is not None else cout
    cout_g = cout // L.groups
    fixed, accum = L.fixed, L.acc_in is not None
    pb = 8 if fixed else 4                       # bias / ACC / fixed partial element
    ob = pb if L.partial else out_bytes
    words = 2 if fixed else 1
    t_n = kg1 - kg0
    row = t_n * GROUP
    rows = (kh - 1) * L.dil[0] + 1
    lanes = hw.WGT_BUF_WORDS // N_PE
    resident = -(-cout // N_PE) * row <= lanes
    overlap = (2 * rows * iw * cin <= hw.ACT_BUF_WORDS
               and (resident or 2 * row <= lanes)
               and (3 if accum else 2) * ow * N_PE * words <= hw.OUT_BUF_WORDS)
    q = 2 * rows if overlap else rows
    if kernel == "bitlet":
        lat = hw.LAT_FIXED if fixed else hw.LAT_FP32
    else:
        lat = hw.VENDOR_MUL_LAT + hw.VENDOR_ADD_LAT * (hw.VENDOR_TREE_DEPTH + 3)
    ref_lat = hw.LAT_FIXED if fixed else hw.LAT_FP32
    ddr = 0
    pe = ref = groups = scan = 0

    def xfer(cost):
        nonlocal ddr
        ddr += cost[1]
        return cost[0]

    fixed_cycles = hw.INSN_OVERHEAD_CYCLES + DDR_LAT + xfer(_read(0, INSN_BYTES))
    if L.bias is not None:
        fixed_cycles += DDR_LAT + xfer(_read(place.bias, cout * pb))
    if resident:
        fixed_cycles += DDR_LAT + xfer(_read(place.wgt, cout * row * wfmt_bytes))

    def idx(b, oy, ox, c):
        return ((b * oh + oy) * ow + ox) * out_cs + place.out_coff + c

    stages = []                                  # (LD, CP, ST) per unit
    wp, held = 0, None                           # ring: next slot, (n, lo, hi, slot_lo)
    for b in range(n):
        for oy in range(oh):
            lo = max(oy * L.stride[0] - L.pad[0], 0)
            hi = min(oy * L.stride[0] - L.pad[0] + rows, ih)
            for bi, subs in enumerate(batches(cout, L.groups)):
                chans = [co for sub in subs for co in sub]
                c0, cnt = chans[0], len(chans)
                ld = 0
                if bi == 0:                      # the row's new input rows
                    keep = held is not None and held[0] == b and lo < held[2] and hi > lo
                    first = held[2] if keep else lo
                    for y in range(first, hi):
                        px = (b * ih + y) * iw
                        if in_cs == cin:
                            ld += xfer(_read(place.act + px * cin * afmt_bytes,
                                             iw * cin * afmt_bytes))
                        else:
                            for x in range(iw):
                                a = place.act + ((px + x) * in_cs + place.in_coff) * afmt_bytes
                                ld += xfer(_read(a, cin * afmt_bytes))
                    if hi > lo:
                        slot_lo = (held[3] + lo - held[1]) % q if keep else wp
                        held = (b, lo, hi, slot_lo)
                    wp = (wp + max(hi - first, 0)) % q
                if not resident:
                    ld += xfer(_read(place.wgt + c0 * row * wfmt_bytes, cnt * row * wfmt_bytes))
                if accum:
                    if out_cs == cnt:
                        ld += xfer(_read(place.acc + idx(b, oy, 0, c0) * pb, ow * cnt * pb))
                    else:
                        for ox in range(ow):
                            ld += xfer(_read(place.acc + idx(b, oy, ox, c0) * pb, cnt * pb))
                cp = lat
                cgs = sorted({co // cout_g for co in chans})
                for ox in range(ow):
                    for gi in range(t_n):
                        waves = 0
                        if held is not None and hi > lo:
                            waves = _waves(L, geo, oy, ox, kg0 + gi, cgs, held[1], held[3], q)
                        s_all = [L.sums[(b, oy, ox, co)][gi] for co in chans] \
                            if kernel == "bitlet" else [0] * cnt
                        busy = 1 + max(s_all) if kernel == "bitlet" else GROUP // hw.VENDOR_LANES
                        cp += max(busy, waves, GROUP // hw.WGT_BANKS)
                        if kernel == "bitlet":
                            ref += sum(ref_lat + 1 + max(L.sums[(b, oy, ox, co)][gi] for co in sub)
                                       for sub in subs)
                            scan += sum(s_all)
                        groups += cnt
                pe += cp
                ld += DDR_LAT if ld else 0           # one read sequence per stage
                st = DDR_LAT                         # one write sequence
                if out_cs == cnt:
                    st += xfer(_write(place.out + idx(b, oy, 0, c0) * ob, ow * cnt * ob))
                else:
                    for ox in range(ow):
                        st += xfer(_write(place.out + idx(b, oy, ox, c0) * ob, cnt * ob))
                stages.append((ld, cp, st))
    if overlap:
        u = len(stages)
        body = sum(max(stages[t][0] if t < u else 0,
                       stages[t - 1][1] if 1 <= t <= u else 0,
                       stages[t - 2][2] if 2 <= t <= u + 1 else 0) for t in range(u + 2))
    else:
        body = sum(sum(s) for s in stages)
    return {"pe_cycles": pe, "ref_cycles": ref, "groups": groups, "scan": scan,
            "ddr_bytes": ddr, "kernel_cycles": fixed_cycles + body}


def cycles(L: Layer, place: Placement | None = None, **kw) -> dict:
    """pe, ref, groups, scan counters of the kernel's cycle model."""
    c = counters(L, place, **kw)
    return {k: c[k] for k in ("pe_cycles", "ref_cycles", "groups", "scan")}


def ddr_bytes(L: Layer, place: Placement | None = None, **kw) -> int:
    """Bus bytes moved by one instruction in the kernel model (README "Transfers")."""
    return counters(L, place, **kw)["ddr_bytes"]


def kernel_cycles(L: Layer, place: Placement | None = None, **kw) -> int:
    """KERNEL_CYCLES of one instruction in the kernel model."""
    return counters(L, place, **kw)["kernel_cycles"]
