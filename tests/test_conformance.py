"""Bit-exact conformance of the PE (hls/bitlet_pe.c) to the golden records.

Every record of every file in tests/data/golden/ (RTL simulations with the
NUMERICS.md answer in the ``spec_*`` fields, see its README.md) must give
exactly ``spec_res``, ``spec_total_cycles``, ``spec_scan_cycles`` and
``spec_col_steps``: through the C port interface, through the public numpy
functions, in file order, reversed and shuffled (no state between groups, F5),
through the layer functions ``conv2d`` and ``matmul`` (the kernel top: each
record one output; summed S and reference-schedule latencies from the profile),
and through the Vitis-style C testbench hls/csim/.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bitlet import numerics

pytestmark = pytest.mark.numerics

GOLDEN = Path(__file__).parent / "data" / "golden"
FILES = sorted(p.name for p in GOLDEN.glob("*.npz"))
PORT_FIELDS = ("w_sig", "w_exp", "w_abs", "a_word", "isfix", "prune", "quant")
REPO = Path(__file__).resolve().parents[1]
CSIM = REPO / "hls" / "csim"


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name) as data:
        return {key: data[key] for key in data.files}


def run_port(d: dict[str, np.ndarray], order: np.ndarray | None = None) -> np.ndarray:
    """Replay records (in ``order``) through the C ``bitlet_pe_group_batch``."""
    idx = np.arange(len(d["isfix"])) if order is None else order
    args = [np.ascontiguousarray(d[f][idx]) for f in PORT_FIELDS]
    out = numerics.get_engine("reference")(*args)
    if order is None:
        return out
    back = np.empty_like(out)
    back[order] = out
    return back


def assert_spec(d: dict[str, np.ndarray], out: np.ndarray, name: str) -> None:
    checks = {
        "res": (out["res"], d["spec_res"]),
        "latency": (out["latency"], d["spec_total_cycles"].astype(np.int32)),
        "S": (out["scan"], d["spec_scan_cycles"].astype(np.int32)),
        "col_steps": (out["col_steps"], d["spec_col_steps"]),
    }
    for what, (got, want) in checks.items():
        bad = np.nonzero((got != want).reshape(len(got), -1).any(axis=1))[0]
        assert bad.size == 0, (
            f"{name}: {what} differs in {bad.size}/{len(got)} records, first #{bad[0]} "
            f"note={d['note'][bad[0]]!r}: got {got[bad[0]]}, want {want[bad[0]]}"
        )


def test_golden_files_present():
    assert len(FILES) == 8, FILES
    total = sum(len(load(name)["isfix"]) for name in FILES)
    assert total == 20217


@pytest.mark.parametrize("name", FILES)
def test_port_interface_matches_spec_for_every_record(name):
    d = load(name)
    assert_spec(d, run_port(d), name)


@pytest.mark.parametrize("name", FILES)
def test_order_does_not_matter(name):
    d = load(name)
    n = len(d["isfix"])
    assert_spec(d, run_port(d, np.arange(n)[::-1].copy()), name + " reversed")
    rng = np.random.default_rng(12345)
    assert_spec(d, run_port(d, rng.permutation(n)), name + " shuffled")


def test_all_files_interleaved_in_one_batch():
    """All 20k records mixed together (fp32 and fixed), shuffled."""
    parts = [load(name) for name in FILES]
    keys = PORT_FIELDS + ("spec_res", "spec_total_cycles", "spec_scan_cycles",
                          "spec_col_steps", "note")
    d = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    order = np.random.default_rng(7).permutation(len(d["isfix"]))
    assert_spec(d, run_port(d, order), "all files shuffled")


@pytest.mark.parametrize("name", FILES)
def test_rtl_internals_equal_ours_on_conformant_records(name):
    """The RTL's Emax and Aacc are our emax and acc wherever no fix applies
    (in fixed mode both sides keep emax = 0)."""
    d = load(name)
    out = run_port(d)
    sel = d["conformant"] == 1
    assert sel.sum() >= 2
    np.testing.assert_array_equal(out["emax"][sel], d["emax"][sel].astype(np.int32))
    np.testing.assert_array_equal(out["acc"][sel], d["aacc"][sel])


def test_non_conformant_records_differ_from_the_rtl_as_documented():
    """Where a fix applies we follow the spec, so we must differ from the RTL."""
    for name in FILES:
        d = load(name)
        out = run_port(d)
        bad = d["conformant"] == 0
        rtl_differs = (
            (out["res"][bad] != d["res"][bad])
            | (out["latency"][bad] != d["total_cycles"][bad])
            | (out["col_steps"][bad] != d["col_steps"][bad]).any(axis=1)
            | (d["res_valid"][bad] == 0)
        )
        assert rtl_differs.all(), name


def _fixed_ints(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-mode words -> plain integers (w sign-magnitude, a 25-bit)."""
    limit = 1 << 24
    w_abs = (d["w_word"] & (limit - 1)).astype(np.int64)
    w = np.where(d["w_word"] >> 31 == 1, -w_abs, w_abs)
    a_low = (d["a_word"] & (limit - 1)).astype(np.int64)
    a = np.where(d["a_word"] >> 31 == 1, a_low - limit, a_low)
    return w, a


def _spec_fixed_value(words: np.ndarray) -> np.ndarray:
    low = (words & 0xFFFFFF).astype(np.int64)
    return np.where(words >> 31 == 1, low - (1 << 24), low)


@pytest.mark.parametrize("name", FILES)
def test_public_functions_match_spec(name):
    d = load(name)
    fp = d["isfix"] == 0
    if fp.any():
        w = d["w_word"][fp].view(np.float32)
        a = d["a_word"][fp].view(np.float32)
        res, cycles = numerics.group_dot(w, a, prune=d["prune"][fp])
        np.testing.assert_array_equal(res.view(np.uint32), d["spec_res"][fp])
        np.testing.assert_array_equal(cycles, d["spec_total_cycles"][fp])
    fx = ~fp
    if fx.any():
        w, a = _fixed_ints({k: d[k][fx] for k in ("w_word", "a_word")})
        res, cycles = numerics.group_dot_fixed(w, a, quant=d["quant"][fx], prune=d["prune"][fx])
        np.testing.assert_array_equal(res, _spec_fixed_value(d["spec_res"][fx]))
        np.testing.assert_array_equal(cycles, d["spec_total_cycles"][fx])


def test_public_functions_one_record_at_a_time_in_reverse():
    """Scalar calls (shape (64,)) give the same answers as the batch."""
    d = load("seq_fixed_after_float.npz")
    for i in reversed(range(len(d["isfix"]))):
        if d["isfix"][i]:
            w, a = _fixed_ints({k: d[k][i] for k in ("w_word", "a_word")})
            res, cycles = numerics.group_dot_fixed(
                w, a, quant=int(d["quant"][i]), prune=int(d["prune"][i]))
            assert int(res) == _spec_fixed_value(d["spec_res"][i])
        else:
            res, cycles = numerics.group_dot(
                d["w_word"][i].view(np.float32), d["a_word"][i].view(np.float32),
                prune=int(d["prune"][i]))
            assert int(res.view(np.uint32)) == d["spec_res"][i]
        assert int(cycles) == d["spec_total_cycles"][i], d["note"][i]


def test_weight_port_conversion_matches_the_records():
    for name in FILES:
        d = load(name)
        for isfix in (0, 1):
            sel = d["isfix"] == isfix
            if not sel.any():
                continue
            sig, exp, abs_ = numerics.weight_port(d["w_word"][sel], isfix=bool(isfix))
            np.testing.assert_array_equal(sig, d["w_sig"][sel])
            np.testing.assert_array_equal(abs_, d["w_abs"][sel])
            if not isfix:       # fixed mode ignores exp (random in two records)
                np.testing.assert_array_equal(exp, d["w_exp"][sel])


def test_csim_testbench_passes():
    """The Vitis-style C testbench (hls/csim) checks every golden record."""
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"C testbench needs {' and '.join(missing)} on PATH")
    if not (CSIM / "Makefile").exists():
        pytest.skip("hls/csim not present (installed without a source tree)")
    proc = subprocess.run(["make", "-s", "-C", str(CSIM), "test", f"PYTHON={sys.executable}"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "20217/20217 records pass" in proc.stdout, proc.stdout[-3000:]


# ----------------------------------------------------------------------
# the layer functions on the golden records (one 64-group per output)
# ----------------------------------------------------------------------
_LAYER_CHUNK = 1000          # records per call: Cin = 64 * chunk stays within MAX_DIM


def _record_batches(d: dict[str, np.ndarray]):
    """Index arrays of records sharing (isfix, prune, quant), in chunks."""
    keys = np.stack([d["isfix"].astype(np.int64), d["prune"].astype(np.int64),
                     d["quant"].astype(np.int64)], axis=1)
    for key in np.unique(keys, axis=0):
        idx = np.nonzero((keys == key).all(axis=1))[0]
        for start in range(0, idx.size, _LAYER_CHUNK):
            yield bool(key[0]), int(key[1]), int(key[2]), idx[start:start + _LAYER_CHUNK]


def _layer_expected(d: dict[str, np.ndarray], idx: np.ndarray, fixed: bool) -> np.ndarray:
    """What a one-group layer outputs: +0.0 + the group result (so -0 reads +0;
    NaN is already canonical), or the fixed r as float32."""
    if fixed:
        return _spec_fixed_value(d["spec_res"][idx]).astype(np.float32).view(np.uint32)
    want = d["spec_res"][idx].copy()
    want[want == 0x80000000] = 0
    return want


def _layer_operands(d: dict[str, np.ndarray], idx: np.ndarray, fixed: bool):
    if fixed:
        w, a = _fixed_ints({k: d[k][idx] for k in ("w_word", "a_word")})
        return w.astype(np.int32), a.astype(np.int32)
    return d["w_word"][idx].view(np.float32), d["a_word"][idx].view(np.float32)


@pytest.mark.parametrize("name", FILES)
def test_conv2d_replays_every_record(name):
    """Each record is one output channel of a grouped 1x1 convolution (groups =
    records, 64 input channels each): result per record, and the summed S and
    reference-schedule cycles (sum of latency + 1) of the profile."""
    d = load(name)
    for fixed, prune, quant, idx in _record_batches(d):
        w, a = _layer_operands(d, idx, fixed)
        r = idx.size
        got, prof = numerics.conv2d(
            a.reshape(1, 1, 1, r * 64), w.reshape(r, 1, 1, 64), groups=r, prune=prune,
            precision="fixed" if fixed else "fp32", quant=quant if fixed else None,
            return_profile=True)
        bits = got.reshape(r).view(np.uint32)
        bad = np.nonzero(bits != _layer_expected(d, idx, fixed))[0]
        assert bad.size == 0, (name, d["note"][idx[bad[0]]], hex(bits[bad[0]]))
        assert prof["groups"] == r
        assert prof["scan"] == int(d["spec_scan_cycles"][idx].sum())
        assert prof["ref_cycles"] == int(d["spec_total_cycles"][idx].sum()) + r


@pytest.mark.parametrize("name", FILES)
def test_matmul_replays_every_record(name):
    """Records in blocks of B: W [B, 64] @ A [64, B], whose diagonal holds the
    records (the off-diagonal products are other valid groups)."""
    d = load(name)
    block = 16
    for fixed, prune, quant, idx in _record_batches(d):
        for start in range(0, idx.size, block):
            part = idx[start:start + block]
            w, a = _layer_operands(d, part, fixed)
            got = numerics.matmul(w, np.ascontiguousarray(a.T), prune=prune,
                                  precision="fixed" if fixed else "fp32",
                                  quant=quant if fixed else None)
            bits = np.ascontiguousarray(np.diagonal(got)).view(np.uint32)
            bad = np.nonzero(bits != _layer_expected(d, part, fixed))[0]
            assert bad.size == 0, (name, d["note"][part[bad[0]]], hex(bits[bad[0]]))
