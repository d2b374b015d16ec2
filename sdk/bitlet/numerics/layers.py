"""Layer functions computed by the compiled kernel source (the cffi reference).

:func:`matmul` and :func:`conv2d` build a small program for the kernel top
(``bitlet_top``, or ``vendor_fp_top`` with ``kernel="vendor"``) in a host
numpy "DDR" array and run it through :mod:`bitlet.engines._reference`, so every
value they return comes from the same C as the hardware.  When K is too
long for the weight buffer the program splits it into K tiles chained with
``FLAG_PARTIAL`` / ``FLAG_ACCUM`` (results are identical, NUMERICS.md s.5).

Precisions: ``"fp32"``; ``"fp16"``/``"bf16"`` (weights, activations are
rounded RNE to that format, which the kernel widens exactly; the result is
binary32); ``"fixed"`` (integer-valued weights |w| < 2^24, activations in
[-2^24, 2^24), integer bias |b| < 2^61, a ``quant`` shift 0..24; the
result holds the saturated integers r of NUMERICS.md s.3, as float32, which
represents them exactly); ``"fixed<n>"``, n = 1..24 (fixed with n-bit
weights, |w| < 2^n: the same results, the width recorded in the
instruction).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bitlet import hw, isa

from bitlet.program import preprocess
from bitlet.engines.reference import LOCK
from bitlet.errors import BitletTypeError, BitletValueError, BusError, DeviceError

_ARENA_BASE = 0x4000_0000        # a non-zero device base exercises address translation
_ALIGN = 64
_KERNELS = ("bitlet", "vendor")


# ----------------------------------------------------------------------
# A host-side DDR arena and the kernel call
# ----------------------------------------------------------------------
@dataclass
class Arena:
    """A bump allocator over a uint32 word array standing for device DDR."""

    base: int = _ARENA_BASE
    chunks: list = field(default_factory=list)
    size: int = 0

    def add(self, words, *, nbytes: int | None = None) -> int:
        """Place uint32 ``words`` (or ``nbytes`` zero bytes); return the device address."""
        data = np.zeros(-(-nbytes // 4), np.uint32) if words is None \
            else np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
        addr = self.base + self.size
        self.chunks.append((self.size // 4, data))
        self.size += -(-data.size * 4 // _ALIGN) * _ALIGN
        return addr

    def reserve(self, nbytes: int) -> int:
        """Zero-filled region of ``nbytes``; returns its device address."""
        return self.add(None, nbytes=max(int(nbytes), 4))

    def build(self) -> np.ndarray:
        """The DDR image (uint32 words)."""
        mem = np.zeros(max(self.size // 4, 1), dtype=np.uint32)
        for start, data in self.chunks:
            mem[start:start + data.size] = data
        return mem


def run_kernel(mem: np.ndarray, *, prog_addr: int, n_insn: int, prof_addr: int = 0,
               mem_base: int = _ARENA_BASE, kernel: str = "bitlet") -> dict:
    """Call a kernel top on ``mem`` (modified in place).

    Returns a dict with ``status``, ``insn_done``, the ID outputs
    (``id_magic``, ``id_version``, ``id_config``, ``id_act_buf``,
    ``id_wgt_buf``, ``id_out_buf``) and ``clock`` (modelled cycles of the
    run: the kernel's `timestamp` input is 0 here).  The kernel's m_axi port
    is ``hw.AXI_BYTES`` wide: it sees the leading whole beats of ``mem``.
    """
    from bitlet.engines.reference import ffi, lib

    if kernel not in _KERNELS:
        raise BitletValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if mem.dtype != np.uint32 or not mem.flags.c_contiguous:
        raise BitletTypeError("mem must be a C-contiguous uint32 array")
    outs = {name: ffi.new("uint32_t *") for name in (
        "status", "insn_done", "id_magic", "id_version", "id_config", "id_act_buf",
        "id_wgt_buf", "id_out_buf")}
    clock, timestamp = ffi.new("uint64_t *"), ffi.new("uint64_t *", 0)
    top = lib.bitlet_top if kernel == "bitlet" else lib.vendor_fp_top
    size = mem.size * 4 // hw.AXI_BYTES * hw.AXI_BYTES
    window = mem[:size // 4].view(np.uint64) if size else np.zeros(1, np.uint64)
    with LOCK:  # the process-wide lock: the tops' buffers are static (_reference_lock)
        top(ffi.from_buffer("uint64_t[]", window), mem_base, size, prog_addr, n_insn,
            prof_addr, timestamp, *outs.values(), clock)
    res = {name: int(ptr[0]) for name, ptr in outs.items()}
    res["clock"] = int(clock[0])
    return res


def run_program(arena: Arena, insns: list, *, kernel: str = "bitlet"):
    """Place ``insns`` and a profile area in ``arena``, run them, return (mem, profile).

    Raises :class:`bitlet.DeviceError` (:class:`bitlet.BusError` for bus
    errors) naming the failing instruction and its status.
    """
    prog = arena.add(isa.program_words(insns))
    prof = arena.reserve(len(insns) * hw.PROF_BYTES)
    mem = arena.build()
    res = run_kernel(mem, prog_addr=prog, n_insn=len(insns), prof_addr=prof,
                     mem_base=arena.base, kernel=kernel)
    if res["status"] != hw.STATUS_OK:
        err = BusError if res["status"] == hw.STATUS_BUS_ERROR else DeviceError
        raise err(f"{kernel} kernel stopped at instruction {res['insn_done']} of {len(insns)} "
                  f"with status {isa.status_name(res['status'])}")
    off = (prof - arena.base) // 4
    return mem, isa.decode_profile(mem[off:off + len(insns) * hw.PROF_WORDS])


# ----------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------
_FIXED = "fixed"


def _parse_precision(precision) -> tuple[int, int]:
    """(format code, weight bits) of a precision name.

    ``"fixed<n>"`` (n = 1..24) is fixed mode with n-bit weights (|w| < 2^n,
    n bit columns); ``"fixed"`` is ``"fixed24"``; float formats have 0 bits.
    """
    if isinstance(precision, str) and precision.startswith(_FIXED) \
            and precision[len(_FIXED):].isdigit():
        bits = int(precision[len(_FIXED):])
        if not 1 <= bits <= hw.FIXED_MAX_BITS:
            raise BitletValueError(
                f"precision {precision!r}: fixed<n> needs n in 1..{hw.FIXED_MAX_BITS}")
        return hw.FMT_FIXED, bits
    if not isinstance(precision, str) or precision not in isa.FORMATS:
        raise BitletValueError(
            f"precision must be one of {sorted(isa.FORMATS)} or 'fixed<n>' "
            f"(n = 1..{hw.FIXED_MAX_BITS}), got {precision!r}")
    code = isa.fmt_code(precision)
    return code, hw.FIXED_MAX_BITS if code == hw.FMT_FIXED else 0


def _conv_operands(x, w, groups, precision):
    """Checked conv2d operands: ``(fmt, bits, x [N,H,W,Cin], w [Co,KH,KW,Cin/g], groups)``."""
    fmt, bits = _parse_precision(precision)
    fixed = fmt == hw.FMT_FIXED
    x = _operand(x, "x", 4, fixed)
    w = _operand(w, "w", 4, fixed)
    _check_weight_bits(w, bits, precision)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise BitletValueError(f"groups must be an int >= 1, got {groups!r}")
    cin, cout = x.shape[3], w.shape[0]
    if cin % groups or cout % groups:
        raise BitletValueError(f"groups={groups} must divide Cin={cin} and Cout={cout}")
    if w.shape[3] * groups != cin:
        raise BitletValueError(
            f"w has Cin/groups={w.shape[3]} but x has Cin={cin} with groups={groups}")
    return fmt, bits, x, w, int(groups)


def _conv_geometry(stride, padding, dilation) -> tuple[tuple, tuple, tuple]:
    """Checked ``(stride (h, w), padding (t, l, b, r), dilation (h, w))`` of a conv2d.

    Every value must be an int (not a bool or a float) that fits its 16-bit
    instruction field (``hw.HALF_MASK``): one refusal for every engine, before
    any of them computes.
    """
    def ints(value, name, sizes, least):
        seq = [value] if np.ndim(value) == 0 else list(value)
        if len(seq) not in sizes or any(isinstance(v, (bool, np.bool_))
                                        or not isinstance(v, (int, np.integer)) for v in seq):
            raise BitletValueError(f"{name} must be an int or {' or '.join(map(str, sizes[1:]))} "
                                   f"ints, got {value!r}")
        if not all(least <= v <= hw.HALF_MASK for v in seq):
            raise BitletValueError(f"{name} must be in {least}..{hw.HALF_MASK} (a 16-bit "
                                   f"instruction field), got {value!r}")
        seq = [int(v) for v in seq] * (sizes[-1] // len(seq))
        return tuple(seq)

    return (ints(stride, "stride", (1, 2), 1), ints(padding, "padding", (1, 2, 4), 0),
            ints(dilation, "dilation", (1, 2), 1))


def _matmul_operands(w, a, precision):
    """Checked matmul operands: ``(fmt, bits, w [M, K], a [K, N])``."""
    fmt, bits = _parse_precision(precision)
    fixed = fmt == hw.FMT_FIXED
    w = _operand(w, "w", 2, fixed)
    a = _operand(a, "a", 2, fixed)
    _check_weight_bits(w, bits, precision)
    if w.shape[1] != a.shape[0]:
        raise BitletValueError(f"w [M, K] and a [K, N] disagree on K: {w.shape} vs {a.shape}")
    return fmt, bits, w, a


def _check_weight_bits(w: np.ndarray, bits: int, precision) -> None:
    """Fixed weights of ``precision="fixed<n>"`` must satisfy |w| < 2^n."""
    if bits and bits < hw.FIXED_MAX_BITS and w.size:
        biggest = float(np.max(np.abs(w.astype(np.float64))))
        if biggest >= 1 << bits:
            raise BitletValueError(
                f"w: precision={precision!r} takes integer weights |w| < 2^{bits}, "
                f"got max |w| = {biggest:g}")


def _check_prune(prune) -> int:
    if isinstance(prune, bool) or not isinstance(prune, (int, np.integer)):
        raise BitletTypeError(f"prune must be an int mask, got {type(prune).__name__}")
    if not 0 <= int(prune) <= hw.PRUNE_MASK:
        raise BitletValueError(f"prune must be a 24-bit mask (0..{hw.PRUNE_MASK:#x}), got {prune}")
    return int(prune)


def _check_quant(quant, fixed: bool) -> int:
    if not fixed:
        if quant not in (None, 0):
            raise BitletValueError("quant is only used with precision='fixed'")
        return 0
    if quant is None:
        raise BitletValueError("precision='fixed' needs quant (0..24)")
    if isinstance(quant, bool) or not isinstance(quant, (int, np.integer)) \
            or not 0 <= int(quant) <= hw.QUANT_MAX:
        raise BitletValueError(f"quant must be an int in 0..{hw.QUANT_MAX}, got {quant!r}")
    return int(quant)


def _check_relu(relu) -> bool:
    if not isinstance(relu, (bool, np.bool_)):
        raise BitletTypeError(f"relu must be a bool, got {type(relu).__name__}")
    return bool(relu)


def _operand(x, name: str, ndim: int, fixed: bool) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise BitletValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize == 4:
        arr = arr.astype(np.float32, copy=False)        # any byte order
    if not fixed and arr.dtype != np.float32:
        raise BitletTypeError(f"{name} must be float32, got {arr.dtype}")
    if fixed and arr.dtype.kind not in "iuf":
        raise BitletTypeError(f"{name} must hold integers for precision='fixed', got {arr.dtype}")
    if 0 in arr.shape:
        raise BitletValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def _bias_words(bias, cout: int, fixed: bool):
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.shape != (cout,):
        raise BitletValueError(f"bias must have shape ({cout},), got {b.shape}")
    if not fixed and b.dtype != np.float32:
        raise BitletTypeError(f"bias must be float32, got {b.dtype}")
    return preprocess.to_words(preprocess.pack_bias(b, fixed=fixed))


# ----------------------------------------------------------------------
# One convolution as a kernel program
# ----------------------------------------------------------------------
def _k_tiles(n_kg: int) -> list[tuple[int, int]]:
    per = hw.WGT_BUF_WORDS // (hw.N_PE * hw.GROUP)
    return [(b, min(b + per, n_kg)) for b in range(0, n_kg, per)]


def _dim_names(insn: isa.Insn) -> dict[str, int]:
    """The instruction's dimensions, labelled with the user's argument names."""
    if insn.opcode == hw.OP_GEMM:
        return {"a: N (columns)": insn.n, "w: M (rows)": insn.cout, "w and a: K": insn.cin}
    return {"x: N": insn.n, "x: H": insn.ih, "x: W": insn.iw, "x: Cin": insn.cin,
            "w: Cout": insn.cout, "w: KH": insn.kh, "w: KW": insn.kw}


def _check_limits(insn: isa.Insn) -> None:
    """Refuse, naming the argument, dimensions and K beyond the kernel's limits
    (``hw.MAX_DIM``, ``hw.MAX_K``; fixed mode ``hw.FIXED_MAX_K``, NUMERICS.md s.6)."""
    for label, value in _dim_names(insn).items():
        if value > hw.MAX_DIM:
            raise BitletValueError(
                f"{label}={value} exceeds the kernel's limit of {hw.MAX_DIM}; split the layer")
    k_max = hw.FIXED_MAX_K if insn.isfix else hw.MAX_K
    if insn.k > k_max:
        mode = "fixed mode " if insn.isfix else ""
        label = "w and a: K" if insn.opcode == hw.OP_GEMM else "w: K = KH*KW*Cin/groups"
        raise BitletValueError(f"{label}={insn.k} exceeds the {mode}limit K <= {k_max}")


def _check_buffers(insn: isa.Insn, has_bias: bool) -> None:
    """Refuse, naming the argument and the sizes, a layer beyond the kernel's
    limits or one its on-chip buffers cannot hold."""
    _check_limits(insn)
    words = 2 if insn.isfix else 1
    rows = (insn.kh - 1) * insn.dilation[0] + 1
    need = rows * insn.iw * insn.cin
    if need > hw.ACT_BUF_WORDS:
        raise BitletValueError(
            f"x: {rows} input rows of W={insn.iw} x Cin={insn.cin} ({need} words) exceed "
            f"the activation buffer ({hw.ACT_BUF_WORDS} words); split the input")
    if insn.out_hw[1] * hw.N_PE * words > hw.OUT_BUF_WORDS:
        raise BitletValueError(
            f"x: output width {insn.out_hw[1]} exceeds the output row buffer "
            f"({hw.OUT_BUF_WORDS // (hw.N_PE * words)} pixels); split the input")
    if has_bias and insn.cout * words > hw.BIAS_BUF_WORDS:
        raise BitletValueError(
            f"bias: {insn.cout} output channels exceed the bias buffer "
            f"({hw.BIAS_BUF_WORDS // words}); split the output channels")


def _conv_program(x, w, *, stride, padding, dilation, groups, bias, relu, prune, fmt, quant,
                  kernel, gemm=False, fixbits=0):
    """Run an NHWC convolution on the kernel; returns (raw output elements, profile)."""
    fixed = fmt == hw.FMT_FIXED
    if kernel not in _KERNELS:
        raise BitletValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if fixed and kernel == "vendor":
        raise BitletValueError("precision='fixed' is not supported by the vendor-FP kernel")
    ofmt = hw.FMT_FIXED if fixed else hw.FMT_FP32      # results are binary32 (or fixed r)
    n, ih, iw, cin = x.shape
    cout, kh, kw, _ = w.shape
    arena = Arena()
    act = arena.add(preprocess.to_words(
        preprocess.pack_elements(x, fmt, name="a" if gemm else "x")))
    bias_words = _bias_words(bias, cout, fixed)
    bias_addr = arena.add(bias_words) if bias_words is not None else 0
    base = isa.conv2d(n=n, ih=ih, iw=iw, cin=cin, cout=cout, kh=kh, kw=kw, act=act, wgt=0,
                      out=0, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      wfmt=fmt, afmt=fmt, ofmt=ofmt, prune=prune, quant=quant,
                      fixbits=fixbits if fixed else 0)
    if gemm:
        base = base.replace(opcode=hw.OP_GEMM)
    _check_buffers(base, bias_words is not None)
    oh, ow = base.out_hw
    out_elems = n * oh * ow * cout
    out_bytes = isa.fmt_bytes(ofmt)
    part_bytes = 8 if fixed else 4
    tiles = _k_tiles(base.n_kgroups)
    partial = arena.reserve(out_elems * part_bytes) if len(tiles) > 1 else 0
    out = arena.reserve(out_elems * out_bytes)
    insns = []
    for i, (kg0, kg1) in enumerate(tiles):
        last = i == len(tiles) - 1
        wgt = arena.add(preprocess.to_words(
            preprocess.to_device_weights(w, fmt, k_groups=(kg0, kg1))))
        insns.append(base.replace(
            wgt=wgt, kg_begin=kg0, kg_end=kg1, out=out if last else partial,
            acc=partial if i else 0, bias=bias_addr if last else 0,
            flags=isa.flags_word(relu and last, bias_words is not None and last, i > 0, not last)))
    mem, prof = run_program(arena, insns, kernel=kernel)
    off = (out - arena.base) // 4
    words = mem[off:off + -(-out_elems * out_bytes // 4)]
    raw = preprocess.from_words(words, out_elems, out_bytes)
    return raw.reshape(n, oh, ow, cout), prof


def _summarise(prof: np.ndarray) -> dict:
    """Sum a program's profile records into one dict of ints."""
    return {name: int(prof[name].sum()) for name in isa.PROFILE_FIELDS
            if name not in ("status", "layer", "start", "end")}


def _result(raw, fmt, prof, return_profile):
    ofmt = hw.FMT_FIXED if fmt == hw.FMT_FIXED else hw.FMT_FP32
    out = preprocess.unpack_outputs(raw, ofmt).astype(np.float32)
    return (out, _summarise(prof)) if return_profile else out


# ----------------------------------------------------------------------
# Public layer functions
# ----------------------------------------------------------------------
def _fast_engine(engine, kernel):
    """``bitlet.engines.fast`` when ``engine`` (None: the numerics default) is "fast" and
    the kernel is Bitlet's, else None (run ``bitlet_top``/``vendor_fp_top``)."""
    from bitlet import numerics

    name = numerics.default_engine() if engine is None else engine
    if name not in ("fast", "reference"):
        raise BitletValueError(f"engine must be None, 'fast' or 'reference', got {engine!r}")
    if name == "reference" or kernel != "bitlet":
        return None
    from bitlet.engines import fast

    return fast


def conv2d(x, w, *, stride=1, padding=0, dilation=1, groups=1, bias=None, relu=False,
           prune=0xFFFFFF, precision="fp32",
           quant=None, kernel="bitlet", return_profile=False, engine=None):
    """2-D convolution on the kernel (NHWC), bit-exact to the hardware.

    Parameters
    ----------
    x : float32 [N, H, W, Cin]
        Activations (integers in [-2^24, 2^24) for ``precision="fixed"``).
    w : float32 [Cout, KH, KW, Cin / groups]
        Weights (integers with |w| < 2^24 for fixed).
    stride, dilation : int or (h, w)
    padding : int, (h, w) or (top, left, bottom, right)
    groups : int, dividing Cin and Cout (groups = Cin = Cout: depthwise)
    bias : float32 [Cout] (fixed: integers, |b| < 2^61), optional
    relu : bool
    prune : int, 24-bit bit-column mask
    precision : "fp32", "fp16", "bf16", "fixed" or "fixed<n>"
        fp16/bf16: operands rounded (RNE) to that format, widened exactly by
        the kernel; the result is binary32.  ``"fixed<n>"``, n = 1..24:
        fixed mode with n-bit weights, |w| < 2^n (``"fixed"`` = ``"fixed24"``);
        the instruction carries n (field fixbits), results are those of
        ``"fixed"``.
    quant : int 0..24, fixed precisions only (the output shift)
    kernel : "bitlet" (default) or "vendor" (the vendor-FP baseline, float only)
    return_profile : bool
        Also return the summed profile counters (dict: ``pe_cycles``,
        ``ref_cycles``, ``kernel_cycles``, ``groups``, ``scan``, ``ddr_bytes``).
    engine : None, "fast" or "reference"
        Who computes it: the fast emulator or the kernel's own C source
        (``bitlet_top``); None = :func:`bitlet.numerics.default_engine`.  Both
        give the same bits and the same profile.  The vendor kernel always
        runs on the reference.

    Returns
    -------
    float32 [N, OH, OW, Cout] (and the profile dict). NaN results are the
    canonical NaN (NUMERICS.md F3); no result is -0.
    """
    fmt, bits, x, w, groups = _conv_operands(x, w, groups, precision)
    stride, padding, dilation = _conv_geometry(stride, padding, dilation)
    relu = _check_relu(relu)
    fixed = fmt == hw.FMT_FIXED
    fast = _fast_engine(engine, kernel)
    if fast is not None:
        return fast.conv2d(x, w, stride=stride, padding=padding, dilation=dilation,
                           groups=int(groups), bias=bias, relu=relu, prune=prune,
                           precision=precision, quant=quant, return_profile=return_profile)
    raw, prof = _conv_program(
        x, w, stride=stride, padding=padding, dilation=dilation, groups=int(groups), bias=bias,
        relu=_check_relu(relu), prune=_check_prune(prune), fmt=fmt, quant=_check_quant(quant, fixed),
        kernel=kernel, fixbits=bits)
    return _result(raw, fmt, prof, return_profile)


def matmul(w, a, *, bias=None, relu=False, prune=0xFFFFFF, precision="fp32", quant=None,
           kernel="bitlet", return_profile=False, engine=None):
    """Matrix product ``W @ A`` on the kernel (GEMM), bit-exact to the hardware.

    Parameters
    ----------
    w : float32 [M, K]
    a : float32 [K, N]
    bias : float32 [M], optional (added to every column)
    relu, prune, precision, quant, kernel, return_profile, engine : as :func:`conv2d`

    Returns
    -------
    float32 [M, N] (and the profile dict).
    """
    fmt, bits, w, a = _matmul_operands(w, a, precision)
    fixed = fmt == hw.FMT_FIXED
    fast = _fast_engine(engine, kernel)
    if fast is not None:
        _check_relu(relu), _check_prune(prune), _check_quant(quant, fixed)  # errors in the order below
        if fixed:
            preprocess.pack_elements(a, fmt, name="a")  # range errors name `a`, as below
        return fast.matmul(w, a, bias=bias, relu=relu, prune=prune, precision=precision,
                           quant=quant, return_profile=return_profile)
    m, k = w.shape
    n = a.shape[1]
    raw, prof = _conv_program(
        np.ascontiguousarray(a.T).reshape(n, 1, 1, k), w.reshape(m, 1, 1, k), stride=1,
        padding=0, dilation=1, groups=1, bias=bias, relu=_check_relu(relu), prune=_check_prune(prune),
        fmt=fmt, quant=_check_quant(quant, fixed), kernel=kernel, gemm=True, fixbits=bits)
    return _result(raw.reshape(n, m).T, fmt, prof, return_profile)
