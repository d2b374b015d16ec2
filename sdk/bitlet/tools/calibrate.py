"""Calibration: per-layer prune masks and bit budgets under an accuracy budget.

What is measured (nothing is estimated):

* cycles: the PE-array cycles (kernel schedule) the device's profile area
  reports for every layer, summed over the calibration inputs;
* error: the relative L2 error of the model's outputs against the
  unmodified fp32 Bitlet model on the same inputs (worst over inputs and
  outputs).

Procedure: (1) sensitivity: every candidate change of every layer alone
(bit budgets ``bits``: each weight keeps at most k ones in its significand;
column masks ``keep_columns``: only the top m of the 24 bit columns) is
compiled and run; (2) greedy: candidates are tried in order of cycles saved
per unit of error, each on top of the plan so far, and kept when the
measured error of the combined plan stays within ``budget``.  Every point
tried, kept or not, is in :attr:`CalibrationResult.curve`, and
:meth:`CalibrationResult.tradeoff` is the whole measured trade-off curve:
the Pareto front (fewest PE cycles for a given error) over every plan
measured, the single-layer changes of step (1) included, inside the budget
or not.  So the result says honestly how little some changes buy (column
masks save only a few percent of the cycles of MobileNet-like layers before
the error grows).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.compiler.fold import KERNEL_TYPES, optimize
from bitlet.compiler.frontend import import_onnx
from bitlet.compiler.lower import LayerOptions, lower
from bitlet.errors import CompileError
from bitlet.program.schedule import KernelConfig
from bitlet.runtime.model import CompiledModel, driver_of, open_default_device
from bitlet.tools.evaluate import make_runner
from bitlet.tools.shards import run_programs


def column_mask(keep: int) -> int:
    """24-bit prune mask keeping the ``keep`` most significant bit columns."""

    sig = hw.SIG_BITS
    if not 0 <= keep <= sig:
        raise CompileError(f"keep_columns must be in 0..{sig}, got {keep}")
    return hw.PRUNE_ALL ^ ((1 << (sig - keep)) - 1)


@dataclass
class CalibrationResult:
    """Chosen plan and the whole measured trade-off curve (plain data)."""

    plan: dict[str, dict[str, int]]
    curve: list[dict[str, Any]]
    sensitivity: list[dict[str, Any]]
    baseline_cycles: int
    budget: float
    final: dict[str, Any] = field(default_factory=dict)

    def tradeoff(self) -> list[dict[str, Any]]:
        """The measured trade-off curve: the baseline, then the Pareto-optimal plans up to the cheapest.

        Returns
        -------
        list of dict
            ``{"pe_cycles", "saved", "error", "change", "within_budget", "plan"}``
            for the unmodified model, then every measured plan cheaper than
            it that no other measured plan beats on both PE cycles and
            error; sorted by increasing savings (and so non-decreasing error).  ``change`` describes the plan (``"baseline"``,
            one layer's change, or the greedy step that produced it);
            ``plan`` is that plan (``bitlet.compile(..., calibration=plan)``).
        """
        base = self.baseline_cycles
        options = {(r["layer"], r["change"]): r["options"] for r in self.sensitivity}
        points = [(r["pe_cycles"], r["error"], f"{r['layer']}: {r['change']} alone",
                   {r["layer"]: dict(r["options"])}) for r in self.sensitivity]
        kept: dict[str, dict[str, int]] = {}  # the greedy plan before each step
        for p in self.curve:
            if p["step"] == 0:
                continue
            trial = copy.deepcopy(kept)
            trial.setdefault(p["layer"], {}).update(options[(p["layer"], p["change"])])
            points.append((p["pe_cycles"], p["error"],
                           f"step {p['step']}: plan + {p['layer']}: {p['change']}", trial))
            if p["accepted"]:
                kept = trial
        front: list[dict[str, Any]] = [{"pe_cycles": int(base), "saved": 0.0, "error": 0.0,
                                        "change": "baseline", "within_budget": True, "plan": {}}]
        for cycles, error, change, plan in sorted(points, key=lambda p: (p[1], p[0])):
            if cycles >= front[-1]["pe_cycles"]:
                continue  # an earlier point (or the baseline) has no more error and no more cycles
            front.append({"pe_cycles": int(cycles), "saved": 1 - cycles / base, "error": float(error),
                          "change": change, "within_budget": error <= self.budget, "plan": plan})
        return front

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "curve": self.curve, "sensitivity": self.sensitivity,
                "baseline_cycles": self.baseline_cycles, "budget": self.budget, "final": self.final,
                "tradeoff": self.tradeoff()}

    def __str__(self) -> str:
        lines = [f"baseline {self.baseline_cycles:,} PE cycles; error budget {self.budget:g} (rel L2)",
                 f"{'step':>4} {'layer':<28} {'change':<14} {'PE cycles':>12} {'saved':>7} {'error':>10}  kept"]
        for p in self.curve:
            lines.append(f"{p['step']:>4} {p['layer'][:28]:<28} {p['change']:<14} {p['pe_cycles']:>12,} "
                         f"{p['saved']:>6.1%} {p['error']:>10.2e}  {'yes' if p['accepted'] else 'no'}")
        f = self.final
        if f:
            lines.append(f"final: {f['pe_cycles']:,} PE cycles ({f['saved']:.1%} saved), error {f['error']:.2e}")
        lines.append("trade-off curve (every measured plan no other beats on both cycles and error):")
        for p in self.tradeoff():
            lines.append(f"  {p['saved']:>6.1%} saved  error {p['error']:.2e}"
                         f"{'' if p['within_budget'] else ' (over budget)'}  {p['change']}")
        return "\n".join(lines)


class _Evaluator:
    """Compile a plan, run the calibration inputs, measure cycles and error."""

    def __init__(self, graph, device, cfg, precision, feeds, runner=None):

        self.graph, self.device, self.cfg, self.precision, self.feeds = graph, device, cfg, precision, feeds
        self.runner = runner  # None: run here on `device`; else shards on workers (bitlet.tools.shards)
        self.LayerOptions = LayerOptions
        self.reference = None
        self.reference, self.baseline = None, None
        outs, cycles = self.run({})
        self.reference, self.baseline = outs, cycles

    def run_many(self, plans: Sequence[Mapping[str, Mapping[str, int]]]):
        """``[self.run(plan) for plan in plans]``, fanned out over the workers when there are some."""
        if self.runner is None:
            return [self.run(plan) for plan in plans]
        programs = [lower(self.graph, self.cfg, self.precision,
                          {name: self.LayerOptions(**opts) for name, opts in plan.items()})
                    for plan in plans]
        return run_programs(programs, self.feeds, runner=self.runner, n_pe=self.cfg.n_pe)

    def run(self, plan: Mapping[str, Mapping[str, int]]):
        if self.runner is not None:
            return self.run_many([plan])[0]
        options = {name: self.LayerOptions(**opts) for name, opts in plan.items()}
        compiled = CompiledModel(lower(self.graph, self.cfg, self.precision, options), self.device)
        try:
            outs, cycles = [], {}
            for feed in self.feeds:
                outs.append(compiled.run(feed))
                records = compiled.read_profile_records()
                for layer in compiled.meta["layers"]:  # column strips count for their ONNX layer
                    rec = records[layer["insn_first"]: layer["insn_first"] + layer["insn_count"]]
                    name = layer.get("origin", layer["name"])
                    cycles[name] = cycles.get(name, 0) + int(rec["pe_cycles"].sum())
            return outs, cycles
        finally:
            compiled.close()

    def error(self, outs) -> float:
        worst = 0.0
        for got, ref in zip(outs, self.reference):
            for name, r in ref.items():
                r64 = r.astype(np.float64)
                norm = np.linalg.norm(r64) or 1.0
                worst = max(worst, float(np.linalg.norm(got[name] - r64) / norm))
        return worst


def calibrate(model: Any, inputs: Sequence[Any], *, device: Any = None, budget: float = 1e-2,
              bits: Sequence[int] = (8, 5, 3), keep_columns: Sequence[int] = (16, 12),
              precision: str = "fp32", input_shapes: Mapping[str, tuple] | None = None,
              layers: Sequence[str] | None = None, workers: int = 1,
              cluster: str | None = None) -> CalibrationResult:
    """Choose per-layer bit budgets and column masks that maximise the measured cycle savings.

    Parameters
    ----------
    model : path or onnx.ModelProto
    inputs : sequence of arrays (single-input models) or of ``{name: array}``
        Calibration inputs (a handful: every candidate runs all of them).
    device : Device, optional (None: ``bitlet.open()``)
    budget : float
        Largest relative L2 error of the outputs allowed, against the
        unmodified model on the same inputs.
    bits, keep_columns : sequences of int
        Candidate bit budgets (ones per significand) and kept bit columns.
    precision, input_shapes : as :func:`bitlet.compile`
    layers : sequence of str, optional
        Restrict to these kernel layers (default: all).
    workers, cluster : int, str, optional
        Evaluate the candidate plans on this many Ray workers (see
        :func:`bitlet.tools.evaluate.evaluate`); they run on simulators with
        ``device``'s kernel configuration.  Default: one after another on ``device``.

    Returns
    -------
    CalibrationResult
        ``.plan`` can be passed as ``bitlet.compile(..., calibration=result)``.
    """

    if not inputs:
        raise CompileError("inputs: calibration needs at least one input")
    if not budget > 0:
        raise CompileError(f"budget must be > 0 (a relative L2 error), got {budget!r}")
    graph = optimize(import_onnx(model, input_shapes))
    dev = open_default_device(device)
    cfg = KernelConfig.from_driver(driver_of(dev))
    name = graph.inputs[0].name
    feeds = [x if isinstance(x, Mapping) else {name: x} for x in inputs]
    kernel_layers = [n.name for n in graph.nodes if n.op in KERNEL_TYPES and n.op != "BitletMatMul"]
    wanted = list(layers) if layers is not None else kernel_layers
    unknown = sorted(set(wanted) - set(kernel_layers))
    if unknown:
        raise CompileError(f"layers: unknown kernel layers {unknown}; they are {kernel_layers}")
    runner = make_runner(workers, cluster) if workers > 1 or cluster is not None else None
    try:
        ev = _Evaluator(graph, dev, cfg, precision, feeds, runner)
        sensitivity = _sensitivity(ev, wanted, bits, keep_columns)
        return _greedy(ev, sensitivity, budget)
    finally:
        if runner is not None:
            runner.close()


def _candidates(bits, keep_columns):
    for k in bits:
        yield f"bits={k}", {"bits": int(k)}
    for m in keep_columns:
        yield f"columns={m}", {"prune": column_mask(int(m))}


def _sensitivity(ev: _Evaluator, layers, bits, keep_columns) -> list[dict[str, Any]]:
    rows = []
    trials = [(layer, label, change) for layer in layers
              for label, change in _candidates(bits, keep_columns)]
    measured = ev.run_many([{layer: change} for layer, _, change in trials])
    for (layer, label, change), (outs, cycles) in zip(trials, measured):
        saved = ev.baseline[layer] - cycles[layer]
        rows.append({"layer": layer, "change": label, "options": change,
                     "saved_cycles": int(saved), "pe_cycles": int(sum(cycles.values())),
                     "error": ev.error(outs)})
    return rows


def _greedy(ev: _Evaluator, sensitivity, budget: float) -> CalibrationResult:
    base_total = sum(ev.baseline.values())
    useful = [r for r in sensitivity if r["saved_cycles"] > 0 and r["error"] <= budget]
    useful.sort(key=lambda r: -r["saved_cycles"] / max(r["error"], 1e-12))
    plan: dict[str, dict[str, int]] = {}
    curve = [{"step": 0, "layer": "-", "change": "baseline", "pe_cycles": base_total, "saved": 0.0,
              "error": 0.0, "accepted": True}]
    best = (base_total, 0.0)
    for r in useful:
        trial = copy.deepcopy(plan)
        trial.setdefault(r["layer"], {}).update(r["options"])
        outs, cycles = ev.run(trial)
        total, err = sum(cycles.values()), ev.error(outs)
        accepted = err <= budget and total < best[0]
        curve.append({"step": len(curve), "layer": r["layer"], "change": r["change"], "pe_cycles": total,
                      "saved": 1 - total / base_total, "error": err, "accepted": accepted})
        if accepted:
            plan, best = trial, (total, err)
    final = {"pe_cycles": best[0], "saved": 1 - best[0] / base_total, "error": best[1]}
    return CalibrationResult(plan, curve, sensitivity, base_total, budget, final)
