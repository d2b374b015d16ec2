"""cffi out-of-line API-mode build of ``bitlet.engines._reference``.

Compiles the hardware's own C sources under ``hls/`` (the PE datapath, the
Bitlet kernel top and the vendor-FP baseline top) into the software
reference.  The C declarations exposed to Python are taken from the headers
themselves, so nothing is typed twice:

* every integer ``#define BITLET_*`` of ``hls/bitlet_hw.h`` becomes
  ``lib.BITLET_*`` (declared ``#define X ...``; cffi checks the value);
* string ``#define``s become ``lib.<NAME>_S`` (``const char *``);
* the text of every ``/* CFFI-BEGIN */`` ... ``/* CFFI-END */`` block of each header
  listed in ``API_HEADERS`` is passed to ``cdef`` verbatim.

Run by setuptools through ``cffi_modules`` in setup.py.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
# Building from the source tree: hls/ is three levels up.  From an sdist or a
# wheel build the same relative layout is kept (MANIFEST.in ships hls/).
HLS_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "hls"))
HW_HEADER = "bitlet_hw.h"
# header -> the C files implementing it.  A header's API is exposed only once
# all of its sources exist (testbenches live in hls/csim/, never listed here).
API_HEADERS = {
    "bitlet_pe.h": ("bitlet_pe.c",),
    "bitlet_top.h": ("bitlet_kernel.c", "vendor_kernel.c"),
}

_BLOCK = re.compile(r"/\* CFFI-BEGIN \*/(.*?)/\* CFFI-END \*/", re.DOTALL)


def _read(name: str, hls_dir: str = HLS_DIR) -> str:
    with open(os.path.join(hls_dir, name), encoding="utf-8") as f:
        return f.read()


def _load_sources():
    """``bitlet/sources.py`` (the one reader of bitlet_hw.h), loaded by path:
    setuptools runs this script before the package is importable."""
    path = os.path.join(HERE, "..", "sources.py")
    spec = importlib.util.spec_from_file_location("bitlet_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def header_constants(text: str) -> tuple[list[str], list[str]]:
    """The integer and string macro names (``BITLET_*``) defined in a header."""
    table = _load_sources().parse_header(text)
    ints = [f"BITLET_{n}" for n, v in table.items() if isinstance(v, int)]
    strs = [f"BITLET_{n}" for n, v in table.items() if isinstance(v, str)]
    return ints, strs


def make_ffi(module: str = "bitlet.engines._reference", *, defines: dict | None = None,
             hls_dir: str | None = None) -> FFI:
    """The cffi builder of the reference.

    Parameters
    ----------
    module : str
        Extension module name (``bitlet.engines._reference`` for the package).
    defines : dict, optional
        ``{macro: int}`` passed as ``-D`` (e.g. ``{"BITLET_N_PE": 8}``: a
        variant of the kernel at another compile-time configuration).
    hls_dir : str, optional
        Directory of the kernel C sources; default the source tree's ``hls/``.
        Given: the sources are named by absolute path (for
        ``ffi.compile(tmpdir=...)``, which changes directory).
    """
    absolute, hls_dir = hls_dir is not None, hls_dir or HLS_DIR
    ffi = FFI()
    ints, strs = header_constants(_read(HW_HEADER, hls_dir))
    cdef = [f"#define {name} ..." for name in ints]
    cdef += [f"static const char *const {name}_S;" for name in strs]
    source = ["#include <stdint.h>", f'#include "{HW_HEADER}"']
    sources = []
    for header, impl in API_HEADERS.items():
        paths = [os.path.join(hls_dir, c) for c in impl]
        if not all(os.path.exists(p) for p in paths):
            continue
        source.append(f'#include "{header}"')
        cdef += [block.strip() for block in _BLOCK.findall(_read(header, hls_dir))]
        # setuptools wants source paths relative to the setup.py directory
        sources += paths if absolute else [os.path.relpath(p, os.path.dirname(hls_dir))
                                           for p in paths]
    source += [f"static const char *const {name}_S = {name};" for name in strs]
    ffi.cdef("\n".join(cdef))
    extra = [] if sys.platform == "win32" else ["-O2", "-std=c99", "-Wall", "-Wno-unknown-pragmas", "-ffp-contract=off"]
    ffi.set_source(
        module,
        "\n".join(source),
        sources=sources,
        include_dirs=[hls_dir],
        extra_compile_args=extra,
        define_macros=[(name, str(int(value))) for name, value in (defines or {}).items()],
    )
    return ffi


# The setuptools build (cffi_modules) runs this file from the source tree; an
# installed SDK reads its sources from bitlet/hls through make_ffi(hls_dir=...).
ffibuilder = make_ffi() if os.path.isfile(os.path.join(HLS_DIR, HW_HEADER)) else None

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
