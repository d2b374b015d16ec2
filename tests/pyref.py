"""An independent pure-Python model of one Bitlet PE group (NUMERICS.md s.1-4).

Written from the contract text alone, with plain Python integers (no numpy,
no C), so that it cannot share a bug with ``hls/bitlet_pe.c``.  It is slow
(tens of milliseconds a group) and only meant for tests.

Inputs are the port-level values of the golden records: per pair the weight
port ``(sig, exp, abs)`` and the raw 32-bit activation word.

>>> r = group(sig=[0] * 64, exp=[127] * 64, abs_=[1 << 23] * 64,
...           a_word=[0x3F800000] * 64, isfix=False)
>>> hex(r.res), r.scan, r.latency
('0x42800000', 64, 88)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

N_PAIRS = 64
N_COLS = 24
WINDOW = 8
LAT_FP32 = 24
LAT_FIXED = 21
QUANT_MAX = 24
CANONICAL_NAN = 0x7FC00000
FIX_LO = -(2 ** 24)
FIX_HI = 2 ** 24 - 1


@dataclass
class Group:
    res: int            # 32-bit result word
    acc: int            # exact accumulator
    emax: int           # fp32: max exponent sum; fixed: 0
    scan: int           # S
    latency: int        # 24 + S or 21 + S
    col_steps: list[int]


# --------------------------------------------------------------------------
# section 2/3: operands
# --------------------------------------------------------------------------

def fp32_fields(word: int):
    """(sign, biased exponent, mantissa) of an IEEE binary32 word."""
    return (word >> 31) & 1, (word >> 23) & 0xFF, word & ((1 << 23) - 1)


def fp32_weight_port(word: int):
    """IEEE bits -> (sig, exp, abs) as section 2 describes."""
    s, e, m = fp32_fields(word)
    if e == 0 and m == 0:
        return s, 0, 0
    if e == 0:
        return s, 1, m
    return s, e, (1 << 23) + m


def fixed_activation(word: int) -> int:
    """25-bit two's complement: the sign in bit 31, the value in bits 23..0."""
    low = word % (1 << 24)
    return low - (1 << 24) if (word >> 31) & 1 else low


# --------------------------------------------------------------------------
# section 4: scanner
# --------------------------------------------------------------------------

def scan_steps(column_bits: Sequence[int]) -> int:
    """Check-window scanner over a column given as 64 bits (index = pair k)."""
    p = 0
    steps = 0
    while True:
        window = [column_bits[i] if i < N_PAIRS else 0 for i in range(p, p + WINDOW)]
        ones = [i for i, bit in enumerate(window) if bit]
        steps += 1
        p = p + ones[1] if len(ones) >= 2 else p + WINDOW
        if p > N_PAIRS - 1:
            return steps


def scan_group(walign: Sequence[int], prune: int):
    """(S, col_steps) of aligned weights under a prune mask."""
    col_steps = []
    for g in range(N_COLS):
        if (prune >> g) & 1:
            col_steps.append(scan_steps([(w >> g) & 1 for w in walign]))
        else:
            col_steps.append(0)
    return max(col_steps), col_steps


# --------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------

def pack_fp32(acc: int, emax: int) -> int:
    """Section 2 pack: truncating, subnormals kept, F2 for E = 0."""
    if acc == 0:
        return 0
    sign = 0x80000000 if acc < 0 else 0
    mag = abs(acc)
    c = mag.bit_length() - 1
    E = emax - 173 + c
    N = ((mag << 23) >> c) % (1 << 24)
    if E > 254:
        return sign | 0x7F800000
    if E >= 1:
        return sign | (E << 23) | (N % (1 << 23))
    return sign | (N >> (1 - E))


def pack_fixed(acc: int, quant: int) -> int:
    """Section 3: r = floor(acc / 2^quant), saturated; sign(r) << 31 | r mod 2^24."""
    r = acc // (2 ** quant)           # Python // is floor division
    r = min(max(r, FIX_LO), FIX_HI)
    return (0x80000000 if r < 0 else 0) | (r % (1 << 24))


def fixed_word_value(word: int) -> int:
    """The signed r a fixed result word encodes."""
    return fixed_activation(word)


# --------------------------------------------------------------------------
# one group
# --------------------------------------------------------------------------

def group(sig, exp, abs_, a_word, isfix: bool, prune: int = 0xFFFFFF,
          quant: int = 0) -> Group:
    """Evaluate one PE group from port values (sequences of 64 ints each)."""
    assert len(sig) == len(exp) == len(abs_) == len(a_word) == N_PAIRS
    sig = [int(x) & 1 for x in sig]
    abs_ = [int(x) for x in abs_]
    a_word = [int(x) for x in a_word]
    prune = int(prune) & 0xFFFFFF
    if isfix:
        if not 0 <= quant <= QUANT_MAX:
            raise ValueError("quant out of range")
        return _group_fixed(sig, abs_, a_word, prune, int(quant))
    return _group_fp32(sig, [int(x) for x in exp], abs_, a_word, prune)


def _group_fp32(sig, exp, abs_, a_word, prune) -> Group:
    esum, afix = [], []
    special = False
    for k in range(N_PAIRS):
        asig, e, m = fp32_fields(a_word[k])
        aexp = 1 if (e == 0 and m != 0) else e
        aman = m + (1 << 23 if e != 0 else 0)          # F1: IEEE hidden bit
        esum.append(exp[k] + aexp)
        afix.append(-aman if sig[k] != asig else aman)
        special = special or e == 255 or exp[k] == 255
    emax = max(esum)
    walign = []
    for k in range(N_PAIRS):
        shift = emax - esum[k]
        walign.append(0 if shift >= 24 else abs_[k] >> shift)
    acc = sum(afix[k] * (walign[k] & prune) for k in range(N_PAIRS))
    S, col_steps = scan_group(walign, prune)
    if prune == 0:                                      # F4 wins over F3
        res = 0
    elif special:                                       # F3
        res = CANONICAL_NAN
    else:
        res = pack_fp32(acc, emax)
    return Group(res, acc, emax, S, LAT_FP32 + S, col_steps)


def _group_fixed(sig, abs_, a_word, prune, quant) -> Group:
    walign = [w % (1 << 24) for w in abs_]                # F5: no alignment
    acc = 0
    for k in range(N_PAIRS):
        a = fixed_activation(a_word[k])
        afix = -a if sig[k] else a                       # F6: exact
        acc += afix * (walign[k] & prune)
    S, col_steps = scan_group(walign, prune)
    res = 0 if prune == 0 else pack_fixed(acc, quant)
    return Group(res, acc, 0, S, LAT_FIXED + S, col_steps)
