#!/usr/bin/env python3
"""On-chip memory fit per board: BRAM36 / URAM blocks of each kernel (modelled).

Usage
-----
``python hls/tools/fit_table.py [--out overlay/fit_table.md] [--check]``

For every board of overlay/boards.tcl and every kernel kind (its top and its
``n_pe``), the kernel's sources (hls/*.c) are preprocessed with the board's
settings (``-DBITLET_N_PE=<n_pe>``; ``-DBITLET_AXI_BYTES=<hp_data_width/8>``
when bitlet_hw.h lets -D override it) and parsed by csource.py; the on-chip arrays the
top reaches (onchip.onchip_arrays: file-scope and static arrays, local
arrays of at least 1 Kibit), their ARRAY_PARTITION / ARRAY_RESHAPE factors and
BIND_STORAGE choices, and the m_axi adapter buffers of the top's INTERFACE
pragmas are mapped onto memory blocks by the rule below.  Nothing is typed
here but the device capacities; sizes come from the declarations and pragmas.
``--check`` compares the committed table with a fresh generation and every
kernel with its board's capacity (exit 1 on a difference or a misfit).

Mapping rule (modelled, not synthesized)
----------------------------------------
* An array of E-bit elements and shape d1 x ... x dn becomes
  prod(p_i) memories of depth prod(ceil(d_i / p_i)) and width E, where p_i is
  the partition count of dimension i (complete: d_i; cyclic/block: factor;
  dim=0: every dimension; UG1399 default type complete, dim 1).
  ARRAY_RESHAPE multiplies the width instead (complete: by d_i; else by factor)
  and divides that dimension.
* A memory of depth 1 is registers.  BIND_STORAGE impl=lutram/srl: LUTs.
  impl=uram/uram_ecc: URAM, ceil(W / 72) x ceil(D / 4096) blocks (4K x 72 only).
  impl=bram/bram_ecc: block RAM.  No impl (auto): memories of at most
  ``AUTO_LUTRAM_MAX_BITS`` (1024) bits are taken as LUTRAM, larger ones as
  block RAM (an assumption: the tools decide).
* Block RAM: the cheapest single-primitive tiling, ceil(W / w) x ceil(D / d)
  primitives, over RAMB36 aspect ratios 32Kx1 16Kx2 8Kx4 4Kx9 2Kx18 1Kx36
  (512x72 in simple dual port) at 1 BRAM36 each and RAMB18 ratios 16Kx1 8Kx2
  4Kx4 2Kx9 1Kx18 (512x36 in simple dual port) at 0.5 each (UG473: a 36 Kb
  block is two independent 18 Kb blocks).  Simple dual port widths are not
  used for BIND_STORAGE type=ram_t2p.  So every memory costs at least half a
  BRAM36, and a partitioned array at least that much per partition.
* m_axi adapter (UG1399 "Controlling AXI4 Burst Behavior": a FIFO of
  num_*_outstanding x max_*_burst_length words): one read and one write
  buffer of that size and the port's word width (defaults 16 x 16), mapped
  like an auto memory.
* A kernel is the functions its top reaches, with constant arguments bound and
  dead ``if`` branches under them not followed (csource.Project.reachable):
  the shared bk_run(kind, ...) charges each top only for its own datapath.
  Non-static local arrays are counted once per function, also when the
  function is instantiated several times (an unrolled call): give per-PE
  buffers an N_PE dimension so that they are counted N_PE times.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import csource
import onchip

ROOT = Path(__file__).resolve().parents[2]
HLS_DIR = ROOT / "hls"
BOARDS_TCL = ROOT / "overlay" / "boards.tcl"
TABLE = ROOT / "overlay" / "fit_table.md"
COMMAND = "python hls/tools/fit_table.py"

AUTO_LUTRAM_MAX_BITS = 1024
RAMB36 = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024))
RAMB36_SDP = ((72, 512),)
RAMB18 = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024))
RAMB18_SDP = ((36, 512),)
URAM = (72, 4096)
MAXI_DEFAULTS = {"max_read_burst_length": 16, "max_write_burst_length": 16,
                 "num_read_outstanding": 16, "num_write_outstanding": 16}

#: Device capacities by ``device`` of boards.tcl: (BRAM36 blocks, URAM blocks, source).
#: The AMD tables themselves could not be read in this environment (no network;
#: the search index holds only the DS987 cover page); the cross-checks named are
#: third-party pages.  Re-read the data sheets before relying on a tight fit.
DEVICES = {
    "7z020": (140, 0, ("DS190 Zynq-7000 SoC Data Sheet: Overview (Z-7020); cross-checked: "
                       "140 BRAM36 listed for XC7Z020 by a third-party device list")),
    "xck26": (144, 64, ("DS987 Kria K26 SOM Data Sheet (XCK26); cross-checked: 144 BRAM36 and "
                        "64 URAM quoted for the KV260 by a third-party project page")),
    "xczu7ev": (312, 96, ("DS891 Zynq UltraScale+ MPSoC Data Sheet: Overview (ZU7EV); "
                          "cross-checked: 624 RAMB18 and 96 URAM for the ZCU104 in a "
                          "third-party resource table")),
}


@dataclass
class Memory:
    """One array (or m_axi buffer) mapped onto blocks."""

    name: str
    where: str
    elem_bits: int
    shape: str
    shaping: str          # partition / reshape / bind_storage summary
    impl: str             # "BRAM", "URAM", "LUTRAM", "registers"
    memories: int
    depth: int
    width: int
    bram36: float
    uram: int


def bram36_blocks(width: int, depth: int, sdp: bool = True) -> float:
    """BRAM36 equivalents of one width x depth memory (cheapest single primitive)."""
    best = math.inf
    for configs, size in ((RAMB36, 1.0), (RAMB18, 0.5)):
        for w, d in configs + ((RAMB36_SDP if size == 1.0 else RAMB18_SDP) if sdp else ()):
            best = min(best, math.ceil(width / w) * math.ceil(depth / d) * size)
    return best


def uram_blocks(width: int, depth: int) -> int:
    return math.ceil(width / URAM[0]) * math.ceil(depth / URAM[1])


def _kind(p: csource.HlsPragma) -> str:
    t = p.options.get("type")
    if isinstance(t, str):
        return t.lower()
    for flag in ("complete", "cyclic", "block"):
        if p.options.get(flag) is True:
            return flag
    return "complete"


def _impl(width: int, depth: int, memories: int, bind: csource.HlsPragma | None
          ) -> tuple[str, float, int]:
    impl = str(bind.options.get("impl", "auto")).lower() if bind else "auto"
    t2p = bind is not None and str(bind.options.get("type", "")).lower() == "ram_t2p"
    if depth <= 1:
        return "registers", 0.0, 0
    if impl in ("lutram", "srl"):
        return "LUTRAM", 0.0, 0
    if impl in ("uram", "uram_ecc"):
        return "URAM", 0.0, memories * uram_blocks(width, depth)
    if impl not in ("bram", "bram_ecc") and width * depth <= AUTO_LUTRAM_MAX_BITS:
        return "LUTRAM", 0.0, 0
    return "BRAM", memories * bram36_blocks(width, depth, sdp=not t2p), 0


def map_array(a: onchip.OnChipArray) -> Memory:
    """Blocks of one on-chip array, by the module's mapping rule."""
    if a.bits is None:
        raise ValueError(f"{a.file}:{a.line}: cannot size on-chip array {a.name}")
    dims, width = list(a.dims), a.elem_bits
    parts = [1] * len(dims)
    shaping, bind = [], None
    for p in a.pragmas:
        value = {k: csource.pragma_value(v, a.macros) for k, v in p.options.items()
                 if k in ("factor", "dim")}
        dim = value.get("dim")
        targets = range(len(dims)) if dim == 0 else [(dim or 1) - 1]
        kind, factor = _kind(p), value.get("factor")
        if p.directive in ("ARRAY_PARTITION", "ARRAY_RESHAPE"):
            if kind != "complete" and not factor:
                raise ValueError(f"{a.file}: {p.directive} of {a.name}: {kind} needs factor=")
            shaping.append(f"{p.directive.lower()} {kind}"
                           + (f" {factor}" if kind != "complete" else "")
                           + (f" dim {dim}" if dim is not None else ""))
            for i in targets:
                if i >= len(dims):
                    raise ValueError(f"{a.file}: {p.directive} of {a.name}: no dimension {i + 1}")
                n = dims[i] if kind == "complete" else min(factor, dims[i])
                if p.directive == "ARRAY_PARTITION":
                    parts[i] = n
                else:
                    width *= n
                    dims[i] = math.ceil(dims[i] / n)
        elif p.directive == "BIND_STORAGE":
            bind = p
            shaping.append("bind_storage " + " ".join(
                f"{k}={v}" for k, v in p.options.items() if k in ("type", "impl")))
    memories = math.prod(parts)
    depth = math.prod(math.ceil(d / q) for d, q in zip(dims, parts))
    impl, bram, uram = _impl(width, depth, memories, bind)
    return Memory(a.name, f"{_rel(a.path)}:{a.line}", a.elem_bits, " x ".join(map(str, a.dims)),
                  "; ".join(shaping) or "-", impl, memories, depth, width, bram, uram)


def _rel(path: str) -> str:
    """A source path as written in the table: relative to the repository when inside it."""
    p = Path(path).resolve()
    return p.relative_to(ROOT).as_posix() if ROOT in p.parents else p.name


def maxi_buffers(project: csource.Project, top: csource.Func) -> list:
    """Read and write buffers of each m_axi port of a top (UG1399)."""
    out = []
    for p, _ in top.pragmas:
        if p.directive != "INTERFACE":
            continue
        mode = str(p.options.get("mode", "")).lower()
        if mode != "m_axi" and p.options.get("m_axi") is not True:
            continue
        port = p.options.get("port")
        decl = top.params.get(port)
        if decl is None or not isinstance(decl.type, (csource.c_ast.PtrDecl,
                                                      csource.c_ast.ArrayDecl)):
            raise ValueError(f"{top.file}: m_axi port {port} is not a pointer parameter of "
                             f"{top.name}")
        width = csource.type_bits(decl.type.type, top.unit)
        opts = {k: csource.pragma_value(p.options[k], top.unit.macros) if k in p.options else v
                for k, v in MAXI_DEFAULTS.items()}
        for rw in ("read", "write"):
            depth = opts[f"num_{rw}_outstanding"] * opts[f"max_{rw}_burst_length"]
            impl, bram, uram = _impl(width, depth, 1, None)
            out.append(Memory(f"m_axi {port} {rw} buffer", f"{_rel(top.file)}:"
                              f"{csource.line_of(p.node)}", width, str(depth),
                              f"num_{rw}_outstanding={opts[f'num_{rw}_outstanding']} "
                              f"max_{rw}_burst_length={opts[f'max_{rw}_burst_length']}",
                              impl, 1, depth, width, bram, uram))
    return out


_PROJECTS: dict = {}


def _project(files: list, defines: dict) -> csource.Project:
    """The parsed sources under ``defines``, parsed once per process while unchanged."""
    paths = [Path(f).resolve() for f in files]
    deps = sorted(set(paths) | {h for p in paths for h in p.parent.glob("*.h")})
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in deps)
    key = (stamp, tuple(sorted(defines.items())))
    if key not in _PROJECTS:
        _PROJECTS[key] = csource.Project(paths, defines=defines)
    return _PROJECTS[key]


def kernel_memories(files: list, top_name: str, defines: dict) -> list:
    """Memories of the kernel of ``top_name`` built from ``files`` with ``defines``."""
    project = _project(files, defines)
    if project.errors:
        file, line, message = project.errors[0]
        raise ValueError(f"{file}:{line}: {message}")
    top = next((f for f in project.functions() if f.name == top_name), None)
    if top is None:
        raise ValueError(f"no top {top_name} in {', '.join(map(str, files))}")
    return [map_array(a) for a in onchip.onchip_arrays(project, top)] \
        + maxi_buffers(project, top)


def _load_make_metadata():
    """overlay/make_metadata.py: the one reader of boards.tcl."""
    spec = importlib.util.spec_from_file_location("make_metadata", ROOT / "overlay"
                                                  / "make_metadata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def board_defines(board: dict, kind: str, header: Path) -> dict:
    """The -D settings a board's kernel is built with: BITLET_N_PE (boards.tcl n_pe),
    and BITLET_AXI_BYTES (hp_data_width / 8) when the header lets -D override it."""
    defines = {"BITLET_N_PE": board["n_pe"][kind]}
    text = header.read_text(encoding="utf-8") if header.exists() else ""
    if re.search(r"^#ifndef\s+BITLET_AXI_BYTES\s*$", text, re.MULTILINE):
        defines["BITLET_AXI_BYTES"] = int(board["hp_data_width"]) // 8
    return defines


@dataclass
class Fit:
    """One kernel on one board."""

    board: str
    part: str
    kind: str
    top: str
    defines: dict
    bram36: float
    bram_cap: int
    uram: int
    uram_cap: int
    memories: list

    @property
    def fits(self) -> bool:
        return self.bram36 <= self.bram_cap and self.uram <= self.uram_cap

    @property
    def build(self) -> str:
        return " ".join(f"-D{k}={v}" for k, v in sorted(self.defines.items()))


def fit(files: list | None = None, boards_tcl: Path = BOARDS_TCL) -> list:
    """A ``Fit`` per board of boards.tcl and kernel kind, in board and kind order."""
    files = files or csource.source_files([HLS_DIR])
    header = Path(files[0]).resolve().parent / "bitlet_hw.h"
    _, kinds, boards = _load_make_metadata().read_boards(boards_tcl)
    rows = []
    for board in sorted(boards):
        b = boards[board]
        if b["device"] not in DEVICES:
            raise ValueError(f"boards.tcl: no capacity known for device {b['device']} ({board})")
        bram_cap, uram_cap, _ = DEVICES[b["device"]]
        for kind in sorted(kinds):
            top, defines = kinds[kind]["top"], board_defines(b, kind, header)
            mems = kernel_memories(files, top, defines)
            rows.append(Fit(board, b["part"], kind, top, defines, sum(m.bram36 for m in mems),
                            bram_cap, sum(m.uram for m in mems), uram_cap, mems))
    return rows


def _num(x: float) -> str:
    return f"{x:g}"


def render(rows: list) -> str:
    """The markdown table (deterministic: the committed file is compared with it)."""
    lines = [
        "# On-chip memory fit per board (modelled)",
        "",
        f"Generated by `{COMMAND}` from hls/*.c (on-chip arrays, ARRAY_PARTITION /",
        "ARRAY_RESHAPE / BIND_STORAGE and m_axi INTERFACE pragmas, built with each",
        "board's -D settings), hls/bitlet_hw.h and overlay/boards.tcl. Do not edit:",
        f"regenerate with `{COMMAND}`; `{COMMAND} --check` and",
        "tests/test_fit_table.py fail when this file is stale or a kernel does not fit.",
        "",
        "Figures are **modelled** (the mapping rule of hls/tools/fit_table.py), not",
        "synthesized: Vivado may pack differently. BRAM36 counts RAMB18 as 0.5.",
        "",
        "| board | part | kernel | build | BRAM36 | of | URAM | of | fits |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.board} | {r.part} | {r.kind} ({r.top}) | {r.build} "
                     f"| {_num(r.bram36)} | {r.bram_cap} | {r.uram} | {r.uram_cap} "
                     f"| {'yes' if r.fits else '**NO**'} |")
    lines += ["", "Device capacities (published figures, see DEVICES in hls/tools/fit_table.py):",
              ""]
    for dev, (bcap, ucap, src) in sorted(DEVICES.items()):
        lines.append(f"- {dev}: {bcap} BRAM36, {ucap} URAM: {src}.")
    seen = set()
    for r in rows:
        if (r.top, r.build) in seen:
            continue
        seen.add((r.top, r.build))
        users = ", ".join(x.board for x in rows if (x.top, x.build) == (r.top, r.build))
        lines += ["", f"## {r.top}, {r.build} ({users}): {_num(r.bram36)} BRAM36, {r.uram} URAM",
                  "",
                  ("| memory | declared at | bits x shape | pragmas | impl | memories x depth"
                   " x width | BRAM36 | URAM |"),
                  "|---|---|---|---|---|---|---:|---:|"]
        for m in r.memories:
            lines.append(f"| {m.name} | {m.where} | {m.elem_bits} x [{m.shape}] | {m.shaping} "
                         f"| {m.impl} | {m.memories} x {m.depth} x {m.width} | {_num(m.bram36)}"
                         f" | {m.uram} |")
    return "\n".join(lines) + "\n"


def misfits(rows: list) -> list:
    """One line per kernel that does not fit its board."""
    return [f"{r.board}: {r.kind} needs {_num(r.bram36)} BRAM36 (of {r.bram_cap}) and {r.uram} "
            f"URAM (of {r.uram_cap})" for r in rows if not r.fits]


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fit_table.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=TABLE, help=f"table to write (default {TABLE})")
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed table and the capacities; write nothing")
    args = ap.parse_args(argv)
    try:
        rows = fit()
    except (ValueError, OSError) as exc:
        print(f"fit_table.py: {exc}", file=sys.stderr)
        return 1
    text = render(rows)
    bad = misfits(rows)
    if args.check:
        stale = not args.out.exists() or args.out.read_text(encoding="utf-8") != text
        if stale:
            print(f"fit_table.py: {args.out} is stale: regenerate with `{COMMAND}`",
                  file=sys.stderr)
        for line in bad:
            print(f"fit_table.py: does not fit: {line}", file=sys.stderr)
        return 1 if stale or bad else 0
    args.out.write_text(text, encoding="utf-8")
    for line in bad:
        print(f"fit_table.py: does not fit: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
