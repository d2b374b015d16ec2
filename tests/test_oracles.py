"""The test oracles (tests/pyref.py, tests/pyref_layers.py) are independent of the
code under test: they import nothing from ``bitlet``, their hand-typed constants
still equal the header's (this drift test is the one place allowed to import
``bitlet.hw``), and their own fp16/bf16 rounding agrees with numpy's casts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyref
import pyref_layers
import pytest
from bitlet import hw

pytestmark = pytest.mark.numerics

TESTS = Path(__file__).parent


def test_oracles_import_nothing_from_bitlet():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pyref, pyref_layers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bitlet'))")
    out = subprocess.run([sys.executable, "-c", code, str(TESTS)], capture_output=True, text=True,
                         check=True, timeout=120).stdout.strip()
    assert out == "[]", out


def test_hand_typed_constants_equal_the_header():
    for name, value in vars(pyref_layers.hw).items():
        assert getattr(hw, name) == value, name
    assert (pyref.N_PAIRS, pyref.LAT_FP32, pyref.LAT_FIXED, pyref.QUANT_MAX, pyref.CANONICAL_NAN) == \
        (hw.GROUP, hw.LAT_FP32, hw.LAT_FIXED, hw.QUANT_MAX, hw.CANONICAL_NAN)
    assert (pyref.FIX_LO, pyref.FIX_HI) == (-(1 << hw.SIG_BITS), (1 << hw.SIG_BITS) - 1)


def _float32_samples() -> np.ndarray:
    """Random binary32 bits of every magnitude, plus the fp16/bf16 boundary cases."""
    rng = np.random.default_rng(0)
    random = rng.integers(0, 1 << 32, 20000, dtype=np.uint64).astype(np.uint32)
    powers = np.ldexp(np.float32(1.0), rng.integers(-27, 18, 20000)).astype(np.float32)
    near = powers.view(np.uint32) + rng.integers(0, 1 << 14, 20000).astype(np.uint32)  # ties
    edges = np.array([0x477FE000, 0x477FEFFF, 0x477FF000, 0x38800000, 0x387FC000, 0x33000000,
                      0x33000001, 0x32FFFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001,
                      0x3F808000, 0x3F818000, 0x7F7FFFFF], np.uint32)
    return np.concatenate([random, near, edges])


def test_own_fp16_rounding_equals_numpys_cast():
    u = _float32_samples()
    with np.errstate(over="ignore"):
        want = u.view(np.float32).astype(np.float16).view(np.uint16).astype(np.int64)
    nan = np.isnan(u.view(np.float32))
    want[nan] = hw.CANONICAL_NAN_FP16
    got = np.array([pyref_layers.fp16_bits(int(v)) for v in u])
    assert np.array_equal(got, want)
    back = np.array([pyref_layers.widen16(int(h), "fp16") for h in got], np.uint32)
    assert np.array_equal(back.view(np.float32)[~nan],
                          want[~nan].astype(np.uint16).view(np.float16).astype(np.float32))


def test_own_bf16_rounding_is_round_to_nearest_even():
    """Each finite result is the nearer of the two bfloat16 neighbours, the even one on a tie."""
    def value(bits32: int) -> float:
        return float(np.uint32(bits32).view(np.float32))

    for u in (int(v) for v in _float32_samples()):
        if pyref_layers.is_nan_bits(u):
            assert pyref_layers.bf16_bits(u) == hw.CANONICAL_NAN_BF16
            continue
        got, down = pyref_layers.bf16_bits(u), u >> 16
        if down & 0x7F80 == 0x7F80:
            assert got == down, hex(u)             # infinity stays
            continue
        assert got in (down, down + 1)
        x, lo, hi = value(u), value(down << 16), value((down + 1) << 16)
        if abs(hi) == float("inf"):                # rounding up overflows: the next step
            hi = float(np.copysign(2.0 ** 128, x))  # above the largest bfloat16 is 2^128
        if abs(x - lo) != abs(hi - x):
            assert got == (down if abs(x - lo) < abs(hi - x) else down + 1), hex(u)
        else:
            assert got & 1 == 0, hex(u)
