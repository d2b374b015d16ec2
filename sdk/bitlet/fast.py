"""The fast bit-exact emulator (``bitlet._fast``, C sources in ``emu/``).

Same results and cycle figures as the kernel reference (``hls/``, run by
:mod:`bitlet.numerics` and :mod:`bitlet._layers`), bit for bit, at a
fraction of the cost: weights and activations are unpacked once per layer,
groups are evaluated with vectorised exact integer arithmetic on several
threads, and the cycle model is computed only when asked for.

Functions
---------
group_dot, group_dot_fixed
    As :func:`bitlet.numerics.group_dot` / ``group_dot_fixed`` (same
    arguments, same validation), plus ``threads=`` and ``cycles=``.
matmul, conv2d
    As :func:`bitlet._layers.matmul` / ``conv2d``, plus ``threads=`` and
    ``cycles=``.
group_engine
    A :mod:`bitlet.numerics` engine (``run(w_sig, w_exp, w_abs, a_word,
    isfix, prune, quant) -> result_dtype array``).
fast_top
    The kernel top with the argument list of the C ``bitlet_top``
    (hls/bitlet_top.h, cffi pointers): the simulated device's engine.
    It runs the cycle model only for runs with a profile area (or when
    made with ``make_top(cycles=True)``); a results-only run leaves the
    ``clock`` output at its ``timestamp`` input (``*timestamp``) and writes
    zero counters.

The kernel's control (decode, validation, extents, buffer rules, output
stage, batches, ring, transfer rules, profile record) is not re-written
here or in emu/: the C includes hls/bitlet_ctl.h, the kernel's own copy.

Threads: ``threads=None`` uses the environment variable ``BITLET_THREADS``
if set, else every CPU the process may use.  Results never depend on the
thread count.

Cost of cycle accounting: results only never run the check-window scanner.
With ``cycles=True`` every group's S is computed too.  The 24 bit columns
of its aligned weights are transposed from the vector registers, and a
tight upper bound of each column's steps is computed with a few bit
operations (popcount of the 1s with another 1 at most 7 below, plus the
jumps of 8 the rest of the column leaves room for; emu/fast_kern.inc
derives it).  Only the columns whose bound reaches the group's largest are
walked by the scanner (1.4 per group on CNN layers; AVX-512: 32 columns
of many groups in lockstep; the other kernels walk one such column per
group first, 8 columns of a batch of 32 groups side by side), then the few
whose bound still beats the steps found, so S stays exact.  This costs about 3.5-4x the time of the results
for fp32 layers with K >= 64 (measured on AVX-512 with VBMI/GFNI, one
thread: ~9 ns per group for results, ~34 ns with S), about 2x for 3x3
depthwise (short groups: one table lookup per column); see
``benchmarks/emulator.py``.  In fixed mode S depends on the weights only
and is computed once per layer, so cycles are almost free.

Kernels (``info()["isa"]``, chosen at run time, forced with ``set_isa``):
``avx512v`` (AVX-512 with VBMI, GFNI and VPOPCNTDQ), ``avx512``, ``avx2``
and ``scalar`` (portable C, any CPU); all give identical results.

Example
-------
>>> import numpy as np
>>> from bitlet import fast
>>> w = np.full(64, 0.5, np.float32); a = np.full(64, 2.0, np.float32)
>>> r, cycles = fast.group_dot(w, a)
>>> float(r), int(cycles)
(64.0, 88)
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from bitlet.errors import BitletTypeError, BitletValueError

__all__ = [
    "FastEngine",
    "conv2d",
    "default_threads",
    "engine",
    "fast_top",
    "group_dot",
    "group_dot_fixed",
    "group_engine",
    "info",
    "make_top",
    "matmul",
]

_TOP_OUTPUTS = ("status", "insn_done", "id_magic", "id_version", "id_config",
                "id_act_buf", "id_wgt_buf", "id_out_buf")


def default_threads() -> int:
    """Threads used when ``threads=None``: ``BITLET_THREADS`` or the usable CPUs.

    Raises
    ------
    BitletValueError
        If ``BITLET_THREADS`` is set but is not a positive integer.
    """
    env = os.environ.get("BITLET_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise BitletValueError(
                f"BITLET_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _threads(threads) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise BitletValueError(f"threads must be a positive int or None, got {threads!r}")
    return int(threads)


def _want_cycles(cycles, return_profile: bool) -> bool:
    if cycles is None:
        return bool(return_profile)
    if not isinstance(cycles, (bool, np.bool_)):
        raise BitletTypeError(f"cycles must be a bool or None, got {type(cycles).__name__}")
    if return_profile and not cycles:
        raise BitletValueError("cycles=False contradicts return_profile=True (the profile "
                               "is the cycle accounting)")
    return bool(cycles)


def _check_kernel(kernel) -> None:
    if kernel != "bitlet":
        raise BitletValueError(
            f"kernel: the fast engine emulates the Bitlet kernel only, got {kernel!r}; "
            "use bitlet.numerics (the reference) for kernel='vendor'")


class FastEngine:
    """The fast engine bound to one compiled module (``bitlet._fast`` or a
    variant built by ``bitlet._fast_build.make_ffi``, e.g. portable-only).

    Parameters
    ----------
    ffi, lib
        The cffi ``ffi`` and ``lib`` of the compiled module.
    """

    def __init__(self, ffi: Any, lib: Any) -> None:
        self.ffi = ffi
        self.lib = lib

    # -- introspection ----------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Instruction set, threading backend and default thread count."""
        s = self.ffi.string
        return {
            "isa": s(self.lib.bitlet_fast_isa()).decode(),
            "threading": s(self.lib.bitlet_fast_threading()).decode(),
            "simd_compiled": bool(self.lib.bitlet_fast_simd_compiled()),
            "cpus": int(self.lib.bitlet_fast_max_threads()),
            "default_threads": default_threads(),
        }

    def set_isa(self, name: str) -> None:
        """Force the kernels of one instruction set (``"scalar"``, ``"avx2"``,
        ``"avx512"``, ``"avx512v"``) or go back to the best available
        (``"auto"``)."""
        if self.lib.bitlet_fast_set_isa(str(name).encode()) != 0:
            raise BitletValueError(f"isa: {name!r} is not available on this CPU/build "
                                   f"(use 'scalar', 'avx2', 'avx512', 'avx512v' or 'auto')")

    # -- groups -------------------------------------------------------------
    def group_engine(self, w_sig, w_exp, w_abs, a_word, isfix, prune, quant, *,
                     threads=None, cycles: bool = True) -> np.ndarray:
        """A :mod:`bitlet.numerics` engine: n groups -> ``result_dtype()`` [n].

        Arrays are C-contiguous ``uint8 [n, 64]``, ``uint8 [n, 64]``,
        ``uint32 [n, 64]``, ``uint32 [n, 64]``, ``uint8 [n]``, ``uint32 [n]``,
        ``uint8 [n]``.  With ``cycles=False`` the fields ``scan``,
        ``latency`` and ``col_steps`` are 0.
        """
        from bitlet import numerics

        ffi = self.ffi
        n = len(isfix)
        out = np.zeros(n, dtype=numerics.result_dtype())
        if n == 0:
            return out
        c = np.ascontiguousarray
        status = self.lib.bitlet_fast_group_batch(
            n,
            ffi.from_buffer("uint8_t[]", c(w_sig, np.uint8)),
            ffi.from_buffer("uint8_t[]", c(w_exp, np.uint8)),
            ffi.from_buffer("uint32_t[]", c(w_abs, np.uint32)),
            ffi.from_buffer("uint32_t[]", c(a_word, np.uint32)),
            ffi.from_buffer("uint8_t[]", c(isfix, np.uint8)),
            ffi.from_buffer("uint32_t[]", c(prune, np.uint32)),
            ffi.from_buffer("uint8_t[]", c(quant, np.uint8)),
            ffi.from_buffer("bitlet_fast_result_t[]", out, require_writable=True),
            int(bool(cycles)), _threads(threads),
        )
        if status != 0:
            raise BitletValueError("quant must be in 0..24 in fixed mode")
        return out

    def _group_runner(self, threads, cycles):
        t = _threads(threads)

        def run(*arrays):
            return self.group_engine(*arrays, threads=t, cycles=cycles)
        return run

    def group_dot(self, w, a, *, prune=0xFFFFFF, threads=None, cycles: bool = True):
        """fp32 PE operations, as :func:`bitlet.numerics.group_dot`.

        Parameters
        ----------
        w, a : ndarray of float32 (or float16), shape (..., 64)
        prune : int or integer array broadcastable to (...), 0..0xFFFFFF
        threads : int, optional
        cycles : bool
            True (default): return ``(result, cycles)`` like numerics;
            False: return only ``result`` and skip the scanner.

        Returns
        -------
        result : float32 (...); cycles : int32 (...), 24 + S (if ``cycles``)
        """
        from bitlet import numerics as nm

        _want_cycles(cycles, False)
        w32, a32 = nm._broadcast_pair(nm._float_operand(w, "w"), nm._float_operand(a, "a"))
        batch = w32.shape[:-1]
        prune_n = nm._per_group(prune, "prune", batch, nm._PRUNE_ALL, np.uint32)
        n = prune_n.size
        out = nm._run(w32.reshape(n, nm._group()).view(np.uint32),
                      a32.reshape(n, nm._group()).view(np.uint32), False, prune_n,
                      np.zeros(n, np.uint8), self._group_runner(threads, cycles))
        result = out["res"].view(np.float32).reshape(batch)
        if not cycles:
            return result
        return result, out["latency"].reshape(batch).astype(np.int32)

    def group_dot_fixed(self, w, a, *, quant, prune=0xFFFFFF, threads=None,
                        cycles: bool = True):
        """Fixed-mode PE operations, as :func:`bitlet.numerics.group_dot_fixed`.

        Parameters
        ----------
        w : integer ndarray (..., 64), |w| < 2^24
        a : integer ndarray (..., 64), -2^24 <= a < 2^24
        quant : int or integer array broadcastable to (...), 0..24
        prune : int or integer array broadcastable to (...), 0..0xFFFFFF
        threads : int, optional
        cycles : bool
            As :meth:`group_dot`.

        Returns
        -------
        result : int32 (...); cycles : int32 (...), 21 + S (if ``cycles``)
        """
        from bitlet import numerics as nm

        _want_cycles(cycles, False)
        limit = nm._fix_limit()
        w64, a64 = nm._broadcast_pair(nm._int_operand(w, "w", -limit + 1, limit),
                                      nm._int_operand(a, "a", -limit, limit))
        batch = w64.shape[:-1]
        if quant is None:
            raise BitletValueError("quant: required in fixed mode (0..24)")
        quant_n = nm._per_group(quant, "quant", batch, nm._lib()[1].BITLET_QUANT_MAX, np.uint8)
        prune_n = nm._per_group(prune, "prune", batch, nm._PRUNE_ALL, np.uint32)
        n = prune_n.size
        out = nm._run(nm._fixed_weight_words(w64.reshape(n, nm._group())),
                      nm._fixed_words(a64.reshape(n, nm._group())), True, prune_n, quant_n,
                      self._group_runner(threads, cycles))
        result = nm._fixed_value(out["res"]).reshape(batch)
        if not cycles:
            return result
        return result, out["latency"].reshape(batch).astype(np.int32)

    # -- the kernel top -----------------------------------------------------
    def top(self, mem, mem_base, mem_size, prog_addr, n_insn, prof_addr, timestamp, status,
            insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf, id_out_buf,
            clock, *, threads=None, cycles=None) -> None:
        """Run an instruction stream, argument for argument ``bitlet_top``
        (hls/bitlet_top.h: ``mem`` is the 64-bit m_axi port).

        ``mem`` is a cffi ``uint64_t`` pointer/array (any ffi) or a writable
        uint64 numpy array; ``timestamp`` a cffi ``uint64_t *`` (the
        free-running counter's port, read once: the stamps are modelled like
        the kernel's in C simulation); the outputs are ``uint32_t *`` and
        ``clock`` a ``uint64_t *``.  The cycle model runs when
        ``prof_addr != 0`` (``cycles=None``) or as ``cycles`` says; without
        it the profile records hold zero counters and the clock does not
        advance (``*clock = *timestamp``), see ``bitlet_fast_top`` in
        emu/bitlet_fast.h.
        """
        ffi = self.ffi
        if isinstance(mem, np.ndarray):
            mem = ffi.from_buffer("uint64_t[]", mem, require_writable=True)
        else:
            mem = ffi.cast("uint64_t *", mem)
        if (not isinstance(timestamp, ffi.CData)
                or ffi.typeof(timestamp).kind not in ("pointer", "array")
                or timestamp == ffi.NULL):
            raise BitletTypeError("timestamp must be a cffi uint64_t * (the counter's port, as "
                                  f"in bitlet_top), got {timestamp!r}")
        outs = [ffi.cast("uint32_t *", p) for p in (status, insn_done, id_magic, id_version,
                                                    id_config, id_act_buf, id_wgt_buf,
                                                    id_out_buf)]
        want = bool(prof_addr) if cycles is None else bool(cycles)
        self.lib.bitlet_fast_top(mem, int(mem_base), int(mem_size), int(prog_addr),
                                 int(n_insn), int(prof_addr),
                                 ffi.cast("uint64_t *", timestamp), *outs,
                                 ffi.cast("uint64_t *", clock), int(want), _threads(threads))

    def make_top(self, *, threads=None, cycles=None):
        """A callable with exactly the C ``bitlet_top`` argument list, bound to
        ``threads`` and ``cycles`` (for :class:`bitlet.drivers.sim.SimDevice`):
        the top of ISA version 2 (64-bit ``mem``, ``timestamp`` in (a
        ``uint64_t *``), ``clock`` out)."""
        t = None if threads is None else _threads(threads)

        def fast_top(mem, mem_base, mem_size, prog_addr, n_insn, prof_addr, timestamp, status,
                     insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf,
                     id_out_buf, clock):
            self.top(mem, mem_base, mem_size, prog_addr, n_insn, prof_addr, timestamp, status,
                     insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf,
                     id_out_buf, clock, threads=t, cycles=cycles)
        return fast_top

    def run_kernel(self, mem: np.ndarray, *, prog_addr: int, n_insn: int, prof_addr: int = 0,
                   mem_base: int, threads=None, cycles=None) -> dict:
        """As :func:`bitlet._layers.run_kernel` (kernel="bitlet") on this engine:
        the port sees the leading whole ``hw.AXI_BYTES`` beats of ``mem``; the
        result has ``clock`` too (the run's modelled cycles when the cycle
        model runs, else 0)."""
        from bitlet import hw

        if mem.dtype != np.uint32 or not mem.flags.c_contiguous:
            raise BitletTypeError("mem must be a C-contiguous uint32 array")
        ffi = self.ffi
        outs = {name: ffi.new("uint32_t *") for name in _TOP_OUTPUTS}
        clock, timestamp = ffi.new("uint64_t *"), ffi.new("uint64_t *", 0)
        size = mem.size * 4 // hw.AXI_BYTES * hw.AXI_BYTES
        window = mem[:size // 4].view(np.uint64) if size else np.zeros(1, np.uint64)
        self.top(window, mem_base, size, prog_addr, n_insn, prof_addr, timestamp, *outs.values(),
                 clock, threads=threads, cycles=cycles)
        res = {name: int(ptr[0]) for name, ptr in outs.items()}
        res["clock"] = int(clock[0])
        return res

    # -- layers -------------------------------------------------------------
    def conv2d(self, x, w, *, stride=1, padding=0, dilation=1, groups=1, bias=None,
               relu=False, prune=0xFFFFFF, precision="fp32", quant=None, kernel="bitlet",
               return_profile=False, threads=None, cycles=None):
        """2-D convolution (NHWC), as :func:`bitlet._layers.conv2d` (bitlet kernel).

        Parameters
        ----------
        x : float32 [N, H, W, Cin]; w : float32 [Cout, KH, KW, Cin / groups]
        stride, padding, dilation, groups, bias, relu, prune, precision, quant
            As :func:`bitlet._layers.conv2d`.
        kernel : "bitlet"
            Accepted for the same signature; the fast engine emulates the
            Bitlet kernel only (the vendor-FP baseline: :mod:`bitlet.numerics`).
        return_profile : bool
            Also return the profile dict (``pe_cycles``, ``ref_cycles``,
            ``kernel_cycles``, ``groups``, ``scan``, ``ddr_bytes``).
        threads : int, optional
        cycles : bool, optional
            Compute the cycle model (default: ``return_profile``); True also
            returns the profile.

        Returns
        -------
        float32 [N, OH, OW, Cout] (and the profile dict).
        """
        from bitlet import _layers as L

        _check_kernel(kernel)
        want = _want_cycles(cycles, return_profile)
        fmt, _, x, w, groups = L._conv_operands(x, w, groups, precision)
        stride, padding, dilation = L._conv_geometry(stride, padding, dilation)
        fixed = fmt == L.hw.FMT_FIXED
        raw, prof = self._conv_program(
            x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
            bias=bias, relu=L._check_relu(relu), prune=L._check_prune(prune), fmt=fmt,
            quant=L._check_quant(quant, fixed), threads=threads, cycles=want)
        return L._result(raw, fmt, prof, want)

    def matmul(self, w, a, *, bias=None, relu=False, prune=0xFFFFFF, precision="fp32",
               quant=None, kernel="bitlet", return_profile=False, threads=None, cycles=None):
        """Matrix product ``W @ A`` (GEMM), as :func:`bitlet._layers.matmul`.

        Parameters
        ----------
        w : float32 [M, K]; a : float32 [K, N]
        bias, relu, prune, precision, quant, kernel, return_profile
            As :func:`bitlet._layers.matmul` (``kernel="bitlet"`` only).
        threads, cycles
            As :meth:`conv2d`.

        Returns
        -------
        float32 [M, N] (and the profile dict).
        """
        from bitlet import _layers as L

        _check_kernel(kernel)
        want = _want_cycles(cycles, return_profile)
        fmt, _, w, a = L._matmul_operands(w, a, precision)
        fixed = fmt == L.hw.FMT_FIXED
        m, k = w.shape
        n = a.shape[1]
        raw, prof = self._conv_program(
            np.ascontiguousarray(a.T).reshape(n, 1, 1, k), w.reshape(m, 1, 1, k), stride=1,
            padding=0, dilation=1, groups=1, bias=bias, relu=L._check_relu(relu),
            prune=L._check_prune(prune), fmt=fmt, quant=L._check_quant(quant, fixed),
            gemm=True, threads=threads, cycles=want)
        return L._result(raw.reshape(n, m).T, fmt, prof, want)

    def _conv_program(self, x, w, *, stride, padding, dilation, groups, bias, relu, prune,
                      fmt, quant, threads, cycles, gemm=False):
        """The program of :func:`bitlet._layers._conv_program` (the same
        instructions and K tiles) run on this engine straight from numpy
        buffers; returns (raw output elements [N, OH, OW, Cout], profile
        records of :func:`bitlet.isa.profile_dtype`)."""
        from bitlet import _layers as L
        from bitlet import hw, isa, preprocess

        fixed = fmt == hw.FMT_FIXED
        ofmt = hw.FMT_FIXED if fixed else hw.FMT_FP32      # results are binary32 (or fixed r)
        n, ih, iw, cin = x.shape
        cout, kh, kw, _cin_g = w.shape
        act = np.ascontiguousarray(preprocess.pack_activations(x, fmt))
        bias_words = L._bias_words(bias, cout, fixed)
        base = isa.conv2d(n=n, ih=ih, iw=iw, cin=cin, cout=cout, kh=kh, kw=kw, act=0, wgt=0,
                          out=0, stride=stride, padding=padding, dilation=dilation,
                          groups=groups, wfmt=fmt, afmt=fmt, ofmt=ofmt, prune=prune, quant=quant)
        if gemm:
            base = base.replace(opcode=hw.OP_GEMM)
        L._check_buffers(base, bias_words is not None)
        oh, ow = base.out_hw
        out_elems = n * oh * ow * cout
        tiles = L._k_tiles(base.n_kgroups)
        words = 2 if fixed else 1                          # partial sums: int64 / fp32
        partial = np.zeros(out_elems * words, np.uint32) if len(tiles) > 1 else None
        out = np.zeros(out_elems, np.uint32)
        prof = np.zeros(len(tiles), dtype=isa.profile_dtype())
        clock = 0                                  # the kernel's clock, as run_kernel's
        for i, (kg0, kg1) in enumerate(tiles):
            last = i == len(tiles) - 1
            wgt = np.ascontiguousarray(preprocess.to_device_weights(w, fmt, k_groups=(kg0, kg1)))
            insn = base.replace(
                kg_begin=kg0, kg_end=kg1,
                flags=isa.flags_word(relu and last, bias_words is not None and last, i > 0,
                                 not last))
            buffers = {"act": act, "wgt": wgt, "out": out if last else partial,
                           "acc": partial if i else None,
                           "bias": bias_words if last else None}
            prof[i] = self._run_layer(insn, buffers, timestamp=clock, threads=threads,
                                      cycles=cycles)
            clock = int(prof[i]["end"])
        return out.reshape(n, oh, ow, cout), prof

    def _run_layer(self, insn, buffers: dict, *, timestamp: int, threads, cycles: bool) -> tuple:
        """One instruction on numpy buffers (``bitlet_fast_layer``); returns its
        profile record as a tuple of :data:`bitlet.isa.PROFILE_FIELDS`.

        The cycle model sees the instruction's device addresses (0 here: the
        operands at 64-byte aligned addresses, as :mod:`bitlet._layers`
        places them in its arena) and ``timestamp`` as the clock at its start.
        """
        from bitlet import hw, isa
        from bitlet.errors import DeviceError

        ffi, lib = self.ffi, self.lib
        words = np.ascontiguousarray(isa.program_words([insn]), dtype=np.uint32)
        buf = ffi.new("bitlet_fast_buffers_t *")
        keep = [words]
        for name, arr in buffers.items():
            if arr is None:
                continue
            ptr = ffi.from_buffer(arr, require_writable=name == "out")
            keep.append(ptr)
            setattr(buf, name, ffi.cast("void *", ptr))
        prof = ffi.new("bitlet_fast_prof_t *") if cycles else ffi.NULL
        status = lib.bitlet_fast_layer(ffi.from_buffer("uint32_t[]", words), 0, buf,
                                       int(timestamp), prof, _threads(threads))
        if status < 0:
            raise MemoryError("the fast engine could not allocate its working memory")
        if status != hw.STATUS_OK:
            raise DeviceError(f"fast kernel rejected the instruction with status "
                              f"{isa.status_name(status)}")
        if not cycles:
            return (status, insn.layer, 0, 0, 0, 0, 0, 0, 0, 0)
        return (status, insn.layer, prof.pe_cycles, prof.ref_cycles, prof.kernel_cycles,
                prof.groups, prof.scan, prof.ddr_bytes, prof.start, prof.end)


@lru_cache(maxsize=1)
def engine() -> FastEngine:
    """The engine of the installed ``bitlet._fast`` module."""
    from bitlet._fast import ffi, lib

    return FastEngine(ffi, lib)


def info() -> dict[str, Any]:
    """See :meth:`FastEngine.info`."""
    return engine().info()


def group_engine(w_sig, w_exp, w_abs, a_word, isfix, prune, quant) -> np.ndarray:
    """The :mod:`bitlet.numerics` engine ``"fast"`` (see :meth:`FastEngine.group_engine`)."""
    return engine().group_engine(w_sig, w_exp, w_abs, a_word, isfix, prune, quant)


def group_dot(w, a, *, prune=0xFFFFFF, threads=None, cycles: bool = True):
    """See :meth:`FastEngine.group_dot`."""
    return engine().group_dot(w, a, prune=prune, threads=threads, cycles=cycles)


def group_dot_fixed(w, a, *, quant, prune=0xFFFFFF, threads=None, cycles: bool = True):
    """See :meth:`FastEngine.group_dot_fixed`."""
    return engine().group_dot_fixed(w, a, quant=quant, prune=prune, threads=threads,
                                    cycles=cycles)


def conv2d(x, w, **kwargs):
    """See :meth:`FastEngine.conv2d`."""
    return engine().conv2d(x, w, **kwargs)


def matmul(w, a, **kwargs):
    """See :meth:`FastEngine.matmul`."""
    return engine().matmul(w, a, **kwargs)


def make_top(*, threads=None, cycles=None):
    """See :meth:`FastEngine.make_top`."""
    return engine().make_top(threads=threads, cycles=cycles)


def fast_top(mem, mem_base, mem_size, prog_addr, n_insn, prof_addr, timestamp, status,
             insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf, id_out_buf,
             clock) -> None:
    """The kernel top on the fast engine, argument for argument ``bitlet_top``
    (hls/bitlet_top.h); the profile (cycle model) is computed when
    ``prof_addr != 0``.  Threads: ``BITLET_THREADS`` or all CPUs."""
    engine().top(mem, mem_base, mem_size, prog_addr, n_insn, prof_addr, timestamp, status,
                 insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf,
                 id_out_buf, clock)


def _register_with_numerics() -> None:
    """Make this engine ``engine="fast"`` of :mod:`bitlet.numerics` (which
    imports this module on first use of that name)."""
    from bitlet import numerics

    numerics.register_engine("fast", group_engine)


_register_with_numerics()
