"""The fast engine's S (check-window scanner, NUMERICS.md s.4) on designed bit columns.

fp32 layers with cycle accounting compute S of every group in batches, as
a bit-sliced automaton over all bit columns of 8 or 16 groups at once
(emu/fast_kern_x86.c for AVX-512 and AVX2, emu/fast_kern.inc portable),
both for layers of several groups and for one-group layers (K <= 64).
Here the aligned weights of each group are chosen bit by bit: activations 1.0 and
weights whose exponent is the row's shift make walign_k exactly the 24-bit
row that was designed, so the 24 columns are the adversarial ones (dense,
sparse, all ones, pairs 7, 8 and 9 apart, periodic, and 1s only near the
end, where windows cross bits 56..63), under several prune masks.  Every
kernel (avx512v, avx512, avx2, scalar: the isa_name fixture) must give the
reference's results and profile (the sum of S over the groups and the
cycles) on each small layer.
"""
from __future__ import annotations

import numpy as np
import pytest
from bitlet import numerics
from test_fast import isa_name  # noqa: F401  (the fixture: every compiled kernel)

pytestmark = pytest.mark.numerics

ROWS = 64


def _column(rng, kind: str) -> np.ndarray:
    """One designed 64-bit column as bools [64] (index = row k)."""
    col = np.zeros(ROWS, dtype=bool)
    if kind == "density":
        col = rng.random(ROWS) < rng.choice([0.03, 0.15, 0.4, 0.6, 0.85, 0.97])
    elif kind == "ones":
        col[:] = True
    elif kind == "pairs":           # pairs of 1s gap apart, the window's edge
        gap = int(rng.choice([6, 7, 8, 9]))
        start = int(rng.integers(0, 9))
        for p in range(start, ROWS, gap + int(rng.integers(1, 10))):
            col[p] = True
            if p + gap < ROWS:
                col[p + gap] = True
    elif kind == "periodic":
        period = int(rng.integers(1, 11))
        col[int(rng.integers(0, period))::period] = True
    elif kind == "tail":            # 1s only where windows cross bits 56..63
        lo = int(rng.integers(48, 63))
        col[lo:] = rng.random(ROWS - lo) < rng.choice([0.3, 0.7, 1.0])
    elif kind == "dense runs":      # runs of 1s with short holes
        for p in range(0, ROWS, int(rng.integers(2, 12))):
            col[p:p + int(rng.integers(1, 6))] = True
    return col


KINDS = ("zero", "density", "ones", "pairs", "periodic", "tail", "dense runs")


def _weights(rng, groups: int) -> np.ndarray:
    """float32 [groups * 64] whose aligned values (activations 1.0) are
    designed rows: row k's 24 bits come from 24 designed columns."""
    out = np.zeros(groups * ROWS, dtype=np.float32)
    for g in range(groups):
        cols = [_column(rng, KINDS[int(rng.integers(0, len(KINDS)))]) for _ in range(24)]
        rows = np.zeros(ROWS, dtype=np.int64)
        for bit, col in enumerate(cols):
            rows |= col.astype(np.int64) << bit
        rows[int(rng.integers(0, ROWS))] |= 1 << 23     # the largest row: no shift
        words = np.zeros(ROWS, dtype=np.uint32)
        for k, v in enumerate(rows):
            if v:
                shift = 23 - (int(v).bit_length() - 1)   # the row's alignment shift
                sig = int(v) << shift
                words[k] = (int(rng.integers(0, 2)) << 31) | ((127 - shift) << 23) | \
                    (sig & 0x7FFFFF)
        out[g * ROWS:(g + 1) * ROWS] = words.view(np.float32)
    return out


PRUNES = [0xFFFFFF, 0x7FFFFF, 0x0000FF, 0xF0F0F0, 0x000001, 0x000100, 0x010000, 0x800000,
          0xA5C35A, 0]


@pytest.mark.parametrize("prune", PRUNES, ids=hex)
def test_designed_columns_give_the_reference_S(isa_name, prune):  # noqa: F811
    rng = np.random.default_rng(prune ^ 0x5CA9)
    for trial in range(8):
        m, n = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        if trial < 2:                   # one group (K <= 64): the layers' lanes path,
            k = 16 * int(rng.integers(1, 5))        # rows in blocks of 16
            n = int(rng.integers(14, 40))
        else:                           # several groups, partial last ones too
            k = ROWS * int(rng.integers(2, 5)) + 16 * int(rng.integers(0, 4))
        w = np.stack([_weights(rng, -(-k // ROWS))[:k] for _ in range(m)])
        a = np.ones((k, n), dtype=np.float32)
        if trial % 2:                   # some rows off, some shifted: other columns
            a[rng.random(k) < 0.2] = 0.0
            a *= (2.0 ** rng.integers(-2, 3, size=(k, 1))).astype(np.float32)
        got, got_prof = numerics.matmul(w, a, prune=prune, engine="fast", return_profile=True)
        want, want_prof = numerics.matmul(w, a, prune=prune, engine="reference",
                                          return_profile=True)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), trial
        assert got_prof == want_prof, (trial, m, k, n)


def test_many_groups_per_call(isa_name):  # noqa: F811
    """Full and partial batches of groups, one call (a GEMM of 40 x 3 outputs)."""
    rng = np.random.default_rng(77)
    k = ROWS * 3 + 32
    w = np.stack([_weights(rng, 4)[:k] for _ in range(40)])
    a = np.ones((k, 3), dtype=np.float32)
    a[:, 2] = (2.0 ** rng.integers(-3, 1, size=k)).astype(np.float32)
    got, got_prof = numerics.matmul(w, a, engine="fast", return_profile=True)
    want, want_prof = numerics.matmul(w, a, engine="reference", return_profile=True)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got_prof == want_prof
