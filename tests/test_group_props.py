"""Property tests: the compiled PE (hls/bitlet_pe.c) against the independent
pure-Python model tests/pyref.py on generated groups, and pyref itself against
a sample of the golden records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyref
import pytest
from bitlet import hw, numerics
from bitlet.engines.reference import lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.numerics

GOLDEN = Path(__file__).parent / "data" / "golden"
N = hw.GROUP
LIMIT = 1 << hw.SIG_BITS
PROPS = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
# drawing 128 structured operands costs ~30 ms an example: fewer of those
GROUPS = settings(PROPS, max_examples=70)

# ---------------------------------------------------------------- strategies

signs = st.integers(0, 1)
# finite exponents biased to the edges: zero/subnormal, tiny, mid, huge
exponents = st.one_of(st.integers(0, 254), st.sampled_from([0, 1, 2, 126, 127, 253, 254]))
mantissas = st.one_of(st.integers(0, (1 << 23) - 1), st.sampled_from([0, 1, (1 << 23) - 1]))
specials = st.sampled_from([0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF])


@st.composite
def fp32_word(draw, zero_weight=0.0):
    """A finite binary32 word (zeros with probability zero_weight)."""
    if draw(st.floats(0, 1)) < zero_weight:
        return draw(st.sampled_from([0, 0x80000000]))
    return draw(signs) << 31 | draw(exponents) << 23 | draw(mantissas)


@st.composite
def with_rare_specials(draw, group):
    """In about one group in five, put one or two Inf/NaN words somewhere."""
    group = list(group)
    if draw(st.sampled_from([False, False, False, False, True])):
        for _ in range(draw(st.integers(1, 2))):
            group[draw(st.integers(0, N - 1))] = draw(specials)
    return group


def finite_word(sign, exp, mant):
    return sign << 31 | exp << 23 | mant


# A pair of groups whose exponents stay in narrow bands, so products really
# add up; the band sum is biased to where results underflow to subnormals
# (about 100..180) or overflow to Inf (about 370..390).
@st.composite
def banded_fp32_pair(draw):
    total = draw(st.one_of(st.integers(2, 500), st.integers(100, 180), st.integers(370, 390)))
    base_w = draw(st.integers(max(1, total - 250), min(250, total - 1)))
    base_a = min(max(total - base_w, 1), 250)
    groups = []
    for base in (base_w, base_a):
        word = st.builds(finite_word, signs, st.integers(base, base + 4), mantissas)
        groups.append(draw(st.lists(st.one_of(word, st.just(0)), min_size=N, max_size=N)))
    return groups


def groups_of(element):
    return st.lists(element, min_size=N, max_size=N)


sparsity = st.sampled_from([0.0, 0.5, 0.9, 1.0])
top_k_prunes = st.integers(1, 24).map(lambda k: hw.PRUNE_ALL ^ ((1 << (24 - k)) - 1))
prunes = st.one_of(st.just(hw.PRUNE_ALL), st.integers(0, hw.PRUNE_ALL), top_k_prunes,
                   st.sampled_from([hw.PRUNE_ALL, hw.PRUNE_ALL, hw.PRUNE_ALL, 0]))
fixed_w = st.one_of(st.integers(-LIMIT + 1, LIMIT - 1),
                    st.sampled_from([0, 1, -1, LIMIT - 1, -(LIMIT - 1)]))
fixed_a = st.one_of(st.integers(-LIMIT, LIMIT - 1),
                    st.sampled_from([0, 1, -1, LIMIT - 1, -LIMIT]))

# ---------------------------------------------------------------- helpers


def c_group(sig, exp, abs_, a_word, isfix, prune, quant=0):
    """One group through the C batch entry point; returns the result record."""
    out = numerics.get_engine("reference")(
        np.asarray([sig], np.uint8), np.asarray([exp], np.uint8),
        np.asarray([abs_], np.uint32), np.asarray([a_word], np.uint32),
        np.asarray([isfix], np.uint8), np.asarray([prune], np.uint32),
        np.asarray([quant], np.uint8))
    return out[0]


def assert_same(c, ref, context):
    got = (int(c["res"]), int(c["acc"]), int(c["emax"]), int(c["scan"]),
           int(c["latency"]), [int(x) for x in c["col_steps"]])
    want = (ref.res, ref.acc, ref.emax, ref.scan, ref.latency, ref.col_steps)
    assert got == want, context


def fp32_case(w_words, a_words, prune):
    ports = [pyref.fp32_weight_port(w) for w in w_words]
    sig, exp, abs_ = (list(x) for x in zip(*ports))
    ref = pyref.group(sig, exp, abs_, a_words, isfix=False, prune=prune)
    c = c_group(sig, exp, abs_, a_words, 0, prune)
    assert_same(c, ref, (w_words, a_words, hex(prune)))
    return ref


def fixed_case(w, a, prune, quant):
    sig = [int(x < 0) for x in w]
    abs_ = [abs(x) for x in w]
    a_words = [(int(x < 0) << 31) | (x % LIMIT) for x in a]
    ref = pyref.group(sig, [0] * N, abs_, a_words, isfix=True, prune=prune, quant=quant)
    c = c_group(sig, [0] * N, abs_, a_words, 1, prune, quant)
    assert_same(c, ref, (w, a, hex(prune), quant))
    # the public function returns the signed r of the same word
    res, cycles = numerics.group_dot_fixed(np.array(w), np.array(a), quant=quant, prune=prune)
    assert int(res) == pyref.fixed_word_value(ref.res)
    assert int(cycles) == ref.latency


# ---------------------------------------------------------------- fp32


@GROUPS
@given(st.data(), sparsity, prunes)
def test_fp32_random_words_match_pyref(data, zero_w, prune):
    w = data.draw(groups_of(fp32_word(zero_weight=zero_w)).flatmap(with_rare_specials))
    a = data.draw(groups_of(fp32_word(zero_weight=0.3)).flatmap(with_rare_specials))
    fp32_case(w, a, prune)


@GROUPS
@given(banded_fp32_pair(), prunes)
def test_fp32_banded_exponents_match_pyref(pair, prune):
    w, a = pair
    ref = fp32_case(w, a, prune)
    res, cycles = numerics.group_dot(np.array(w, np.uint32).view(np.float32),
                                     np.array(a, np.uint32).view(np.float32), prune=prune)
    assert int(res.view(np.uint32)) == ref.res
    assert int(cycles) == ref.latency


@GROUPS
@given(groups_of(st.floats(width=32, allow_nan=False, allow_infinity=False,
                           allow_subnormal=True)),
       groups_of(st.floats(width=32, allow_nan=False, allow_infinity=False,
                           allow_subnormal=True)))
def test_fp32_hypothesis_floats_match_pyref(w, a):
    w_words = np.array(w, np.float32).view(np.uint32).tolist()
    a_words = np.array(a, np.float32).view(np.uint32).tolist()
    fp32_case(w_words, a_words, hw.PRUNE_ALL)


def test_fp32_special_operands_give_canonical_nan_unless_fully_pruned():
    one = 0x3F800000
    for special in (0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF):
        for where in ("w", "a"):
            w = [one] * N
            a = [one] * N
            (w if where == "w" else a)[5] = special
            assert fp32_case(w, a, hw.PRUNE_ALL).res == hw.CANONICAL_NAN
            ref = fp32_case(w, a, 0)                  # prune = 0 wins (F4)
            assert (ref.res, ref.scan, ref.latency) == (0, 0, hw.LAT_FP32)


@PROPS
@given(st.lists(st.integers(0, 1), min_size=N, max_size=N))
def test_weight_port_matches_pyref(bits):
    words = np.random.default_rng(sum(b << i for i, b in enumerate(bits))).integers(
        0, 1 << 32, N, dtype=np.uint64).astype(np.uint32)
    words[np.array(bits, bool)] &= 0x807FFFFF          # half of them zero/subnormal
    sig, exp, abs_ = numerics.weight_port(words)
    for k, word in enumerate(words.tolist()):
        assert (int(sig[k]), int(exp[k]), int(abs_[k])) == pyref.fp32_weight_port(word)


# ---------------------------------------------------------------- fixed


@GROUPS
@given(groups_of(fixed_w), groups_of(fixed_a), prunes, st.integers(0, hw.QUANT_MAX))
def test_fixed_full_range_matches_pyref(w, a, prune, quant):
    fixed_case(w, a, prune, quant)


@GROUPS
@given(st.data(), st.sampled_from([1, 4, 8, 16, 24]), prunes, st.integers(0, hw.QUANT_MAX))
def test_fixed_narrow_widths_and_sparse_match_pyref(data, bits, prune, quant):
    top = (1 << (bits - 1)) - 1 if bits > 1 else 1
    w = data.draw(groups_of(st.one_of(st.just(0), st.integers(-top, top))))
    a = data.draw(groups_of(st.integers(-top - 1, top)))
    fixed_case(w, a, prune, quant)


@pytest.mark.parametrize("quant", range(hw.QUANT_MAX + 1))
def test_fixed_every_quant_at_the_extremes(quant):
    big = LIMIT - 1
    fixed_case([big] * N, [-LIMIT] * N, hw.PRUNE_ALL, quant)      # most negative
    fixed_case([-big] * N, [-LIMIT] * N, hw.PRUNE_ALL, quant)     # F6: -(-2^24)
    fixed_case([3] * N, [-5] * N, hw.PRUNE_ALL, quant)            # floor of negatives
    fixed_case([1] + [0] * (N - 1), [1] * N, 0x000001, quant)


# ---------------------------------------------------------------- scanner


@PROPS
@given(st.one_of(st.integers(0, (1 << 64) - 1),
                 st.sampled_from([0, (1 << 64) - 1, 1, 1 << 63, 0x8080808080808080]),
                 st.lists(st.integers(0, 63), max_size=10).map(
                     lambda bits: sum(1 << b for b in set(bits)))))
def test_scan_steps_match_pyref(col):
    bits = [(col >> k) & 1 for k in range(N)]
    assert lib.bitlet_scan_steps(col) == pyref.scan_steps(bits)


# ---------------------------------------------------------------- pyref vs golden


def golden_sample():
    """Every record of the small files, 40 of each large one."""
    rng = np.random.default_rng(2024)
    for path in sorted(GOLDEN.glob("*.npz")):
        with np.load(path) as d:
            data = {k: d[k] for k in ("w_sig", "w_exp", "w_abs", "a_word", "isfix", "prune",
                                      "quant", "spec_res", "spec_total_cycles",
                                      "spec_scan_cycles", "spec_col_steps", "note")}
        n = len(data["isfix"])
        rows = range(n) if n <= 200 else rng.choice(n, 40, replace=False)
        for i in rows:
            yield path.name, i, {k: v[i] for k, v in data.items()}


def test_pyref_matches_golden_sample():
    checked = 0
    for name, i, r in golden_sample():
        ref = pyref.group(r["w_sig"].tolist(), r["w_exp"].tolist(), r["w_abs"].tolist(),
                          r["a_word"].tolist(), isfix=bool(r["isfix"]), prune=int(r["prune"]),
                          quant=int(r["quant"]))
        got = (ref.res, ref.latency, ref.scan, ref.col_steps)
        want = (int(r["spec_res"]), int(r["spec_total_cycles"]), int(r["spec_scan_cycles"]),
                r["spec_col_steps"].tolist())
        assert got == want, (name, i, r["note"])
        checked += 1
    assert checked > 400
