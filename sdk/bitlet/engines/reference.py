"""The process-wide lock around every call into the cffi reference library.

The kernel tops of ``hls/`` (``bitlet_top``, ``vendor_fp_top``) keep their
on-chip buffers in static arrays -- one IP instance, as ``hls/bitlet_top.h``
says -- and cffi releases the GIL during a call, so two threads inside the
reference library at once corrupt each other's results.  Every caller in the
process (the simulator's kernel thread, :mod:`bitlet.numerics.layers`, the
``"reference"`` engine of :mod:`bitlet.numerics`) holds :data:`LOCK` for the
whole call, whatever device or thread it serves.

The fast emulator (``emu/``) has no mutable static state (its tables are
built once under ``pthread_once``; scratch memory is per call) and runs
without this lock.
"""
from __future__ import annotations

import threading

import numpy as np

from bitlet import hw
from bitlet.engines import KERNEL_TOPS, TOP_OUTPUTS, check_kernel
from bitlet.errors import BitletTypeError

#: Held for every call into ``bitlet.engines._reference`` (reentrant: a kernel callable
#: given to a simulator may itself call the reference layers).
LOCK = threading.RLock()

# The compiled kernel C (hls/, built by _reference_build.py at install time).
# This module and bitlet.engines.fast are the only importers of the compiled
# libraries (tests/test_layers_imports.py checks it).
from bitlet.engines._reference import ffi, lib  # compiled at install time

__all__ = ["LOCK", "ffi", "lib", "run_kernel"]


def run_kernel(mem: np.ndarray, *, prog_addr: int, n_insn: int, prof_addr: int = 0,
               mem_base: int, kernel: str = "bitlet") -> dict:
    """Call a kernel top of the reference on ``mem`` (modified in place), under :data:`LOCK`.

    Parameters
    ----------
    mem : uint32 ndarray, C-contiguous
        Device memory from ``mem_base`` on (e.g. a
        :class:`bitlet.drivers.arena.MemoryImage`'s ``build()``).  The
        kernel's m_axi port is ``hw.AXI_BYTES`` wide: it sees the leading
        whole beats of ``mem``.
    prog_addr, n_insn, prof_addr, mem_base : int
        The kernel's arguments (device byte addresses; ``prof_addr`` 0: no profile).
    kernel : "bitlet" or "vendor_fp"

    Returns
    -------
    dict
        ``status``, ``insn_done``, the ID outputs (``id_magic``,
        ``id_version``, ``id_config``, ``id_act_buf``, ``id_wgt_buf``,
        ``id_out_buf``) and ``clock`` (modelled cycles of the run: the
        kernel's ``timestamp`` input is 0 here).
    """
    top = getattr(lib, KERNEL_TOPS[check_kernel(kernel)])
    if mem.dtype != np.uint32 or not mem.flags.c_contiguous:
        raise BitletTypeError("mem must be a C-contiguous uint32 array")
    outs = {name: ffi.new("uint32_t *") for name in TOP_OUTPUTS}
    clock, timestamp = ffi.new("uint64_t *"), ffi.new("uint64_t *", 0)
    size = mem.size * 4 // hw.AXI_BYTES * hw.AXI_BYTES
    window = mem[:size // 4].view(np.uint64) if size else np.zeros(1, np.uint64)
    with LOCK:
        top(ffi.from_buffer("uint64_t[]", window), mem_base, size, prog_addr, n_insn,
            prof_addr, timestamp, *outs.values(), clock)
    res = {name: int(ptr[0]) for name, ptr in outs.items()}
    res["clock"] = int(clock[0])
    return res
