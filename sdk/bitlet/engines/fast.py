"""The fast bit-exact emulator (``bitlet.engines._fast``, C sources in ``emu/``).

Same results and cycle figures as the kernel reference (``hls/``, compiled
into ``bitlet.engines._reference``), bit for bit, at a fraction of the cost:
weights and activations are unpacked once per layer, groups are evaluated
with vectorised exact integer arithmetic on several threads, and the cycle
model is computed only when asked for.

This module holds the engine-level calls only (groups, the kernel top, one
instruction on numpy buffers); the user-facing functions with their argument
checks are :mod:`bitlet.numerics` (``engine="fast"``), which imports this
module, never the other way round.

Functions
---------
group_engine
    The group batch of :mod:`bitlet.numerics` ``engine="fast"``
    (``run(w_sig, w_exp, w_abs, a_word, isfix, prune, quant) -> results``).
FastEngine.run_layer
    One instruction straight on numpy buffers (the layer functions of
    :mod:`bitlet.numerics.layers` with ``engine="fast"``).
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
if set, else every CPU the process may use; small layers use fewer (work
per thread, emu/fast_layer.c).  Results never depend on the thread count.
The POSIX-threads build keeps its worker threads between calls (a
persistent pool, emu/fast_core.c): one call at a time uses it, a call made
meanwhile from another Python thread starts threads of its own; a forked
child (multiprocessing, Ray workers) starts a pool of its own; the workers
are stopped and joined at exit.

Host layouts: :meth:`FastEngine.run_layer` also reads planar activations
and writes planar outputs (``act_t``, ``out_t``: a GEMM's A [K, N] and
C [M, N] as they are) and reads weights from a [Cout, K] matrix without K
padding (``wgt_ld``, ``wgt_offset``), so :func:`bitlet.numerics.matmul`
makes no transposed or padded copies.  The cycle model sees the device
layouts' addresses either way.

Cost of cycle accounting: results only never run the check-window scanner.
With ``cycles=True`` every group's S is computed too: the groups' aligned
weights wait in batches of 8 or 16, and the scanner runs as a bit-sliced
automaton over every bit column of the batch at once (a 32-bit word per
group, a bit per column; emu/fast_kern_x86.c ``fk_avx512_scan16``
describes it), on every kernel (AVX-512, AVX2, portable C).  Measured on
AVX-512 with VBMI/GFNI (AMD EPYC Zen 4, 2 threads,
``benchmarks/emulator.py --stages``): S and the cycle model add 0.9-1.4x
the time of the results on fp32 layers with K >= 64, 0.65-0.75x on a 3x3
depthwise layer (one group per output).  In fixed
mode S depends on the weights only and is computed once per layer, so
cycles are almost free.

Kernels (``info()["isa"]``, chosen at run time, forced with ``set_isa``):
``avx512v`` (AVX-512 with VBMI, GFNI and VPOPCNTDQ), ``avx512``, ``avx2``
and ``scalar`` (portable C, any CPU); all give identical results.  With
the AVX-512 kernels, results-only fp32 layers whose groups are whole
(K a multiple of 64) run four output channels at a time
(emu/fast_tile4.c: reductions folded together, the pack in vector lanes).

Example
-------
>>> import numpy as np
>>> from bitlet import numerics
>>> w = np.full(64, 0.5, np.float32); a = np.full(64, 2.0, np.float32)
>>> r, cycles = numerics.group_dot(w, a, engine="fast")
>>> float(r), int(cycles)
(64.0, 88)
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from bitlet import hw, isa
from bitlet.engines import TOP_OUTPUTS, pe_result_dtype
from bitlet.errors import BitletTypeError, BitletValueError, DeviceError

# The compiled emulator (emu/, built by _fast_build.py at install time) is
# optional: a build without it runs everything on the reference.  This module
# and bitlet.engines.reference are the only importers of the compiled
# libraries (tests/test_layers_imports.py checks it).
try:
    from bitlet.engines import _fast
except ImportError as _missing:   # not built here: engine() says so, available() is False
    _fast, _WHY_MISSING = None, str(_missing)

__all__ = [
    "FastEngine",
    "available",
    "default_threads",
    "engine",
    "fast_top",
    "group_engine",
    "info",
    "make_top",
]


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


class FastEngine:
    """The fast engine bound to one compiled module (``bitlet.engines._fast`` or a
    variant built by ``bitlet.engines._fast_build.make_ffi``, e.g. portable-only).

    Parameters
    ----------
    ffi, lib
        The cffi ``ffi`` and ``lib`` of the compiled module.
    """

    def __init__(self, ffi: Any, lib: Any) -> None:
        self.ffi = ffi
        self.lib = lib
        self._dtype = None

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
    def result_dtype(self) -> np.dtype:
        """The layout of ``bitlet_fast_result_t`` (that of the reference's
        ``bitlet_pe_result_t``, :func:`bitlet.numerics.result_dtype`)."""
        if self._dtype is None:
            self._dtype = pe_result_dtype(self.ffi, "bitlet_fast_result_t")
        return self._dtype

    def group_engine(self, w_sig, w_exp, w_abs, a_word, isfix, prune, quant, *,
                     threads=None, cycles: bool = True) -> np.ndarray:
        """A :mod:`bitlet.numerics` engine: n groups -> ``result_dtype()`` [n].

        Arrays are C-contiguous ``uint8 [n, 64]``, ``uint8 [n, 64]``,
        ``uint32 [n, 64]``, ``uint32 [n, 64]``, ``uint8 [n]``, ``uint32 [n]``,
        ``uint8 [n]``.  With ``cycles=False`` the fields ``scan``,
        ``latency`` and ``col_steps`` are 0.
        """
        ffi = self.ffi
        n = len(isfix)
        out = np.zeros(n, dtype=self.result_dtype())
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
        """As :func:`bitlet.engines.reference.run_kernel` (kernel="bitlet") on this engine:
        the port sees the leading whole ``hw.AXI_BYTES`` beats of ``mem``; the
        result has ``clock`` too (the run's modelled cycles when the cycle
        model runs, else 0)."""
        if mem.dtype != np.uint32 or not mem.flags.c_contiguous:
            raise BitletTypeError("mem must be a C-contiguous uint32 array")
        ffi = self.ffi
        outs = {name: ffi.new("uint32_t *") for name in TOP_OUTPUTS}
        clock, timestamp = ffi.new("uint64_t *"), ffi.new("uint64_t *", 0)
        size = mem.size * 4 // hw.AXI_BYTES * hw.AXI_BYTES
        window = mem[:size // 4].view(np.uint64) if size else np.zeros(1, np.uint64)
        self.top(window, mem_base, size, prog_addr, n_insn, prof_addr, timestamp, *outs.values(),
                 clock, threads=threads, cycles=cycles)
        res = {name: int(ptr[0]) for name, ptr in outs.items()}
        res["clock"] = int(clock[0])
        return res

    # -- one instruction on numpy buffers -------------------------------------
    def run_layer(self, insn: isa.Insn, buffers: dict, *, timestamp: int = 0, threads=None,
                  cycles: bool = True, words: np.ndarray | None = None, act_t: int = 0,
                  out_t: int = 0, wgt_ld: int = 0, wgt_offset: int = 0) -> tuple:
        """One instruction on numpy buffers (``bitlet_fast_layer``).

        Parameters
        ----------
        insn : bitlet.isa.Insn
            The instruction (its address fields are not used).
        buffers : dict
            ``"act"``, ``"wgt"``, ``"out"`` and, when the flags use them,
            ``"acc"`` and ``"bias"``: C-contiguous numpy arrays in the
            device layout, or the host layouts below (``out`` writable;
            None for an unused operand).
        timestamp : int
            The clock at its start (cycles).
        threads : int, optional
        cycles : bool
            Run the cycle model (else the record's counters are 0).
        words : ndarray of uint32 [hw.INSN_WORDS], optional
            ``insn`` already encoded (:func:`bitlet.isa.program_words`).
        act_t, out_t : int
            0 (device layout) or the row length (>= the pixels) of a
            planar host layout: the device element of pixel p, channel c at
            ``act[(in_coff + c) * act_t + p]`` (input pixels), respectively
            ``out[(out_coff + c) * out_t + p]`` (output pixels); a GEMM's
            A [K, N] and C [M, N] with ``act_t = out_t = N`` (see
            ``bitlet_fast_buffers_t`` in emu/bitlet_fast.h).
        wgt_ld, wgt_offset : int
            0 (device layout) or the weights' row length on the host, in
            elements, and the element of row 0 where the instruction's K
            tile starts (``64 * kg_begin`` of a [Cout, K] matrix: rows need
            no K padding).

        Returns
        -------
        tuple
            Its profile record, the fields of :data:`bitlet.isa.PROFILE_FIELDS`.
            The cycle model sees the operands at device address 0 (64-byte
            aligned, as :class:`bitlet.drivers.arena.MemoryImage` places them).

        Raises
        ------
        bitlet.DeviceError
            The kernel's checks refused the instruction (its status named).
        """
        ffi, lib = self.ffi, self.lib
        if words is None:
            words = np.ascontiguousarray(isa.program_words([insn]), dtype=np.uint32)
        buf = ffi.new("bitlet_fast_buffers_t *")
        keep = [words]
        for name, arr in buffers.items():
            if arr is None:
                continue
            ptr = ffi.from_buffer(arr, require_writable=name == "out")
            keep.append(ptr)
            if name == "wgt" and wgt_offset:
                ptr = ffi.cast("uint8_t *", ptr) + int(wgt_offset) * arr.itemsize
            setattr(buf, name, ffi.cast("void *", ptr))
        buf.act_t, buf.out_t, buf.wgt_ld = int(act_t), int(out_t), int(wgt_ld)
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
    """The engine of the installed ``bitlet.engines._fast`` module.

    Raises
    ------
    ImportError
        The fast emulator was not built in this installation.
    """
    if _fast is None:
        raise ImportError(f"the fast emulator (bitlet.engines._fast) is not built in this "
                          f"installation ({_WHY_MISSING})")
    return FastEngine(_fast.ffi, _fast.lib)


@lru_cache(maxsize=1)
def available() -> bool:
    """True when the fast emulator is built and answers on this machine."""
    try:
        return engine().info()["cpus"] >= 1
    except (ImportError, OSError, AttributeError, KeyError):
        return False


def info() -> dict[str, Any]:
    """See :meth:`FastEngine.info`."""
    return engine().info()


def group_engine(w_sig, w_exp, w_abs, a_word, isfix, prune, quant) -> np.ndarray:
    """The :mod:`bitlet.numerics` engine ``"fast"`` (see :meth:`FastEngine.group_engine`)."""
    return engine().group_engine(w_sig, w_exp, w_abs, a_word, isfix, prune, quant)


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

