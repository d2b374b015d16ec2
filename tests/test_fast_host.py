"""The fast engine's host side: planar host layouts and its persistent thread pool.

* ``FastEngine.run_layer`` with the planar activation / output layouts and
  unpadded weight rows (``act_t``, ``out_t``, ``wgt_ld``, ``wgt_offset``)
  gives the bits and the profile of the device layouts, on every
  instruction set the CPU offers (float formats, fixed mode, Inf/NaN, K
  tiles);
* ``bitlet.numerics.matmul`` on the fast engine (which reads A [K, N] and
  writes C [M, N] in place) equals the reference for every operand layout
  a user may pass (Fortran order, strided views, big-endian);
* the persistent pool: results never depend on it; a child forked while
  another thread is inside the engine runs layers on threads of its own;
  concurrent results-only calls; a process that used it exits cleanly.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from bitlet import hw, numerics
from bitlet.engines import fast
from bitlet.errors import BitletValueError
from bitlet.numerics import layers
from bitlet.program import preprocess

pytestmark = [pytest.mark.numerics,
              pytest.mark.skipif(not fast.available(), reason="fast engine not built")]


def _isas() -> list[str]:
    eng = fast.engine()
    found = [n for n in ("scalar", "avx2", "avx512", "avx512v")
             if eng.lib.bitlet_fast_set_isa(n.encode()) == 0]
    eng.set_isa("auto")
    return found


@pytest.fixture(params=_isas())
def isa_name(request):
    fast.engine().set_isa(request.param)
    yield request.param
    fast.engine().set_isa("auto")


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _gemm_both(m, k, n, fmt, *, bias=False, relu=False, special=False, seed=0):
    """One GEMM instruction stream run twice on the fast engine: device
    layouts (A^T, padded weight tiles) and planar host layouts; returns the
    two (outputs, profiles)."""
    rng = np.random.default_rng(seed)
    fixed = fmt == hw.FMT_FIXED
    if fixed:
        w = rng.integers(-300, 300, (m, k)).astype(np.int64)
        a = rng.integers(-5000, 5000, (k, n)).astype(np.int32)
        b = rng.integers(-10 ** 6, 10 ** 6, m).astype(np.int64) if bias else None
        quant = 4
    else:
        w = (rng.standard_normal((m, k)) * 0.1).astype(np.float32)
        a = rng.standard_normal((k, n)).astype(np.float32)
        if special:
            a[k // 2, n // 3] = np.inf
            w[m - 1, 5] = np.nan
        b = rng.standard_normal(m).astype(np.float32) if bias else None
        quant = 0
    bias_words = layers._bias_words(b, m, fixed)
    _geo, tiles, insns, words = layers._program(
        (n, 1, 1, k, m, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, fmt, relu,
        bias_words is not None, hw.PRUNE_ALL, quant, 0)
    eng = fast.engine()
    act_dev = np.ascontiguousarray(preprocess.pack_elements(a.T, fmt, name="a"))
    act_host = layers._host_elements(a, fmt, "a")
    wgt_dev = [preprocess.to_device_weights(w.astype(np.float32) if not fixed else w, fmt,
                                            k_groups=kt) for kt in tiles]
    wgt_host = layers._host_weights(w, fmt)
    results = []
    for planar in (False, True):
        parts = {name: np.zeros(n * m * (2 if fixed else 1), np.uint32)
                 for name in ("partial0", "partial1")}
        out = np.zeros((m, n) if planar else (n, m), np.uint32)
        profs, clock = [], 0
        for i, item in enumerate(insns):
            final = item.out == "out"
            bufs = {"act": act_host if planar else act_dev,
                    "wgt": wgt_host if planar else wgt_dev[item.k_tile],
                    "out": out if final else parts[item.out],
                    "acc": parts[item.acc] if item.acc else None,
                    "bias": bias_words if item.bias else None}
            kw = {}
            if planar:
                kw = {"act_t": n, "out_t": n if final else 0, "wgt_ld": k,
                      "wgt_offset": tiles[item.k_tile][0] * hw.GROUP}
            rec = eng.run_layer(item.insn, bufs, timestamp=clock, threads=2, cycles=True,
                                words=words[i], **kw)
            profs.append(rec)
            clock = int(rec[-1])
        results.append((out if planar else out.T, profs))
    return results


@pytest.mark.parametrize("fmt", [hw.FMT_FP32, hw.FMT_FP16, hw.FMT_BF16, hw.FMT_FIXED])
def test_planar_layouts_equal_device_layouts(isa_name, fmt):
    """A planar A [K, N] and C [M, N] with unpadded weights: the same bits
    and profile records as the device layouts (odd sizes: a partial last
    group, pixels not a multiple of the unpack block)."""
    (dev, dev_prof), (host, host_prof) = _gemm_both(7, 200, 70, fmt, bias=True, relu=True)
    assert np.array_equal(dev, host)
    assert dev_prof == host_prof


def test_planar_layouts_k_tiles_and_inf_nan(isa_name):
    """K tiles chained through the partial buffers read the weight matrix
    at each tile's column (``wgt_offset``); Inf/NaN operands in the planar
    activations are flagged as in the device layout."""
    (dev, dev_prof), (host, host_prof) = _gemm_both(5, 64 * 130 + 3, 9, hw.FMT_FP32,
                                                    bias=True, special=True)
    assert len(dev_prof) > 1                       # really several K tiles
    assert np.array_equal(dev, host)
    assert dev_prof == host_prof
    assert np.isnan(dev.view(np.float32)).any()


@pytest.mark.parametrize("layout", ["fortran", "strided", "big-endian", "transposed-w"])
def test_matmul_operand_layouts(layout):
    """numerics.matmul on the fast engine equals the reference whatever
    the memory layout of the user's operands."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((9, 260)) * 0.1).astype(np.float32)
    a = rng.standard_normal((260, 45)).astype(np.float32)
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided":
        w = np.repeat(w, 2, axis=1)[:, ::2]
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == "big-endian":
        w, a = w.astype(">f4"), a.astype(">f4")
    else:
        w = np.ascontiguousarray(w.T).T
    got, gp = numerics.matmul(w, a, return_profile=True, engine="fast", threads=2)
    want, wp = numerics.matmul(w, a, return_profile=True, engine="reference")
    assert np.array_equal(_bits(got), _bits(want)) and gp == wp
    quick = numerics.matmul(w, a, engine="fast", threads=2)
    assert np.array_equal(_bits(quick), _bits(want))
    assert quick.flags.c_contiguous and quick.dtype == np.float32 and quick.shape == (9, 45)


def test_program_cache_does_not_keep_refusals():
    """A refused layer is refused again on the next call (the instruction
    cache keeps only built programs)."""
    w = np.ones((hw.MAX_DIM + 1, 64), np.float32)
    a = np.ones((64, 2), np.float32)
    for _ in range(2):
        with pytest.raises(BitletValueError, match="limit"):
            numerics.matmul(w, a, engine="fast")


def test_concurrent_results_only_calls():
    """Results-only layers from several Python threads at once: one owns
    the persistent pool, the others run on threads of their own; every
    result equals the sequential one."""
    rng = np.random.default_rng(11)
    jobs = [((rng.standard_normal((m, k)) * 0.1).astype(np.float32),
             rng.standard_normal((k, n)).astype(np.float32))
            for m, k, n in [(24, 640, 96), (40, 200, 7), (3, 1100, 64), (16, 64, 120)]]
    want = [numerics.matmul(w, a, engine="fast", threads=1) for w, a in jobs]

    def calls(i):
        wrong = []
        for rep in range(8):
            j = (i + rep) % len(jobs)
            got = numerics.matmul(*jobs[j], engine="fast", threads=2 + rep % 2)
            wrong += [] if np.array_equal(_bits(got), _bits(want[j])) else [(i, rep)]
        return wrong

    with ThreadPoolExecutor(max_workers=4) as ex:
        assert [bad for wrong in ex.map(calls, range(4)) for bad in wrong] == []


_FORK_CHILD = textwrap.dedent("""
    import multiprocessing as mp, os, threading, sys
    import numpy as np
    from bitlet import numerics
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 300)).astype(np.float32)
    a = rng.standard_normal((300, 70)).astype(np.float32)
    want = numerics.matmul(w, a, engine="fast", threads=2).tobytes()

    def child(q):
        got = numerics.matmul(w, a, engine="fast", threads=2).tobytes()
        # the child's own pool: a worker that stays (Linux lists threads here)
        q.put((got, len(os.listdir("/proc/self/task"))))

    stop = threading.Event()
    def busy():
        while not stop.is_set():
            numerics.matmul(w, a, engine="fast", threads=2)
    t = threading.Thread(target=busy)
    t.start()
    ctx = mp.get_context("fork")
    ok = True
    for i in range(8):
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        got, n_threads = q.get(timeout=60)
        ok &= got == want and n_threads >= 2
        p.join(60)
        ok &= p.exitcode == 0
    stop.set()
    t.join()
    print("fork", "ok" if ok else "WRONG")
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, /proc/self/task")
def test_fork_while_the_pool_runs():
    """A child forked while a parent thread is inside the engine (its pool
    busy) starts a pool of its own (a worker thread that stays) and gets
    the parent's results; the parent then exits cleanly (its workers
    stopped and joined)."""
    res = subprocess.run([sys.executable, "-c", _FORK_CHILD], capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fork ok" in res.stdout


def test_process_with_a_pool_exits():
    """A process whose pool has more workers than CPUs exits with status 0
    (the exit handler stops and joins the workers)."""
    code = ("import numpy as np; from bitlet import numerics; "
            "w = np.ones((8, 100), np.float32); a = np.ones((100, 200), np.float32); "
            "r = numerics.matmul(w, a, engine='fast', threads=5); print(float(r[0, 0]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "100.0"


def _values(rng, shape, kind):
    """float32 values: normal, a wide exponent range, subnormal or huge, 30 % zeros."""
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "wide":
        x = (x * np.exp2(rng.integers(-140, 120, shape))).astype(np.float32)
    elif kind == "subnormal":
        x = (rng.standard_normal(shape) * 1e-39).astype(np.float32)
    elif kind == "huge":
        x = (x * 1e37).astype(np.float32)
    x[rng.random(shape) < 0.3] = 0
    return x


@pytest.mark.parametrize("kind", ["normal", "wide", "subnormal", "huge"])
def test_results_only_whole_groups(isa_name, kind):
    """Results only, K a multiple of 64 (the AVX-512 kernels then tile four
    channels at a time, emu/fast_tile4.c): every result equals the
    reference's, with subnormal, overflowing and cancelling group sums,
    Inf/NaN operands, a bias, ReLU and channel counts that are not
    multiples of four."""
    rng = np.random.default_rng(["normal", "wide", "subnormal", "huge"].index(kind))
    for m, k, n in [(7, 128, 37), (4, 64, 5), (10, 320, 66), (1, 192, 9)]:
        w, a = _values(rng, (m, k), kind), _values(rng, (k, n), kind)
        a[:, 0] = -a[:, 1]                       # cancelling columns
        if m > 3:
            a[k // 2, 2] = np.nan
            w[3, 7] = -np.inf
        b = _values(rng, (m,), "normal")
        for bias, relu in [(None, False), (b, True)]:
            got = numerics.matmul(w, a, bias=bias, relu=relu, engine="fast", threads=2)
            want = numerics.matmul(w, a, bias=bias, relu=relu, engine="reference")
            assert np.array_equal(_bits(got), _bits(want)), (m, k, n, relu)
    x = _values(rng, (1, 6, 11, 64), kind)
    wc = _values(rng, (6, 3, 3, 64), "normal")
    got = numerics.conv2d(x, wc, padding=1, engine="fast", threads=2)
    want = numerics.conv2d(x, wc, padding=1, engine="reference")
    assert np.array_equal(_bits(got), _bits(want))
