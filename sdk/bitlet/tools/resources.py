"""Resource model of the two kernels: how many PEs (or MAC units) fit a board.

A kernel of kind ``bitlet`` or ``vendor_fp`` at ``n_pe`` takes, in LUT, FF,
DSP and 36 Kb block RAM (``lut``, ``ff``, ``dsp``, ``bram36``)::

    infrastructure + kernel shell + buffers + n_pe * unit + shared

* Bitlet ``unit``: the RTL PE as synthesized by yosys
  (``hls/rtl/area_report.json``, target ``xc7`` for 7-series, ``xcup`` for
  UltraScale+) plus the per-PE glue of the kernel (estimated).
* vendor-FP ``unit``: ``BITLET_VENDOR_LANES`` fp32 multipliers and adders of
  the Xilinx Floating-Point operator plus the accumulation registers
  (``resources.json``: each figure published or estimated, labelled);
  ``shared``: the partial-sum adder tree.  The operator variant (with DSP,
  or LUT-only) is the one that fits more units (ties: with DSP).
* buffers: the on-chip buffers of ``hls/bitlet_hw.h`` (32-bit words in
  RAMB36 used as 1K x 36), the same for both kinds.
* shell and infrastructure: estimated allowances (``resources.json``).

A configuration fits a board when every resource of ``limit.resources`` is
at most ``limit.pct`` percent of the device (``resources.json``: 70 %).
Every figure the model returns carries its basis.

Example
-------
>>> from bitlet.tools.resources import board_sizing   # doctest: +SKIP
>>> board_sizing("pynqz2")["bitlet"]["n_pe"]              # doctest: +SKIP
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from bitlet import hw
from bitlet.drivers.overlays import find_overlay
from bitlet.errors import BitletValueError
from bitlet.sources import source_dirs

__all__ = ["RESOURCES", "ResourceModelError", "area_report", "board_device", "board_sizing",
           "equal_budget", "kernel_resources", "largest_n_pe", "model_data", "overlay_n_pe",
           "report_path", "source_dirs"]

#: Resources the model counts, in this order.
RESOURCES = ("lut", "ff", "dsp", "bram36")
#: Largest N_PE (the 8-bit ID_CONFIG field).
MAX_N_PE = 255
#: Vendor operator variants.
VARIANTS = ("dsp", "nodsp")
#: Keys of the yosys report's per-target counts -> model resources.
_REPORT_KEYS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram36": "BRAM"}
_HERE = Path(__file__).resolve().parent
_DATA = _HERE / "resources.json"
REPORT_RELPATH = ("rtl", "area_report.json")
#: Environment variable naming another area report file.
ENV_REPORT = "BITLET_AREA_REPORT"


class ResourceModelError(BitletValueError):
    """An input of the resource model is missing or malformed."""


def report_path() -> Path:
    """Where the yosys area report of the RTL PE is (it may not exist):
    ``$BITLET_AREA_REPORT``, else ``rtl/area_report.json`` under the kernel
    sources (:func:`source_dirs`)."""
    override = os.environ.get(ENV_REPORT)
    if override:
        return Path(override)
    hls = source_dirs()["hls"] or (_HERE.parent / "hls")  # absent: the path names where it belongs
    return hls.joinpath(*REPORT_RELPATH)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResourceModelError(f"{what} {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ResourceModelError(f"cannot read {what} {path}: {exc}") from None


def area_report(path: str | Path | None = None) -> dict[str, Any]:
    """The yosys area report of the RTL PE, checked.

    Returns
    -------
    dict
        ``{"tool": str, "command": str, "design": str, "targets": {"xc7":
        {"LUT", "FF", "DSP", "BRAM", "CARRY", "MUXF"}, "xcup": {...}}}``
        (counts per PE, ints).

    Raises
    ------
    ResourceModelError
        Missing file (the RTL synthesis has not produced it), or a report
        without the tool, a target or a count.
    """
    path = Path(path) if path is not None else report_path()
    report = _read_json(path, "the synthesized PE area report (yosys, hls/rtl/area_report.json)")
    if not isinstance(report.get("tool"), str) or not isinstance(report.get("targets"), dict):
        raise ResourceModelError(f"{path}: not an area report (needs 'tool' and 'targets')")
    for family in ("xc7", "xcup"):
        counts = report["targets"].get(family)
        missing = [k for k in _REPORT_KEYS.values()
                   if not isinstance((counts or {}).get(k), int) or counts[k] < 0]
        if missing:
            raise ResourceModelError(f"{path}: target {family!r} lacks the counts {missing}")
    return report


@lru_cache(maxsize=4)
def _cached_data(path: str) -> dict:
    return _read_json(Path(path), "the resource model data")


def model_data(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed ``resources.json`` (see the module docstring)."""
    data = _cached_data(str(path or _DATA))
    if data.get("format") != 1:
        raise ResourceModelError(f"{path or _DATA}: format {data.get('format')!r}, expected 1")
    return data


def board_device(board: str, data: dict | None = None) -> tuple[str, dict]:
    """``(device key, capacities)`` of a board, from its overlay metadata's part."""

    data = data or model_data()
    part = find_overlay(board, "bitlet", require_bitstream=False).metadata["part"]
    for key, device in data["devices"].items():
        if part.lower().startswith(key):
            return key, device
    raise ResourceModelError(f"board {board!r}: part {part} is not in the resource model's "
                             f"devices ({', '.join(data['devices'])})")


def _fig(counts: dict, basis: str) -> dict:
    return {**{r: int(counts.get(r, 0)) for r in RESOURCES}, "basis": basis}


def _header_buffers() -> dict:
    words = {"act": hw.ACT_BUF_WORDS, "wgt": hw.WGT_BUF_WORDS, "out": hw.OUT_BUF_WORDS,
             "bias": hw.BIAS_BUF_WORDS}
    bram = sum(math.ceil(w / 1024) for w in words.values())
    detail = ", ".join(f"{k} {w:,}" for k, w in words.items())
    return _fig({"bram36": bram}, "from hls/bitlet_hw.h: the buffers' 32-bit words "
                f"({detail}) in RAMB36 used as 1K x 36; partitioning not modelled")


@lru_cache(maxsize=1)
def _fit_table() -> Any:
    """hls/tools/fit_table.py of a source tree (None without one)."""
    hls = source_dirs()["hls"]
    tools = hls / "tools" if hls else None
    if tools is None or not (tools / "fit_table.py").is_file():
        return None

    # fit_table imports its siblings (csource, onchip) as top-level modules
    if str(tools) not in sys.path:
        sys.path.append(str(tools))
    spec = importlib.util.spec_from_file_location("bitlet_fit_table", tools / "fit_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=512)
def _fit_buffers(kind: str, n_pe: int, board: str) -> dict | None:
    """On-chip memories of the kernel at ``n_pe`` by hls/tools/fit_table.py, or None."""
    ft = _fit_table()
    if ft is None:
        return None
    top = "bitlet_top" if kind == "bitlet" else "vendor_fp_top"
    boards = ft._load_make_metadata().read_boards()[2]
    b = dict(boards[board], n_pe={kind: max(n_pe, 1)})
    files = ft.csource.source_files([ft.HLS_DIR])
    defines = ft.board_defines(b, kind, Path(files[0]).resolve().parent / "bitlet_hw.h")
    mems = ft.kernel_memories(files, top, defines)
    bram = math.ceil(sum(m.bram36 for m in mems))
    build = " ".join(f"-D{k}={v}" for k, v in sorted(defines.items()))
    return _fig({"bram36": bram}, f"modelled (hls/tools/fit_table.py: the on-chip arrays of "
                f"{top} built with {build}, {sum(m.bram36 for m in mems)} BRAM36 rounded up)")


def _unit(kind: str, family: str, variant: str | None, data: dict, report: dict | None
          ) -> tuple[list[dict], dict]:
    """Per-unit parts and the kind's shared part (each with its basis)."""

    if kind == "bitlet":
        report = report if report is not None else area_report()
        target = report["targets"][family]
        counts = {r: target[k] for r, k in _REPORT_KEYS.items()}
        # shift registers and LUT RAM occupy LUT sites too (INV cells are not added:
        # Vivado folds them into the LUTs they drive)
        counts["lut"] += target.get("SRL", 0) + target.get("LUTRAM", 0)
        pe = _fig(counts, f"synthesized ({report['tool']}, target {family}; LUT = LUT1-6 + SRL "
                  "+ LUTRAM cells)")
        return [dict(pe, name="RTL PE"), dict(_fig(data["bitlet_pe_extra"],
                                                  data["bitlet_pe_extra"]["basis"]),
                                              name="PE glue")], _fig({}, "none")
    ops = data["vendor_operators"][family]
    mul, add = ops["fmul"][variant], ops["fadd"][variant]
    lanes = hw.VENDOR_LANES
    parts = [dict(_fig({r: lanes * mul.get(r, 0) for r in RESOURCES}, mul["basis"]),
                  name=f"{lanes} fp32 multipliers ({variant})"),
             dict(_fig({r: lanes * add.get(r, 0) for r in RESOURCES}, add["basis"]),
                  name=f"{lanes} fp32 adders ({variant})"),
             dict(_fig(data["vendor_unit_extra"], data["vendor_unit_extra"]["basis"]),
                  name="accumulation registers")]
    tree = hw.VENDOR_PARTIALS           # PARTIALS - 1 tree adders + the start add
    shared = dict(_fig({r: tree * add.get(r, 0) for r in RESOURCES},
                       f"{data['vendor_shared']['basis']}; each adder: {add['basis']}"),
                  name=f"partial-sum tree ({tree} fp32 adders, {variant})")
    return parts, shared


def kernel_resources(kind: str, n_pe: int, board: str, *, variant: str | None = None,
                     report: dict | None = None, data: dict | None = None,
                     fit_table: bool = True) -> dict[str, Any]:
    """Resources of ``kind`` at ``n_pe`` on ``board`` (whole overlay).

    Parameters
    ----------
    kind : {"bitlet", "vendor_fp"}
    n_pe : int
        PEs (Bitlet) or MAC units of ``BITLET_VENDOR_LANES`` lanes (vendor).
    board : str
        An overlay board (``bitlet.drivers.overlays.available_boards()``).
    variant : {"dsp", "nodsp"}, optional
        Vendor operators with or without DSP (required for ``vendor_fp``).
    report, data : dict, optional
        The area report and model data (default: read the files).
    fit_table : bool
        Block RAM of the buffers from hls/tools/fit_table.py when a source
        tree has it (default); False: from the header's buffer sizes (fast).

    Returns
    -------
    dict
        ``total`` ({resource: int}), ``kernel`` (the kernel IP alone: shell,
        array and shared logic), ``parts`` (list of ``{"name", "count",
        resource..., "basis"}``, per-instance figures), ``device``,
        ``capacity`` and ``utilisation_pct`` ({resource: float}).
    """
    if kind not in ("bitlet", "vendor_fp"):
        raise BitletValueError(f"kind must be 'bitlet' or 'vendor_fp', got {kind!r}")
    if kind == "vendor_fp" and variant not in VARIANTS:
        raise BitletValueError(f"variant must be one of {VARIANTS} for vendor_fp, got {variant!r}")
    data = data or model_data()
    key, device = board_device(board, data)
    unit_parts, shared = _unit(kind, device["family"], variant, data, report)
    parts = [dict(_fig(data["infrastructure"], data["infrastructure"]["basis"]),
                  name="PS interconnect, SmartConnect, interrupt controller, reset", count=1,
                  in_kernel=False),
             dict((fit_table and _fit_buffers(kind, n_pe, board)) or _header_buffers(),
                  name="on-chip buffers", count=1, in_kernel=True),
             dict(_fig(data["kernel_shell"], data["kernel_shell"]["basis"]),
                  name="kernel shell (control, m_axi, output stage)", count=1, in_kernel=True)]
    parts += [dict(p, count=n_pe, in_kernel=True) for p in unit_parts]
    if kind == "vendor_fp":             # the tree exists only with units to feed it
        parts.append(dict(shared, count=1 if n_pe > 0 else 0, in_kernel=True))
    total = {r: sum(p[r] * p["count"] for p in parts) for r in RESOURCES}
    kernel = {r: sum(p[r] * p["count"] for p in parts if p["in_kernel"]) for r in RESOURCES}
    capacity = {r: device[r] for r in RESOURCES}
    return {"kind": kind, "n_pe": n_pe, "variant": variant, "board": board, "device": key,
            "total": total, "kernel": kernel, "parts": parts, "capacity": capacity,
            "capacity_basis": device["basis"],
            "utilisation_pct": {r: round(100.0 * total[r] / capacity[r], 2) for r in RESOURCES}}


def _fits(res: dict, limit: dict, skip: tuple = ()) -> bool:
    return all(res["total"][r] <= pct / 100.0 * res["capacity"][r]
               for r, pct in limit["pct"].items() if r not in skip)


def _largest(kind: str, board: str, variant: str | None, report: dict | None, data: dict,
             budget: dict | None = None) -> dict:
    """The largest n_pe within the limit (and ``budget``).

    Every part grows with n_pe, so the configurations that fit are 1..n for
    one n: a binary search over 0..MAX_N_PE on LUT, FF, DSP (and the budget)
    finds the bound without block RAM, then a second binary search below it
    adds the buffers' block RAM (the fit table's, slower to compute).
    """
    def ok(n: int, full: bool) -> bool:
        res = kernel_resources(kind, n, board, variant=variant, report=report, data=data,
                               fit_table=full)
        return _fits(res, data["limit"], () if full else ("bram36",)) and (
            budget is None or all(res["kernel"][r] <= budget[r] for r in budget))

    lo, hi = 0, MAX_N_PE + 1             # ok(lo) is taken as true, ok(hi) as false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid, False) else (lo, mid)
    if not ok(lo, True):                 # block RAM: the answer is in 0..lo-1
        bound, lo = lo, 0
        while bound - lo > 1:
            mid = (lo + bound) // 2
            lo, bound = (mid, bound) if ok(mid, True) else (lo, mid)
    return kernel_resources(kind, lo, board, variant=variant, report=report, data=data)


def largest_n_pe(kind: str, board: str, *, report: dict | None = None,
                 data: dict | None = None, budget: dict | None = None) -> dict[str, Any]:
    """The largest ``n_pe`` of ``kind`` that fits ``board`` at the limit.

    Parameters
    ----------
    budget : dict, optional
        ``{resource: count}`` the kernel IP (``kernel_resources()["kernel"]``)
        must also stay within (the equal-budget comparison).

    Returns
    -------
    dict
        :func:`kernel_resources` of the chosen configuration (``n_pe`` 0
        when not even one fits), plus ``limit`` and, for the vendor kernel,
        ``alternatives`` ({variant: n_pe}).
    """
    data = data or model_data()
    if kind == "bitlet":
        result = _largest(kind, board, None, report, data, budget)
        result["alternatives"] = {}
    else:
        options = {v: _largest(kind, board, v, report, data, budget) for v in VARIANTS}
        result = max(options.values(), key=lambda r: (r["n_pe"], r["variant"] == "dsp"))
        result["alternatives"] = {v: r["n_pe"] for v, r in options.items()}
    result["limit"] = data["limit"]
    return result


def equal_budget(board: str, *, report: dict | None = None, data: dict | None = None
                 ) -> dict[str, Any]:
    """Both kernels within the LUT and DSP of the board-filling Bitlet kernel IP.

    The budget is the Bitlet kernel IP (shell, buffers, PEs) at its
    board-filling ``n_pe``; the vendor kernel gets the largest ``n_pe`` whose
    kernel IP stays within both its LUT and its DSP count (each separately)
    and the board limit.
    """
    data = data or model_data()
    bitlet = largest_n_pe("bitlet", board, report=report, data=data)
    budget = {r: bitlet["kernel"][r] for r in ("lut", "dsp")}
    vendor = largest_n_pe("vendor_fp", board, report=report, data=data, budget=budget)
    return {"budget": budget, "budget_basis": "the Bitlet kernel IP at its board-filling n_pe "
            "(LUT and DSP each; FF and BRAM only within the board limit)",
            "bitlet": bitlet, "vendor_fp": vendor}


def board_sizing(board: str, *, report: dict | None = None, data: dict | None = None
                 ) -> dict[str, Any]:
    """Board-filling configuration of each kernel: ``{"bitlet": ..., "vendor_fp": ...}``
    (each :func:`largest_n_pe`)."""
    data = data or model_data()
    return {kind: largest_n_pe(kind, board, report=report, data=data)
            for kind in ("bitlet", "vendor_fp")}


def overlay_n_pe(board: str, *, report: dict | None = None, data: dict | None = None
                 ) -> dict[str, Any]:
    """The ``n_pe`` of each kernel kind that ``overlay/boards.tcl`` builds for ``board``.

    The sizing rule of the overlays: each kind at its board-filling ``n_pe``
    (:func:`largest_n_pe`), and at least 1 PE (an overlay without a PE
    computes nothing; ``BITLET_N_PE`` is 1..255).  A kind whose single PE
    does not fit the limit is built all the same and flagged ``over_limit``
    with its utilisation.  ``overlay/size_boards.py`` writes these numbers
    into boards.tcl (``--check`` compares).

    Returns
    -------
    dict
        ``{kind: {"n_pe": int, "model_n_pe": int, "over_limit": bool,
        "variant": str | None, "utilisation_pct": {resource: float},
        "basis": str}}`` for ``"bitlet"`` and ``"vendor_fp"``.
    """
    data = data or model_data()
    out: dict[str, Any] = {}
    for kind, best in board_sizing(board, report=report, data=data).items():
        res = best
        if best["n_pe"] == 0:           # not even one fits: build one, flagged
            variants = [None] if kind == "bitlet" else list(VARIANTS)
            res = min((kernel_resources(kind, 1, board, variant=v, report=report, data=data)
                       for v in variants), key=lambda r: max(r["utilisation_pct"].values()))
        limit = ", ".join(f"{r.upper()} {pct} %" for r, pct in data["limit"]["pct"].items())
        out[kind] = {"n_pe": max(best["n_pe"], 1), "model_n_pe": best["n_pe"],
                     "over_limit": best["n_pe"] == 0, "variant": res["variant"],
                     "utilisation_pct": res["utilisation_pct"],
                     "basis": (f"resource model (bitlet.tools.resources): the largest n_pe "
                               f"within {limit} of {res['device']}, at least 1")}
    return out
