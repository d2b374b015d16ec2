"""The public numerics API (bitlet.numerics): shapes, dtypes, broadcasting,
engines, and clear errors naming the bad argument.  Bit-exactness itself is
tested by test_conformance.py (golden records) and test_group_props.py."""
from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
from bitlet import BitletTypeError, BitletValueError, hw, numerics
from bitlet.engines import fast
from bitlet.numerics import registry

pytestmark = pytest.mark.numerics

N = hw.GROUP
LIMIT = 1 << hw.SIG_BITS


def halves_and_twos(shape=()):
    return np.full(shape + (N,), 0.5, np.float32), np.full(shape + (N,), 2.0, np.float32)


# ---------------------------------------------------------------- results


def test_group_dot_exact_small_case():
    # 64 products of 0.5 * 2.0 add up to 64 exactly.  Every aligned weight is
    # 2^23, so bit column 23 is all ones (64 scanner steps) and the others
    # are empty (8 steps): S = 64.
    w, a = halves_and_twos()
    result, cycles = numerics.group_dot(w, a)
    assert result.dtype == np.float32 and result.shape == ()
    assert cycles.dtype == np.int32 and cycles.shape == ()
    assert float(result) == 64.0
    assert int(cycles) == hw.LAT_FP32 + 64


def test_group_detail_exposes_the_intermediates():
    w, a = halves_and_twos()
    d = numerics.group_detail(w, a)
    assert int(d.emax) == 126 + 128                       # biased exponents of 0.5 and 2.0
    assert int(d.acc) == 64 * 2**23 * 2**23               # 64 products of significands
    assert d.col_steps.shape == (hw.SIG_BITS,)
    assert d.col_steps.tolist() == [hw.WINDOW] * 23 + [64]
    assert int(d.scan) == 64 and int(d.cycles) == hw.LAT_FP32 + 64
    assert not bool(d.nan)


def test_group_dot_fixed_exact_small_case():
    w = np.arange(N)
    a = np.full(N, -3)
    for quant in (0, 2, 5):
        result, cycles = numerics.group_dot_fixed(w, a, quant=quant)
        assert result.dtype == np.int32 and cycles.dtype == np.int32
        assert int(result) == (-3 * sum(range(N))) // 2**quant      # floor division
        d = numerics.group_detail(w, a, mode="fixed", quant=quant)
        assert int(cycles) == hw.LAT_FIXED + int(d.scan)
        assert int(d.scan) == int(d.col_steps.max())
        assert int(d.acc) == -3 * sum(range(N)) and int(d.emax) == 0


def test_fixed_saturates_to_the_25_bit_range():
    big = np.full(N, LIMIT - 1)
    hi, _ = numerics.group_dot_fixed(big, big, quant=0)
    lo, _ = numerics.group_dot_fixed(big, np.full(N, -LIMIT), quant=0)
    assert (int(hi), int(lo)) == (LIMIT - 1, -LIMIT)


def test_inf_and_nan_operands_give_the_canonical_nan():
    w, a = halves_and_twos()
    for bad in (np.inf, -np.inf, np.nan):
        w2 = w.copy()
        w2[7] = bad
        result, _ = numerics.group_dot(w2, a)
        assert int(result.view(np.uint32)) == hw.CANONICAL_NAN
        zero, cycles0 = numerics.group_dot(w2, a, prune=0)
        assert int(zero.view(np.uint32)) == 0 and int(cycles0) == hw.LAT_FP32


def test_prune_zero_gives_plus_zero_and_base_latency():
    w, a = halves_and_twos((3,))
    result, cycles = numerics.group_dot(-w, a, prune=0)
    assert result.view(np.uint32).tolist() == [0, 0, 0]
    assert cycles.tolist() == [hw.LAT_FP32] * 3
    r, c = numerics.group_dot_fixed(np.ones(N, np.int64), np.ones(N, np.int64), quant=0, prune=0)
    assert (int(r), int(c)) == (0, hw.LAT_FIXED)


def test_float16_is_widened_exactly():
    rng = np.random.default_rng(1)
    w16 = rng.standard_normal((5, N)).astype(np.float16)
    a16 = rng.standard_normal((5, N)).astype(np.float16)
    r16, c16 = numerics.group_dot(w16, a16)
    r32, c32 = numerics.group_dot(w16.astype(np.float32), a16.astype(np.float32))
    np.testing.assert_array_equal(r16.view(np.uint32), r32.view(np.uint32))
    np.testing.assert_array_equal(c16, c32)


def test_broadcasting_and_per_group_prune():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 1, N)).astype(np.float32)
    a = rng.standard_normal((4, N)).astype(np.float32)
    prune = np.array([hw.PRUNE_ALL, 0xFFF000, 0xFF0000, 0])
    result, cycles = numerics.group_dot(w, a, prune=prune)
    assert result.shape == cycles.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            r, c = numerics.group_dot(w[i, 0], a[j], prune=int(prune[j]))
            assert result[i, j].view(np.uint32) == r.view(np.uint32)
            assert cycles[i, j] == c


def test_non_contiguous_big_endian_and_list_inputs():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((N, 6)).astype(np.float32)
    a = rng.standard_normal((6, N)).astype(">f4")
    got, _ = numerics.group_dot(w.T, a)
    want, _ = numerics.group_dot(np.ascontiguousarray(w.T), a.astype(np.float32))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    r, _ = numerics.group_dot_fixed(list(range(N)), [1] * N, quant=0)
    assert int(r) == sum(range(N))


def test_chunked_batches_equal_one_batch(monkeypatch):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((10, N)).astype(np.float32)
    a = rng.standard_normal((10, N)).astype(np.float32)
    whole = numerics.group_detail(w, a)
    monkeypatch.setattr(numerics, "_CHUNK", 3)
    parts = numerics.group_detail(w, a)
    for field in whole._fields:
        np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field))


def test_empty_batch():
    result, cycles = numerics.group_dot(np.zeros((0, N), np.float32), np.zeros((0, N), np.float32))
    assert result.shape == cycles.shape == (0,)
    assert result.dtype == np.float32 and cycles.dtype == np.int32
    r, c = numerics.group_dot_fixed(np.zeros((2, 0, N), np.int32), np.zeros((N,), np.int32), quant=1)
    assert r.shape == c.shape == (2, 0) and r.dtype == np.int32


def test_inputs_are_not_modified():
    w, a = halves_and_twos((2,))
    w0, a0 = w.copy(), a.copy()
    numerics.group_dot(w, a)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(a, a0)


def test_weight_port():
    words = np.array([0x3F800000, 0x80000001, 0x00000000, 0xFF800000], np.uint32)
    sig, exp, abs_ = numerics.weight_port(words)
    assert sig.tolist() == [0, 1, 0, 1]
    assert exp.tolist() == [127, 1, 0, 255]
    assert abs_.tolist() == [1 << 23, 1, 0, 1 << 23]
    sig, _, abs_ = numerics.weight_port(np.array([[0x80000005, 7]], np.uint32), isfix=True)
    assert sig.tolist() == [[1, 0]] and abs_.tolist() == [[5, 7]]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("w_shape, a_shape, name", [
    ((63,), (64,), "w"), ((64,), (2, 65), "a"), ((), (64,), "w"), ((0,), (0,), "w"),
])
def test_wrong_group_axis(w_shape, a_shape, name):
    with pytest.raises(BitletValueError, match=rf"^{name}: shape must be \(\.\.\., 64\)"):
        numerics.group_dot(np.zeros(w_shape, np.float32), np.zeros(a_shape, np.float32))
    with pytest.raises(BitletValueError, match=rf"^{name}: shape"):
        numerics.group_dot_fixed(np.zeros(w_shape, np.int32), np.zeros(a_shape, np.int32),
                                 quant=0)


def test_shapes_that_do_not_broadcast():
    with pytest.raises(BitletValueError, match="w and a: shapes"):
        numerics.group_dot(np.zeros((2, N), np.float32), np.zeros((3, N), np.float32))
    with pytest.raises(BitletValueError, match="prune: shape"):
        numerics.group_dot(np.zeros((2, N), np.float32), np.zeros((2, N), np.float32),
                           prune=np.array([1, 2, 3]))


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint32, np.bool_, np.complex64])
def test_group_dot_rejects_other_dtypes(dtype):
    good = np.zeros(N, np.float32)
    with pytest.raises(BitletTypeError, match="^w: dtype must be float32 or float16"):
        numerics.group_dot(np.zeros(N, dtype), good)
    with pytest.raises(BitletTypeError, match="^a: dtype must be float32 or float16"):
        numerics.group_dot(good, np.zeros(N, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_])
def test_group_dot_fixed_rejects_non_integers(dtype):
    good = np.zeros(N, np.int32)
    with pytest.raises(BitletTypeError, match="^w: dtype must be an integer"):
        numerics.group_dot_fixed(np.zeros(N, dtype), good, quant=0)
    with pytest.raises(BitletTypeError, match="^a: dtype must be an integer"):
        numerics.group_dot_fixed(good, np.zeros(N, dtype), quant=0)


@pytest.mark.parametrize("name, value", [
    ("w", LIMIT), ("w", -LIMIT), ("a", LIMIT), ("a", -LIMIT - 1),
])
def test_fixed_values_out_of_range(name, value):
    args = {"w": np.zeros(N, np.int64), "a": np.zeros(N, np.int64)}
    args[name][3] = value
    with pytest.raises(BitletValueError, match=rf"^{name}: values must be in"):
        numerics.group_dot_fixed(args["w"], args["a"], quant=0)


def test_fixed_range_edges_are_accepted():
    w = np.zeros(N, np.int64)
    a = np.zeros(N, np.int64)
    w[0], a[0] = -(LIMIT - 1), -LIMIT          # -w * -a = (2^24 - 1) * 2^24 (F6)
    r, _ = numerics.group_dot_fixed(w, a, quant=24)
    assert int(r) == LIMIT - 1                 # the largest r, reached without saturation
    r, _ = numerics.group_dot_fixed(w, a, quant=23)
    assert int(r) == LIMIT - 1                 # saturated


@pytest.mark.parametrize("prune", [-1, hw.PRUNE_ALL + 1, np.array([0, 1 << 24])])
def test_prune_out_of_range(prune):
    w, a = halves_and_twos((2,))
    with pytest.raises(BitletValueError, match=r"^prune: must be in 0\.\.16777215"):
        numerics.group_dot(w, a, prune=prune)
    with pytest.raises(BitletValueError, match="^prune: must be in"):
        numerics.group_dot_fixed(np.ones((2, N), int), np.ones((2, N), int), quant=0, prune=prune)


@pytest.mark.parametrize("prune", [1.0, True, "0xFFFFFF", None])
def test_prune_of_wrong_type(prune):
    w, a = halves_and_twos()
    with pytest.raises(BitletTypeError, match="^prune: must be an integer"):
        numerics.group_dot(w, a, prune=prune)


@pytest.mark.parametrize("quant", [-1, hw.QUANT_MAX + 1, 100])
def test_quant_out_of_range(quant):
    with pytest.raises(BitletValueError, match=r"^quant: must be in 0\.\.24"):
        numerics.group_dot_fixed(np.ones(N, int), np.ones(N, int), quant=quant)


def test_quant_is_required_and_fixed_only():
    with pytest.raises(TypeError, match="quant"):
        numerics.group_dot_fixed(np.ones(N, int), np.ones(N, int))
    with pytest.raises(BitletValueError, match="^quant: required"):
        numerics.group_detail(np.ones(N, int), np.ones(N, int), mode="fixed")
    w, a = halves_and_twos()
    with pytest.raises(BitletValueError, match="^quant: only used in fixed mode"):
        numerics.group_detail(w, a, quant=3)
    with pytest.raises(BitletValueError, match="^mode: must be"):
        numerics.group_detail(w, a, mode="bf16")


def test_weight_port_errors():
    with pytest.raises(BitletTypeError, match="^w_bits: dtype"):
        numerics.weight_port(np.zeros(3, np.float32))
    with pytest.raises(BitletValueError, match="^w_bits: values"):
        numerics.weight_port(np.array([-1, 0]))


# ---------------------------------------------------------------- engines


def test_unknown_engine():
    w, a = halves_and_twos()
    with pytest.raises(BitletValueError, match="^engine: unknown engine 'turbo'.*reference"):
        numerics.group_dot(w, a, engine="turbo")
    with pytest.raises(BitletValueError, match="^engine: unknown"):
        numerics.set_default_engine("turbo")


def test_engine_of_wrong_type():
    w, a = halves_and_twos()
    with pytest.raises(BitletTypeError, match="^engine: must be a str"):
        numerics.group_dot(w, a, engine=3)


def test_without_the_fast_emulator_the_reference_computes(monkeypatch):
    monkeypatch.setattr(fast, "available", lambda: False)
    assert numerics.default_engine() == "reference"
    w, a = halves_and_twos()
    with pytest.raises(BitletValueError, match="^engine: 'fast' is not available.*not built"):
        numerics.group_dot(w, a, engine="fast")
    with pytest.raises(BitletValueError, match="'fast' is not available"):
        numerics.matmul(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32), engine="fast")
    assert float(numerics.group_dot(w, a)[0]) == 64.0
    assert numerics.matmul(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))[0, 0] == 1


def test_an_installation_without_the_fast_emulator_runs_on_the_reference():
    """The compiled emulator is optional (bitlet.engines.fast imports without it)."""
    code = ("import sys; sys.modules['bitlet.engines._fast'] = None\n"   # as if never built
            "import numpy as np, pytest\n"
            "from bitlet import numerics, BitletValueError\n"
            "from bitlet.drivers.sim import SimDevice\n"
            "assert numerics.default_engine() == 'reference'\n"
            "w = np.full(64, 0.5, np.float32); a = np.full(64, 2.0, np.float32)\n"
            "assert float(numerics.group_dot(w, a)[0]) == 64.0\n"
            "assert numerics.matmul(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))[0, 0] == 1\n"
            "with pytest.raises(BitletValueError, match='not built'):\n"
            "    numerics.group_dot(w, a, engine='fast')\n"
            "with SimDevice() as dev:\n"
            "    assert dev.describe()['engine'] == 'reference'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_engines_do_not_import_numerics():
    """numerics imports its engines (downward); an engine registers nothing upward."""
    code = ("import sys, bitlet.engines.fast, bitlet.engines.reference; "
            "assert not [m for m in sys.modules if m.startswith('bitlet.numerics')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert numerics.get_engine("fast") is fast.group_engine


def test_registered_engine_is_used_and_must_follow_the_interface(monkeypatch):
    calls = []

    def spy(*args):
        calls.append([x.shape for x in args])
        return numerics.get_engine("reference")(*args)

    monkeypatch.setattr(registry, "_ENGINES", dict(registry._ENGINES))
    numerics.register_engine("spy", spy)
    assert "spy" in numerics.engines()
    w, a = halves_and_twos((3,))
    r, _ = numerics.group_dot(w, a, engine="spy")
    assert calls == [[(3, N), (3, N), (3, N), (3, N), (3,), (3,), (3,)]]
    assert r.tolist() == [64.0] * 3
    monkeypatch.setattr(registry, "_DEFAULT", ["reference"])
    numerics.set_default_engine("spy")
    numerics.group_dot_fixed(np.ones(N, int), np.ones(N, int), quant=0)
    assert len(calls) == 2
    with pytest.raises(BitletTypeError, match="must be callable"):
        numerics.register_engine("broken", 42)


def test_engine_reports_bad_quant_without_writing():
    ref = numerics.get_engine("reference")
    z8 = np.zeros((2, N), np.uint8)
    z32 = np.zeros((2, N), np.uint32)
    with pytest.raises(BitletValueError, match="quant"):
        ref(z8, z8, z32, z32, np.ones(2, np.uint8), np.zeros(2, np.uint32),
            np.array([0, hw.QUANT_MAX + 1], np.uint8))


# ---------------------------------------------------------------- contract glue


def test_defaults_and_constants_come_from_the_header():
    for fn in (numerics.group_dot, numerics.group_dot_fixed, numerics.group_detail):
        assert inspect.signature(fn).parameters["prune"].default == hw.PRUNE_ALL
    assert numerics.result_dtype()["col_steps"].shape == (hw.SIG_BITS,)


def test_import_does_no_work():
    """``import bitlet`` loads no compiled library and no layer beyond the base
    (sub-packages load on first use); ``bitlet.numerics`` loads its engines
    (module-level imports, tests/test_layers_imports.py) but never pynq."""
    code = ("import sys, bitlet; "
            "assert not [m for m in sys.modules if m.startswith(('bitlet.engines', "
            "'bitlet.numerics', 'bitlet.drivers'))], sorted(sys.modules); "
            "import bitlet.numerics; assert 'pynq' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
