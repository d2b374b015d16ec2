"""Speed of the fast bit-exact emulator against numpy float32 matmul.

Run from the repository root (or anywhere the SDK is installed)::

    python benchmarks/emulator.py                # median of 5 timed calls each
    python benchmarks/emulator.py --repeats 1    # quicker, noisier

For four layer shapes from real CNNs it prints, measured in the same run,
the MAC/s of

* ``numpy``: numpy float32 matmul of the same shape (BLAS; the im2col of
  the convolutions is done before the clock starts, only the matmul is
  timed; depthwise: a batched matmul, one small matrix per channel);
* ``fast``: :func:`bitlet.numerics.conv2d` / ``matmul`` with ``engine="fast"``, results only;
* ``fast+cycles``: the same with the cycle model (``cycles=True``);
* ``reference``: the kernel's own C (:mod:`bitlet.numerics` with
  ``engine="reference"``, not the fast engine they default to).  It is slow,
  so it runs on a subset (the first output rows, or the first weight rows
  for GEMM) and its MAC/s is the subset's; the subset is printed;

and each one's ratio to numpy (medians of back-to-back calls, each engine
in its steady state).  It checks that the fast engine equals the
reference bit for bit on that subset (results and every profile figure).
MACs are the layer's real multiply-accumulates (K per output, without the
zero padding of the last 64-group).  The BLAS configuration numpy uses is
printed as well (OPENBLAS_* variables are honoured as they are set).
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


def _median_time(fn, repeats: int) -> float:
    """Median wall time (s) of ``repeats`` back-to-back calls after a warm-up
    call (each engine in its steady state: numpy's BLAS threads stay hot),
    then a pause so the next engine starts on an idle machine."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    time.sleep(_SETTLE)
    return float(np.median(times))


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


def gemm_shape(rng, m, k, n, ref_m) -> Shape:
    wt = (rng.standard_normal((m, k)) * 0.05).astype(np.float32)
    a = _activations(rng, (k, n))
    return Shape(
        f"GEMM {m}x{k}x{n}", m * k * n,
        lambda: wt @ a,
        lambda cycles: numerics.matmul(wt, a, engine="fast", cycles=cycles),
        lambda: numerics.matmul(wt[:ref_m], a, return_profile=True, engine="reference"),
        lambda: numerics.matmul(wt[:ref_m], a, return_profile=True, engine="fast"),
        ref_m * k * n,
        f"first {ref_m} of {m} weight rows",
    )


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


def run(shapes, repeats: int) -> list[dict]:
    rows = []
    for s in shapes:
        t_np = _median_time(s.numpy_fn, repeats)
        t_fast = _median_time(partial(s.fast_fn, False), repeats)
        t_cyc = _median_time(partial(s.fast_fn, True), repeats)
        t0 = time.perf_counter()
        ref_out, ref_prof = s.ref_subset()
        t_ref = time.perf_counter() - t0
        fast_out, fast_prof = s.fast_subset()
        same = (np.array_equal(ref_out.view(np.uint32), fast_out.view(np.uint32))
                and ref_prof == fast_prof)
        full = s.fast_fn(False)
        part = full[:, :ref_out.shape[1]] if full.ndim == 4 else full[:ref_out.shape[0]]
        same = same and np.array_equal(part.view(np.uint32), ref_out.view(np.uint32))
        rows.append({"name": s.name, "numpy": s.macs / t_np, "fast": s.macs / t_fast,
                         "cycles": s.macs / t_cyc, "reference": s.subset_macs / t_ref,
                         "note": s.subset_note, "same": same})
        r = rows[-1]
        print(f"{r['name']:<34} numpy {r['numpy'] / 1e9:7.2f} GMAC/s | "
              f"fast {r['fast'] / 1e9:6.2f} ({r['fast'] / r['numpy']:.3f}x) | "
              f"fast+cycles {r['cycles'] / 1e9:6.3f} ({r['cycles'] / r['numpy']:.4f}x) | "
              f"reference {r['reference'] / 1e6:6.2f} MMAC/s ({r['reference'] / r['numpy']:.5f}x, "
              f"{r['note']}) | bit-exact {'yes' if r['same'] else 'NO'}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed calls per engine (median reported), default 5")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2021)
    info = fast.info()
    print(f"python {platform.python_version()} numpy {np.__version__} on "
          f"{platform.machine()} ({os.cpu_count()} CPUs)")
    print(f"fast engine: isa={info['isa']} threading={info['threading']} "
          f"threads={info['default_threads']}")
    print("numpy BLAS:\n" + blas_config())
    shapes = [
        conv_shape(rng, "conv 3x3 64->64 @56x56", 1, 56, 56, 64, 64, 3, 1, ref_rows=2),
        conv_shape(rng, "conv 1x1 256->64 @56x56", 1, 56, 56, 256, 64, 1, 1, ref_rows=3),
        conv_shape(rng, "depthwise 3x3 @112x112x32", 1, 112, 112, 32, 32, 3, 32, ref_rows=8),
        gemm_shape(rng, 1024, 1024, 1024, ref_m=8),
    ]
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    rows = run(shapes, args.repeats)
    ok = all(r["same"] for r in rows)
    worst = min(r["fast"] / r["numpy"] for r in rows)
    worst_c = min(r["cycles"] / r["numpy"] for r in rows)
    print(f"lowest ratio to numpy: results {worst:.3f}x, with cycles {worst_c:.4f}x; "
          f"fast == reference on every subset: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
