"""Scaling of ``bitlet eval`` on Ray: inputs per second with 1 worker and with N workers.

Same model, same inputs, same run: the bundled ESPCN x3 model (``bitlet demo``'s)
on ``--inputs`` random ``--size`` x ``--size`` frames, per-layer statistics off,
every worker with ``BITLET_THREADS=1`` (one core each).  Measured, each
``--repeats`` times (medians printed):

* in-process (``--workers 1``, no Ray) inputs per second;
* Ray with 1 worker and with ``--workers`` N workers (actors started and the job
  opened in each before the clock starts; pool start-up reported separately), and the ratio
  N-worker / 1-worker throughput;
* object-store traffic per input: input bytes shipped to workers and result
  bytes shipped back; plus the job (program, weights, ONNX model) put once;
* overhead per task: worker time not spent computing shards,
  ``(elapsed x workers - sum of shard compute) / tasks``.

Usage::

    python benchmarks/eval_scaling.py [--workers 2] [--inputs 24] [--size 32] [--shard-size 2]
                                      [--repeats 3] [--cluster local|ray://HOST:PORT|auto]
                                      [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parents[1] / "sdk" / "bitlet" / "demo" / "espcn_x3.onnx"


def _run(runner, job, ds, shard_size: int) -> tuple[float, list[dict]]:
    from bitlet.tools.shards import run_jobs

    t0 = time.perf_counter()
    shards = run_jobs({job.key: job}, {job.key: ds}, runner=runner, shard_size=shard_size)[job.key]
    return time.perf_counter() - t0, shards


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--inputs", type=int, default=24)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cluster", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    os.environ["BITLET_THREADS"] = "1"   # the in-process run: one core, like each worker
    from bitlet.tools.cluster import RayRunner, _connect, import_ray
    from bitlet.tools.dataset import open_dataset
    from bitlet.tools.shards import LocalRunner, make_job

    tmp = Path(tempfile.mkdtemp(prefix="bitlet-eval-scaling-"))
    x = np.random.default_rng(0).random((args.inputs, 1, 1, args.size, args.size), dtype=np.float32)
    np.save(tmp / "x.npy", x)
    ds = open_dataset(str(tmp / "x.npy"), [{"name": "lr", "shape": [1, 1, args.size, args.size]}])
    job = make_job(str(MODEL), input_shapes={"lr": (1, 1, args.size, args.size)})

    ray = import_ray()
    started = _connect(ray, args.cluster, args.workers)  # once: the pools below share it
    results: dict[str, list[float]] = {"in_process": [], "ray_1": [], f"ray_{args.workers}": []}
    reference = None
    extra = {}
    for rep in range(args.repeats):
        local = LocalRunner()
        local.worker._open(job.key, lambda: job)  # opened before the clock starts, as on the pools
        seconds, shards = _run(local, job, ds, args.shard_size)
        local.close()
        results["in_process"].append(args.inputs / seconds)
        reference = reference or [r for sh in shards for r in sh["records"]]
        for n in (1, args.workers):
            t0 = time.perf_counter()
            pool = RayRunner(workers=n, cluster=args.cluster, threads=1)
            pool.warm_up({job.key: job})
            startup = time.perf_counter() - t0
            seconds, shards = _run(pool, job, ds, args.shard_size)
            records = [r for sh in shards for r in sh["records"]]
            assert records == reference, "a distributed run differs from the in-process run"
            compute = sum(sh["seconds"] for sh in shards)
            results[f"ray_{n}"].append(args.inputs / seconds)
            extra.setdefault(f"ray_{n}", []).append({
                "startup_s": startup, "elapsed_s": seconds,
                "overhead_per_task_ms": (seconds * n - compute) / len(shards) * 1e3,
                "input_bytes_per_input": pool.bytes_sent / args.inputs,
                "result_bytes_per_input": pool.bytes_received / args.inputs,
                "job_bytes_once": pool.job_bytes})
            pool.close()
        print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1]:.2f} inputs/s" for k, v in results.items()), file=sys.stderr)

    if started:
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.workers
    paired = [b / a for a, b in zip(results["ray_1"], results[f"ray_{n}"])]  # same repeat
    summary = {
        "label": "measured on this machine (wall clock; kernel cycles not involved)",
        "machine": f"{os.cpu_count()} CPUs", "model": MODEL.name,
        "inputs": args.inputs, "size": args.size, "shard_size": args.shard_size,
        "repeats": args.repeats, "inputs_per_s_median": med,
        f"ratio_{n}_workers_to_1": med[f"ray_{n}"] / med["ray_1"],
        "ratio_1_worker_to_in_process": med["ray_1"] / med["in_process"],
        "ratio_per_repeat": paired, "load_average": os.getloadavg(),
        "per_run": extra, "runs": results}
    for key in (f"ray_{n}",):
        rows = extra[key]
        summary[f"{key}_overhead_per_task_ms_median"] = statistics.median(
            r["overhead_per_task_ms"] for r in rows)
        summary[f"{key}_object_store_bytes_per_input"] = rows[0]["input_bytes_per_input"] \
            + rows[0]["result_bytes_per_input"]
        summary[f"{key}_startup_s_median"] = statistics.median(r["startup_s"] for r in rows)
    print(f"ESPCN x3 {args.size}x{args.size}, {args.inputs} inputs, shards of {args.shard_size}, "
          f"BITLET_THREADS=1 per worker, medians of {args.repeats} runs (measured on this "
          f"machine, {os.cpu_count()} CPUs):")
    for k, v in med.items():
        print(f"  {k:<12} {v:7.2f} inputs/s")
    print(f"  ratio {n} workers / 1 worker: {summary[f'ratio_{n}_workers_to_1']:.2f}x; "
          f"1 Ray worker / in-process: {summary['ratio_1_worker_to_in_process']:.2f}x; per repeat "
          + ", ".join(f"{r:.2f}x" for r in paired)
          + f" (load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  object store per input: {summary[f'ray_{n}_object_store_bytes_per_input']:,.0f} B "
          f"(inputs + results); job put once: {extra[f'ray_{n}'][0]['job_bytes_once']:,} B")
    print(f"  overhead per task ({n} workers): "
          f"{summary[f'ray_{n}_overhead_per_task_ms_median']:.1f} ms; pool start-up "
          f"{summary[f'ray_{n}_startup_s_median']:.1f} s (not in the throughput)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
