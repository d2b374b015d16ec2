"""``bitlet sweep``: design-space sweeps over a data set, on the same shard engine as ``bitlet eval``.

The grid is models x precisions x prune masks x bit budgets x N_PE (kernel
builds compiled at that N_PE, :mod:`bitlet.tools.variants`).  Every point is a
job (one compiled program) evaluated on the same inputs; all shards of all
points fan out over the workers together.  Per point: the mean relative L2
error of the outputs against onnxruntime fp32, top-1 agreement / accuracy when
they apply, and the mean **modelled** kernel cycles per input (the kernel's
counted cycle model) with the predicted kernel time.  The Pareto front (per
model: no other point has both fewer cycles and less error) is marked; the plot
shows error against cycles.

With ``out``, every point's shards are kept in ``OUT/<model>/<point key>/``
(resumable like ``bitlet eval``), and ``sweep.json`` / ``pareto.csv`` are
written there.
"""
from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitlet import hw
from bitlet.errors import BitletValueError
from bitlet.tools.dataset import open_dataset
from bitlet.tools.evaluate import CYCLES_LABEL, make_runner, model_inputs, summarize
from bitlet.tools.plots import pyplot
from bitlet.tools.shards import (
    DEFAULT_SHARD_SIZE,
    FORMAT,
    ShardStore,
    make_job,
    run_jobs,
    write_json,
)

__all__ = ["SweepResult", "pareto", "sweep"]


def pareto(points: Sequence[dict[str, Any]], cost: str = "kernel_cycles",
           error: str = "rel_l2") -> list[int]:
    """Indices of the points no other point beats (fewer-or-equal ``cost`` and
    ``error``, one of them strictly); ties keep the first."""
    front = []
    for i, p in enumerate(points):
        beaten = any((q[cost] <= p[cost] and q[error] <= p[error])
                     and (q[cost] < p[cost] or q[error] < p[error] or j < i)
                     for j, q in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return front


@dataclass
class SweepResult:
    """Every point of the grid with its measured error and modelled cycles (plain data)."""

    points: list[dict[str, Any]]
    info: dict[str, Any]
    written: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "info": self.info, "written": self.written}

    def front(self, model: str | None = None) -> list[dict[str, Any]]:
        """The Pareto-optimal points (of ``model``), by increasing cycles."""
        pts = [p for p in self.points if p["pareto"] and (model is None or p["model"] == model)]
        return sorted(pts, key=lambda p: (p["model"], p["kernel_cycles"]))

    def __str__(self) -> str:
        acc = any("accuracy" in p for p in self.points)
        extra = next(((k, t) for k, t in (("top1_agree", "top1"), ("psnr_db", "PSNR dB"))
                      if any(k in p for p in self.points)), ("", "-"))
        head = (f"{'model':<16} {'precision':<9} {'prune':>8} {'bits':>4} {'N_PE':>4} "
                f"{'kernel cyc':>12} {'pred ms':>9} {'rel L2 mean':>12} {'p95':>10} {extra[1]:>7}"
                + (f" {'acc':>6}" if acc else "") + "  pareto")
        title = (f"{len(self.points)} points x {self.info['n_inputs']} inputs; cycles "
                 f"{CYCLES_LABEL}, errors vs onnxruntime fp32; {self.info['runner']['workers']} "
                 f"worker(s) ({self.info['runner']['cluster']})")
        lines = [title, head, "-" * len(head)]
        for p in sorted(self.points, key=lambda p: (p["model"], p["kernel_cycles"])):
            more = f"{p[extra[0]]:>7.3f}" if extra[0] in p else f"{'-':>7}"
            lines.append(f"{p['model'][:16]:<16} {p['precision']:<9} {p['prune']:>8x} "
                         f"{p['bits'] or '-':>4} {p['n_pe']:>4} {p['kernel_cycles']:>12,.0f} "
                         f"{p['predicted_ms']:>9.4f} {p['rel_l2']:>12.3e} {p['p95_rel_l2']:>10.3e} "
                         f"{more}" + (f" {p.get('accuracy', float('nan')):>6.3f}" if acc else "")
                         + ("  *" if p["pareto"] else ""))
        lines += [f"wrote {w}" for w in self.written]
        return "\n".join(lines)


def _mask(value: Any) -> int:
    if value is None:
        return hw.PRUNE_ALL
    return int(value, 0) if isinstance(value, str) else int(value)


def sweep(models: Sequence[Any], data: str, *, precisions: Sequence[str] = ("fp32",),
          prunes: Sequence[Any] = (None,), bits: Sequence[int | None] = (None,),
          n_pes: Sequence[int | None] = (None,), labels: str | None = None,
          input_shapes: dict | None = None, limit: int | None = None, workers: int = 1,
          cluster: str | None = None, threads: int | None = None,
          shard_size: int = DEFAULT_SHARD_SIZE, out: str | os.PathLike | None = None,
          plots: str | os.PathLike | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> SweepResult:
    """Evaluate every point of models x precisions x prunes x bits x n_pes on ``data``.

    Parameters
    ----------
    models : sequence of path or onnx.ModelProto
        ONNX models (all fed from ``data``: same input names).
    data, labels, input_shapes, limit : as :func:`bitlet.tools.evaluate.evaluate`
    precisions : sequence of str
        ``fp32``, ``fp16``, ``bf16``, ``fixed<n>``.
    prunes : sequence of int, str or None
        24-bit column masks for every layer (None: no pruning).
    bits : sequence of int or None
        Bit budgets (ones per weight significand) for every layer (None: none).
    n_pes : sequence of int or None
        Kernel builds (None: the header's N_PE).
    workers, cluster, threads, shard_size, progress : as ``evaluate``
    out, plots : path, optional
        Resumable results and tables; ``pareto.png``.

    Returns
    -------
    SweepResult
    """
    if not models:
        raise BitletValueError("sweep: give at least one model")
    jobs, datasets, stores, meta = {}, {}, {}, {}
    names_seen: dict[str, int] = {}
    for model in models:
        specs, output_names = model_inputs(model, input_shapes)
        ds = open_dataset(data, specs, labels=labels, output_names=output_names, limit=limit)
        shapes = {k: tuple(v.shape) for k, v in ds.feeds(0).items()}
        label = Path(model).stem if isinstance(model, (str, os.PathLike)) else \
            (model.graph.name or "model")
        names_seen[label] = names_seen.get(label, 0) + 1
        if names_seen[label] > 1:
            label = f"{label}-{names_seen[label]}"
        for precision, prune, k, n_pe in itertools.product(precisions, prunes, bits, n_pes):
            job = make_job(model, precision=precision, prune=_mask(prune), bits=k,
                           input_shapes=shapes, n_pe=n_pe, layers=False)
            if job.key in jobs:
                continue
            jobs[job.key], datasets[job.key] = job, ds
            meta[job.key] = {"model": label, "precision": precision, "prune": _mask(prune),
                             "bits": k, "n_pe": job.n_pe, "key": job.key}
            if out is not None:
                stores[job.key] = ShardStore(Path(out) / label / job.key,
                                             {"format": FORMAT, "job": job.key,
                                              "shard_size": shard_size, "n_inputs": len(ds),
                                              "reference": "onnxruntime"})
    runner = make_runner(workers, cluster, threads)
    try:
        shards = run_jobs(jobs, datasets, runner=runner, stores=stores or None,
                          shard_size=shard_size, progress=progress)
        stats = runner.stats()
    finally:
        runner.close()
    points = []
    for key, m in meta.items():
        records = [r for sh in shards[key] for r in sh["records"]]
        s = summarize(records)["metrics"]
        point = {**m, "kernel_cycles": s["kernel_cycles"]["mean"], "pe_cycles": s["pe_cycles"]["mean"],
                 "predicted_ms": s["predicted_ms"]["mean"], "rel_l2": s["rel_l2"]["mean"],
                 "p95_rel_l2": s["rel_l2"]["p95"], "max_rel_l2": s["rel_l2"]["max"],
                 "n_inputs": len(records)}
        for extra in ("top1_agree", "psnr_db", "ssim"):
            if extra in s and "mean" in s[extra]:
                point[extra] = s[extra]["mean"]
        if "correct" in s:
            point["accuracy"], point["fp32_accuracy"] = s["correct"]["mean"], s["ref_correct"]["mean"]
        points.append(point)
    for model in dict.fromkeys(p["model"] for p in points):
        idx = [i for i, p in enumerate(points) if p["model"] == model]
        front = set(pareto([points[i] for i in idx]))
        for j, i in enumerate(idx):
            points[i]["pareto"] = j in front
    info = {"data": str(data), "n_inputs": min(len(d) for d in datasets.values()),
            "runner": stats, "cycles": CYCLES_LABEL, "error": "mean relative L2 vs onnxruntime fp32"}
    result = SweepResult(points, info)
    if out is not None:
        result.written += _write(Path(out), result)
    if plots is not None:
        result.written += plot_sweep(result, plots)
    return result


def _write(out: Path, result: SweepResult) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", result.as_dict())
    cols = ["model", "precision", "prune", "bits", "n_pe", "kernel_cycles", "pe_cycles",
            "predicted_ms", "rel_l2", "p95_rel_l2", "max_rel_l2", "top1_agree", "accuracy",
            "fp32_accuracy", "pareto", "key"]
    with open(out / "pareto.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for p in sorted(result.points, key=lambda p: (p["model"], p["kernel_cycles"])):
            w.writerow([hex(p["prune"]) if c == "prune" else p.get(c, "") for c in cols])
    return [str(out / "sweep.json"), str(out / "pareto.csv")]


def plot_sweep(result: SweepResult, directory: str | os.PathLike) -> list[str]:
    """``pareto.png``: mean rel L2 error against modelled kernel cycles, front connected."""
    plt = pyplot()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    floor = min((p["rel_l2"] for p in result.points if p["rel_l2"] > 0), default=1e-12) / 10
    for model in dict.fromkeys(p["model"] for p in result.points):
        pts = [p for p in result.points if p["model"] == model]
        line = ax.scatter([p["kernel_cycles"] for p in pts], [max(p["rel_l2"], floor) for p in pts],
                          s=18, label=model)
        front = result.front(model)
        ax.plot([p["kernel_cycles"] for p in front], [max(p["rel_l2"], floor) for p in front], "-",
                color=line.get_facecolor()[0])
        for p in front:
            ax.annotate(f"{p['precision']} {p['prune']:x}" + (f" b{p['bits']}" if p["bits"] else "")
                        + f" P{p['n_pe']}", (p["kernel_cycles"], max(p["rel_l2"], floor)),
                        fontsize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("kernel cycles per input (modelled, kernel cycle model)")
    ax.set_ylabel("mean relative L2 error vs onnxruntime fp32")
    ax.set_title(f"modelled (Bitlet emulator): accuracy vs cycles, {result.info['n_inputs']} inputs "
                 f"of {Path(result.info['data']).name}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = d / "pareto.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [str(path)]
