"""The Bitlet numerics contract as numpy functions (NUMERICS.md).

Everything here is computed by the hardware's own C source (``hls/bitlet_pe.c``,
compiled into ``bitlet.engines._reference`` by cffi) or by the fast emulator
that equals it bit for bit, so these functions return what the board
returns, bit for bit, together with the PE cycle model.

Public functions
----------------
group_dot        one fp32 PE operation per 64-pair group -> (result, cycles)
group_dot_fixed  one fixed-mode PE operation per group    -> (result, cycles)
group_detail     the same plus S, col_steps, emax, acc (teaching, notebooks)
weight_port      weight words -> the PE's (sig, exp, abs) port format
matmul, conv2d   layers (s.5) computed by the kernel top (from bitlet.numerics.layers)

Engines
-------
Every group is evaluated by an *engine* (:mod:`bitlet.numerics.registry`):
``"reference"`` (the compiled HLS C, the hardware's own source) and ``"fast"``
(the optimised emulator of ``emu/``, bit-exact with the reference on results
and cycles).  The default is ``"fast"`` when it was built, else
``"reference"`` (:func:`default_engine`, :func:`set_default_engine`).
``matmul`` and ``conv2d`` take the same ``engine=`` argument.  Other bit-exact
group engines can be added with :func:`register_engine`.

Example
-------
>>> import numpy as np
>>> from bitlet import numerics
>>> w = np.full(64, 0.5, np.float32); a = np.full(64, 2.0, np.float32)
>>> r, cycles = numerics.group_dot(w, a)
>>> float(r), int(cycles)
(64.0, 88)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bitlet import hw
from bitlet.engines.reference import ffi as _ffi
from bitlet.engines.reference import lib as _lib
from bitlet.errors import BitletTypeError, BitletValueError
from bitlet.numerics.layers import conv2d, matmul
from bitlet.numerics.registry import (
    Engine,
    default_engine,
    engines,
    get_engine,
    register_engine,
    resolve_engine,
    result_dtype,
    set_default_engine,
)

__all__ = [
    "GroupDetail",
    "conv2d",
    "default_engine",
    "engines",
    "get_engine",
    "group_detail",
    "group_dot",
    "group_dot_fixed",
    "matmul",
    "register_engine",
    "result_dtype",
    "set_default_engine",
    "weight_port",
]

_PRUNE_ALL = hw.PRUNE_ALL   # keyword default: every bit column enabled
_SIGN_BIT = 31              # sign bit of a 32-bit word
_CHUNK = 1 << 14            # groups per engine call (bounds temporary memory)
_GROUP = hw.GROUP           # pairs per PE operation (64)
_FIX_LIMIT = 1 << hw.SIG_BITS   # fixed mode: |w| < 2^24, -2^24 <= a < 2^24


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------

def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise BitletTypeError(f"{name}: cannot be converted to an array ({exc})") from None


def _float_operand(x, name: str) -> np.ndarray:
    arr = _as_array(x, name)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4):
        raise BitletTypeError(
            f"{name}: dtype must be float32 or float16 (widened exactly), got {arr.dtype}; "
            f"convert explicitly, e.g. {name}.astype(np.float32)"
        )
    _check_group_axis(arr, name)
    return arr.astype(np.float32, copy=False)


def _int_operand(x, name: str, low: int, high: int) -> np.ndarray:
    """Integer array with values in [low, high), returned as int64."""
    arr = _as_array(x, name)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise BitletTypeError(f"{name}: dtype must be an integer type, got {arr.dtype}")
    _check_group_axis(arr, name)
    if arr.size and (int(arr.min()) < low or int(arr.max()) >= high):
        raise BitletValueError(
            f"{name}: values must be in [{low}, {high}), got min {int(arr.min())}, "
            f"max {int(arr.max())}"
        )
    return arr.astype(np.int64)


def _check_group_axis(arr: np.ndarray, name: str) -> None:
    group = _GROUP
    if arr.ndim == 0 or arr.shape[-1] != group:
        raise BitletValueError(
            f"{name}: shape must be (..., {group}) (one group per row), got {arr.shape}"
        )


def _broadcast_pair(w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        return np.broadcast_arrays(w, a)
    except ValueError:
        raise BitletValueError(
            f"w and a: shapes {w.shape} and {a.shape} do not broadcast"
        ) from None


def _per_group(x, name: str, batch: tuple[int, ...], high: int, dtype) -> np.ndarray:
    """A scalar or array parameter (prune, quant) broadcast to the batch shape."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x <= high:
        return np.full(math.prod(batch), x, dtype)   # the common case
    arr = _as_array(x, name)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise BitletTypeError(f"{name}: must be an integer (or integer array), got {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > high):
        bad = int(arr.min()) if int(arr.min()) < 0 else int(arr.max())
        raise BitletValueError(f"{name}: must be in 0..{high} (0x{high:X}), got {bad}")
    try:
        out = np.broadcast_to(arr, batch)
    except ValueError:
        raise BitletValueError(
            f"{name}: shape {arr.shape} does not broadcast to the group shape {batch}"
        ) from None
    return np.ascontiguousarray(out.reshape(-1), dtype=dtype)


# --------------------------------------------------------------------------
# port conversion
# --------------------------------------------------------------------------

def weight_port(w_bits, isfix: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert weight words to the PE's port format (NUMERICS.md s.2/s.3).

    Parameters
    ----------
    w_bits : array_like of uint32, any shape
        fp32 mode: the IEEE binary32 bits; fixed mode: ``sign << 31 | abs``.
    isfix : bool
        Fixed mode (True) or fp32 mode (False).

    Returns
    -------
    sig, exp, abs : ndarray
        uint8, uint8, uint32 arrays of the shape of ``w_bits``.
    """
    arr = _as_array(w_bits, "w_bits")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise BitletTypeError(f"w_bits: dtype must be uint32 words, got {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFFFFFF):
        raise BitletValueError("w_bits: values must be 32-bit words in 0..0xFFFFFFFF")
    words = np.ascontiguousarray(arr.astype(np.uint32))
    sig, exp, abs_ = _weight_port_flat(words.reshape(-1), bool(isfix))
    return sig.reshape(arr.shape), exp.reshape(arr.shape), abs_.reshape(arr.shape)


def _weight_port_flat(words: np.ndarray, isfix: bool):
    n = words.size
    sig = np.empty(n, np.uint8)
    exp = np.empty(n, np.uint8)
    abs_ = np.empty(n, np.uint32)
    if n:
        _lib.bitlet_weight_port_batch(
            n, _ffi.from_buffer("uint32_t[]", words), int(isfix),
            _ffi.from_buffer("uint8_t[]", sig, require_writable=True),
            _ffi.from_buffer("uint8_t[]", exp, require_writable=True),
            _ffi.from_buffer("uint32_t[]", abs_, require_writable=True),
        )
    return sig, exp, abs_


def _fixed_words(values: np.ndarray) -> np.ndarray:
    """int64 values in (-2^24, 2^24] -> fixed-mode words sign << 31 | (v mod 2^24)."""
    sign = (values < 0).astype(np.uint32) << np.uint32(_SIGN_BIT)
    return sign | (values & (_FIX_LIMIT - 1)).astype(np.uint32)


def _fixed_weight_words(values: np.ndarray) -> np.ndarray:
    """int64 weights, |w| < 2^24 -> sign << 31 | abs."""
    sign = (values < 0).astype(np.uint32) << np.uint32(_SIGN_BIT)
    return sign | np.abs(values).astype(np.uint32)


def _fixed_value(words: np.ndarray) -> np.ndarray:
    """fixed result word -> the signed integer r it encodes (int32)."""
    limit = _FIX_LIMIT
    low = (words & np.uint32(limit - 1)).astype(np.int32)
    negative = (words >> np.uint32(_SIGN_BIT)).astype(bool)
    return np.where(negative, low - np.int32(limit), low).astype(np.int32)


# --------------------------------------------------------------------------
# running groups
# --------------------------------------------------------------------------

def _run(w_words: np.ndarray, a_words: np.ndarray, isfix: bool, prune: np.ndarray,
         quant: np.ndarray, engine: Engine) -> np.ndarray:
    """w_words, a_words uint32 [n, 64]; prune uint32 [n]; quant uint8 [n]."""
    n = w_words.shape[0]
    flags = np.full(n, int(isfix), np.uint8)
    if n <= _CHUNK:                    # one call: the engine's array is the result
        w_words = np.ascontiguousarray(w_words)
        sig, exp, abs_ = (x.reshape(w_words.shape)
                          for x in _weight_port_flat(w_words.reshape(-1), isfix))
        return engine(sig, exp, abs_, np.ascontiguousarray(a_words), flags, prune, quant)
    out = np.empty(n, dtype=result_dtype())
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        w_chunk = np.ascontiguousarray(w_words[part])
        sig, exp, abs_ = (x.reshape(w_chunk.shape)
                          for x in _weight_port_flat(w_chunk.reshape(-1), isfix))
        out[part] = engine(sig, exp, abs_, np.ascontiguousarray(a_words[part]),
                           flags[part], prune[part], quant[part])
    return out


def _fp32_groups(w, a, prune, engine):
    run = resolve_engine(engine)
    w32, a32 = _broadcast_pair(_float_operand(w, "w"), _float_operand(a, "a"))
    batch = w32.shape[:-1]
    prune_n = _per_group(prune, "prune", batch, _PRUNE_ALL, np.uint32)
    n = prune_n.size
    w_words = w32.reshape(n, _GROUP).view(np.uint32)
    a_words = a32.reshape(n, _GROUP).view(np.uint32)
    quant_n = np.zeros(n, np.uint8)
    return batch, _run(w_words, a_words, False, prune_n, quant_n, run)


def _fixed_groups(w, a, quant, prune, engine):
    run = resolve_engine(engine)
    limit = _FIX_LIMIT
    w64 = _int_operand(w, "w", -limit + 1, limit)
    a64 = _int_operand(a, "a", -limit, limit)
    w64, a64 = _broadcast_pair(w64, a64)
    batch = w64.shape[:-1]
    if quant is None:
        raise BitletValueError("quant: required in fixed mode (0..24)")
    quant_n = _per_group(quant, "quant", batch, hw.QUANT_MAX, np.uint8)
    prune_n = _per_group(prune, "prune", batch, _PRUNE_ALL, np.uint32)
    n = prune_n.size
    w_words = _fixed_weight_words(w64.reshape(n, _GROUP))
    a_words = _fixed_words(a64.reshape(n, _GROUP))
    return batch, _run(w_words, a_words, True, prune_n, quant_n, run)


def group_dot(w, a, *, prune=_PRUNE_ALL, engine: str | None = None):
    """fp32 PE operations: one result per 64-pair group (NUMERICS.md s.2, s.4).

    Parameters
    ----------
    w, a : ndarray of float32 (or float16, widened exactly), shape (..., 64)
        Weights and activations; the leading shapes broadcast together.
        Inf/NaN operands give the canonical NaN (F3).
    prune : int or integer array broadcastable to (...), 0..``hw.PRUNE_ALL``
        Enabled bit columns of the aligned weights (bit g = weight 2^g).
    engine : str, optional
        Engine name (default: :func:`default_engine`).

    Returns
    -------
    result : ndarray of float32, shape (...)
        The PE result (truncating pack, subnormals kept).
    cycles : ndarray of int32, shape (...)
        Group latency, 24 + S cycles.
    """
    batch, out = _fp32_groups(w, a, prune, engine)
    result = out["res"].view(np.float32).reshape(batch)
    return result, out["latency"].reshape(batch).astype(np.int32)


def group_dot_fixed(w, a, *, quant, prune=_PRUNE_ALL, engine: str | None = None):
    """Fixed-mode PE operations (NUMERICS.md s.3, s.4).

    Parameters
    ----------
    w : integer ndarray, shape (..., 64), |w| < 2^24
        Weights (sign-magnitude in the hardware).
    a : integer ndarray, shape (..., 64), -2^24 <= a < 2^24
        Activations (25-bit two's complement in the hardware).
    quant : int or integer array broadcastable to (...), 0..24
        Output shift: r = floor(acc / 2^quant), saturated.
    prune : int or integer array broadcastable to (...), 0..``hw.PRUNE_ALL``
        Enabled bit columns of the weights.
    engine : str, optional
        Engine name (default: the default engine).

    Returns
    -------
    result : ndarray of int32, shape (...)
        The saturated r in [-2^24, 2^24 - 1] (a plain integer, not the port word).
    cycles : ndarray of int32, shape (...)
        Group latency, 21 + S cycles.
    """
    batch, out = _fixed_groups(w, a, quant, prune, engine)
    result = _fixed_value(out["res"]).reshape(batch)
    return result, out["latency"].reshape(batch).astype(np.int32)


class GroupDetail(NamedTuple):
    """Everything one PE operation computes (arrays of the batch shape (...)).

    result    float32 (fp32 mode) or int32 (fixed mode r)
    cycles    int32, latency (24 + S or 21 + S)
    scan      int32, S = max over enabled columns of col_steps (0 if prune = 0)
    col_steps uint8 [..., 24], scanner steps per bit column (0 when pruned)
    emax      int32, max exponent sum (fp32 mode; 0 in fixed mode)
    acc       int64, exact accumulator sum_k afix_k * (walign_k & prune)
    nan       bool, the canonical NaN of F3 was returned
    """

    result: np.ndarray
    cycles: np.ndarray
    scan: np.ndarray
    col_steps: np.ndarray
    emax: np.ndarray
    acc: np.ndarray
    nan: np.ndarray


def group_detail(w, a, *, mode: str = "fp32", prune=_PRUNE_ALL, quant=None,
                 engine: str | None = None) -> GroupDetail:
    """Like :func:`group_dot` (``mode="fp32"``) or :func:`group_dot_fixed`
    (``mode="fixed"``, ``quant`` required) but returning every PE observable:
    S, col_steps, emax and acc as well.  See :class:`GroupDetail`."""
    if mode == "fp32":
        if quant is not None:
            raise BitletValueError("quant: only used in fixed mode (mode='fixed')")
        batch, out = _fp32_groups(w, a, prune, engine)
        result = out["res"].view(np.float32)
    elif mode == "fixed":
        batch, out = _fixed_groups(w, a, quant, prune, engine)
        result = _fixed_value(out["res"])
    else:
        raise BitletValueError(f"mode: must be 'fp32' or 'fixed', got {mode!r}")
    return GroupDetail(
        result=result.reshape(batch),
        cycles=out["latency"].reshape(batch).astype(np.int32),
        scan=out["scan"].reshape(batch).astype(np.int32),
        col_steps=out["col_steps"].reshape(batch + (out["col_steps"].shape[-1],)),
        emax=out["emax"].reshape(batch).astype(np.int32),
        acc=out["acc"].reshape(batch).astype(np.int64),
        nan=out["nan"].reshape(batch).astype(bool),
    )

