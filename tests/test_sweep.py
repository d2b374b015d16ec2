"""``bitlet sweep``: the grid, its Pareto front, files and plot, N_PE builds, Ray fan-out."""
from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
from bitlet import hw
from bitlet.tools import cli
from bitlet.tools.evaluate import evaluate
from bitlet.tools.sweep import pareto, sweep
from models import tiny_cnn
from raycluster import ray_cluster  # noqa: F401 - the fixture

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    onnx.save(tiny_cnn(16), d / "cnn.onnx")
    np.save(d / "x.npy", np.random.default_rng(5).standard_normal((6, 3, 16, 16)).astype(np.float32))
    return d


def test_pareto_front_by_hand():
    pts = [{"kernel_cycles": c, "rel_l2": e} for c, e in
           [(10, 0.5), (20, 0.1), (15, 0.6), (30, 0.1), (5, 0.9), (20, 0.1)]]
    # (15, .6) is beaten by (10, .5); (30, .1) and the second (20, .1) by the first (20, .1)
    assert pareto(pts) == [0, 1, 4]


def test_sweep_points_equal_single_evaluations_and_front_is_unbeaten(files, tmp_path):
    pytest.importorskip("matplotlib", reason="the sweep's --plots need matplotlib (not in the board extra)")
    model, data = str(files / "cnn.onnx"), str(files / "x.npy")
    result = sweep([model], data, precisions=["fp32", "fixed8"], prunes=[None, 0xFFF000],
                   out=tmp_path / "o", plots=tmp_path / "p")
    assert len(result.points) == 4
    for p in result.points:     # each point is what `bitlet eval` measures for that setting
        one = evaluate(model, data, precision=p["precision"], prune=p["prune"], layers=False)
        m = one.summary["metrics"]
        assert p["kernel_cycles"] == m["kernel_cycles"]["mean"]
        assert p["rel_l2"] == m["rel_l2"]["mean"] and p["n_pe"] == hw.N_PE
    cycles = {(p["precision"], p["prune"]): p["kernel_cycles"] for p in result.points}
    assert cycles[("fp32", 0xFFF000)] < cycles[("fp32", hw.PRUNE_ALL)]   # pruning skips columns
    front = [p for p in result.points if p["pareto"]]
    assert front and all(not any(q["kernel_cycles"] <= p["kernel_cycles"] and q["rel_l2"] < p["rel_l2"]
                                 for q in result.points) for p in front)
    with open(tmp_path / "o" / "pareto.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and sum(r["pareto"] == "True" for r in rows) == len(front)
    assert json.loads((tmp_path / "o" / "sweep.json").read_text())["points"] == result.points
    if any(w.endswith(".png") for w in result.written):
        assert (tmp_path / "p" / "pareto.png").stat().st_size > 1000
    again = sweep([model], data, precisions=["fp32", "fixed8"], prunes=[None, 0xFFF000],
                  out=tmp_path / "o")                      # every shard resumed from --out
    assert again.points == result.points


def test_cli_sweep_json(files, capsys):
    code = cli.main(["sweep", str(files / "cnn.onnx"), "--data", str(files / "x.npy"),
                     "--precisions", "fp32,fp16", "--bits", "none,4", "--limit", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    points = json.loads(out)["points"]
    assert sorted((p["precision"], p["bits"] or 0) for p in points) == [
        ("fp16", 0), ("fp16", 4), ("fp32", 0), ("fp32", 4)]
    assert cli.main(["sweep", str(files / "cnn.onnx"), "--data", str(files / "x.npy"),
                     "--bits", "four"]) == 1
    assert capsys.readouterr().err.strip() == "bitlet sweep: error: --bits 'four': not a valid value"


@pytest.mark.slow  # compiles the fast engine at another N_PE (~30 s, then cached)
def test_sweep_over_n_pe_builds(files):
    result = sweep([str(files / "cnn.onnx")], str(files / "x.npy"), n_pes=[None, 2 * hw.N_PE],
                   limit=2)
    by_pe = {p["n_pe"]: p for p in result.points}
    assert set(by_pe) == {hw.N_PE, 2 * hw.N_PE}
    assert by_pe[2 * hw.N_PE]["kernel_cycles"] < by_pe[hw.N_PE]["kernel_cycles"]


@pytest.mark.slow  # starts a local Ray cluster (~20 s on two busy cores)
@pytest.mark.usefixtures("ray_cluster")
def test_sweep_on_two_workers_equals_in_process(files):
    kw = {"precisions": ["fp32", "bf16", "fixed8"], "shard_size": 3}
    here = sweep([str(files / "cnn.onnx")], str(files / "x.npy"), **kw)
    there = sweep([str(files / "cnn.onnx")], str(files / "x.npy"), workers=3, **kw)
    assert there.points == here.points
    # the cluster has 2 CPUs: a third actor would never start (and its shards never run)
    assert there.info["runner"]["workers"] == 2 and there.info["runner"]["workers_requested"] == 3
