"""``bitlet eval`` / :func:`bitlet.evaluate`: a compiled model over a data set.

Every input runs on the simulated Bitlet kernel (the bit-exact emulator) and
on onnxruntime fp32 (the reference; single-threaded, so its results do not
depend on how the work is spread over processes).  Per input:

* the device outputs against the reference: relative L2 ``||y - r|| / ||r||``
  and max abs error (worst over the outputs), PSNR (dB, peak = range of the
  reference) and SSIM (7x7 uniform window, as ``skimage.metrics``) for image
  outputs ``[N, C, H, W]``, top-1 agreement and top-5 overlap for classifier
  outputs ``[N, classes]``, and accuracy against labels when given (for the
  Bitlet outputs and for the fp32 reference);
* the **modelled** kernel cycles (the kernel's counted cycle model, summed
  over the program's instructions) and the predicted kernel time at the
  kernel clock;
* a SHA-256 of the output bytes (so two runs can be compared bit for bit);
* per layer (``layers=True``): the error of every value both sides compute
  (:func:`bitlet.tools.accuracy.compare`'s per-layer comparison).

Work is cut into shards of ``shard_size`` inputs.  A shard's result is written
to ``OUT/shards/shard-NNNNN.json`` (atomically) as soon as it is back; a rerun
with the same ``OUT`` skips the shards already there (after checking they were
computed from the same program and the same inputs).  Shards run in this
process (``workers=1``) or on Ray actors (:mod:`bitlet.tools.cluster`); the
summary is computed from the per-input records in input order, so it is the
same, bit for bit, however the work was spread.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.compiler.frontend import load_model
from bitlet.errors import BitletError, BitletValueError
from bitlet.program import Program
from bitlet.tools.cluster import RayRunner
from bitlet.tools.dataset import open_dataset
from bitlet.tools.inputs import onnx_input_specs
from bitlet.tools.plots import pyplot
from bitlet.tools.shards import (
    DEFAULT_SHARD_SIZE,
    FORMAT,
    LocalRunner,
    ShardStore,
    make_job,
    run_jobs,
    write_json,
)

__all__ = ["EvalResult", "evaluate", "make_runner", "summarize"]
#: per-input scalar metrics (worst over the outputs), in the order of the CSV
METRICS = ("rel_l2", "max_abs", "psnr_db", "ssim", "top1_agree", "top5_overlap", "correct",
           "ref_correct", "kernel_cycles", "pe_cycles", "predicted_ms")
PERCENTILES = (5, 50, 95, 99)
CYCLES_LABEL = "modelled (the Bitlet kernel's counted cycle model, simulator)"


# --------------------------------------------------------------------------- summary
def make_runner(workers: int = 1, cluster: str | None = None, threads: int | None = None):
    """:class:`LocalRunner` for one worker without a cluster, else a Ray pool."""
    if workers < 1:
        raise BitletValueError(f"--workers must be >= 1, got {workers}")
    if workers == 1 and cluster is None:
        return LocalRunner(threads)
    return RayRunner(workers=workers, cluster=cluster, threads=threads)



def _stats(values: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(values, np.float64)
    finite = a[np.isfinite(a)]
    out: dict[str, Any] = {"n": int(a.size), "n_nonfinite": int(a.size - finite.size)}
    if finite.size:
        out.update(mean=float(finite.mean()), min=float(finite.min()), max=float(finite.max()))
        out.update({f"p{p}": float(np.percentile(finite, p)) for p in PERCENTILES})
    return out


def summarize(records: Sequence[dict[str, Any]], layers: dict[str, Any] | None = None,
              worst: int = 5) -> dict[str, Any]:
    """Aggregates of per-input records (in input order) and per-layer errors.

    Returns
    -------
    dict
        ``{"n", "metrics": {metric: {mean, min, max, p5.., n_nonfinite}},
        "accuracy", "worst", "layers"}`` -- ``layers`` per value:
        mean/max relative L2, max abs and the input with the largest error.
    """
    records = sorted(records, key=lambda r: r["index"])
    out: dict[str, Any] = {"n": len(records), "metrics": {}}
    for key in METRICS:
        values = [r[key] for r in records if key in r]
        if values:
            out["metrics"][key] = _stats(values)
    if any("correct" in r for r in records):
        out["accuracy"] = {"bitlet": out["metrics"]["correct"]["mean"],
                           "fp32_reference": out["metrics"]["ref_correct"]["mean"],
                           "n_labelled": out["metrics"]["correct"]["n"]}
    ranked = sorted(records, key=lambda r: (-r.get("rel_l2", 0.0), r["index"]))[:worst]
    out["worst"] = [{"name": r["name"], "index": r["index"], "rel_l2": r.get("rel_l2"),
                     "max_abs": r.get("max_abs")} for r in ranked]
    if layers:
        rel, mx = np.asarray(layers["rel_l2"], np.float64), np.asarray(layers["max_abs"], np.float64)
        names = [r["name"] for r in records]
        out["layers"] = [{"value": v, "mean_rel_l2": float(rel[:, j].mean()),
                          "p95_rel_l2": float(np.percentile(rel[:, j], 95)),
                          "max_rel_l2": float(rel[:, j].max()), "max_abs": float(mx[:, j].max()),
                          "worst_input": names[int(np.argmax(rel[:, j]))]}
                         for j, v in enumerate(layers["names"])]
    return out


@dataclass
class EvalResult:
    """Per-input records, the summary and where files were written (plain data)."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    info: dict[str, Any]
    layers: dict[str, Any] | None = None
    written: list[str] = field(default_factory=list)

    def as_dict(self, inputs: bool = False) -> dict[str, Any]:
        out = {"summary": self.summary, "info": self.info, "written": self.written}
        if inputs:
            out["inputs"] = self.records
        return out

    def __str__(self) -> str:
        s, i = self.summary, self.info
        head = (f"{i['model']}: {s['n']} inputs from {i['data']}, {i['precision']}, N_PE={i['n_pe']}, "
                f"errors vs the {i['reference']}; {i['runner']['workers']} worker(s) "
                f"({i['runner']['cluster']}), {i['skipped']} inputs resumed from --out")
        cols = "".join(f" {c:>11}" for c in ("mean", "p5", "p50", "p95", "p99", "max"))
        lines = [head, f"{'metric':<14}{cols}", "-" * 86]
        for key, st in s["metrics"].items():
            if key in ("correct", "ref_correct") or "mean" not in st:
                continue
            lines.append(f"{key:<14} " + " ".join(f"{st[k]:>11.4g}" for k in
                                                  ("mean", "p5", "p50", "p95", "p99", "max"))
                         + (f"  ({st['n_nonfinite']} inf: identical)" if st["n_nonfinite"] else ""))
        lines.append(f"cycles and predicted ms are {CYCLES_LABEL}; errors are against the "
                     f"{i['reference']}")
        if "accuracy" in s:
            a = s["accuracy"]
            lines.append(f"accuracy on {a['n_labelled']} labelled inputs: Bitlet {a['bitlet']:.4f}, "
                         f"fp32 reference {a['fp32_reference']:.4f}")
        lines.append("worst inputs (rel L2): " + ", ".join(f"{w['name']} {w['rel_l2']:.3e}"
                                                            for w in s["worst"]))
        if s.get("layers"):
            lines.append(f"{'value':<40} {'mean rel L2':>12} {'p95':>10} {'max':>10} "
                         f"{'max abs':>10}  worst input")
            for row in s["layers"]:
                lines.append(f"{row['value'][:40]:<40} {row['mean_rel_l2']:>12.3e} "
                             f"{row['p95_rel_l2']:>10.3e} {row['max_rel_l2']:>10.3e} "
                             f"{row['max_abs']:>10.3e}  {row['worst_input']}")
        lines += [f"wrote {p}" for p in self.written]
        return "\n".join(lines)


def _merge(shards: Sequence[dict[str, Any]]) -> tuple[list[dict], dict | None]:
    records = [r for sh in shards for r in sh["records"]]
    layers = None
    if shards and shards[0].get("layers"):
        layers = {"names": shards[0]["layers"]["names"], "rel_l2": [], "max_abs": []}
        for sh in shards:
            if sh["layers"]["names"] != layers["names"]:
                raise BitletError(f"shard {sh['id']} compared other values than shard "
                                  f"{shards[0]['id']}")
            layers["rel_l2"] += sh["layers"]["rel_l2"]
            layers["max_abs"] += sh["layers"]["max_abs"]
    return records, layers


def write_tables(out: Path, result: EvalResult) -> list[str]:
    """``summary.json``, ``inputs.csv`` (and ``layers.csv``) in ``out``."""
    paths = []
    summary = out / "summary.json"
    write_json(summary, result.as_dict())
    paths.append(summary)
    keys = ["index", "name", *[k for k in METRICS if any(k in r for r in result.records)],
            "label", "pred", "digest"]
    keys = [k for k in dict.fromkeys(keys) if any(k in r for r in result.records)]
    with open(out / "inputs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in result.records:
            w.writerow([repr(r[k]) if isinstance(r.get(k), float) else r.get(k, "") for k in keys])
    paths.append(out / "inputs.csv")
    if result.summary.get("layers"):
        with open(out / "layers.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            cols = ["value", "mean_rel_l2", "p95_rel_l2", "max_rel_l2", "max_abs", "worst_input"]
            w.writerow(cols)
            for row in result.summary["layers"]:
                w.writerow([row[c] for c in cols])
        paths.append(out / "layers.csv")
    return [str(p) for p in paths]


def plot_eval(result: EvalResult, directory: str | os.PathLike) -> list[str]:
    """Error histogram and cycles per input, as PNGs in ``directory``."""
    plt = pyplot()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    info, recs = result.info, result.records
    title = f"{info['model']} {info['precision']} N_PE={info['n_pe']}, {len(recs)} inputs"
    rel = np.array([r["rel_l2"] for r in recs], np.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    pos = rel[rel > 0]
    if pos.size:
        bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()) + 1e-9, 30)
        ax.hist(pos, bins=bins)
        ax.set_xscale("log")
    ax.set_xlabel(f"relative L2 error of the outputs vs {info['reference']}")
    ax.set_ylabel("inputs")
    ax.set_title(f"modelled (Bitlet emulator): {title}\n"
                 f"{int((rel == 0).sum())} inputs with zero error not shown", fontsize=9)
    fig.tight_layout()
    p1 = d / "error_hist.png"
    fig.savefig(p1, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["index"] for r in recs], [r["kernel_cycles"] for r in recs], ".", ms=3)
    ax.set_xlabel("input index")
    ax.set_ylabel("kernel cycles per input (modelled)")
    ax.set_title(f"modelled (kernel cycle model, {info['clock_mhz']} MHz): {title}", fontsize=9)
    fig.tight_layout()
    p2 = d / "cycles.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return [str(p1), str(p2)]


# --------------------------------------------------------------------------- API
def model_inputs(model: Any, input_shapes: Mapping[str, tuple] | None = None) -> tuple[list, list]:
    """(input specs, output names) of an ONNX model path / ModelProto or a saved program path."""
    if isinstance(model, (str, os.PathLike)) and not str(model).lower().endswith(".onnx") \
            and Path(model).is_file():
        meta = Program.load(model).meta
        return [dict(s) for s in meta["inputs"]], [o["name"] for o in meta["outputs"]]
    proto = load_model(model)
    if isinstance(model, (str, os.PathLike)):
        specs = onnx_input_specs(str(model), dict(input_shapes) if input_shapes else None)
    else:
        consts = {i.name for i in proto.graph.initializer}
        specs = [{"name": v.name, "shape": list((input_shapes or {}).get(v.name, [
            d.dim_value if d.HasField("dim_value") else "?" for d in v.type.tensor_type.shape.dim]))}
                 for v in proto.graph.input if v.name not in consts]
    return specs, [o.name for o in proto.graph.output]


def evaluate(model: Any, data: str, *, out: str | os.PathLike | None = None,
             labels: str | None = None, reference: str | None = None, precision: str = "fp32",
             prune: Any = None, bits: Any = None, calibration: Any = None,
             input_shapes: Mapping[str, tuple] | None = None, n_pe: int | None = None,
             layers: bool = True, workers: int = 1, cluster: str | None = None,
             threads: int | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
             limit: int | None = None, plots: str | os.PathLike | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> EvalResult:
    """Evaluate a model compiled for the (simulated) Bitlet kernel over a data set.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        The ONNX model (or a program saved by ``CompiledModel.save``; then
        ``reference`` is needed and there are no per-layer errors).
    data : str
        Folder/glob of images, ``.npy`` or ``.npz`` (:mod:`bitlet.tools.dataset`).
    out : path, optional
        Directory for per-shard results (resumable), ``summary.json``,
        ``inputs.csv`` and ``layers.csv``.
    labels, reference : str, optional
        Labels file; reference outputs (instead of onnxruntime fp32).
    precision, prune, bits, calibration, input_shapes : as :func:`bitlet.compile`
    n_pe : int, optional
        Kernel build (default: the header's N_PE; others are compiled once
        and cached, :mod:`bitlet.tools.variants`).
    layers : bool
        Per-layer error statistics (slower: kernel layers run one at a time).
    workers : int
        1: this process; more: Ray actors (``bitlet[cluster]``).
    cluster : str, optional
        ``local`` / ``local:N`` (a new local Ray cluster with N CPUs; the
        default for ``workers > 1``), ``ray://HOST:PORT`` or ``auto``.
    threads : int, optional
        ``BITLET_THREADS`` per worker (default: 1 with Ray, unchanged in-process).
    shard_size : int
        Inputs per shard (the unit of work, of retry and of resumption).
    limit : int, optional
        Only the first ``limit`` inputs.
    plots : path, optional
        Save ``error_hist.png`` and ``cycles.png`` there (needs matplotlib).
    progress : callable(done, total, what), optional

    Returns
    -------
    EvalResult
    """
    specs, output_names = model_inputs(model, input_shapes)
    ds = open_dataset(data, specs, labels=labels, reference=reference, output_names=output_names,
                      limit=limit)
    shapes = {k: tuple(v.shape) for k, v in ds.feeds(0).items()}
    is_program = isinstance(model, (str, os.PathLike)) and not str(model).lower().endswith(".onnx") \
        and Path(model).is_file()
    if is_program:
        if reference is None:
            raise BitletValueError(f"model {model}: a saved program has no ONNX model for the "
                                   "reference: give --reference FILE (or the .onnx model)")
        program = Program.load(model)
        job = make_job(None, program=program, n_pe=program.meta["kernel"]["n_pe"], layers=False)
    else:
        job = make_job(model, precision=precision, prune=prune, bits=bits, calibration=calibration,
                       input_shapes=shapes, n_pe=n_pe, layers=layers)
    manifest = {"format": FORMAT, "job": job.key, "shard_size": shard_size, "n_inputs": len(ds),
                "reference": "given" if reference else "onnxruntime"}
    store = ShardStore(out, manifest) if out is not None else None
    runner = make_runner(workers, cluster, threads)
    try:
        shards = run_jobs({job.key: job}, {job.key: ds}, runner=runner,
                          stores={job.key: store} if store else None, shard_size=shard_size,
                          progress=progress)[job.key]
        stats = runner.stats()
    finally:
        runner.close()
    records, layer_stats = _merge(shards)
    skipped = sum(len(sh["records"]) for sh in shards if sh.get("resumed"))
    info = {**job.info, "model": job.info["model"] or str(model), "data": str(data),
            "reference": f"reference outputs ({reference})" if reference else
            "onnxruntime fp32 reference", "runner": stats, "skipped": skipped,
            "cycles": CYCLES_LABEL, "shard_size": shard_size}
    result = EvalResult(records, summarize(records, layer_stats), info, layer_stats)
    if out is not None:
        result.written = write_tables(Path(out), result)
    if plots is not None:
        result.written += plot_eval(result, plots)
    return result
