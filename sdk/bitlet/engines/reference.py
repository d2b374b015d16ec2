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

#: Held for every call into ``bitlet.engines._reference`` (reentrant: a kernel callable
#: given to a simulator may itself call the reference layers).
LOCK = threading.RLock()

# The compiled kernel C (hls/, built by _reference_build.py at install time).
# This module and bitlet.engines.fast are the only importers of the compiled
# libraries (tests/test_layers_imports.py checks it).
from bitlet.engines._reference import ffi, lib  # noqa: E402  (after the lock's docs)

__all__ = ["LOCK", "ffi", "lib"]
