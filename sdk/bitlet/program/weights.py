"""Weight preprocessing for the compiler, built on :mod:`bitlet.program.preprocess`.

* formats: ``fp32`` (IEEE bits), ``fp16``/``bf16`` (round to nearest even),
  ``fixed`` n-bit (see :func:`quantize_fixed`);
* the kernel's layout: ``[Cout, KH, KW, Cin/groups]`` rows, K zero padded to
  a multiple of 64, sliced into K tiles (:func:`device_rows`);
* NaN/Inf weights raise :class:`bitlet.CompileError` naming the layer;
* per-layer *bit budget* (:func:`limit_ones`): every weight is rounded to the
  nearest value whose 24-bit significand has at most ``k`` ones, which makes
  the bit columns sparser and the PE's scan shorter;
* the per-layer *prune mask* is the instruction's 24-bit column mask (it is
  not applied to the stored weights; the PE ignores disabled columns).

Fixed mode (document of the choices): weights get one scale per output
channel, ``s_c = max|w_c| / (2^(n-1) - 1)``, and are rounded to integers
``q = round(w / s_c)`` stored sign-magnitude.  Activations are quantised per
tensor at run time by the host, with ``a_bits`` bits and scale
``s_a = max|a| / (2^(a_bits-1) - 1)``.  The bias becomes the integer
``round(b / (s_c * s_a))`` added to the exact accumulator; the kernel's
``quant`` shift is chosen from the worst case so the output never saturates;
the host dequantises with ``s_c * s_a * 2^quant``.
"""
from __future__ import annotations

import numpy as np

from bitlet import hw
from bitlet.errors import CompileError
from bitlet.program.preprocess import to_device_weights

FLOAT_FORMATS = ("fp32", "fp16", "bf16")


def check_finite(name: str, w: np.ndarray, what: str = "weight") -> None:
    """Raise :class:`bitlet.CompileError` naming layer ``name`` if ``w`` (its ``what``) has NaN/Inf."""
    bad = ~np.isfinite(w)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CompileError(f"layer {name!r}: {int(bad.sum())} {what} value(s) are NaN or Inf "
                           f"(first at index {where}); the kernel needs finite weights and biases")


def limit_ones(w: np.ndarray, k: int) -> np.ndarray:
    """Round each float32 weight to the nearest value with at most ``k`` ones in its significand.

    Parameters
    ----------
    w : np.ndarray, float32, any shape
    k : int
        1..24 ones allowed in the 24-bit significand (hidden bit included).

    Returns
    -------
    np.ndarray, float32, same shape.  Zeros, subnormals' sign and exponent are
    kept; ties round toward the value with fewer ones (down).
    """
    if not 1 <= int(k) <= hw.SIG_BITS:
        raise CompileError(f"bit budget must be in 1..{hw.SIG_BITS}, got {k}")
    w = np.asarray(w, dtype=np.float32)
    bits = w.view(np.uint32).astype(np.int64)
    sign, exp, mant = bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF
    sig = np.where(exp > 0, mant | (1 << 23), mant)
    down, low_bit = _keep_top_ones(sig, int(k))
    up = down + low_bit  # the next value above `down` with <= k ones
    choose_up = (sig - down) > (up - sig)
    new_sig = np.where(choose_up, up, down)
    scale = np.ldexp(1.0, (np.maximum(exp, 1) - 150).astype(np.int32))
    value = new_sig * scale * np.where(sign == 1, -1.0, 1.0)
    return np.where(np.isfinite(w), value, w).astype(np.float32)


def _keep_top_ones(sig: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sig with only its top k ones kept, weight of the lowest kept one or 0)."""
    kept = np.zeros_like(sig)
    count = np.zeros_like(sig)
    lowest = np.zeros_like(sig)
    for b in range(hw.SIG_BITS - 1, -1, -1):
        bit = (sig >> b) & 1
        take = (bit == 1) & (count < k)
        kept |= np.where(take, 1 << b, 0)
        lowest = np.where(take, 1 << b, lowest)
        count += take
    exact = kept == sig
    return kept, np.where(exact, 0, lowest)


def quantize_fixed(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantisation of ``w`` (Cout first) to ``bits`` bits.

    Returns
    -------
    q : np.ndarray, int64, same shape (|q| <= 2^(bits-1) - 1)
    scale : np.ndarray, float64, shape (Cout,)
    """
    if not 2 <= int(bits) <= hw.FIXED_MAX_BITS:
        raise CompileError(f"fixed precision needs 2..{hw.FIXED_MAX_BITS} weight bits, got {bits}")
    top = (1 << (int(bits) - 1)) - 1
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    amax = np.abs(flat).max(axis=1)
    scale = np.where(amax > 0, amax / top, 1.0)
    q = np.clip(np.rint(flat / scale[:, None]), -top, top).astype(np.int64)
    return q.reshape(w.shape), scale


def fixed_quant(q: np.ndarray, act_bits: int) -> int:
    """The kernel's output shift so that no output of integer weights ``q`` can saturate.

    Worst case per output channel: ``sum_k |q_ck| * (2^(act_bits-1) - 1)``, doubled as
    headroom for the bias; the output word holds 25-bit two's complement.
    """
    worst = np.abs(q.reshape(q.shape[0], -1)).sum(axis=1).max() * ((1 << (act_bits - 1)) - 1) * 2
    limit = (1 << hw.SIG_BITS) - 1
    shift = 0
    while (int(worst) >> shift) > limit:
        shift += 1
    return min(shift, hw.QUANT_MAX)


def conv_rows(w_oihw: np.ndarray) -> np.ndarray:
    """OIHW conv weights -> the kernel's ``[Cout, KH, KW, Cin/groups]`` order."""
    return np.ascontiguousarray(np.transpose(w_oihw, (0, 2, 3, 1)))


def device_rows(w: np.ndarray, fmt: str, k_groups: tuple[int, int]) -> np.ndarray:
    """Device-layout weight rows of the 64-groups ``k_groups`` (see :mod:`bitlet.program.preprocess`)."""
    if fmt == "fixed":
        return to_device_weights(w.astype(np.int64), "fixed", k_groups=k_groups)
    return to_device_weights(np.ascontiguousarray(w, dtype=np.float32), fmt, k_groups=k_groups)
