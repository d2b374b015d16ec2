"""Resource and timing figures from the Vivado reports of an overlay build.

``overlay/build.tcl`` writes, and installs next to the bitstream::

    <board>/<kind>.utilization.rpt       report_utilization (whole design)
    <board>/<kind>.utilization_hier.rpt  report_utilization -hierarchical
    <board>/<kind>.timing.rpt            report_timing_summary

:func:`read_reports` parses whichever of them exist (``None`` when none do);
``bitlet bench`` shows the result.  The paper's figures for comparison are
:data:`bitlet.drivers.overlays.PAPER_FIGURES` (quoted, not measured).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bitlet.drivers.overlays.boards import (
    KINDS,
    PAPER_FIGURES,
    available_boards,
    detect_board,
    overlay_dir,
)
from bitlet.errors import BitletValueError

__all__ = ["format_reports", "paper_scaled_luts", "parse_hier_utilization",
           "parse_timing_summary", "parse_utilization", "read_reports"]

#: report file suffixes, by section of the result
REPORT_FILES = {"utilization": "utilization.rpt", "hierarchy": "utilization_hier.rpt",
                "timing": "timing.rpt"}
#: site types of report_utilization (7-series and UltraScale+ names)
_SITES = {"lut": ("Slice LUTs", "CLB LUTs"), "ff": ("Slice Registers", "CLB Registers"),
          "bram_tile": ("Block RAM Tile",), "dsp": ("DSPs",), "uram": ("URAM",)}
#: columns of report_utilization -hierarchical
_HIER_COLUMNS = {"Total LUTs": "lut", "FFs": "ff", "RAMB36": "ramb36", "RAMB18": "ramb18",
                 "URAM": "uram"}


def _number(cell: str) -> float | int | None:
    cell = cell.strip().lstrip("<").strip()
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return None


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every ``+---+`` bordered table as ``(header cells, rows of cells)``."""
    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines) - 2:
        if lines[i].startswith("+-") and lines[i + 1].startswith("|") and lines[i + 2].startswith("+-"):
            header = [c.strip() for c in lines[i + 1].strip().strip("|").split("|")]
            rows, j = [], i + 3
            while j < len(lines) and lines[j].startswith("|"):
                rows.append([c.strip() for c in lines[j].strip().strip("|").split("|")])
                j += 1
            tables.append((header, rows))
            i = j
        else:
            i += 1
    return tables


def _text(source: str | Path) -> tuple[str, str]:
    """``(text, name)`` of a report given as a path or as its text."""
    if isinstance(source, str) and "\n" in source:
        return source, "report text"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8", errors="replace"), str(path)
    except OSError as exc:
        raise BitletValueError(f"cannot read Vivado report {path}: {exc.strerror}") from exc


def _header_field(text: str, field: str) -> str | None:
    match = re.search(rf"^\|\s*{re.escape(field)}\s*:\s*(.+?)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def parse_utilization(source: str | Path) -> dict[str, Any]:
    """Parse ``report_utilization`` output (a path or the text).

    Returns
    -------
    dict
        ``{"device": str | None, "design_state": str | None, "resources":
        {name: {"used": int, "available": int | None, "util_pct": float | None}}}``
        with names ``lut``, ``ff``, ``bram_tile`` (36 Kb tiles), ``dsp``,
        ``uram`` (those the report lists).

    Raises
    ------
    BitletValueError
        The text has no Site Type table (not a report_utilization output).
    """
    text, name = _text(source)
    resources = {}
    for header, rows in _tables(text):
        if not header or header[0] != "Site Type":
            continue
        col = {h: k for k, h in enumerate(header)}
        for row in rows:
            site = row[0].rstrip("*").strip()
            for key, names in _SITES.items():
                if site in names and key not in resources:
                    resources[key] = {"used": _number(row[col["Used"]]),
                                      "available": _number(row[col["Available"]]),
                                      "util_pct": _number(row[col["Util%"]])}
    if not resources:
        raise BitletValueError(f"{name} is not a Vivado report_utilization output "
                               "(no 'Site Type' table with LUTs/registers)")
    return {"device": _header_field(text, "Device"),
            "design_state": _header_field(text, "Design State"), "resources": resources}


def parse_hier_utilization(source: str | Path, instance: str) -> dict[str, Any] | None:
    """The row of block-design cell ``instance`` in ``report_utilization -hierarchical``.

    Returns ``{"instance", "module", "lut", "ff", "ramb36", "ramb18", "dsp",
    "uram"}`` (counts; absent columns omitted), or None when the cell is not
    in the report.  Raises :class:`BitletValueError` when the text has no
    Instance/Module table.
    """
    text, name = _text(source)
    tables = [(h, r) for h, r in _tables(text) if h[:2] == ["Instance", "Module"]]
    if not tables:
        raise BitletValueError(f"{name} is not a Vivado report_utilization -hierarchical output")
    header, rows = tables[0]
    for row in rows:
        if row[0] == instance:
            out: dict[str, Any] = {"instance": instance, "module": row[1]}
            for k, column in enumerate(header):
                key = _HIER_COLUMNS.get(column) or ("dsp" if column.startswith("DSP") else None)
                if key and k < len(row):
                    out[key] = _number(row[k])
            return out
    return None


def _summary_values(lines: list[str], start: int) -> dict[str, float]:
    """The WNS/TNS/... row following a header line at ``start``."""
    names = re.split(r"\s{2,}", lines[start].strip())
    for line in lines[start + 2:]:
        if line.strip():
            return dict(zip(names, (_number(v) for v in line.split())))
    return {}


def _clocks(lines: list[str]) -> dict[str, dict[str, float]]:
    clocks = {}
    pattern = re.compile(r"^(\S+)\s+\{[^}]*\}\s+([\d.]+)\s+([\d.]+)\s*$")
    try:
        start = next(i for i, line in enumerate(lines) if "| Clock Summary" in line)
    except StopIteration:
        return clocks
    for line in lines[start:]:
        match = pattern.match(line)
        if match:
            clocks[match.group(1)] = {"period_ns": float(match.group(2)),
                                      "freq_mhz": float(match.group(3))}
        elif clocks and not line.strip():
            break
    return clocks


def parse_timing_summary(source: str | Path) -> dict[str, Any]:
    """Parse ``report_timing_summary`` output (a path or the text).

    Returns
    -------
    dict
        ``wns_ns``, ``tns_ns``, ``failing_endpoints`` (setup), ``whs_ns``,
        ``ths_ns`` (hold), ``met`` (bool), ``clocks`` ({name: {"period_ns",
        "freq_mhz"}}), and for the first clock ``target_mhz`` and
        ``fmax_estimate_mhz`` = 1000 / (period - WNS), an estimate only.

    Raises
    ------
    BitletValueError
        No Design Timing Summary with a WNS row in the text.
    """
    text, name = _text(source)
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("WNS(ns)"))
    except StopIteration:
        raise BitletValueError(f"{name} is not a Vivado report_timing_summary output "
                               "(no Design Timing Summary)") from None
    values = _summary_values(lines, start)
    out: dict[str, Any] = {"wns_ns": values.get("WNS(ns)"), "tns_ns": values.get("TNS(ns)"),
                           "failing_endpoints": values.get("TNS Failing Endpoints"),
                           "whs_ns": values.get("WHS(ns)"), "ths_ns": values.get("THS(ns)")}
    if "All user specified timing constraints are met." in text:
        out["met"] = True
    elif "Timing constraints are not met." in text:
        out["met"] = False
    else:
        out["met"] = (out["wns_ns"] or 0) >= 0 and (out["whs_ns"] or 0) >= 0
    out["clocks"] = _clocks(lines)
    if out["clocks"] and out["wns_ns"] is not None:
        first = next(iter(out["clocks"].values()))
        out["target_mhz"] = first["freq_mhz"]
        out["fmax_estimate_mhz"] = round(1000.0 / (first["period_ns"] - out["wns_ns"]), 3)
    return out


def _metadata(directory: Path, kind: str) -> dict:
    try:
        return json.loads((directory / f"{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def paper_scaled_luts(kind: str, n_pe: int, macs_per_pe: int) -> tuple[int, int]:
    """LUTs the paper's figures imply for a PE array (an estimate, not a measurement).

    The paper's 64-MAC Bitlet IP (``PAPER_FIGURES["bitlet"]``) per 64 MACs of
    Bitlet PEs, and its 64-multiplier vendor floating-point configurations
    per 64 fp32 multipliers, scaled linearly; shared control, buffers and
    adders are not included.

    Parameters
    ----------
    kind : {"bitlet", "vendor_fp"}
    n_pe : int
        PEs (Bitlet) or MAC units (vendor-FP), the overlay's ``n_pe``.
    macs_per_pe : int
        64 for a Bitlet PE, ``VENDOR_LANES`` fp32 multipliers for a vendor unit.

    Returns
    -------
    (int, int)
        Low and high LUT estimate (equal for Bitlet).
    """
    paper, macs = PAPER_FIGURES[kind], n_pe * macs_per_pe
    low, high = (paper["lut"],) * 2 if kind == "bitlet" else (paper["lut_min"], paper["lut_max"])
    return round(low * macs / paper["macs"]), round(high * macs / paper["macs"])


def read_reports(board: str | None = None, kind: str = "bitlet", *,
                 root: str | Path | None = None) -> dict[str, Any] | None:
    """Figures from the Vivado reports of overlay ``(board, kind)``, if built.

    Parameters
    ----------
    board : str, optional
        Board name; default :func:`bitlet.drivers.overlays.detect_board` (None on a
        laptop: then nothing is read and None is returned).
    kind : {"bitlet", "vendor_fp"}
    root : path, optional
        Directory of ``<board>/<kind>.*`` files (default as
        :func:`bitlet.drivers.overlays.find_overlay`).

    Returns
    -------
    dict or None
        None when no board is given or detected, or no report exists.
        Otherwise ``{"board", "kind", "n_pe", "macs_per_pe"`` (from the
        overlay's metadata, None without it) ``, "files": {section: path}}``
        plus, per report present, ``"utilization"`` (see
        :func:`parse_utilization`), ``"kernel"`` (the kernel IP's own row,
        :func:`parse_hier_utilization`) and ``"timing"``
        (:func:`parse_timing_summary`).

    Raises
    ------
    BitletValueError
        Unknown ``kind``, or a ``board`` with no overlay in ``root``; a
        report file that is not the Vivado report it should be.
    """
    if kind not in KINDS:
        raise BitletValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    root = Path(root) if root is not None else overlay_dir()
    if board is not None and board not in available_boards(root):
        raise BitletValueError(f"board {board!r} is unknown; known boards in {root}: "
                               f"{', '.join(available_boards(root)) or 'none'}")
    board = board or detect_board(root)
    if board is None:
        return None
    directory = root / board
    files = {sec: directory / f"{kind}.{suffix}" for sec, suffix in REPORT_FILES.items()}
    files = {sec: path for sec, path in files.items() if path.is_file()}
    if not files:
        return None
    meta = _metadata(directory, kind)
    result: dict[str, Any] = {"board": board, "kind": kind, "n_pe": meta.get("n_pe"),
                              "macs_per_pe": meta.get("macs_per_pe"),
                              "files": {sec: str(p) for sec, p in files.items()}}
    if "utilization" in files:
        result["utilization"] = parse_utilization(files["utilization"])
    if "hierarchy" in files:
        result["kernel"] = parse_hier_utilization(files["hierarchy"],
                                                  meta.get("ip_instance", f"{kind}_0"))
    if "timing" in files:
        result["timing"] = parse_timing_summary(files["timing"])
    return result


def _resource_line(label: str, res: dict) -> str:
    avail = f" / {res['available']:,}" if res.get("available") else ""
    pct = f" ({res['util_pct']}%)" if res.get("util_pct") is not None else ""
    return f"  {label:<10}{res['used']:>9,}{avail}{pct}"


def format_reports(report: dict[str, Any] | None) -> str:
    """Human-readable lines of a :func:`read_reports` result, with the paper's
    figures for one 64-MAC IP alongside (labelled as the paper's)."""
    if not report:
        return "no Vivado reports (the overlay has not been built here)"
    lines = [f"{report['board']} / {report['kind']} (Vivado reports)"]
    util = report.get("utilization")
    if util:
        lines.append(f" whole design on {util['device']}:")
        names = {"lut": "LUT", "ff": "FF", "bram_tile": "BRAM36", "dsp": "DSP", "uram": "URAM"}
        lines += [_resource_line(names[k], v) for k, v in util["resources"].items()]
    kernel = report.get("kernel")
    if kernel:
        lines.append(f" kernel IP {kernel['instance']}: {kernel.get('lut', 0):,} LUT, "
                     f"{kernel.get('ff', 0):,} FF, {kernel.get('dsp', 0)} DSP")
    timing = report.get("timing")
    if timing:
        verdict = "met" if timing["met"] else "NOT met"
        lines.append(f" timing {verdict}: WNS {timing['wns_ns']} ns at "
                     f"{timing.get('target_mhz', '?')} MHz (fmax ~{timing.get('fmax_estimate_mhz', '?')} MHz)")
    paper = PAPER_FIGURES[report["kind"]]
    if report["kind"] == "bitlet":
        lines.append(f" paper (one 64-MAC Bitlet IP): {paper['lut']:,} LUT, {paper['ff']:,} FF, "
                     f"{paper['clock_mhz']} MHz")
    else:
        lines.append(f" paper (vendor FP multiplier IP, 64 MACs): {paper['lut_min']:,}-"
                     f"{paper['lut_max']:,} LUT")
    if report.get("n_pe") and report.get("macs_per_pe"):
        low, high = paper_scaled_luts(report["kind"], report["n_pe"], report["macs_per_pe"])
        what = ("PEs" if report["kind"] == "bitlet" else "MAC units") + f" x {report['macs_per_pe']}"
        lines.append(f" paper scaled to this array ({report['n_pe']} {what}): ~{low:,}"
                     + (f"-{high:,}" if high != low else "") + " LUT (estimate)")
    return "\n".join(lines)
