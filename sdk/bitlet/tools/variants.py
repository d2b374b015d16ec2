"""Simulated kernels at another compile-time N_PE (for ``bitlet bench --board``).

The kernel's N_PE is a compile-time constant (``BITLET_N_PE`` in
hls/bitlet_hw.h, ``-D`` at HLS build).  The installed engines
(``bitlet.engines._fast``, ``bitlet.engines._reference``) are compiled at the header's value;
a board sized by :mod:`bitlet.tools.resources` needs the same C at its own
N_PE.  :func:`kernel_engine` compiles that variant once (cffi, the C
compiler of this machine), caches it and returns the kernel top to pass as
``engine=`` to the simulator, so the cycles are the kernel's own cycle
model at that N_PE, never a scaled figure.

* The Bitlet kernel runs on the fast engine (``emu/``, present in a source
  tree) and falls back to the reference (``hls/``, shipped in the package as
  ``bitlet/hls``) when ``emu/`` is absent (slower, same results and cycles).
* The vendor-FP kernel runs on the reference.

Cache: ``$BITLET_CACHE_DIR`` or ``$XDG_CACHE_HOME/bitlet`` or
``~/.cache/bitlet``, sub-directory ``kernels/``, one module per
(engine, N_PE, hash of the C sources and of the build scripts).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from bitlet import hw
from bitlet.drivers.sim import fast_available, resolve_kernel
from bitlet.engines import KERNEL_TOPS, _fast_build, _reference_build
from bitlet.engines.fast import FastEngine
from bitlet.errors import BitletValueError
from bitlet.sources import source_dirs

__all__ = ["cache_dir", "kernel_engine"]

#: Largest N_PE the ID_CONFIG register can report (8-bit field).
MAX_N_PE = 255
_ENGINES = Path(__file__).resolve().parents[1] / "engines"   # the cffi build scripts


def cache_dir() -> Path:
    """Where built variants are kept (see the module docstring)."""
    root = os.environ.get("BITLET_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "bitlet")
    return Path(root) / "kernels"


def _digest(dirs: list[Path], n_pe: int, engine: str) -> str:
    h = hashlib.sha256(f"{engine} {n_pe} {sys.implementation.cache_tag}".encode())
    builders = [_ENGINES / "_reference_build.py", _ENGINES / "_fast_build.py"]
    for path in sorted(p for d in dirs for p in d.iterdir() if p.suffix in (".c", ".h", ".inc")) \
            + builders:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the C compiler's output) for the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _build(engine: str, n_pe: int, dirs: dict[str, Path | None]) -> Any:
    """Compile (or load from the cache) the variant module; return it."""

    used = [dirs["hls"]] + ([dirs["emu"]] if engine == "fast" else [])
    name = f"_bitlet_{engine}_npe{n_pe}_{_digest(used, n_pe, engine)}"
    target = cache_dir()
    existing = sorted(target.glob(f"{name}.*")) if target.is_dir() else []
    if not existing:
        defines = {"BITLET_N_PE": n_pe}
        if engine == "fast":
            ffi = _fast_build.make_ffi(name, defines=defines)
        else:
            ffi = _reference_build.make_ffi(name, defines=defines, hls_dir=str(dirs["hls"]))
        target.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=target)   # same file system: os.replace
        try:
            with _quiet_stderr():         # compiler warnings are not the user's business
                built = Path(ffi.compile(tmpdir=tmp))
            final = target / built.name
            os.replace(built, final)      # atomic: a concurrent build leaves one complete file
        except Exception as exc:  # distutils/cffi raise several unrelated types
            raise BitletValueError(f"cannot build the {engine} kernel engine at N_PE={n_pe} "
                                   f"(needs a C compiler): {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        existing = [final]
    spec = importlib.util.spec_from_file_location(name, existing[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def kernel_engine(kind: str, n_pe: int) -> tuple[Callable[..., None], str]:
    """The kernel top of ``kind`` compiled at ``n_pe``, for ``SimDevice(engine=...)``.

    Parameters
    ----------
    kind : {"bitlet", "vendor_fp"}
    n_pe : int
        1 .. 255 (the ID_CONFIG field).

    Returns
    -------
    (callable, str)
        The kernel top (C signature of ``bitlet_top``) and the engine's name
        (``"fast"`` or ``"reference"``, with the N_PE).

    Raises
    ------
    BitletValueError
        Unknown kind, N_PE out of range, no kernel sources or no C compiler.
    """

    if kind not in ("bitlet", "vendor_fp"):
        raise BitletValueError(f"kind must be 'bitlet' or 'vendor_fp', got {kind!r}")
    if not 1 <= int(n_pe) <= MAX_N_PE:
        raise BitletValueError(f"N_PE must be in 1..{MAX_N_PE}, got {n_pe}")

    use_fast = kind == "bitlet"
    if int(n_pe) == hw.N_PE:      # the installed engines are built at the header's N_PE
        engine = "fast" if use_fast and fast_available() else "reference"
        return resolve_kernel(kind, engine)[0], f"{engine} (installed, N_PE={n_pe})"
    dirs = source_dirs()
    if dirs["hls"] is None:
        raise BitletValueError("the kernel C sources (bitlet/hls or hls/) are missing: "
                               "reinstall the SDK")
    engine = "fast" if use_fast and dirs["emu"] is not None else "reference"
    module = _build(engine, int(n_pe), dirs)
    if engine == "fast":
        return FastEngine(module.ffi, module.lib).make_top(), f"fast (built, N_PE={n_pe})"
    return getattr(module.lib, KERNEL_TOPS[kind]), \
        f"reference (built, N_PE={n_pe})"
