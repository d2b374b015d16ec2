"""``bitlet bench --board``: structure and bases of --json, errors, and that its
cycles are the simulator's (never a figure of its own).

The PE area is the FIXTURE report (tests/data/resources/area_report_fixture.json,
labelled as not synthesized) through ``$BITLET_AREA_REPORT``; its sizes put
the Bitlet kernel at n_pe 4 on PYNQ-Z2 (the installed engines' N_PE), so one
engine variant is built (the vendor kernel at its board-filling n_pe).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from bitlet.tools import cli
from bitlet.tools import resources as res

from models import tiny_cnn

FIXTURE = Path(__file__).parent / "data" / "resources" / "area_report_fixture.json"
LABELS = ("synthesized (", "published (", "estimated (", "modelled (", "model sum (",
          "Vivado report", "counted (", "resource model (", "LUT: published (",
          "from hls/bitlet_hw.h")


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv(res.ENV_REPORT, str(FIXTURE))
    mp.setenv("BITLET_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(tiny_cnn(16), str(path))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_unknown_board_is_one_line_exit_1(capsys):
    code, out, err = run(capsys, "bench", "--board", "nosuch", "--json")
    assert code == cli.EXIT_ERROR == 1 and out == ""
    line = _one_error_line(err)
    assert "nosuch" in line and "pynqz2" in line


def test_missing_area_report_is_one_line_exit_1(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(res.ENV_REPORT, str(tmp_path / "none.json"))
    code, _, err = run(capsys, "bench", "--board", "pynqz2")
    assert code == 1
    assert "none.json is missing" in _one_error_line(err)


@pytest.mark.parametrize("argv, words", [
    (("--board", "pynqz2", "--precision", "fp64"), "fp64"),
    (("--board", "pynqz2", "--models", "resnet"), "resnet"),
    (("--board", "pynqz2", "--device", "pynq"), "--device"),
    (("--models", "cls"), "--models needs --board"),
    (("--board", "pynqz2", "--models", "cls", "--model", "m.onnx"), "not both"),
])
def test_bad_arguments_are_one_line_exit_1(capsys, argv, words):
    code, out, err = run(capsys, "bench", *argv)
    assert code == 1 and out == "" and words in _one_error_line(err)


def _figures(node, path=""):
    """Every {"value", "basis"} pair under node, with its path."""
    if isinstance(node, dict):
        if set(node) == {"value", "basis"}:
            yield path, node
            return
        for key, value in node.items():
            yield from _figures(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _figures(value, f"{path}/{i}")


@pytest.fixture(scope="module")
def board_json(tiny):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["bench", "--board", "pynqz2", "--model", tiny, "--precision",
                         "fp32,fixed8", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_json_has_both_configurations_sized_by_the_model(board_json):
    report = res.area_report(FIXTURE)
    d = board_json
    assert d["board"] == "pynqz2" and d["device"] == "xc7z020"
    assert d["area_report"]["tool"] == report["tool"]
    filling, budget = d["configurations"]["board_filling"], d["configurations"]["equal_budget"]
    for kind in ("bitlet", "vendor_fp"):
        assert filling[kind]["n_pe"] == res.largest_n_pe(kind, "pynqz2", report=report)["n_pe"]
    eq = res.equal_budget("pynqz2", report=report)
    assert budget["vendor_fp"]["n_pe"] == eq["vendor_fp"]["n_pe"]
    assert budget["budget"]["value"] == eq["budget"]
    assert budget["vendor_fp"]["resources"]["kernel"]["lut"]["value"] <= eq["budget"]["lut"]


def test_overlay_configuration_is_the_boards_tcl_sizing(board_json):
    """[overlay]: each kind at overlay_n_pe (what overlay/size_boards.py writes
    into boards.tcl for this report); the packaged metadata's n_pe beside it."""
    from bitlet.drivers.overlays import find_overlay

    report = res.area_report(FIXTURE)
    conf = board_json["configurations"]["overlay"]
    sized = res.overlay_n_pe("pynqz2", report=report)
    for kind in ("bitlet", "vendor_fp"):
        assert conf[kind]["n_pe"] == sized[kind]["n_pe"]
        assert conf[kind]["over_limit"] is sized[kind]["over_limit"] is False   # the fixture fits
        meta = board_json["overlay_metadata"][kind]
        assert meta["n_pe"] == find_overlay("pynqz2", kind, require_bitstream=False).metadata["n_pe"]
        assert meta["agrees"] == (meta["n_pe"] == conf[kind]["n_pe"])


def test_overlay_configuration_builds_one_pe_over_the_limit():
    """A PE larger than the board's limit: the board-filling Bitlet kernel has
    no PE, the overlay one PE, flagged, with its (over-limit) utilisation."""
    from bitlet.tools.bench_board import _overlay

    huge = json.loads(FIXTURE.read_text())
    huge["targets"]["xc7"]["LUT"] = 45000
    filling = res.board_sizing("pynqz2", report=huge)
    assert filling["bitlet"]["n_pe"] == 0
    conf = _overlay("pynqz2", huge, filling)
    assert conf["bitlet"]["n_pe"] == 1 and conf["bitlet"]["over_limit"] is True
    assert conf["bitlet"]["utilisation_pct"]["lut"] > res.model_data()["limit"]["pct"]["lut"]
    assert conf["vendor_fp"]["n_pe"] == filling["vendor_fp"]["n_pe"] >= 1
    assert conf["vendor_fp"]["over_limit"] is False


def test_every_figure_has_a_basis(board_json):
    figures = list(_figures(board_json))
    assert len(figures) > 40
    for path, fig in figures:
        assert isinstance(fig["basis"], str) and fig["basis"].startswith(LABELS), (path, fig)
    bases = " ".join(fig["basis"] for _, fig in figures)
    for word in ("synthesized (FIXTURE", "modelled (the kernel's cycle model", "published (",
                 "estimated"):
        assert word in bases
    parts = board_json["configurations"]["board_filling"]["bitlet"]["resources"]["parts"]
    assert any(p["basis"].startswith("synthesized (FIXTURE") for p in parts)


def test_results_per_model_precision_and_kernel(board_json):
    for conf in board_json["configurations"].values():
        per_prec = conf["results"]["model"]
        assert set(per_prec) == {"fp32", "fixed8"}
        assert "not supported" in per_prec["fixed8"]["vendor_fp"]["skipped"]
        for kind in ("bitlet", "vendor_fp"):
            r = per_prec["fp32"][kind]
            cycles, macs = r["cycles"]["value"], r["macs"]["value"]
            assert cycles > 0 and macs > 0
            assert r["fps"]["value"] == pytest.approx(board_json["clock_mhz"] * 1e6 / cycles)
            assert r["macs_per_cycle"]["value"] == pytest.approx(macs / cycles)
            klut = conf[kind]["resources"]["kernel"]["lut"]["value"] / 1e3
            assert r["macs_per_cycle_per_klut"]["value"] == pytest.approx(macs / cycles / klut)
            assert r["accuracy"]["rel_l2"]["value"] < 1e-5        # fp32 against onnxruntime
        assert per_prec["fixed8"]["bitlet"]["accuracy"]["rel_l2"]["value"] < 0.1


def test_cycles_are_the_simulators(board_json, tiny):
    """At the installed N_PE the Bitlet figures equal a plain simulator run of
    the same model and input; the vendor kernel at another n_pe differs from
    its n_pe-4 run (the variant really runs at its own N_PE)."""
    from bitlet import hw
    from bitlet.runtime import compile as bitlet_compile
    from bitlet.drivers import open_device

    conf = board_json["configurations"]["board_filling"]
    assert conf["bitlet"]["n_pe"] == hw.N_PE          # the fixture's sizes
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    cycles = {}
    for kind in ("bitlet", "vendor_fp"):
        dev = open_device(f"sim:{kind}")
        try:
            profile = bitlet_compile(tiny, device=dev).profile({"x": x})
        finally:
            dev.close()
        cycles[kind] = sum(int(layer["kernel_cycles"]) for layer in profile.layers)
    assert conf["results"]["model"]["fp32"]["bitlet"]["cycles"]["value"] == cycles["bitlet"]
    assert conf["vendor_fp"]["n_pe"] != hw.N_PE
    assert conf["results"]["model"]["fp32"]["vendor_fp"]["cycles"]["value"] != cycles["vendor_fp"]


def test_text_output_names_both_configurations(capsys, tiny):
    code, out, _ = run(capsys, "bench", "--board", "pynqz2", "--model", tiny, "--precision", "fp32")
    assert code == 0
    assert "[board_filling]" in out and "[equal_budget]" in out and "[overlay]" in out
    assert "frames/s" in out and "packaged overlay metadata: bitlet n_pe" in out


def test_bench_precision_default_leaves_the_other_commands_at_fp32():
    """Regression: bench's own --precision default (None) once leaked into
    run/profile/compare through the shared parent parser."""
    parser = cli.build_parser()
    for command in ("run", "profile", "compare"):
        assert parser.parse_args([command, "m.onnx"]).precision == "fp32"
    assert parser.parse_args(["bench"]).precision is None
