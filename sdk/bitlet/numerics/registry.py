"""The engines of :mod:`bitlet.numerics`: who evaluates the groups.

An engine is a callable ``run(w_sig, w_exp, w_abs, a_word, isfix, prune,
quant) -> results`` taking C-contiguous arrays ``uint8 [n, 64]``, ``uint8 [n,
64]``, ``uint32 [n, 64]``, ``uint32 [n, 64]``, ``uint8 [n]``, ``uint32 [n]``,
``uint8 [n]`` and returning a structured array of :func:`result_dtype`,
shape ``[n]``.  Two are built in, imported here (downward: the engines know
nothing of numerics): ``"reference"`` (the compiled HLS C,
:mod:`bitlet.engines.reference`) and ``"fast"`` (the emulator of ``emu/``,
:mod:`bitlet.engines.fast`, when it was built).  Others can be added with
:func:`register_engine`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from bitlet.engines import fast, pe_result_dtype
from bitlet.engines.reference import LOCK, ffi, lib
from bitlet.errors import BitletTypeError, BitletValueError

Engine = Callable[..., np.ndarray]

#: the engines whose kernel tops also run whole layers (bitlet.numerics.layers)
BUILT_IN = ("fast", "reference")


@lru_cache(maxsize=1)
def result_dtype() -> np.dtype:
    """numpy structured dtype laid out exactly like the C ``bitlet_pe_result_t``.

    Fields: ``res`` uint32, ``acc`` int64, ``emax`` int32, ``nan`` int32,
    ``scan`` int32 (S), ``latency`` int32 (cycles), ``col_steps`` uint8 [24].
    """
    return pe_result_dtype(ffi, "bitlet_pe_result_t")


def reference_engine(w_sig, w_exp, w_abs, a_word, isfix, prune, quant) -> np.ndarray:
    """Run groups through the compiled HLS C (``bitlet_pe_group_batch``)."""
    n = len(isfix)
    out = np.zeros(n, dtype=result_dtype())
    if n == 0:
        return out
    with LOCK:  # one caller at a time in the reference library (bitlet.engines.reference)
        status = lib.bitlet_pe_group_batch(
            n,
            ffi.from_buffer("uint8_t[]", w_sig), ffi.from_buffer("uint8_t[]", w_exp),
            ffi.from_buffer("uint32_t[]", w_abs), ffi.from_buffer("uint32_t[]", a_word),
            ffi.from_buffer("uint8_t[]", isfix), ffi.from_buffer("uint32_t[]", prune),
            ffi.from_buffer("uint8_t[]", quant),
            ffi.from_buffer("bitlet_pe_result_t[]", out, require_writable=True),
        )
    if status != 0:
        raise BitletValueError(f"quant must be in 0..{lib.BITLET_QUANT_MAX} in fixed mode")
    return out


_ENGINES: dict[str, Engine] = {"reference": reference_engine, "fast": fast.group_engine}
_DEFAULT = ["fast"]  # the fast emulator when it was built, else the reference (default_engine)


def register_engine(name: str, run: Engine) -> None:
    """Make ``run`` available as ``engine=name`` (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise BitletTypeError(f"engine name must be a non-empty str, got {name!r}")
    if not callable(run):
        raise BitletTypeError(f"engine {name!r}: run must be callable, got {type(run).__name__}")
    _ENGINES[name] = run


def set_default_engine(name: str) -> None:
    """Use engine ``name`` when ``engine=None`` (initially ``"fast"``)."""
    resolve_engine(name)
    _DEFAULT[0] = name


def default_engine() -> str:
    """Name of the engine used when ``engine=None``.

    ``"fast"`` (the optimised emulator, bit-exact with the reference) when its
    extension was built, else ``"reference"`` (the kernel's own C source).
    """
    name = _DEFAULT[0]
    if name == "fast" and not fast.available():
        return "reference"
    return name if name in _ENGINES else "reference"


def get_engine(name: str | None = None) -> Engine:
    """The engine callable registered as ``name`` (None: the default engine)."""
    return resolve_engine(name)


def engines() -> list[str]:
    """Names of the registered engines."""
    return sorted(_ENGINES)


def engine_name(engine: str | None) -> str:
    """The name ``engine`` stands for (None: :func:`default_engine`), checked:
    a str naming a registered engine that is available here."""
    name = default_engine() if engine is None else engine
    if not isinstance(name, str):
        raise BitletTypeError(f"engine: must be a str or None, got {type(name).__name__}")
    if name not in _ENGINES:
        raise BitletValueError(f"engine: unknown engine {name!r}; registered engines: {engines()}")
    if name == "fast" and not fast.available():
        raise BitletValueError("engine: 'fast' is not available: the fast emulator "
                               "(bitlet.engines._fast) is not built in this installation; "
                               "reinstall the SDK with a C compiler or use engine='reference'")
    return name


def resolve_engine(engine: str | None) -> Engine:
    """The engine callable of ``engine`` (see :func:`engine_name`)."""
    return _ENGINES[engine_name(engine)]
