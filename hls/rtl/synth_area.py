#!/usr/bin/env python3
"""Synthesize the RTL Bitlet PE with yosys and report its area.

Runs ``synth_xilinx -family xc7`` (7-series: PYNQ-Z2) and ``-family xcup``
(UltraScale+: KV260, ZCU104) on hls/rtl/bitlet_pe*.v with yosys's default
hierarchical flow (the 24 identical engines are synthesized once; the counts
are of the whole design), both in parallel, and reduces
yosys's cell counts to the resource classes of the committed report
``hls/rtl/area_report.json``::

    {"tool": "Yosys 0.23 (git sha1 ...)", "command": "yosys -p '...'",
     "design": "...", "targets": {"xc7": {"LUT": n, "FF": n, "DSP": n,
     "BRAM": n, "CARRY": n, "MUXF": n, "INV": n, "SRL": n, "LUTRAM": n,
     "cells": {...}}, "xcup": {...}}}

LUT counts LUT1..LUT6 (INV separately, as yosys maps inverters to INV
cells), FF every flip-flop primitive, BRAM RAMB36 + RAMB18 primitives, CARRY
CARRY4/CARRY8, MUXF MUXF7/8/9, SRL SRL16E/SRLC32E, LUTRAM RAM* primitives.
The figures are "synthesized (yosys 0.23)": no placement, no Vivado.

Usage::

    synth_area.py            print the fresh report
    synth_area.py --write    also write area_report.json
    synth_area.py --check    compare with area_report.json (exit 1 if not equal)

Exit status 2 when yosys is missing or not the pinned version.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE / "area_report.json"
SOURCES = ("bitlet_pe.v", "bitlet_pe_pre.v", "bitlet_pe_engine.v", "bitlet_pe_post.v")
TOP = "bitlet_pe"
FAMILIES = ("xc7", "xcup")
PINNED = "Yosys 0.23 "
DESIGN = ("hls/rtl/bitlet_pe.v (top) with bitlet_pe_pre.v, bitlet_pe_engine.v, "
          "bitlet_pe_post.v: N = 64 pairs, G = 24 columns, W = 8 window, fp32 and "
          "fixed modes, the default parameters")
CLASSES = {
    "LUT": re.compile(r"LUT[1-6]$"),
    "FF": re.compile(r"(FD[CEPRS]E?|FD|LD[CP]E?)(_1)?$"),
    "DSP": re.compile(r"DSP48E[12]$"),
    "BRAM": re.compile(r"RAMB(18|36)E[12]$"),
    "CARRY": re.compile(r"CARRY[48]$"),
    "MUXF": re.compile(r"MUXF[789]$"),
    "INV": re.compile(r"INV$"),
    "SRL": re.compile(r"SRL(16E|C32E)$"),
    "LUTRAM": re.compile(r"RAM(16|32|64|128|256)X|RAM32M|RAM64M"),
}


def script(family: str, stat_json: str) -> str:
    """Return the yosys script for one family (stat written as JSON)."""
    return (f"read_verilog {' '.join(SOURCES)}; "
            f"synth_xilinx -family {family} -top {TOP}; "
            f"tee -q -o {stat_json} stat -json")


def yosys_version() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise SystemExit("synth_area: yosys not found on PATH (apt-get install yosys)")
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    return out


def synthesize(family: str) -> dict:
    """Synthesize for one family; return the resource classes and raw cells."""
    with tempfile.TemporaryDirectory() as tmp:
        stat = Path(tmp) / "stat.json"
        proc = subprocess.run(["yosys", "-q", "-p", script(family, str(stat))], cwd=HERE,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"synth_area: yosys failed for {family}: "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    out = {name: sum(n for cell, n in cells.items() if rx.match(cell))
           for name, rx in CLASSES.items()}
    out["cells"] = dict(sorted(cells.items()))
    return out


def report() -> dict:
    """Return a fresh report of both families (synthesized in parallel)."""
    version = yosys_version()
    if not version.startswith(PINNED):
        raise SystemExit(f"synth_area: need {PINNED.strip()} (the report's pinned tool), "
                         f"found {version!r}")
    with ThreadPoolExecutor(max_workers=len(FAMILIES)) as pool:
        results = dict(zip(FAMILIES, pool.map(synthesize, FAMILIES)))
    return {
        "tool": version,
        "command": "yosys -p '" + script("<family>", "<stat.json>") + "'  (cwd hls/rtl; "
                   "<family> = " + ", ".join(FAMILIES) + ")",
        "design": DESIGN,
        "targets": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write area_report.json")
    group.add_argument("--check", action="store_true",
                       help="compare a fresh synthesis with area_report.json")
    args = parser.parse_args(argv)
    try:
        fresh = report()
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    text = json.dumps(fresh, indent=2) + "\n"
    if args.check:
        committed = json.loads(REPORT.read_text())
        if committed != fresh:
            for fam in FAMILIES:
                old = {k: v for k, v in committed["targets"].get(fam, {}).items() if k != "cells"}
                new = {k: v for k, v in fresh["targets"][fam].items() if k != "cells"}
                if old != new or committed["targets"].get(fam) != fresh["targets"][fam]:
                    print(f"synth_area: {fam} differs: committed {old}, fresh {new}",
                          file=sys.stderr)
            if committed.get("tool") != fresh["tool"] or committed.get("command") != fresh["command"]:
                print("synth_area: tool or command differs", file=sys.stderr)
            return 1
        print("synth_area: area_report.json matches a fresh synthesis")
        return 0
    if args.write:
        REPORT.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
