"""The resource model (bitlet.overlays.resources): against the area report and
the board capacities, and against overlay/boards.tcl.

The model's arithmetic is checked with a FIXTURE area report
(tests/data/resources/area_report_fixture.json, labelled as not
synthesized); the comparison with boards.tcl uses the real report
(hls/rtl/area_report.json, written by the yosys synthesis of the RTL PE).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from bitlet import hw
from bitlet.overlays import available_boards, find_overlay
from bitlet.overlays import resources as res

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "resources" / "area_report_fixture.json"
BOARDS = ("pynqz2", "kv260", "zcu104")
#: labels a basis may start with (NUMERICS/HELPERS: every figure says what it is)
LABELS = ("synthesized (", "published (", "estimated (", "LUT: published (", "from hls/bitlet_hw.h",
          "modelled (hls/tools/fit_table.py")


@pytest.fixture(scope="module")
def report():
    return res.area_report(FIXTURE)


@pytest.fixture(scope="module")
def data():
    return res.model_data()


def _fits(total: dict, capacity: dict, limit: dict) -> bool:
    return all(total[r] <= pct / 100 * capacity[r] for r, pct in limit["pct"].items())


# --------------------------------------------------------------------------- inputs
def test_area_report_is_checked(tmp_path):
    rep = json.loads(FIXTURE.read_text())
    del rep["targets"]["xcup"]["FF"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rep))
    with pytest.raises(res.ResourceModelError, match="'xcup' lacks the counts \\['FF'\\]"):
        res.area_report(bad)
    with pytest.raises(res.ResourceModelError, match="is missing"):
        res.area_report(tmp_path / "none.json")


def test_report_path_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(res.ENV_REPORT, str(tmp_path / "r.json"))
    assert res.report_path() == tmp_path / "r.json"
    monkeypatch.delenv(res.ENV_REPORT)
    assert res.report_path().parts[-3:] == ("hls", "rtl", "area_report.json")


def test_every_board_has_a_device_of_its_family(data):
    """The part in each overlay's metadata maps to a device whose family is the
    yosys target of that architecture (Zynq-7000: xc7, Zynq UltraScale+: xcup)."""
    assert set(BOARDS) <= set(available_boards())
    for board in BOARDS:
        meta = find_overlay(board, "bitlet", require_bitstream=False).metadata
        key, device = res.board_device(board, data)
        assert meta["part"].startswith(key)
        want = "xc7" if meta["ps_type"] == "processing_system7" else "xcup"
        assert device["family"] == want
        assert device["basis"].startswith("published (")


def test_every_figure_has_a_labelled_basis(report, data):
    for board in BOARDS:
        for kind, variants in (("bitlet", [None]), ("vendor_fp", list(res.VARIANTS))):
            for variant in variants:
                out = res.kernel_resources(kind, 2, board, variant=variant, report=report, data=data)
                for part in out["parts"]:
                    assert part["basis"].startswith(LABELS), (part["name"], part["basis"])
    assert data["limit"]["pct"] == {"lut": 70, "ff": 70, "dsp": 70, "bram36": 100}
    assert "NOT FOUND" in data["vendor_operators"]["pg060_tables"]


# --------------------------------------------------------------------------- the model
@pytest.mark.parametrize("board", BOARDS)
def test_bitlet_pe_area_comes_from_the_report(board, report, data):
    """One more PE adds exactly the synthesized PE (target of the board's
    family) plus the stated per-PE glue, and nothing else."""
    one = res.kernel_resources("bitlet", 1, board, report=report, data=data)
    two = res.kernel_resources("bitlet", 2, board, report=report, data=data)
    family = data["devices"][one["device"]]["family"]
    pe = report["targets"][family]
    glue = data["bitlet_pe_extra"]
    for r, key in (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("bram36", "BRAM")):
        lut_sites = pe.get("SRL", 0) + pe.get("LUTRAM", 0) if r == "lut" else 0
        assert two["total"][r] - one["total"][r] == pe[key] + lut_sites + glue.get(r, 0)
    synthesized = [p for p in one["parts"] if p["name"] == "RTL PE"]
    assert synthesized and synthesized[0]["basis"].startswith(
        f"synthesized ({report['tool']}, target {family};")


@pytest.mark.parametrize("variant", res.VARIANTS)
def test_vendor_unit_is_lanes_of_published_or_estimated_operators(variant, report, data):
    one = res.kernel_resources("vendor_fp", 1, "zcu104", variant=variant, report=report, data=data)
    two = res.kernel_resources("vendor_fp", 2, "zcu104", variant=variant, report=report, data=data)
    ops = data["vendor_operators"]["xcup"]
    extra = data["vendor_unit_extra"]
    for r in ("lut", "ff", "dsp"):
        want = hw.VENDOR_LANES * (ops["fmul"][variant][r] + ops["fadd"][variant][r]) + extra[r]
        assert two["total"][r] - one["total"][r] == want
    if variant == "nodsp":
        assert two["total"]["dsp"] == one["total"]["dsp"] == data["kernel_shell"]["dsp"]


def test_buffers_are_the_fit_table_or_the_header_buffers(report, data, monkeypatch):
    """With hls/tools/fit_table.py (a source tree) the buffers are its modelled
    BRAM36 of the kernel at that N_PE; without it, the header's buffer words."""
    out = res.kernel_resources("bitlet", 1, "pynqz2", report=report, data=data)
    buffers = next(p for p in out["parts"] if p["name"] == "on-chip buffers")
    words = hw.ACT_BUF_WORDS + hw.WGT_BUF_WORDS + hw.OUT_BUF_WORDS + hw.BIAS_BUF_WORDS
    ft = res._fit_table()
    if ft is not None:
        files = ft.csource.source_files([ft.HLS_DIR])
        mems = ft.kernel_memories(files, "bitlet_top", {"BITLET_N_PE": 1})
        assert buffers["bram36"] == -(-sum(m.bram36 for m in mems) // 1)
        assert buffers["basis"].startswith("modelled (hls/tools/fit_table.py")
    monkeypatch.setattr(res, "_fit_buffers", lambda *a: None)
    out = res.kernel_resources("bitlet", 1, "pynqz2", report=report, data=data)
    assert out["total"]["bram36"] == words // 1024        # 1K x 36 per RAMB36, no PE BRAM
    assert out["total"]["lut"] == sum(p["lut"] * p["count"] for p in out["parts"])


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("kind", ("bitlet", "vendor_fp"))
def test_largest_n_pe_fits_and_one_more_does_not(board, kind, report, data):
    best = res.largest_n_pe(kind, board, report=report, data=data)
    device = data["devices"][best["device"]]
    capacity = {r: device[r] for r in res.RESOURCES}
    assert best["n_pe"] >= 1
    assert _fits(best["total"], capacity, data["limit"])
    bigger = res.kernel_resources(kind, best["n_pe"] + 1, board, variant=best["variant"],
                                  report=report, data=data)
    assert not _fits(bigger["total"], capacity, data["limit"])
    if kind == "vendor_fp":      # the chosen operator variant is the one that fits more units
        assert best["n_pe"] == max(best["alternatives"].values())


@pytest.mark.parametrize("board", BOARDS)
def test_equal_budget(board, report, data):
    out = res.equal_budget(board, report=report, data=data)
    bitlet, vendor = out["bitlet"], out["vendor_fp"]
    assert bitlet["n_pe"] == res.largest_n_pe("bitlet", board, report=report, data=data)["n_pe"]
    assert out["budget"] == {"lut": bitlet["kernel"]["lut"], "dsp": bitlet["kernel"]["dsp"]}
    assert vendor["kernel"]["lut"] <= out["budget"]["lut"]
    assert vendor["kernel"]["dsp"] <= out["budget"]["dsp"]
    bigger = res.kernel_resources("vendor_fp", vendor["n_pe"] + 1, board, variant=vendor["variant"],
                                  report=report, data=data)
    # one more unit leaves the budget, or no longer fits the board (e.g. its block RAM)
    assert (bigger["kernel"]["lut"] > out["budget"]["lut"]
            or bigger["kernel"]["dsp"] > out["budget"]["dsp"]
            or not res._fits(bigger, data["limit"]))


def test_a_pe_too_large_for_the_board_gives_zero(report, data):
    huge = json.loads(json.dumps(report))
    huge["targets"]["xc7"]["LUT"] = 60000
    assert res.largest_n_pe("bitlet", "pynqz2", report=huge, data=data)["n_pe"] == 0


def test_zero_units_have_no_vendor_array(report, data):
    """Regression: n_pe 0 once still counted the vendor kernel's adder tree."""
    zero = res.kernel_resources("vendor_fp", 0, "pynqz2", variant="dsp", report=report, data=data)
    bitlet = res.kernel_resources("bitlet", 0, "pynqz2", report=report, data=data)
    # shell and buffers only: the logic of the two is equal; block RAM is each kernel's
    # own buffers (the v2 vendor kernel has a few more than the Bitlet kernel)
    logic = {k: v for k, v in zero["kernel"].items() if k != "bram36"}
    assert logic == {k: v for k, v in bitlet["kernel"].items() if k != "bram36"}


# --------------------------------------------------------------------------- boards.tcl
def _boards_tcl() -> dict:
    path = ROOT / "overlay" / "make_metadata.py"
    if not path.exists():
        pytest.skip("overlay/ sources not present (installed without a source tree)")
    spec = importlib.util.spec_from_file_location("bitlet_make_metadata", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module.read_boards()[2]


def _model_n_pe(kind: str, report) -> dict:
    return {b: res.largest_n_pe(kind, b, report=report)["n_pe"] for b in BOARDS}


@pytest.mark.xfail(strict=True, reason=(
    "boards.tcl gives the vendor-FP kernel the Bitlet kernel's n_pe (4 / 8 / 16); the resource "
    "model fits 5 (pynqz2), 13 (kv260) and 45 (zcu104) units with DSP operators (70 % LUT/FF/DSP, "
    "block RAM 100 %); open in issue 12: boards.tcl keeps equal n_pe per board until the "
    "Bitlet PE fits (see the Bitlet test below)"))
def test_boards_tcl_vendor_n_pe_is_the_resource_model():
    boards = _boards_tcl()
    assert {b: boards[b]["n_pe"]["vendor_fp"] for b in BOARDS} == _model_n_pe("vendor_fp", None)


@pytest.mark.xfail(strict=True, reason=(
    "boards.tcl gives the Bitlet kernel 4 / 8 / 16 PEs; with the yosys report of the RTL PE "
    "(24,872 LUT on xc7, 27,517 on xcup) the resource model fits 1 (pynqz2: one PE with the "
    "kernel shell and interconnect takes 64.3 % of the LUTs), 2 (kv260) and 5 (zcu104) at 70 %: "
    "open in issue 12 (a PE of half the published RTL's area, the issue's goal, or smaller "
    "boards' n_pe)"))
def test_boards_tcl_bitlet_n_pe_is_the_resource_model():
    """Against the real synthesized report; skipped (with the reason) while it
    has not been committed to this branch."""
    path = res.report_path()
    if not path.is_file():
        pytest.skip(f"no synthesized PE area yet ({path} is missing): the RTL synthesis "
                    "writes it")
    report = res.area_report(path)
    boards = _boards_tcl()
    assert {b: boards[b]["n_pe"]["bitlet"] for b in BOARDS} == _model_n_pe("bitlet", report)


def test_readme_states_the_models_vendor_sizing():
    """The README's bench --board section quotes what its command prints."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Boards sized by area"):]
    quoted = re.findall(r"prints `\[(\d+), (\d+), (\d+)\]`", section)
    assert len(quoted) >= 2, "the README no longer quotes the Bitlet and vendor sizing"
    assert [int(x) for x in quoted[0]] == list(_model_n_pe("bitlet", None).values())
    assert [int(x) for x in quoted[1]] == list(_model_n_pe("vendor_fp", None).values())
