"""The RTL Bitlet PE (hls/rtl/): golden records, timing contract, blackbox, area.

Tier ``rtl`` (pyproject markers): needs verilator (testbench) or yosys 0.23
(area) and skips with the reason when they are absent; `.ci/run` installs
them.  The blackbox and report-shape checks need no tool.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hls" / "rtl"
GOLDEN = ROOT / "tests" / "data" / "golden"
TARGET_KEYS = ("LUT", "FF", "DSP", "BRAM", "CARRY", "MUXF")


def _need_tree():
    if not (RTL / "bitlet_pe.v").exists():
        pytest.skip("hls/rtl not present (installed without a source tree)")


def _golden_records() -> int:
    return sum(len(np.load(f)["prune"]) for f in sorted(GOLDEN.glob("*.npz")))


@pytest.mark.rtl
def test_rtl_pe_replays_every_golden_record():
    """Verilator testbench (hls/rtl/tb_rtl_pe.cpp): every golden record on an
    idle PE (result, S, out_acc, latency 24 + S / 21 + S) and all back to back
    (result, out_acc, interval S + 1), all back to back with the output
    stalled at random (results in order), plus the blackbox's C model on the
    same port words; out_acc against the oracle's acc (tests/pyref.py) on
    every fixed record, against the C model's on the fp32 ones."""
    _need_tree()
    missing = [t for t in ("verilator", "make", "g++") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the RTL testbench needs {', '.join(missing)} on PATH "
                    "(apt-get install verilator; .ci/run installs it)")
    proc = subprocess.run(["make", "-s", "-C", str(RTL), "test", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, check=False, timeout=1200)
    out = proc.stdout + proc.stderr
    total = _golden_records()
    assert proc.returncode == 0, out[-4000:]
    assert f"PASS: {total}/{total} records pass" in out, out[-4000:]


def _area_report() -> dict:
    path = RTL / "area_report.json"
    if not path.exists():
        pytest.skip("hls/rtl not present (installed without a source tree)")
    return json.loads(path.read_text())


def test_area_report_has_the_resource_model_keys():
    """The board resource model reads exactly these keys."""
    rep = _area_report()
    assert rep["tool"].startswith("Yosys 0.23 ")
    assert "synth_xilinx -family" in rep["command"] and rep["design"]
    for fam in ("xc7", "xcup"):
        target = rep["targets"][fam]
        for key in TARGET_KEYS:
            assert isinstance(target[key], int) and target[key] >= 0, (fam, key)
        assert target["DSP"] == 0, "the PE has no multiplier"
        assert target["LUT"] > 0 and target["FF"] > 0


@pytest.mark.rtl
@pytest.mark.slow
def test_area_report_regenerates_with_the_pinned_yosys():
    """hls/rtl/synth_area.py --check: a fresh synthesis (xc7 and xcup, in
    parallel, a few minutes) equals the committed report."""
    _need_tree()
    if shutil.which("yosys") is None:
        pytest.skip("yosys not on PATH (apt-get install yosys; .ci/run installs it)")
    version = subprocess.run(["yosys", "-V"], capture_output=True, text=True, check=False).stdout
    if not version.startswith("Yosys 0.23 "):
        pytest.skip(f"the committed report is pinned to yosys 0.23, found {version.strip()!r}")
    proc = subprocess.run([sys.executable, str(RTL / "synth_area.py"), "--check"],
                          capture_output=True, text=True, check=False, timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_blackbox_files_are_generated_and_consistent():
    """bitlet_pe_bb.{json,v,c,h} are what gen_blackbox.py writes, and the
    JSON's RTL port names are ports of the wrapper module."""
    _need_tree()
    proc = subprocess.run([sys.executable, str(RTL / "gen_blackbox.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    desc = json.loads((RTL / "bitlet_pe_bb.json").read_text())
    verilog = (RTL / "bitlet_pe_bb.v").read_text()
    ports = set(re.findall(r"^\s*(?:input|output)\s+wire\s+(?:\[[^\]]+\]\s*)?(\w+)",
                           verilog, re.MULTILINE))
    names = [p for param in desc["c_parameters"] for p in param["rtl_ports"].values()]
    names += list(desc["rtl_common_signal"].values())
    assert names and set(names) <= ports, set(names) - ports
    assert desc["rtl_top_module_name"] == desc["c_function_name"] == "bitlet_pe_bb"
    assert "ap_ctrl_chain_protocol_continue" in desc["rtl_common_signal"]
    for f in desc["rtl_files"] + [c["c_file"] for c in desc["c_files"]]:
        assert (RTL / f).exists(), f
    header = (RTL / "bitlet_pe_bb.h").read_text()
    decl = header.split("void bitlet_pe_bb(")[1].split(";")[0]
    c_args = re.findall(r"u?int(?:64|32)_t \*?(\w+)[,)]", decl)
    assert c_args == [p["c_name"] for p in desc["c_parameters"]]
    # the outputs: the result word, S and the exact accumulator (fixed mode's
    # sum, bitlet_pe.v out_acc sign-extended to the int64_t)
    outs = [p["c_name"] for p in desc["c_parameters"] if p["c_port_direction"] == "out"]
    assert outs == ["res", "scan", "acc"]
    assert "int64_t *acc" in decl and re.search(r"output wire \[63:0\] acc\b", verilog)


def test_run_hls_adds_the_blackbox_only_when_asked(tmp_path, monkeypatch):
    """run_hls.tcl: BITLET_RTL_PE=1 adds hls/rtl/bitlet_pe_bb.json with
    `add_files -blackbox` (UG1399); by default the C PE is synthesized."""
    from test_isa import _run_hls_tcl  # the recorded-Tcl harness of the HLS script

    (tmp_path / "c").mkdir()
    (tmp_path / "rtl").mkdir()
    monkeypatch.delenv("BITLET_RTL_PE", raising=False)
    proc, calls = _run_hls_tcl(tmp_path / "c", "", ["f32_edge.bin"])
    assert proc.returncode == 0, proc.stderr
    assert not any(c[:2] == ["add_files", "-blackbox"] for c in calls)
    assert not any("-DBITLET_RTL_PE" in " ".join(c) for c in calls)
    monkeypatch.setenv("BITLET_RTL_PE", "1")
    proc, calls = _run_hls_tcl(tmp_path / "rtl", "", ["f32_edge.bin"])
    assert proc.returncode == 0, proc.stderr
    bb = [c for c in calls if c[:2] == ["add_files", "-blackbox"]]
    assert len(bb) == 1 and bb[0][2].endswith("hls/rtl/bitlet_pe_bb.json")
    assert Path(bb[0][2]).exists()
    # the kernel (and its testbench) are compiled as the RTL PE build, whose
    # PE array calls bitlet_pe_bb() (hls/bitlet_kernel.c, BITLET_RTL_PE)
    srcs = [c for c in calls if c[0] == "add_files" and c[1] != "-blackbox"]
    assert srcs and all("-DBITLET_RTL_PE" in " ".join(c) for c in srcs)
    # the vendor top has no PE: the option is refused there
    (tmp_path / "vendor").mkdir()
    proc, calls = _run_hls_tcl(tmp_path / "vendor", "vendor", ["f32_edge.bin"])
    assert proc.returncode != 0 and "BITLET_RTL_PE" in proc.stderr
