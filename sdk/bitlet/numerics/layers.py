"""Layer functions computed by the kernel: its compiled C source or the fast
emulator, bit for bit the same.

:func:`matmul` and :func:`conv2d` build the layer's instructions with the
one instruction builder (:mod:`bitlet.program.instructions`).  On the
reference engine they run them through a kernel top of
:mod:`bitlet.engines.reference` (``bitlet_top``, or ``vendor_fp_top`` with
``kernel="vendor_fp"``) in a host "DDR" image placed by the device arena
(:class:`bitlet.drivers.arena.MemoryImage`), so every value they return
comes from the same C as the hardware; on the fast engine
(:mod:`bitlet.engines.fast`) each instruction runs straight on numpy
buffers.  When K is too long for the weight buffer the layer is split into
K tiles (:func:`bitlet.program.schedule.k_tiles`) chained with
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

from functools import lru_cache

import numpy as np

from bitlet import hw, isa
from bitlet.drivers.arena import MemoryImage
from bitlet.engines import check_kernel, fast
from bitlet.engines.reference import run_kernel
from bitlet.errors import BitletTypeError, BitletValueError, BusError, DeviceError
from bitlet.numerics.registry import BUILT_IN, engine_name
from bitlet.program import preprocess
from bitlet.program.instructions import layer_instructions, partial_buffers
from bitlet.program.schedule import LayerGeometry, k_tiles, over_limits

_ARENA_BASE = 0x4000_0000        # a non-zero device base exercises address translation


# ----------------------------------------------------------------------
# The reference kernel tops on a host DDR image
# ----------------------------------------------------------------------
def run_program(image: MemoryImage, insns: list, *, kernel: str = "bitlet"):
    """Place ``insns`` and a profile area in ``image``, run them, return (mem, profile).

    Raises :class:`bitlet.DeviceError` (:class:`bitlet.BusError` for bus
    errors) naming the failing instruction and its status.
    """
    prog = image.add(isa.program_words(insns))
    prof = image.reserve(len(insns) * hw.PROF_BYTES)
    mem = image.build()
    res = run_kernel(mem, prog_addr=prog, n_insn=len(insns), prof_addr=prof,
                     mem_base=image.base, kernel=kernel)
    if res["status"] != hw.STATUS_OK:
        err = BusError if res["status"] == hw.STATUS_BUS_ERROR else DeviceError
        raise err(f"{kernel} kernel stopped at instruction {res['insn_done']} of {len(insns)} "
                  f"with status {isa.status_name(res['status'])}")
    off = (prof - image.base) // 4
    return mem, isa.decode_profile(mem[off:off + len(insns) * hw.PROF_WORDS])


def memory_image() -> MemoryImage:
    """An empty host DDR image at the base address the layer functions use."""
    return MemoryImage(_ARENA_BASE)


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


#: float operands widened exactly to float32 (bfloat16 is ml_dtypes' type, when installed)
_NARROW_FLOATS = ("float16", "bfloat16")


def _operand(x, name: str, ndim: int, fixed: bool) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise BitletValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize == 4:
        arr = arr.astype(np.float32, copy=False)        # any byte order
    elif not fixed and arr.dtype.name in _NARROW_FLOATS:
        arr = arr.astype(np.float32)                    # float16 / bfloat16: widened exactly
    if not fixed and arr.dtype != np.float32:
        raise BitletTypeError(f"{name} must be float32 (or float16 / bfloat16, widened exactly), "
                              f"got {arr.dtype}")
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
# One layer's checks
# ----------------------------------------------------------------------
# the user's names of LayerGeometry's dimensions (program.schedule.over_limits)
_CONV_LABELS = {"n": "x: N", "ih": "x: H", "iw": "x: W", "cin": "x: Cin", "cout": "w: Cout",
                "kh": "w: KH", "kw": "w: KW", "k": "w: K = KH*KW*Cin/groups"}
_GEMM_LABELS = {"n": "a: N (columns)", "cout": "w: M (rows)", "cin": "w and a: K",
                "k": "w and a: K"}


def _check_buffers(geo: LayerGeometry, has_bias: bool) -> None:
    """Refuse, naming the argument and the sizes, a layer beyond the kernel's
    limits (``hw.MAX_DIM``, ``hw.MAX_K``; fixed mode ``hw.FIXED_MAX_K``,
    NUMERICS.md s.6) or one its on-chip buffers cannot hold."""
    labels = _GEMM_LABELS if geo.gemm else _CONV_LABELS
    for name, value, limit in over_limits(geo):
        if name == "k":
            mode = "fixed mode " if geo.fixed else ""
            raise BitletValueError(f"{labels[name]}={value} exceeds the {mode}limit K <= {limit}")
        raise BitletValueError(
            f"{labels[name]}={value} exceeds the kernel's limit of {limit}; split the layer")
    words = 2 if geo.fixed else 1
    rows = (geo.kh - 1) * geo.dil[0] + 1
    need = rows * geo.iw * geo.cin
    if need > hw.ACT_BUF_WORDS:
        raise BitletValueError(
            f"x: {rows} input rows of W={geo.iw} x Cin={geo.cin} ({need} words) exceed "
            f"the activation buffer ({hw.ACT_BUF_WORDS} words); split the input")
    if geo.out_hw[1] * hw.N_PE * words > hw.OUT_BUF_WORDS:
        raise BitletValueError(
            f"x: output width {geo.out_hw[1]} exceeds the output row buffer "
            f"({hw.OUT_BUF_WORDS // (hw.N_PE * words)} pixels); split the input")
    if has_bias and geo.cout * words > hw.BIAS_BUF_WORDS:
        raise BitletValueError(
            f"bias: {geo.cout} output channels exceed the bias buffer "
            f"({hw.BIAS_BUF_WORDS // words}); split the output channels")


def _summarise(prof: np.ndarray) -> dict:
    """Sum a program's profile records into one dict of ints."""
    return {name: int(prof[name].sum()) for name in isa.PROFILE_FIELDS
            if name not in ("status", "layer", "start", "end")}


def _result(raw, fmt, prof, return_profile):
    """float32 results of raw output words (uint32; fixed: the r words).
    fp32 words of a C-contiguous array the caller made for this call are
    returned as a float32 view of it, without a copy."""
    if fmt != hw.FMT_FIXED and raw.dtype == np.uint32 and raw.flags.c_contiguous:
        out = raw.view(np.float32)
    else:
        ofmt = hw.FMT_FIXED if fmt == hw.FMT_FIXED else hw.FMT_FP32
        out = preprocess.unpack_outputs(raw, ofmt).astype(np.float32)
    return (out, _summarise(prof)) if return_profile else out


# ----------------------------------------------------------------------
# Public layer functions
# ----------------------------------------------------------------------
def _want_cycles(cycles, return_profile: bool) -> bool:
    """Whether to run the cycle model (and return the profile)."""
    if cycles is None:
        return bool(return_profile)
    if not isinstance(cycles, (bool, np.bool_)):
        raise BitletTypeError(f"cycles must be a bool or None, got {type(cycles).__name__}")
    if return_profile and not cycles:
        raise BitletValueError("cycles=False contradicts return_profile=True (the profile "
                               "is the cycle accounting)")
    return bool(cycles)


def _layer_engine(engine, kernel: str) -> str:
    """``"fast"`` or ``"reference"``: who runs a layer of ``kernel``.

    None: :func:`bitlet.numerics.default_engine` for the Bitlet kernel, the
    reference for the vendor-FP kernel (the fast emulator has only the
    Bitlet kernel); asking for ``"fast"`` with ``kernel="vendor_fp"`` is an
    error.
    """
    if engine is not None and engine not in BUILT_IN:
        raise BitletValueError(f"engine must be None, 'fast' or 'reference', got {engine!r}")
    if kernel != "bitlet":
        if engine == "fast":
            raise BitletValueError(f"engine='fast' emulates the bitlet kernel only, not "
                                   f"kernel={kernel!r}; use engine='reference' (the default "
                                   "for it)")
        return "reference"
    name = engine_name(engine)
    return name if name in BUILT_IN else "reference"   # a custom group engine: the C


@lru_cache(maxsize=64)
def _program(shape: tuple, stride, padding, dilation, groups: int, gemm: bool, fmt: int,
             relu: bool, bias: bool, prune: int, quant: int, fixbits: int):
    """A layer's checked geometry, K tiles and instructions, with each
    instruction's encoding (read-only uint32 [hw.INSN_WORDS]); cached, as
    a model's layers are called again with the same shapes.

    ``shape`` is ``(n, ih, iw, cin, cout, kh, kw)``.  Raises what
    :func:`_check_buffers` and the instruction builder raise.
    """
    fixed = fmt == hw.FMT_FIXED
    ofmt = hw.FMT_FIXED if fixed else hw.FMT_FP32      # results are binary32 (or fixed r)
    geo = LayerGeometry("layer", *shape, stride, padding, dilation, groups, gemm=gemm,
                        fixed=fixed)
    _check_buffers(geo, bias)
    tiles = k_tiles(geo.n_kg, hw.N_PE, hw.WGT_BUF_WORDS)
    insns = layer_instructions(geo, tiles, wfmt=fmt, ofmt=ofmt, relu=relu, bias=bias,
                               prune=prune, quant=quant,
                               fixbits=fixbits if fixed else 0)   # checks the geometry
    words = []
    for item in insns:
        enc = np.ascontiguousarray(isa.program_words([item.insn]), dtype=np.uint32)
        enc.setflags(write=False)
        words.append(enc)
    return geo, tiles, insns, tuple(words)


def _host_elements(x: np.ndarray, fmt: int, name: str) -> np.ndarray:
    """Device elements of ``fmt`` for the fast engine, C-contiguous, of
    ``x``'s shape: binary32 operands as a uint32 view without a copy when
    ``x`` is C-contiguous (the engine only reads them); the other formats
    are converted (and fixed operands checked) by
    :func:`bitlet.program.preprocess.pack_elements`."""
    if fmt == hw.FMT_FP32:
        return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return np.ascontiguousarray(preprocess.pack_elements(x, fmt, name=name))


def _host_weights(w: np.ndarray, fmt: int) -> np.ndarray:
    """Weights [Cout, K] (device element order, no K padding) for the fast engine."""
    mat = preprocess.weight_matrix(w)
    if fmt == hw.FMT_FIXED:
        return np.ascontiguousarray(preprocess.fixed_weight_words(mat))
    return _host_elements(mat, fmt, "w")


def _run_fast(x, w, bias_words, geo, tiles, insns, words, *, fmt, gemm, threads, cycles):
    """The layer on the fast engine, straight on the host arrays: a GEMM's
    A [K, N] is read and C [M, N] written in place (planar host layouts; a
    Fortran-ordered A is read as the device layout A^T),
    weights are read from the [Cout, K] matrix without padding
    (:meth:`bitlet.engines.fast.FastEngine.run_layer`).  Returns (raw
    outputs, uint32 [M, N] for a GEMM, else [N, OH, OW, Cout]; profile)."""
    eng = fast.engine()
    oh, ow = geo.out_hw
    out_elems = geo.n * oh * ow * geo.cout
    part_words = 2 if geo.fixed else 1                 # partial sums: int64 / fp32
    planar = gemm and not (x.flags.f_contiguous and not x.flags.c_contiguous)
    # a Fortran-ordered A is A^T [N, K] in C order: the device layout as it is
    act = _host_elements(x if planar or not gemm else x.T, fmt, "a" if gemm else "x")
    wgt = _host_weights(w, fmt)
    k = wgt.shape[1]
    out_shape = (geo.cout, geo.n) if gemm else (geo.n, oh, ow, geo.cout)
    buffers = {"out": np.empty(out_shape, np.uint32),
               **{name: np.empty(out_elems * part_words, np.uint32)
                  for name in partial_buffers(len(tiles))}}
    prof = np.zeros(len(insns), dtype=isa.profile_dtype())
    clock = 0                                          # the kernel's clock, as run_kernel's
    for i, item in enumerate(insns):
        final = item.out == "out"
        prof[i] = eng.run_layer(
            item.insn, {"act": act, "wgt": wgt, "out": buffers[item.out],
                        "acc": buffers[item.acc] if item.acc else None,
                        "bias": bias_words if item.bias else None},
            timestamp=clock, threads=threads, cycles=cycles, words=words[i],
            act_t=geo.n if planar else 0, out_t=geo.n if gemm and final else 0,
            wgt_ld=k, wgt_offset=tiles[item.k_tile][0] * hw.GROUP)
        clock = int(prof[i]["end"])
    return buffers["out"], prof


def _run_layer(x, w, *, stride, padding, dilation, groups, bias, relu, prune, fmt, quant,
               kernel, engine, threads, cycles, gemm=False, fixbits=0):
    """Run one layer: an NHWC convolution (x [N, H, W, Cin], w [Cout, KH,
    KW, Cin/groups]), or with ``gemm`` a GEMM (x = A [K, N], w = W [M, K])
    as a 1x1 convolution of N pixels; returns (raw output elements
    [N, OH, OW, Cout], GEMM: [M, N]; profile records)."""
    fixed = fmt == hw.FMT_FIXED
    if fixed and kernel == "vendor_fp":
        raise BitletValueError("precision='fixed' is not supported by the vendor-FP kernel")
    ofmt = hw.FMT_FIXED if fixed else hw.FMT_FP32      # results are binary32 (or fixed r)
    if gemm:
        (k, n), cout = x.shape, w.shape[0]
        shape = (n, 1, 1, k, cout, 1, 1)
    else:
        shape = x.shape + w.shape[:3]
    bias_words = _bias_words(bias, shape[4], fixed)
    geo, tiles, insns, words = _program(shape, stride, padding, dilation, groups, gemm, fmt,
                                        relu, bias_words is not None, prune, quant, fixbits)
    if engine == "fast":
        return _run_fast(x, w, bias_words, geo, tiles, insns, words, fmt=fmt, gemm=gemm,
                         threads=threads, cycles=cycles)
    if gemm:
        x = x.T.reshape(shape[:4])
        w = w.reshape(shape[4:] + (shape[3],))
    n, _, _, _, cout, _, _ = shape
    act = np.ascontiguousarray(preprocess.pack_elements(x, fmt, name="a" if gemm else "x"))
    oh, ow = geo.out_hw
    out_elems = n * oh * ow * cout
    part_words = 2 if fixed else 1                     # partial sums: int64 / fp32
    weights = [preprocess.to_device_weights(w, fmt, k_groups=kt) for kt in tiles]
    image = memory_image()
    addr = {"act": image.add(preprocess.to_words(act))}
    addr["bias"] = image.add(bias_words) if bias_words is not None else 0
    for name in partial_buffers(len(tiles)):
        addr[name] = image.reserve(out_elems * part_words * 4)
    out_bytes = isa.fmt_bytes(ofmt)
    addr["out"] = image.reserve(out_elems * out_bytes)
    wgt = [image.add(preprocess.to_words(words)) for words in weights]
    program = [item.insn.replace(act=addr["act"], wgt=wgt[item.k_tile], out=addr[item.out],
                                 acc=addr[item.acc] if item.acc else 0,
                                 bias=addr["bias"] if item.bias else 0) for item in insns]
    mem, prof = run_program(image, program, kernel=kernel)
    off = (addr["out"] - image.base) // 4
    words = mem[off:off + -(-out_elems * out_bytes // 4)]
    raw = preprocess.from_words(words, out_elems, out_bytes)
    if gemm:
        return raw.reshape(n, cout).T, prof
    return raw.reshape(n, oh, ow, cout), prof


def conv2d(x, w, *, stride=1, padding=0, dilation=1, groups=1, bias=None, relu=False,
           prune=hw.PRUNE_ALL, precision="fp32", quant=None, kernel="bitlet",
           return_profile=False, engine=None, threads=None, cycles=None):
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
    prune : int, 24-bit bit-column mask (default ``hw.PRUNE_ALL``: every column)
    precision : "fp32", "fp16", "bf16", "fixed" or "fixed<n>"
        fp16/bf16: operands rounded (RNE) to that format, widened exactly by
        the kernel; the result is binary32.  ``"fixed<n>"``, n = 1..24:
        fixed mode with n-bit weights, |w| < 2^n (``"fixed"`` = ``"fixed24"``);
        the instruction carries n (field fixbits), results are those of
        ``"fixed"``.
    quant : int 0..24, fixed precisions only (the output shift)
    kernel : "bitlet" (default) or "vendor_fp" (the vendor-FP baseline, float only)
    return_profile : bool
        Also return the summed profile counters (dict: ``pe_cycles``,
        ``ref_cycles``, ``kernel_cycles``, ``groups``, ``scan``, ``ddr_bytes``).
    engine : None, "fast" or "reference"
        Who computes it: the fast emulator or the kernel's own C source
        (``bitlet_top``); None = :func:`bitlet.numerics.default_engine`.  Both
        give the same bits and the same profile.  The vendor-FP kernel runs
        on the reference only.
    threads : int, optional
        Threads of the fast engine (default ``BITLET_THREADS`` or every
        CPU); the reference runs on one.  Results never depend on it.
    cycles : bool, optional
        Run the cycle model (default: ``return_profile``); True also returns
        the profile.  The fast engine skips the model without it (faster);
        the reference always runs it.

    Returns
    -------
    float32 [N, OH, OW, Cout] (and the profile dict). NaN results are the
    canonical NaN (NUMERICS.md F3); no result is -0.
    """
    fmt, bits, x, w, groups = _conv_operands(x, w, groups, precision)
    stride, padding, dilation = _conv_geometry(stride, padding, dilation)
    relu = _check_relu(relu)
    fixed = fmt == hw.FMT_FIXED
    prune, quant = _check_prune(prune), _check_quant(quant, fixed)
    want = _want_cycles(cycles, return_profile)
    kernel = check_kernel(kernel)
    raw, prof = _run_layer(
        x, w, stride=stride, padding=padding, dilation=dilation, groups=int(groups), bias=bias,
        relu=relu, prune=prune, fmt=fmt, quant=quant, kernel=kernel,
        engine=_layer_engine(engine, kernel), threads=threads, cycles=want, fixbits=bits)
    return _result(raw, fmt, prof, want)


def matmul(w, a, *, bias=None, relu=False, prune=hw.PRUNE_ALL, precision="fp32", quant=None,
           kernel="bitlet", return_profile=False, engine=None, threads=None, cycles=None):
    """Matrix product ``W @ A`` on the kernel (GEMM), bit-exact to the hardware.

    Parameters
    ----------
    w : float32 [M, K]
    a : float32 [K, N]
    bias : float32 [M], optional (added to every column)
    relu, prune, precision, quant, kernel, return_profile, engine, threads, cycles
        As :func:`conv2d`.

    Returns
    -------
    float32 [M, N] (and the profile dict).
    """
    fmt, bits, w, a = _matmul_operands(w, a, precision)
    fixed = fmt == hw.FMT_FIXED
    relu = _check_relu(relu)
    prune, quant = _check_prune(prune), _check_quant(quant, fixed)
    want = _want_cycles(cycles, return_profile)
    kernel = check_kernel(kernel)
    raw, prof = _run_layer(
        a, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, bias=bias,
        relu=relu, prune=prune, fmt=fmt, quant=quant, kernel=kernel,
        engine=_layer_engine(engine, kernel), threads=threads, cycles=want, gemm=True,
        fixbits=bits)
    return _result(raw, fmt, prof, want)
