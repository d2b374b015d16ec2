"""The kernel's instruction set: encode, decode and build instructions.

An instruction is ``hw.INSN_WORDS`` little-endian uint32 words (layout in
``hls/bitlet_hw.h``; every word index, shift and mask below comes from
:mod:`bitlet.hw`).  :class:`Insn` holds the fields with readable names;
:func:`gemm` and :func:`conv2d` build complete instructions with the output
size computed and the geometry validated; :func:`decode_profile` reads the
per-instruction profile records the kernel writes.

Example
-------
>>> from bitlet import isa
>>> insn = isa.gemm(m=8, k=64, n=2, act=0x1000, wgt=0x2000, out=0x3000)
>>> isa.Insn.decode(insn.encode()) == insn
True
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bitlet import hw
from bitlet.errors import BitletTypeError, BitletValueError

#: precision name -> format code (fields wfmt/afmt/ofmt)
FORMATS = {"fp32": "FMT_FP32", "fp16": "FMT_FP16", "bf16": "FMT_BF16", "fixed": "FMT_FIXED"}

# every bit of a 32-bit instruction word: the range of a whole-word field
_U32 = 0xFFFFFFFF


def fmt_code(name: str) -> int:
    """Format code of a precision name (``"fp32"``, ``"fp16"``, ``"bf16"``, ``"fixed"``)."""
    try:
        return getattr(hw, FORMATS[name])
    except KeyError:
        raise BitletValueError(
            f"precision/format must be one of {sorted(FORMATS)}, got {name!r}") from None


def fmt_bytes(code: int) -> int:
    """Bytes per element of a format code in device memory (2 or 4)."""
    return 2 if code in (hw.FMT_FP16, hw.FMT_BF16) else 4


@dataclass
class Insn:
    """One kernel instruction (all fields of ``hls/bitlet_hw.h``).

    Addresses are device byte addresses; ``stride``, ``pad`` (top, left,
    bottom, right), ``dilation`` and ``out_hw`` are tuples; ``kg_end = 0``
    means "up to the last 64-group of K".
    """

    opcode: int = 0
    wfmt: int = 0
    afmt: int = 0
    ofmt: int = 0
    flags: int = 0
    prune: int = hw.PRUNE_ALL
    quant: int = 0
    act: int = 0
    wgt: int = 0
    bias: int = 0
    out: int = 0
    acc: int = 0
    n: int = 1
    ih: int = 1
    iw: int = 1
    cin: int = 1
    cout: int = 1
    # (the geometry fields of bitlet.program.schedule.LayerGeometry, which the compiler
    # tiles; here they are an instruction's fields: alike in shape, two layers apart)
    kh: int = 1
    kw: int = 1
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    out_hw: tuple[int, int] = (1, 1)
    out_cstride: int = 1
    out_coff: int = 0
    in_cstride: int = 1
    in_coff: int = 0
    fixbits: int = 0
    layer: int = 0
    kg_begin: int = 0
    kg_end: int = 0

    def __post_init__(self) -> None:
        self.stride = tuple(int(v) for v in self.stride)
        self.pad = tuple(int(v) for v in self.pad)
        self.dilation = tuple(int(v) for v in self.dilation)
        self.out_hw = tuple(int(v) for v in self.out_hw)

    # -- encoding ------------------------------------------------------
    def encode(self) -> np.ndarray:
        """The instruction as ``np.ndarray`` uint32 of shape ``[hw.INSN_WORDS]``.

        Raises :class:`bitlet.BitletValueError` naming a field that does not
        fit its bits.
        """
        w = np.zeros(hw.INSN_WORDS, dtype=np.uint32)
        w[hw.W_OP] = (_field(self, "opcode", hw.OP_MASK)
                      | _field(self, "wfmt", hw.FMT_MASK) << hw.WFMT_SHIFT
                      | _field(self, "afmt", hw.FMT_MASK) << hw.AFMT_SHIFT
                      | _field(self, "ofmt", hw.FMT_MASK) << hw.OFMT_SHIFT
                      | _field(self, "flags", hw.FLAGS_MASK) << hw.FLAGS_SHIFT)
        w[hw.W_PRUNE] = (_field(self, "prune", hw.PRUNE_MASK)
                         | _field(self, "quant", _U32 >> hw.QUANT_SHIFT) << hw.QUANT_SHIFT)
        for name in ("act", "wgt", "bias", "out", "acc"):
            lo = getattr(hw, f"W_{name.upper()}_LO")
            value = _field(self, name, (1 << 64) - 1)
            w[lo], w[lo + 1] = value & _U32, value >> 32
        for name in ("n", "ih", "iw", "cin", "cout", "kh", "kw", "groups", "out_cstride",
                     "out_coff", "in_cstride", "in_coff", "kg_begin", "kg_end"):
            w[getattr(hw, f"W_{name.upper()}")] = _field(self, name, _U32)
        w[hw.W_STRIDE] = _pair(self, "stride", self.stride)
        w[hw.W_PAD_TL] = _pair(self, "pad", self.pad[:2])
        w[hw.W_PAD_BR] = _pair(self, "pad", self.pad[2:])
        w[hw.W_DIL] = _pair(self, "dilation", self.dilation)
        w[hw.W_OHW] = _pair(self, "out_hw", self.out_hw)
        w[hw.W_MISC] = (_field(self, "fixbits", hw.FIXBITS_MASK)
                        | _field(self, "layer", _U32 >> hw.LAYER_SHIFT) << hw.LAYER_SHIFT)
        return w

    @classmethod
    def decode(cls, words: Sequence[int] | np.ndarray) -> Insn:
        """Inverse of :meth:`encode` (``words``: ``hw.INSN_WORDS`` uint32)."""
        w = [int(v) for v in np.asarray(words, dtype=np.uint32).reshape(-1)]
        if len(w) != hw.INSN_WORDS:
            raise BitletValueError(f"words must have {hw.INSN_WORDS} uint32, got {len(w)}")
        op = w[hw.W_OP]

        def half(word: int) -> tuple[int, int]:
            return word & hw.HALF_MASK, (word >> hw.HALF_SHIFT) & hw.HALF_MASK

        def addr(name: str) -> int:
            lo = getattr(hw, f"W_{name.upper()}_LO")
            return w[lo] | w[lo + 1] << 32

        scalars = {name: w[getattr(hw, f"W_{name.upper()}")] for name in (
            "n", "ih", "iw", "cin", "cout", "kh", "kw", "groups", "out_cstride",
            "out_coff", "in_cstride", "in_coff", "kg_begin", "kg_end")}
        return cls(
            opcode=op & hw.OP_MASK,
            wfmt=(op >> hw.WFMT_SHIFT) & hw.FMT_MASK,
            afmt=(op >> hw.AFMT_SHIFT) & hw.FMT_MASK,
            ofmt=(op >> hw.OFMT_SHIFT) & hw.FMT_MASK,
            flags=(op >> hw.FLAGS_SHIFT) & hw.FLAGS_MASK,
            prune=w[hw.W_PRUNE] & hw.PRUNE_MASK,
            quant=w[hw.W_PRUNE] >> hw.QUANT_SHIFT,
            **{name: addr(name) for name in ("act", "wgt", "bias", "out", "acc")},
            **scalars,
            stride=half(w[hw.W_STRIDE]),
            pad=half(w[hw.W_PAD_TL]) + half(w[hw.W_PAD_BR]),
            dilation=half(w[hw.W_DIL]),
            out_hw=half(w[hw.W_OHW]),
            fixbits=w[hw.W_MISC] & hw.FIXBITS_MASK,
            layer=w[hw.W_MISC] >> hw.LAYER_SHIFT,
        )

    def replace(self, **changes) -> Insn:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- derived quantities ---------------------------------------------
    @property
    def k(self) -> int:
        """Dot-product length K = KH * KW * CIN / groups."""
        return self.kh * self.kw * (self.cin // max(self.groups, 1))

    @property
    def n_kgroups(self) -> int:
        """64-groups of K (the last one zero padded)."""
        return -(-self.k // hw.GROUP)

    @property
    def kg_range(self) -> tuple[int, int]:
        """The K groups ``[begin, end)`` this instruction computes."""
        return self.kg_begin, (self.kg_end or self.n_kgroups)

    @property
    def isfix(self) -> bool:
        return self.wfmt == hw.FMT_FIXED


def _field(insn: Insn, name: str, mask: int) -> int:
    value = getattr(insn, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitletTypeError(f"instruction field {name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < 0 or value > mask:
        raise BitletValueError(f"instruction field {name}={value} does not fit in 0..{mask:#x}")
    return value


def _pair(insn: Insn, name: str, pair: Sequence[int]) -> int:
    if len(pair) != 2:
        raise BitletValueError(f"instruction field {name} needs a pair, got {pair!r}")
    lo, hi = (int(v) for v in pair)
    for v in (lo, hi):
        if v < 0 or v > hw.HALF_MASK:
            raise BitletValueError(f"instruction field {name}={tuple(pair)} does not fit 16 bits")
    return lo | hi << hw.HALF_SHIFT


def program_bytes(insns: Iterable[Insn]) -> bytes:
    """Concatenated little-endian encoding of a program (``hw.INSN_BYTES`` each)."""
    return b"".join(i.encode().astype("<u4").tobytes() for i in insns)


def program_words(insns: Iterable[Insn]) -> np.ndarray:
    """Program as uint32 ``[n_insn * hw.INSN_WORDS]``."""
    words = [i.encode() for i in insns]
    return np.concatenate(words) if words else np.zeros(0, np.uint32)


# ----------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------
def _as_pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        a, b = value
        return int(a), int(b)
    except (TypeError, ValueError):
        raise BitletValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None


def as_padding(padding) -> tuple[int, int, int, int]:
    """Normalise ``padding`` (int, (h, w) or (top, left, bottom, right))."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        if padding < 0:
            raise BitletValueError(f"padding must be >= 0, got {padding!r}")
        return (int(padding),) * 4
    try:
        values = tuple(int(v) for v in padding)
    except (TypeError, ValueError):
        raise BitletValueError(f"padding must be an int or a tuple, got {padding!r}") from None
    if len(values) == 2:
        values = values + values
    if len(values) != 4:
        raise BitletValueError(
            f"padding must be an int, (h, w) or (top, left, bottom, right), got {padding!r}")
    if min(values) < 0:
        raise BitletValueError(f"padding must be >= 0, got {padding!r}")
    return values


def conv_out_size(size: int, k: int, stride: int, dil: int, pad0: int, pad1: int) -> int:
    """Output size along one axis: floor((size + pads - dil*(k-1) - 1) / stride) + 1."""
    span = size + pad0 + pad1 - dil * (k - 1) - 1
    if span < 0:
        return 0
    return span // stride + 1


def flags_word(relu: bool, bias: bool, accum: bool, partial: bool) -> int:
    """The flags byte of an instruction (``hw.FLAG_*`` bits)."""
    return ((hw.FLAG_RELU if relu else 0) | (hw.FLAG_BIAS if bias else 0)
            | (hw.FLAG_ACCUM if accum else 0) | (hw.FLAG_PARTIAL if partial else 0))



def _formats(precision: str, wfmt, afmt, ofmt) -> tuple[int, int, int]:
    code = fmt_code(precision)
    return (code if wfmt is None else wfmt, code if afmt is None else afmt,
            code if ofmt is None else ofmt)


def conv2d(*, n: int, ih: int, iw: int, cin: int, cout: int, kh: int, kw: int,
           act: int, wgt: int, out: int, bias: int = 0, acc: int = 0,
           stride=1, padding=0, dilation=1, groups: int = 1,
           precision: str = "fp32", wfmt: int | None = None, afmt: int | None = None,
           ofmt: int | None = None, relu: bool = False, use_bias: bool | None = None,
           accum: bool = False, partial: bool = False, prune: int = hw.PRUNE_ALL,
           quant: int = 0, fixbits: int = 0, layer: int = 0,
           in_cstride: int | None = None, in_coff: int = 0,
           out_cstride: int | None = None, out_coff: int = 0,
           kg_begin: int = 0, kg_end: int = 0) -> Insn:
    """A CONV2D instruction (NHWC activations, weights [Cout, KH, KW, Cin/groups]).

    Output size is computed here; a geometry that yields no output, groups
    not dividing the channels, or strides/dilations < 1 raise
    :class:`bitlet.BitletValueError` naming the argument.  ``use_bias``
    defaults to ``bias != 0``.
    """
    sh, sw = _as_pair(stride, "stride")
    dh, dw = _as_pair(dilation, "dilation")
    pt, pl, pb, pr = as_padding(padding)
    for name, v in (("n", n), ("ih", ih), ("iw", iw), ("cin", cin), ("cout", cout),
                    ("kh", kh), ("kw", kw), ("groups", groups)):
        if int(v) < 1:
            raise BitletValueError(f"{name} must be >= 1, got {v}")
    if min(sh, sw) < 1:
        raise BitletValueError(f"stride must be >= 1, got {stride!r}")
    if min(dh, dw) < 1:
        raise BitletValueError(f"dilation must be >= 1, got {dilation!r}")
    if cin % groups or cout % groups:
        raise BitletValueError(f"groups={groups} must divide cin={cin} and cout={cout}")
    oh = conv_out_size(ih, kh, sh, dh, pt, pb)
    ow = conv_out_size(iw, kw, sw, dw, pl, pr)
    if oh < 1 or ow < 1:
        raise BitletValueError(
            f"kernel {kh}x{kw} (dilation {dh},{dw}) does not fit the padded input "
            f"{ih}x{iw} (padding {pt},{pl},{pb},{pr})")
    wf, af, of = _formats(precision, wfmt, afmt, ofmt)
    return Insn(opcode=hw.OP_CONV2D, wfmt=wf, afmt=af, ofmt=of,
                flags=flags_word(relu, bool(bias) if use_bias is None else use_bias, accum,
                                 partial),
                prune=prune, quant=quant, act=act, wgt=wgt, bias=bias, out=out, acc=acc,
                n=n, ih=ih, iw=iw, cin=cin, cout=cout, kh=kh, kw=kw, stride=(sh, sw),
                pad=(pt, pl, pb, pr), dilation=(dh, dw), groups=groups, out_hw=(oh, ow),
                out_cstride=cout + out_coff if out_cstride is None else out_cstride,
                out_coff=out_coff,
                in_cstride=cin + in_coff if in_cstride is None else in_cstride,
                in_coff=in_coff, fixbits=fixbits, layer=layer, kg_begin=kg_begin, kg_end=kg_end)


def gemm(*, m: int, k: int, n: int, act: int, wgt: int, out: int, bias: int = 0,
         acc: int = 0, precision: str = "fp32", wfmt: int | None = None,
         afmt: int | None = None, ofmt: int | None = None, relu: bool = False,
         use_bias: bool | None = None, accum: bool = False, partial: bool = False,
         prune: int = hw.PRUNE_ALL, quant: int = 0, fixbits: int = 0, layer: int = 0,
         in_cstride: int | None = None, in_coff: int = 0, out_cstride: int | None = None,
         out_coff: int = 0, kg_begin: int = 0, kg_end: int = 0) -> Insn:
    """A GEMM instruction: ``out[r, :] = W[M, K] @ A[r, :K]`` for ``n`` rows of A.

    Activations are A [n, K] row-major (pixel pitch ``in_cstride``), the
    output [n, M] (pitch ``out_cstride``); weights one row of K per output.
    """
    insn = conv2d(n=n, ih=1, iw=1, cin=k, cout=m, kh=1, kw=1, act=act, wgt=wgt, out=out,
                  bias=bias, acc=acc, precision=precision, wfmt=wfmt, afmt=afmt, ofmt=ofmt,
                  relu=relu, use_bias=use_bias, accum=accum, partial=partial, prune=prune,
                  quant=quant, fixbits=fixbits, layer=layer, in_cstride=in_cstride,
                  in_coff=in_coff, out_cstride=out_cstride, out_coff=out_coff,
                  kg_begin=kg_begin, kg_end=kg_end)
    return insn.replace(opcode=hw.OP_GEMM)


def nop(layer: int = 0) -> Insn:
    """A NOP (does nothing, status OK; still writes a profile record)."""
    return Insn(opcode=hw.OP_NOP, layer=layer)


# ----------------------------------------------------------------------
# Memory extents of an instruction's operands (bytes)
# ----------------------------------------------------------------------
def operand_bytes(insn: Insn) -> dict[str, int]:
    """Bytes spanned by each operand of an instruction (what the kernel checks).

    Keys: ``act``, ``wgt``, ``out`` and, when used, ``bias`` and ``acc``.
    """
    oh, ow = insn.out_hw
    kg0, kg1 = insn.kg_range
    part = 8 if insn.isfix else 4
    out_elem = part if insn.flags & hw.FLAG_PARTIAL else fmt_bytes(insn.ofmt)
    in_px = insn.n * insn.ih * insn.iw
    out_px = insn.n * oh * ow
    out_span = (out_px - 1) * insn.out_cstride + insn.out_coff + insn.cout
    sizes = {
        "act": ((in_px - 1) * insn.in_cstride + insn.in_coff + insn.cin) * fmt_bytes(insn.afmt),
        "wgt": insn.cout * (kg1 - kg0) * hw.GROUP * fmt_bytes(insn.wfmt),
        "out": out_span * out_elem,
    }
    if insn.flags & hw.FLAG_BIAS:
        sizes["bias"] = insn.cout * part
    if insn.flags & hw.FLAG_ACCUM:
        sizes["acc"] = out_span * part
    return sizes


# ----------------------------------------------------------------------
# Profile records
# ----------------------------------------------------------------------
PROFILE_FIELDS = ("status", "layer", "pe_cycles", "ref_cycles", "kernel_cycles",
                  "groups", "scan", "ddr_bytes", "start", "end")


def profile_dtype() -> np.dtype:
    """Structured dtype of one profile record as decoded (all uint64)."""
    return np.dtype([(name, np.uint64) for name in PROFILE_FIELDS])


def decode_profile(words) -> np.ndarray:
    """Profile records -> structured array (fields :data:`PROFILE_FIELDS`).

    Parameters
    ----------
    words : array-like of uint32, shape [n * hw.PROF_WORDS] or [n, hw.PROF_WORDS]

    Returns
    -------
    np.ndarray, shape [n], dtype :func:`profile_dtype` (cycles in kernel
    clock cycles, ``ddr_bytes`` in bus bytes; ``start`` / ``end``: the
    free-running clock when the instruction started / finished, measured on
    a board, the modelled clock in simulation).
    """
    w = np.asarray(words, dtype=np.uint32)
    if w.size % hw.PROF_WORDS:
        raise BitletValueError(f"words must hold whole records of {hw.PROF_WORDS} uint32, "
                               f"got {w.size}")
    w = w.reshape(-1, hw.PROF_WORDS).astype(np.uint64)
    rec = np.zeros(w.shape[0], dtype=profile_dtype())
    rec["status"] = w[:, hw.P_STATUS]
    rec["layer"] = w[:, hw.P_LAYER]
    for name, lo in (("pe_cycles", hw.P_PE_CYCLES_LO), ("ref_cycles", hw.P_REF_CYCLES_LO),
                     ("kernel_cycles", hw.P_KERNEL_CYCLES_LO), ("groups", hw.P_GROUPS_LO),
                     ("scan", hw.P_SCAN_LO), ("ddr_bytes", hw.P_DDR_BYTES_LO),
                     ("start", hw.P_START_LO), ("end", hw.P_END_LO)):
        rec[name] = w[:, lo] | (w[:, lo + 1] << np.uint64(32))
    return rec


def status_name(code: int) -> str:
    """Name of a STATUS value, e.g. ``3 -> "BUS_ERROR"`` (``"UNKNOWN(n)"`` otherwise).

    The names are those of the header's ``BITLET_STATUS_*`` macros (read
    through :mod:`bitlet.hw`), so a status added to ``hls/bitlet_hw.h`` is
    named here without an edit.
    """
    for name, value in hw.constants().items():
        if name.startswith("STATUS_") and isinstance(value, int) and value == code:
            return name[len("STATUS_"):]
    return f"UNKNOWN({code})"
