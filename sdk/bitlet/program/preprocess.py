"""Host-side data conversion to and from the kernel's device layouts.

Formats (``hls/bitlet_hw.h``, ``FMT_*``): fp32 (IEEE bits, uint32), fp16 and
bf16 (uint16, round to nearest even from binary32, NaN -> the canonical
NaN), fixed (weights: ``sign << 31 | abs`` uint32; activations/outputs:
int32; bias and partial sums: int64).

Weights are laid out one row per output channel with the dot-product index
``k = (kh * KW + kw) * Cin_g + ci`` (NUMERICS.md s.5), zero padded to a
multiple of 64 and optionally restricted to a range of 64-groups (K tiling).
All functions are pure numpy and work on numpy 1.24 through 2.x.
"""
from __future__ import annotations

import numpy as np

from bitlet import hw
from bitlet.errors import BitletTypeError, BitletValueError

_FMT_NAMES = {"fp32": "FMT_FP32", "fp16": "FMT_FP16", "bf16": "FMT_BF16", "fixed": "FMT_FIXED"}
_SIGN_BIT = 31                    # sign bit of a fixed-mode weight word


def _fix_limit() -> int:
    """2^hw.SIG_BITS = 2^24: fixed weights |w| < it, activations in [-it, it)."""
    return 1 << hw.SIG_BITS


def format_code(fmt) -> int:
    """Format code from a name (``"fp32"``, ...) or a code (returned checked)."""
    if isinstance(fmt, str):
        if fmt not in _FMT_NAMES:
            raise BitletValueError(f"fmt must be one of {sorted(_FMT_NAMES)}, got {fmt!r}")
        return getattr(hw, _FMT_NAMES[fmt])
    code = int(fmt)
    if not 0 <= code < hw.N_FMT:
        raise BitletValueError(f"fmt code must be in 0..{hw.N_FMT - 1}, got {fmt!r}")
    return code


def storage_dtype(fmt) -> np.dtype:
    """numpy dtype of one element of ``fmt`` in device memory (weights/activations)."""
    code = format_code(fmt)
    if code in (hw.FMT_FP16, hw.FMT_BF16):
        return np.dtype(np.uint16)
    return np.dtype(np.int32) if code == hw.FMT_FIXED else np.dtype(np.uint32)


# ----------------------------------------------------------------------
# binary32 <-> binary16 / bfloat16
# ----------------------------------------------------------------------
def f32_bits(x) -> np.ndarray:
    """float32 values -> their IEEE bits (uint32, same shape)."""
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def bits_f32(u) -> np.ndarray:
    """uint32 IEEE bits -> float32 values (same shape)."""
    return np.ascontiguousarray(u, dtype=np.uint32).view(np.float32)


def fp16_from_f32(x) -> np.ndarray:
    """float32 -> binary16 bits (uint16), round to nearest even; NaN -> 0x7E00."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16).view(np.uint16).copy()
    h[np.isnan(x)] = hw.CANONICAL_NAN_FP16
    return h


def f32_from_fp16(h) -> np.ndarray:
    """binary16 bits (uint16) -> float32 (exact widening)."""
    return np.ascontiguousarray(h, dtype=np.uint16).view(np.float16).astype(np.float32)


def bf16_from_f32(x) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN -> 0x7FC0."""
    u = f32_bits(x).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[np.isnan(np.asarray(x, dtype=np.float32))] = hw.CANONICAL_NAN_BF16
    return r


def f32_from_bf16(h) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32 (exact widening)."""
    return bits_f32(np.asarray(h, dtype=np.uint16).astype(np.uint32) << 16)


def round_to(x, fmt) -> np.ndarray:
    """float32 values rounded (RNE) to ``fmt`` and widened back to float32.

    fp32 returns a float32 copy; ``fixed`` is not a float format (error).
    """
    code = format_code(fmt)
    x = np.asarray(x, dtype=np.float32)
    if code == hw.FMT_FP32:
        return x.copy()
    if code == hw.FMT_FP16:
        return f32_from_fp16(fp16_from_f32(x))
    if code == hw.FMT_BF16:
        return f32_from_bf16(bf16_from_f32(x))
    raise BitletValueError("round_to: fmt must be a float format (fp32, fp16, bf16)")


# ----------------------------------------------------------------------
# Elements <-> device words
# ----------------------------------------------------------------------
def _integers(x, name: str, low: int, high: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise BitletValueError(f"{name} must hold integers in fixed mode")
    elif arr.dtype.kind not in "iub":
        raise BitletTypeError(f"{name} must be an integer or float array, got {arr.dtype}")
    if arr.size and (arr.min() < low or arr.max() > high):
        raise BitletValueError(
            f"{name} out of range for fixed mode: values must be in [{low}, {high}], "
            f"got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def fixed_weight_words(w) -> np.ndarray:
    """Integer weights (|w| < 2^24) -> ``sign << 31 | abs`` words (uint32)."""
    v = _integers(w, "w", -(_fix_limit() - 1), _fix_limit() - 1)
    return ((v < 0).astype(np.uint32) << np.uint32(_SIGN_BIT)) | np.abs(v).astype(np.uint32)


def pack_elements(x, fmt, name: str = "x") -> np.ndarray:
    """Values -> device elements of ``fmt`` (same shape).

    float formats take float32 values (uint32 bits or uint16); fixed takes
    integer values in [-2^24, 2^24) (int32).
    """
    code = format_code(fmt)
    if code == hw.FMT_FIXED:
        return _integers(x, name, -_fix_limit(), _fix_limit() - 1).astype(np.int32)
    x = np.asarray(x, dtype=np.float32)
    if code == hw.FMT_FP16:
        return fp16_from_f32(x)
    if code == hw.FMT_BF16:
        return bf16_from_f32(x)
    return f32_bits(x).copy()


def unpack_elements(raw, fmt) -> np.ndarray:
    """Device elements of ``fmt`` -> float32 values (fixed: int32 values)."""
    code = format_code(fmt)
    if code == hw.FMT_FIXED:
        return np.asarray(raw).view(np.int32) if np.asarray(raw).dtype == np.uint32 \
            else np.asarray(raw, dtype=np.int32)
    if code == hw.FMT_FP16:
        return f32_from_fp16(raw)
    if code == hw.FMT_BF16:
        return f32_from_bf16(raw)
    return bits_f32(raw).copy()


def to_words(elements) -> np.ndarray:
    """Device elements (2- or 4-byte, any shape) -> little-endian uint32 words.

    16-bit elements pack two per word (element 2i in the low half); an odd
    count is padded with a zero half.
    """
    arr = np.ascontiguousarray(elements)
    flat = arr.reshape(-1)
    if arr.dtype.itemsize == 2:
        if flat.size % 2:
            flat = np.concatenate([flat, np.zeros(1, dtype=flat.dtype)])
        return flat.astype("<u2").view("<u4").astype(np.uint32)
    if arr.dtype.itemsize == 8:
        return flat.astype("<i8").view("<u4").astype(np.uint32)
    return flat.astype(flat.dtype.newbyteorder("<")).view("<u4").astype(np.uint32)


def from_words(words, count: int, fmt_bytes: int) -> np.ndarray:
    """uint32 words -> ``count`` raw elements of 2, 4 or 8 bytes (uint16/uint32/int64)."""
    w = np.ascontiguousarray(words, dtype=np.uint32).astype("<u4")
    dtype = {2: "<u2", 4: "<u4", 8: "<i8"}[fmt_bytes]
    return w.view(dtype)[:count].astype(np.dtype(dtype).newbyteorder("="))


# ----------------------------------------------------------------------
# Weights, activations, bias
# ----------------------------------------------------------------------
def weight_matrix(w) -> np.ndarray:
    """w [Cout, KH, KW, Cin_g] or [M, K] -> [Cout, K] in device k order."""
    arr = np.asarray(w)
    if arr.ndim == 4:
        return arr.reshape(arr.shape[0], -1)
    if arr.ndim == 2:
        return arr
    raise BitletValueError(f"w must have shape [Cout, KH, KW, Cin_g] or [M, K], got {arr.shape}")


def to_device_weights(w, fmt, *, k_groups: tuple[int, int] | None = None) -> np.ndarray:
    """Weights -> device layout: one row per output channel.

    Parameters
    ----------
    w : array [Cout, KH, KW, Cin_g] or [M, K]
        float32 values (float formats) or integers with |w| < 2^24 (fixed).
    fmt : str or int
        ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"fixed"`` or a ``hw.FMT_*`` code.
    k_groups : (begin, end), optional
        Keep only the 64-groups ``[begin, end)`` of K (K tiling).

    Returns
    -------
    np.ndarray [Cout, (end - begin) * 64]: uint32 (fp32 bits / fixed words)
    or uint16 (fp16/bf16 bits); K zero padded to a multiple of 64.
    """
    code = format_code(fmt)
    mat = weight_matrix(w)
    cout, k = mat.shape
    if k == 0 or cout == 0:
        raise BitletValueError(f"w must have K >= 1 and Cout >= 1, got shape {np.shape(w)}")
    n_kg = -(-k // hw.GROUP)
    begin, end = (0, n_kg) if k_groups is None else (int(k_groups[0]), int(k_groups[1]))
    if not 0 <= begin < end <= n_kg:
        raise BitletValueError(f"k_groups must satisfy 0 <= begin < end <= {n_kg}, got {k_groups}")
    if code == hw.FMT_FIXED:
        elems = fixed_weight_words(mat)
    else:
        if np.asarray(w).dtype != np.float32:
            raise BitletTypeError(f"w must be float32 for fmt {fmt!r}, got {np.asarray(w).dtype}")
        elems = pack_elements(mat, code)
    padded = np.zeros((cout, n_kg * hw.GROUP), dtype=elems.dtype)
    padded[:, :k] = elems
    return np.ascontiguousarray(padded[:, begin * hw.GROUP:end * hw.GROUP])


def pack_activations(x, fmt) -> np.ndarray:
    """Activations (NHWC or [N, K]) -> device elements of ``fmt`` (same shape)."""
    return pack_elements(x, fmt, name="x")


def unpack_outputs(raw, fmt) -> np.ndarray:
    """Device output elements -> float32 (fixed: int32)."""
    return unpack_elements(raw, fmt)


def pack_bias(b, fixed: bool = False) -> np.ndarray:
    """Bias [Cout] -> fp32 bits (uint32) or, in fixed mode, int64 (|b| < 2^61)."""
    arr = np.asarray(b)
    if arr.ndim != 1:
        raise BitletValueError(f"bias must be 1-D [Cout], got shape {arr.shape}")
    if fixed:
        lim = (1 << hw.FIXED_BIAS_BITS) - 1
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise BitletValueError("bias must hold integers in fixed mode")
            if arr.size and np.abs(arr).max() >= 2.0 ** hw.FIXED_BIAS_BITS:
                raise BitletValueError(f"bias out of range: |bias| must be < 2^{hw.FIXED_BIAS_BITS}")
            return arr.astype(np.int64)
        return _integers(arr, "bias", -lim, lim)
    if arr.dtype != np.float32:
        raise BitletTypeError(f"bias must be float32, got {arr.dtype}")
    return f32_bits(arr).copy()
