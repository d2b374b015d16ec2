"""Speed of the fast bit-exact emulator against numpy float32 matmul.

Run from the repository root (or anywhere the SDK is installed)::

    python benchmarks/emulator.py                # 5 alternating rounds per shape
    python benchmarks/emulator.py --repeats 1    # quicker, noisier
    python benchmarks/emulator.py --stages       # + where the time goes

It names the CPU, its vector instruction sets and the engine's kernels
selected at run time (``avx512v``, ``avx512``, ``avx2`` or ``scalar``), and
for four layer shapes from real CNNs plus a 256x576x1024 GEMM called
through :func:`bitlet.numerics.matmul` it measures, in the same run,

* ``numpy``: numpy float32 matmul of the same shape (BLAS; the im2col of
  the convolutions is done before the clock starts, only the matmul is
  timed; depthwise: a batched matmul, one small matrix per channel);
* ``fast``: :func:`bitlet.numerics.conv2d` / ``matmul`` with ``engine="fast"``, results only;
* ``fast+cycles``: the same with the cycle model (``cycles=True``);
* ``reference``: the kernel's own C (:mod:`bitlet.numerics` with
  ``engine="reference"``, not the fast engine they default to).  It is slow,
  so it runs once on a subset (the first output rows, or the first weight
  rows for GEMM) and its MAC/s is the subset's; the subset is printed.

Each round times numpy, fast and fast+cycles once each, one after the
other, each on its second call in a row (the first, untimed, wakes its
worker threads and, on a virtual machine, the idle virtual CPUs, which can
take milliseconds); a pause after each engine, untimed, lets BLAS worker
threads stop spinning; the rounds alternate so that a change of machine load hits every engine alike.
Printed: the median MAC/s and the median of the per-round ratios to
numpy, with the range (min-max) over the rounds.  It checks that the fast
engine equals the reference bit for bit on the subset (results and every
profile figure).  MACs are the layer's real multiply-accumulates (K per
output, without the zero padding of the last 64-group).

Small calls (fixed cost per call): a 64x576x64 layer through
``bitlet.numerics.matmul`` (results, with cycles, and numpy's 64x576x64
matmul) and a single group through ``bitlet.numerics.group_dot``, as calls
per second (median of the rounds).

``--stages`` adds where the time of each shape goes, measured by
difference: the Python around the C call (operand conversion, instruction
encoding, results), the C layer with one thread and with all threads (the
threading's efficiency), and the cycle model's share (fast+cycles minus
fast).  A finer split inside the C kernels needs a sampling profiler
(``perf record -g python benchmarks/emulator.py`` then ``perf report``).
The BLAS configuration numpy uses is printed as well (OPENBLAS_* variables
are honoured as they are set).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial

import numpy as np
from bitlet import numerics
from bitlet.engines import fast

# Pause between engines (not timed): BLAS worker threads keep spinning for
# a while after a matmul and would otherwise steal the next engine's CPU.
_SETTLE = 0.3


def _timed(fn) -> float:
    """Wall time (s) of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _spread(values) -> tuple[float, float, float]:
    """(median, min, max) of ``values``."""
    v = np.asarray(values, dtype=float)
    return float(np.median(v)), float(v.min()), float(v.max())


def _activations(rng, shape) -> np.ndarray:
    """ReLU-like activations: half zeros, the rest |N(0, 1)|."""
    x = np.abs(rng.standard_normal(shape)).astype(np.float32)
    x[rng.random(shape) < 0.5] = 0.0
    return x


def _im2col(x: np.ndarray, kh: int, kw: int, pad: int) -> np.ndarray:
    """[N, H, W, C] -> [N*OH*OW, KH*KW*C] (stride 1, zero padding ``pad``)."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    cols = [xp[:, i:i + oh, j:j + ow, :] for i in range(kh) for j in range(kw)]
    return np.concatenate(cols, axis=-1).reshape(n * oh * ow, kh * kw * c)


class Shape:
    """One benchmark layer: how to run it on each engine and on a subset."""

    def __init__(self, name, macs, numpy_fn, fast_fn, ref_subset, fast_subset, subset_macs,
                 subset_note):
        self.name = name
        self.macs = macs
        self.numpy_fn = numpy_fn
        self.fast_fn = fast_fn              # fast_fn(cycles: bool)
        self.ref_subset = ref_subset        # () -> (out, profile)
        self.fast_subset = fast_subset      # () -> (out, profile)
        self.subset_macs = subset_macs
        self.subset_note = subset_note


def conv_shape(rng, name, n, h, w, cin, cout, k, groups, ref_rows) -> Shape:
    x = _activations(rng, (n, h, w, cin))
    wt = (rng.standard_normal((cout, k, k, cin // groups)) * 0.05).astype(np.float32)
    pad = k // 2
    kdim = k * k * cin // groups
    macs = n * h * w * cout * kdim
    if groups == 1:
        a = _im2col(x, k, k, pad)
        wm = np.ascontiguousarray(wt.reshape(cout, kdim).T)
        numpy_fn = lambda: a @ wm
    else:                                                           # depthwise
        cols = _im2col(x, k, k, pad).reshape(-1, k * k, cin)
        a = np.ascontiguousarray(cols.transpose(2, 0, 1))            # [C, P, 9]
        wm = np.ascontiguousarray(wt.reshape(cout, k * k)[:, :, None])   # [C, 9, 1]
        numpy_fn = lambda: np.matmul(a, wm)
    kw = {"padding": pad, "groups": groups}
    # subset: the first ref_rows output rows (input rows 0 .. ref_rows-1+k//2,
    # top padding only), exactly those rows of the full layer
    xs = x[:, :ref_rows + pad]
    sub_kw = {"padding": (pad, pad, 0, pad), "groups": groups}
    return Shape(
        name, macs, numpy_fn,
        lambda cycles: numerics.conv2d(x, wt, engine="fast", cycles=cycles, **kw),
        lambda: numerics.conv2d(xs, wt, return_profile=True, engine="reference", **sub_kw),
        lambda: numerics.conv2d(xs, wt, return_profile=True, engine="fast", **sub_kw),
        n * ref_rows * w * cout * kdim,
        f"first {ref_rows} of {h} output rows",
    )


def gemm_shape(rng, m, k, n, ref_m, via_numerics=False) -> Shape:
    """GEMM W [m, k] @ A [k, n]: :func:`bitlet.numerics.matmul` (``engine="fast"``), or with
    ``via_numerics`` :func:`bitlet.numerics.matmul` (the user's call: the
    fast engine by default, ``return_profile=True`` for the cycles)."""
    wt = (rng.standard_normal((m, k)) * 0.05).astype(np.float32)
    a = _activations(rng, (k, n))
    if via_numerics:
        name = f"GEMM {m}x{k}x{n} (numerics.matmul)"
        fast_fn = lambda cycles: numerics.matmul(wt, a, return_profile=cycles)
        fast_subset = lambda: numerics.matmul(wt[:ref_m], a, return_profile=True)
    else:
        name = f"GEMM {m}x{k}x{n}"
        fast_fn = lambda cycles: numerics.matmul(wt, a, engine="fast", cycles=cycles)
        fast_subset = lambda: numerics.matmul(wt[:ref_m], a, return_profile=True, engine="fast")
    return Shape(
        name, m * k * n,
        lambda: wt @ a,
        fast_fn,
        lambda: numerics.matmul(wt[:ref_m], a, return_profile=True, engine="reference"),
        fast_subset,
        ref_m * k * n,
        f"first {ref_m} of {m} weight rows",
    )


def cpu_description() -> str:
    """The CPU model and the vector instruction sets the engine can use."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model in ("", platform.machine(),
                                                                             platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx512f", "avx512bw", "avx512vbmi", "avx512_vpopcntdq", "gfni", "avx2", "fma",
              "bmi2", "asimd", "sve"]
    have = [f for f in wanted if f in flags]
    return f"{model}; {' '.join(have) if have else 'no listed vector extensions'}"


def blas_config() -> str:
    """The BLAS numpy uses, as threadpoolctl or numpy reports it."""
    lines = []
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            lines.append(f"  {lib.get('internal_api')} {lib.get('version')} "
                         f"threads={lib.get('num_threads')} arch={lib.get('architecture')}")
    except ImportError:
        cfg = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.25.0" \
            else None
        blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {})
        lines.append(f"  {blas.get('name', '?')} {blas.get('version', '')} "
                     f"({blas.get('openblas configuration', '').strip()})")
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    lines.append(f"  environment: {env or 'none'}")
    return "\n".join(lines)


def _check(s: Shape) -> bool:
    """fast == reference bit for bit on the subset (results and profile),
    and the full layer's rows of the subset equal the reference too."""
    ref_out, ref_prof = s.ref_subset()
    fast_out, fast_prof = s.fast_subset()
    same = (np.array_equal(ref_out.view(np.uint32), fast_out.view(np.uint32))
            and ref_prof == fast_prof)
    full = s.fast_fn(False)
    part = full[:, :ref_out.shape[1]] if full.ndim == 4 else full[:ref_out.shape[0]]
    return same and np.array_equal(part.view(np.uint32), ref_out.view(np.uint32))


def run(shapes, repeats: int) -> list[dict]:
    """Alternating rounds per shape (see the module docstring); one printed
    line and one dict per shape."""
    rows = []
    for s in shapes:
        s.numpy_fn()
        s.fast_fn(False)
        s.fast_fn(True)
        time.sleep(_SETTLE)
        t_np, t_fast, t_cyc = [], [], []
        for _ in range(repeats):
            # each engine is timed on its second call in a row: the first (a
            # warm-up, untimed) wakes its threads and the CPUs after the pause
            s.numpy_fn()
            t_np.append(_timed(s.numpy_fn))
            time.sleep(_SETTLE)
            s.fast_fn(False)
            t_fast.append(_timed(partial(s.fast_fn, False)))
            time.sleep(_SETTLE)
            s.fast_fn(True)
            t_cyc.append(_timed(partial(s.fast_fn, True)))
            time.sleep(_SETTLE)
        t0 = time.perf_counter()
        s.ref_subset()
        t_ref = time.perf_counter() - t0
        same = _check(s)
        t_np, t_fast, t_cyc = (np.array(t) for t in (t_np, t_fast, t_cyc))
        r = {"name": s.name, "numpy": s.macs / np.median(t_np),
             "fast": s.macs / np.median(t_fast), "cycles": s.macs / np.median(t_cyc),
             "reference": s.subset_macs / t_ref, "note": s.subset_note, "same": same,
             "ratio": _spread(t_np / t_fast), "ratio_cycles": _spread(t_np / t_cyc)}
        rows.append(r)
        f, c = r["ratio"], r["ratio_cycles"]
        print(f"{r['name']:<38} numpy {r['numpy'] / 1e9:6.2f} GMAC/s | "
              f"fast {r['fast'] / 1e9:5.2f} ({f[0]:.3f}x, {f[1]:.3f}-{f[2]:.3f}) | "
              f"fast+cycles {r['cycles'] / 1e9:5.3f} ({c[0]:.4f}x, {c[1]:.4f}-{c[2]:.4f}) | "
              f"reference {r['reference'] / 1e6:5.2f} MMAC/s ({r['note']}) | "
              f"bit-exact {'yes' if r['same'] else 'NO'}", flush=True)
    return rows


def small_calls(rng, repeats: int) -> list[tuple[str, tuple]]:
    """Calls per second (median, min, max over the rounds) of small calls."""
    w = (rng.standard_normal((64, 576)) * 0.05).astype(np.float32)
    a = _activations(rng, (576, 64))
    gw = (rng.standard_normal(64) * 0.05).astype(np.float32)
    ga = _activations(rng, (64,))
    calls = [("layer 64x576x64, numerics.matmul, results", lambda: numerics.matmul(w, a)),
             ("layer 64x576x64, numerics.matmul, with cycles",
              lambda: numerics.matmul(w, a, return_profile=True)),
             ("layer 64x576x64, numpy matmul", lambda: w @ a),
             ("one group, numerics.group_dot (result and cycles)",
              lambda: numerics.group_dot(gw, ga))]
    out = []
    for name, fn in calls:
        fn()
        rates = []
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while n < 5 or time.perf_counter() - t0 < 0.2:
                fn()
                n += 1
            rates.append(n / (time.perf_counter() - t0))
        out.append((name, _spread(rates)))
        m = out[-1][1]
        print(f"{name:<52} {m[0]:9.0f} calls/s ({m[1]:.0f}-{m[2]:.0f})", flush=True)
    return out


def stages(s: Shape, repeats: int, threads: int) -> None:
    """Where one shape's time goes, by difference (see the module docstring)."""
    eng = fast.engine()
    in_c = []
    run_layer = fast.FastEngine.run_layer

    def timed_run_layer(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return run_layer(self, *args, **kwargs)
        finally:
            in_c.append(time.perf_counter() - t0)

    def measure(cycles, nthreads):
        totals, inner = [], []
        for _ in range(repeats):
            in_c.clear()
            saved = os.environ.get("BITLET_THREADS")
            os.environ["BITLET_THREADS"] = str(nthreads)
            try:
                totals.append(_timed(partial(s.fast_fn, cycles)))
            finally:
                if saved is None:
                    del os.environ["BITLET_THREADS"]
                else:
                    os.environ["BITLET_THREADS"] = saved
            inner.append(sum(in_c))
        return float(np.median(totals)), float(np.median(inner))

    fast.FastEngine.run_layer = timed_run_layer
    try:
        s.fast_fn(False)
        tot, c_all = measure(False, threads)
        _, c_one = measure(False, 1)
        tot_c, c_all_c = measure(True, threads)
    finally:
        fast.FastEngine.run_layer = run_layer
    del eng
    print(f"  {s.name}: results {tot * 1e3:.1f} ms = C layer {c_all * 1e3:.1f} ms "
          f"({threads} threads; 1 thread {c_one * 1e3:.1f} ms, speed-up "
          f"{c_one / c_all:.2f}x) + Python around it {(tot - c_all) * 1e3:.1f} ms "
          f"({(tot - c_all) / tot:.0%}); with cycles {tot_c * 1e3:.1f} ms: the S scan and "
          f"cycle model add {(c_all_c - c_all) * 1e3:.1f} ms "
          f"({(c_all_c - c_all) / tot_c:.0%} of it)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="alternating rounds per shape (median and range), default 5")
    parser.add_argument("--stages", action="store_true",
                        help="also print where each shape's time goes (by difference)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    rng = np.random.default_rng(2021)
    info = fast.info()
    print(f"python {platform.python_version()} numpy {np.__version__} on "
          f"{platform.machine()} ({os.cpu_count()} CPUs)")
    print(f"CPU: {cpu_description()}")
    print(f"fast engine: kernels {info['isa']} (selected at run time), "
          f"threading={info['threading']} threads={info['default_threads']}")
    print("numpy BLAS:\n" + blas_config())
    shapes = [
        conv_shape(rng, "conv 3x3 64->64 @56x56", 1, 56, 56, 64, 64, 3, 1, ref_rows=2),
        conv_shape(rng, "conv 1x1 256->64 @56x56", 1, 56, 56, 256, 64, 1, 1, ref_rows=3),
        conv_shape(rng, "depthwise 3x3 @112x112x32", 1, 112, 112, 32, 32, 3, 32, ref_rows=8),
        gemm_shape(rng, 1024, 1024, 1024, ref_m=8),
        gemm_shape(rng, 256, 576, 1024, ref_m=8, via_numerics=True),
    ]
    print(f"rounds per shape: {args.repeats}; ratios to numpy: median (min-max)")
    rows = run(shapes, args.repeats)
    ok = all(r["same"] for r in rows)
    worst = min(r["ratio"][0] for r in rows)
    worst_c = min(r["ratio_cycles"][0] for r in rows)
    print(f"lowest median ratio to numpy: results {worst:.3f}x, with cycles {worst_c:.4f}x "
          f"(kernels {info['isa']}); fast == reference on every subset: "
          f"{'yes' if ok else 'NO'}")
    print("small calls (median of the rounds, range):")
    small_calls(rng, args.repeats)
    if args.stages:
        print("where the time goes (medians, by difference):")
        for s in shapes:
            stages(s, args.repeats, info["default_threads"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
