"""cffi out-of-line API-mode build of ``bitlet.engines._fast``, the fast bit-exact
emulator (C sources in ``emu/``, constants from ``hls/bitlet_hw.h``).

Portable by default: ``-O3`` with IEEE float semantics (no fast-math,
``-ffp-contract=off``), no ``-march=native``.  The AVX2 / AVX-512 kernels are
compiled with per-function target attributes and chosen at run time, so the
same binary runs on any x86-64 CPU; other CPUs (ARM) use the portable
kernels.  Threads: POSIX threads (the engine's own pool), else OpenMP when
the compiler supports it (probed here), else one thread.

Build-time switches (environment variables):

``BITLET_FAST_NO_SIMD=1``
    Define ``BITLET_FAST_NO_SIMD``: portable kernels only.
``BITLET_FAST_THREADING=openmp|pthreads|none``
    Skip the probe and use this threading backend.

The C declarations exposed to Python are the ``CFFI-BEGIN``/``CFFI-END``
block of ``emu/bitlet_fast.h``.  :func:`make_ffi` also builds variants (the
tests compile the portable-only engine into a temporary directory).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
EMU_DIR = os.path.join(ROOT, "emu")
HLS_DIR = os.path.join(ROOT, "hls")
API_HEADER = "bitlet_fast.h"
SOURCES = ("fast_core.c", "fast_layer.c", "fast_sched.c", "fast_kern_scalar.c",
           "fast_kern_x86.c", "fast_tile4.c")
THREADING = ("openmp", "pthreads", "none")

_BLOCK = re.compile(r"/\* CFFI-BEGIN \*/(.*?)/\* CFFI-END \*/", re.DOTALL)

_OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
#pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""
_PTHREAD_PROBE = """
#include <pthread.h>
static void *f(void *p) { return p; }
int main(void) { pthread_t t; if (pthread_create(&t, 0, f, 0)) return 1; return pthread_join(t, 0); }
"""


def _try_build(source: str, flags: list[str]) -> bool:
    """True if ``source`` compiles and links with ``flags`` (a build-time probe)."""
    # build-time tools: setuptools is needed only when a C extension is built
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CCompilerError, DistutilsError  # build time
    from setuptools._distutils.sysconfig import customize_compiler  # build time

    tmp = tempfile.mkdtemp(prefix="bitlet-probe-")
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w", encoding="ascii") as f:
            f.write(source)
        cc = new_compiler()
        customize_compiler(cc)
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)   # keep failed probes quiet
                objs = cc.compile([path], output_dir=tmp, extra_postargs=flags)
                cc.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return True
    except (CCompilerError, DistutilsError, OSError):
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def threading_flags(choice: str | None = None) -> tuple[str, list[str], list[str]]:
    """Pick the threading backend: (name, compile flags, link flags).

    Default order: POSIX threads (the engine's own pool never waits for a
    descheduled thread, which keeps it fast on a busy machine, and it is
    fork-safe), else OpenMP when the compiler supports it (probed), else
    one thread.  ``choice`` or ``BITLET_FAST_THREADING`` forces one.
    """
    choice = choice or os.environ.get("BITLET_FAST_THREADING") or None
    if choice is not None and choice not in THREADING:
        raise ValueError(f"BITLET_FAST_THREADING must be one of {THREADING}, got {choice!r}")
    if choice == "none":
        return "none", [], []
    if sys.platform != "win32" and choice in (None, "pthreads") \
            and _try_build(_PTHREAD_PROBE, ["-pthread"]):
        return "pthreads", ["-pthread", "-DBITLET_FAST_PTHREADS"], ["-pthread"]
    if choice == "pthreads":
        raise RuntimeError("BITLET_FAST_THREADING=pthreads but POSIX threads do not build")
    flag = "/openmp" if sys.platform == "win32" else "-fopenmp"
    if _try_build(_OPENMP_PROBE, [flag]):
        return "openmp", [flag], [] if sys.platform == "win32" else [flag]
    if choice == "openmp":
        raise RuntimeError("BITLET_FAST_THREADING=openmp but the compiler has no OpenMP")
    return "none", [], []


def _source_path(name: str, relative: bool) -> str:
    """Path of emu/<name>: relative to the source tree root for the package
    build (setuptools runs there and rejects absolute paths in its manifest),
    else absolute (cffi's ``compile(tmpdir=...)`` changes directory)."""
    path = os.path.join(EMU_DIR, name)
    if relative:
        return os.path.relpath(path, ROOT).replace(os.sep, "/")
    return path


def _at_root() -> bool:
    return os.path.normcase(os.path.abspath(os.getcwd())) == os.path.normcase(ROOT)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def make_ffi(module: str = "bitlet.engines._fast", *, simd: bool | None = None,
             threading: str | None = None, relative_sources: bool = False,
             defines: dict | None = None) -> FFI:
    """The cffi builder of the fast engine (the signature and docs follow
    ``_reference_build.make_ffi``, which ``duplicates`` pairs by shape: the
    sources, flags and probes differ).

    Parameters
    ----------
    module : str
        Extension module name (``bitlet.engines._fast`` for the package).
    simd : bool, optional
        Compile the AVX2/AVX-512 kernels (default: unless the environment
        sets ``BITLET_FAST_NO_SIMD=1``).
    threading : {"openmp", "pthreads", "none"}, optional
        Threading backend (default: probe, see :func:`threading_flags`).
    relative_sources : bool
        Name the C sources relative to the source tree root (the setuptools
        build, run from there); default absolute.
    defines : dict, optional
        ``{macro: int or None}`` passed as ``-D`` (e.g. ``{"BITLET_N_PE": 8}``:
        the engine of a kernel at another compile-time configuration; tests
        build variants with them).
    """
    if simd is None:
        simd = os.environ.get("BITLET_FAST_NO_SIMD", "") in ("", "0")
    ffi = FFI()
    ffi.cdef("\n".join(b.strip() for b in _BLOCK.findall(_read(os.path.join(EMU_DIR, API_HEADER)))))
    _name, cflags, ldflags = threading_flags(threading)
    if sys.platform == "win32":
        extra = ["/O2", "/fp:precise"]
    else:
        extra = ["-O3", "-std=c99", "-Wall", "-Wno-unknown-pragmas", "-ffp-contract=off",
                 "-fno-strict-aliasing"]
    macros = dict(defines or {})
    if not simd:
        macros["BITLET_FAST_NO_SIMD"] = None
    ffi.set_source(
        module,
        f'#include "{API_HEADER}"',
        sources=[_source_path(name, relative_sources) for name in SOURCES],
        include_dirs=[EMU_DIR, HLS_DIR],
        extra_compile_args=extra + cflags,
        extra_link_args=ldflags,
        define_macros=[(name, None if value is None else str(int(value)))
                       for name, value in macros.items()],
    )
    return ffi


# The setuptools build (cffi_modules) runs this file from the source tree; an
# installed SDK has no emu/ sources, and importing this module there (e.g. for
# make_ffi of a variant) must not try to read them.
ffibuilder = (make_ffi(relative_sources=_at_root())
              if os.path.isfile(os.path.join(EMU_DIR, API_HEADER)) else None)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
