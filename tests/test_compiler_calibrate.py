"""Calibration of bit budgets and column masks under an accuracy budget."""
from __future__ import annotations

import itertools

import bitlet
import numpy as np
import pytest
from bitlet.tools.calibrate import calibrate, column_mask
from bitlet.drivers.sim import SimDevice
from models import tiny_cnn

pytestmark = pytest.mark.device


def test_column_mask():
    assert column_mask(24) == 0xFFFFFF and column_mask(0) == 0 and column_mask(4) == 0xF00000
    with pytest.raises(bitlet.CompileError):
        column_mask(25)


def test_calibration_saves_measured_cycles_within_the_budget():
    model = tiny_cnn()
    xs = [np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32) for i in range(2)]
    with SimDevice() as dev:
        result = calibrate(model, xs, device=dev, budget=2e-3, bits=(6, 3), keep_columns=(12,))
        curve = result.curve
        assert curve[0]["change"] == "baseline" and curve[0]["pe_cycles"] == result.baseline_cycles
        kept = [p["pe_cycles"] for p in curve if p["accepted"]]
        assert kept == sorted(kept, reverse=True) and len(kept) > 1
        assert len(curve) > len(kept) or all(p["accepted"] for p in curve)
        assert 0 < result.final["saved"] < 1 and result.final["error"] <= 2e-3
        assert len(result.sensitivity) == 5 * 3  # 5 layers x 3 candidates, each measured
        # re-measure the chosen plan independently
        base = bitlet.compile(model, device=dev)
        tuned = bitlet.compile(model, device=dev, calibration=result)
        try:
            cycles = sum(tuned.profile(x).totals["pe_cycles"] for x in xs)
            assert cycles == result.final["pe_cycles"]
            err = max(np.linalg.norm(tuned(x) - base(x)) / np.linalg.norm(base(x)) for x in xs)
            assert err == pytest.approx(result.final["error"], rel=1e-6)
        finally:
            base.close()
            tuned.close()
    assert "PE cycles" in str(result) and result.as_dict()["budget"] == 2e-3
    # the trade-off curve: a Pareto front over every measured plan, inside the budget or not
    front = result.tradeoff()
    assert front[0] == {"pe_cycles": result.baseline_cycles, "saved": 0.0, "error": 0.0,
                        "change": "baseline", "within_budget": True, "plan": {}}
    assert all(a["pe_cycles"] > b["pe_cycles"] and a["error"] <= b["error"] for a, b in itertools.pairwise(front))
    measured = [(r["pe_cycles"], r["error"]) for r in result.sensitivity]
    measured += [(p["pe_cycles"], p["error"]) for p in curve]
    for cycles, error in measured:  # each is on the front or beaten by a point of it
        assert any(f["pe_cycles"] <= cycles and f["error"] <= error for f in front)
    cheapest_within = min(c for c, e in measured if e <= 2e-3)
    assert any(not f["within_budget"] for f in front) == any(
        e > 2e-3 and c < cheapest_within for c, e in measured)  # over-budget points are shown too
    assert "trade-off curve" in str(result) and result.as_dict()["tradeoff"] == front
    # each point's plan, compiled again, has the point's PE cycles (and so is the plan measured)
    with SimDevice() as dev:
        for point in front:
            again = bitlet.compile(model, device=dev, calibration=point["plan"])
            try:
                assert sum(again.profile(x).totals["pe_cycles"] for x in xs) == point["pe_cycles"]
            finally:
                again.close()


def test_calibration_arguments_are_checked():
    with SimDevice() as dev:
        with pytest.raises(bitlet.CompileError, match="at least one input"):
            calibrate(tiny_cnn(), [], device=dev)
        with pytest.raises(bitlet.CompileError, match="unknown kernel layers"):
            calibrate(tiny_cnn(), [np.zeros((1, 3, 16, 16), np.float32)], device=dev,
                      layers=["nope"])


def test_calibration_of_a_layer_that_runs_as_column_strips():
    from models import single_node

    w = np.random.default_rng(0).standard_normal((3, 2, 1, 1)).astype(np.float32)
    model = single_node("Conv", {"x": (1, 2, 1, 2100)}, {"kernel_shape": [1, 1]}, {"w": w})
    x = np.random.default_rng(1).standard_normal((1, 2, 1, 2100)).astype(np.float32)
    with SimDevice() as dev:
        result = calibrate(model, [x], device=dev, bits=(3,), keep_columns=())
        (row,) = result.sensitivity
        cheap = bitlet.compile(model, device=dev, bits=3)
        try:
            assert len(cheap.meta["layers"]) == 2  # a 2100-pixel output row: two strips
            assert row["layer"] == "the_Conv" and row["pe_cycles"] == cheap.profile(x).totals["pe_cycles"]
        finally:
            cheap.close()
