#!/usr/bin/env python3
"""Write the overlay metadata the SDK ships: ``<board>/<kind>.json`` and, until
Vivado has produced the real one, a stand-in ``<board>/<kind>.hwh``.

Every value comes from the two sources of truth:

* ``hls/bitlet_hw.h`` (register offsets, VLNV, ISA/ID constants, buffer sizes),
  and ``hls/bitlet_top.h`` (the argument list, from which the s_axilite
  register names follow the Vitis HLS naming);
* ``overlay/boards.tcl`` (part, PS type and ports, clock, address map, N_PE).

The stand-in .hwh describes the block design that ``overlay/bd.tcl`` builds
(same instance names, VLNVs, interfaces, address map, clock, interrupt
through an AXI interrupt controller, the cycle counter on the kernel's
``timestamp`` input), in the format Vivado writes, so that
``pynq.Overlay(..., download=False)`` parses it like a real one.

Usage
-----
``python overlay/make_metadata.py [--board B] [--kind K] [--json-only] [--out DIR]``
(default: every board and kind, into ``drivers/overlays``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "hls" / "bitlet_hw.h"
TOP_HEADER = ROOT / "hls" / "bitlet_top.h"
BOARDS_TCL = ROOT / "overlay" / "boards.tcl"
OUT_DIR = ROOT / "drivers" / "overlays"
METADATA_FORMAT = 1


# ---------------------------------------------------------------------------
# Sources of truth
# ---------------------------------------------------------------------------
def _load_sources():
    """bitlet/sources.py -- the one reader of bitlet_hw.h -- loaded by its path
    (this script runs without the SDK installed): ``sdk/bitlet/sources.py`` in a
    source tree, ``bitlet/sources.py`` beside ``bitlet/overlay/`` in a package."""
    here = Path(__file__).resolve().parent
    for path in (here.parent / "sdk" / "bitlet" / "sources.py", here.parent / "sources.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location("bitlet_sources", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"make_metadata.py: bitlet's sources.py not found beside {here}")


_SOURCES = _load_sources()


def read_header(path: Path = HEADER) -> dict:
    """Constants of ``hls/bitlet_hw.h`` as ``{NAME_without_prefix: int | str}``
    (:func:`bitlet.sources.read_header`)."""
    return _SOURCES.read_header(path)


def header_overridable(name: str, path: Path = HEADER) -> bool:
    """Whether ``BITLET_<name>`` of the header sits in an ``#ifndef`` guard
    (then ``-DBITLET_<name>=...`` at HLS build changes what the kernel reports)."""
    return _SOURCES.header_overridable(name, path)


def _tcl_words(text: str) -> list:
    """Split a Tcl list into words (braces group, no substitution)."""
    words, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text[i] == "{":
            depth, j = 1, i + 1
            while depth:
                if j >= n:
                    raise ValueError("unbalanced braces in boards.tcl")
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            words.append(text[i + 1 : j - 1])
            i = j
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def tcl_dict(text: str) -> dict:
    """A Tcl dict (flat key/value word list) as a Python dict of strings."""
    words = _tcl_words(text)
    if len(words) % 2:
        raise ValueError(f"odd number of words in Tcl dict: {text[:60]!r}")
    return dict(zip(words[0::2], words[1::2]))


def read_boards(path: Path = BOARDS_TCL) -> tuple[dict, dict, dict]:
    """``(common, kinds, boards)`` from ``overlay/boards.tcl``.

    Each board dict includes the keys of its PS type (``BITLET_PS``).
    """
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))
    tables = {}
    for words in _split_commands(text):
        if len(words) != 3 or words[0] != "set":
            raise ValueError(f"boards.tcl may only contain `set NAME {{dict}}`, got {words[:2]}")
        tables[words[1]] = tcl_dict(words[2])
    common = tables["BITLET_COMMON"]
    kinds = {k: tcl_dict(v) for k, v in tables["BITLET_KINDS"].items()}
    ps_types = {k: tcl_dict(v) for k, v in tables["BITLET_PS"].items()}
    boards = {}
    for name, body in tables["BITLET_BOARDS"].items():
        board = tcl_dict(body)
        board = {**ps_types[board["ps_type"]], **board}  # PS-type defaults, board wins
        board["n_pe"] = {k: int(v) for k, v in tcl_dict(board["n_pe"]).items()}
        board["detect"] = _tcl_words(board["detect"])
        boards[name] = board
    return common, kinds, boards


def _split_commands(text: str) -> list:
    words = _tcl_words(text)
    return [words[i : i + 3] for i in range(0, len(words), 3)]


# an argument: qualifiers (the `timestamp` port is `const volatile uint64_t *`),
# type, pointer star, name
_ARG = re.compile(r"(?:(?:const|volatile)\s+)*(uint64_t|uint32_t)\s*(\*?)\s*(\w+)")


def wire_args(common: dict | None = None) -> tuple:
    """Top arguments that are ``ap_none`` input wires, not s_axilite
    registers: the ``timestamp_pin`` of boards.tcl, fed by the block design's
    free-running cycle counter (``hls/bitlet_top.h``)."""
    common = common if common is not None else read_boards()[0]
    return (common["timestamp_pin"],)


def _top_params(top: str, path: Path) -> list:
    """``(ctype, star, name)`` of each argument of ``top`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"\bvoid\s+{top}\s*\(([^)]*)\)", text)
    if match is None:
        raise ValueError(f"{top}() is not declared in {path.name}")
    return _ARG.findall(match.group(1))


def wire_ports(top: str, wires: tuple | None = None, path: Path = TOP_HEADER) -> dict:
    """The ``ap_none`` input ports of ``top`` as ``{name: bits}``: Vitis HLS
    makes each a plain data port named after the argument, as wide as its
    type (UG1399, "Port-Level I/O: No Protocol"; for the read-only pointer
    ``const volatile uint64_t *timestamp``, as wide as the pointee)."""
    wires = wires if wires is not None else wire_args()
    ports = {name: int(ctype[len("uint"):-len("_t")])
             for ctype, _, name in _top_params(top, path) if name in wires}
    missing = [w for w in wires if w not in ports]
    if missing:
        raise ValueError(f"{top}() in {path.name} has no argument {', '.join(missing)} "
                         "(timestamp_pin of overlay/boards.tcl)")
    return ports


def top_arguments(top: str, path: Path = TOP_HEADER, wires: tuple | None = None) -> list:
    """Arguments of ``top`` in ``hls/bitlet_top.h`` as ``(name, kind)``.

    kind is ``"ptr"`` (m_axi, 64-bit offset register), ``"in64"``,
    ``"in32"``, ``"out32"`` / ``"out64"`` (a pointer to a scalar output) or
    ``"wire"`` (an ``ap_none`` input port, no register: :func:`wire_args`).
    """
    wires = wires if wires is not None else wire_args()
    args = []
    for i, (ctype, star, name) in enumerate(_top_params(top, path)):
        if i == 0:
            kind = "ptr"  # the m_axi memory port
        elif name in wires:
            kind = "wire"
        elif star:
            kind = "out64" if ctype == "uint64_t" else "out32"
        else:
            kind = "in64" if ctype == "uint64_t" else "in32"
        args.append((name, kind))
    return args


# ---------------------------------------------------------------------------
# The s_axilite register map (Vitis HLS layout and names)
# ---------------------------------------------------------------------------
def _field(name, lsb, width, access, desc, read_action="", modified=""):
    return {"name": name, "lsb": lsb, "width": width, "access": access,
            "desc": desc, "read_action": read_action, "modified": modified}


def _control_registers(hw: dict) -> list:
    ctrl_bits = [("AP_START", hw["CTRL_AP_START"], "read-write", "modify", ""),
                 ("AP_DONE", hw["CTRL_AP_DONE"], "read-only", "", "modify"),
                 ("AP_IDLE", hw["CTRL_AP_IDLE"], "read-only", "", "modify"),
                 ("AP_READY", hw["CTRL_AP_READY"], "read-only", "", "modify"),
                 ("AUTO_RESTART", hw["CTRL_AUTO_RESTART"], "read-write", "modify", "")]
    ctrl = [_field(n, bit.bit_length() - 1, 1, acc, f"Control signal Register for '{n.lower()}'.",
                   ra, mod) for n, bit, acc, mod, ra in ctrl_bits]
    irq = [("CHAN0", hw["IRQ_AP_DONE"], "ap_done"), ("CHAN1", hw["IRQ_AP_READY"], "ap_ready")]
    return [
        {"name": "CTRL", "offset": hw["REG_CTRL"], "access": "read-write",
         "desc": "Control signals", "fields": ctrl},
        {"name": "GIER", "offset": hw["REG_GIE"], "access": "read-write",
         "desc": "Global Interrupt Enable Register",
         "fields": [_field("Enable", 0, 1, "read-write", "Master enable for the device "
                           "interrupt output to the system interrupt controller", "", "modify")]},
        {"name": "IP_IER", "offset": hw["REG_IER"], "access": "read-write",
         "desc": "IP Interrupt Enable Register",
         "fields": [_field(f"{c}_INT_EN", b.bit_length() - 1, 1, "read-write",
                           f"Enable Channel {c[-1]} ({s}) Interrupt", "", "modify")
                    for c, b, s in irq]},
        {"name": "IP_ISR", "offset": hw["REG_ISR"], "access": "read-write",
         "desc": "IP Interrupt Status Register",
         "fields": [_field(f"{c}_INT_ST", b.bit_length() - 1, 1, "read-only",
                           f"Channel {c[-1]} ({s}) Interrupt Status", "modify", "oneToToggle")
                    for c, b, s in irq]},
    ]


def register_map(hw: dict, top: str) -> list:
    """The kernel's s_axilite registers, laid out and named as Vitis HLS does.

    Returns a list of ``{"name", "offset", "access", "desc", "fields"}``; the
    offsets are computed from the argument list of ``top`` with the Vitis
    rules and checked against the ``REG_*`` offsets of the header.
    """
    regs = _control_registers(hw)
    offset = 0x10
    for name, kind in top_arguments(top):
        if kind in ("ptr", "in64"):
            for part, shift in ((1, 0), (2, 32)):
                regs.append({"name": f"{name}_{part}", "offset": offset, "access": "read-write",
                             "desc": f"Data signal of {name}",
                             "fields": [_field(f"{name}", 0, 32, "read-write",
                                               f"Bit {shift + 31} to {shift} of {name}")]})
                offset += 4
            offset += 4  # reserved word
        elif kind == "wire":
            continue
        elif kind == "out64":
            for part, shift in ((1, 0), (2, 32)):
                regs.append({"name": f"{name}_{part}", "offset": offset, "access": "read-only",
                             "desc": f"Data signal of {name}",
                             "fields": [_field(name, 0, 32, "read-only",
                                               f"Bit {shift + 31} to {shift} of {name}")]})
                offset += 4
            regs.append({"name": f"{name}_ctrl", "offset": offset, "access": "read-only",
                         "desc": f"Control signal of {name}",
                         "fields": [_field(f"{name}_ap_vld", 0, 1, "read-only",
                                           f"Control signal {name}_ap_vld", "modify")]})
            offset += 8  # the ap_vld word and a reserved word
        elif kind == "in32":
            regs.append({"name": name, "offset": offset, "access": "read-write",
                         "desc": f"Data signal of {name}",
                         "fields": [_field(name, 0, 32, "read-write",
                                           f"Bit 31 to 0 of {name}")]})
            offset += 8
        else:
            regs.append({"name": name, "offset": offset, "access": "read-only",
                         "desc": f"Data signal of {name}",
                         "fields": [_field(name, 0, 32, "read-only", f"Bit 31 to 0 of {name}")]})
            regs.append({"name": f"{name}_ctrl", "offset": offset + 4, "access": "read-only",
                         "desc": f"Control signal of {name}",
                         "fields": [_field(f"{name}_ap_vld", 0, 1, "read-only",
                                           f"Control signal {name}_ap_vld", "modify")]})
            offset += 8
    _check_against_header(hw, regs, offset, top)
    return regs


def _check_against_header(hw: dict, regs: list, end: int, top: str) -> None:
    header = sorted(v for k, v in hw.items() if k.startswith("REG_") and k != "REG_SPAN")
    ours = sorted(r["offset"] for r in regs)
    if ours != header or end != hw["REG_SPAN"]:
        raise ValueError(f"the Vitis HLS layout of {top}() does not match the REG_* offsets "
                         f"of bitlet_hw.h: {[hex(o) for o in ours]} (end {end:#x}) vs "
                         f"{[hex(o) for o in header]} (REG_SPAN {hw['REG_SPAN']:#x})")


def m_axi_data_width(hw: dict, board: dict | None = None) -> int:
    """Data bits of the kernel's m_axi port: the board's HP port width (what
    overlay/Makefile builds the kernel with, BITLET_AXI_BYTES), else the
    header's default BITLET_AXI_BYTES."""
    if board is not None and "hp_data_width" in board:
        return int(board["hp_data_width"])
    return 8 * hw["AXI_BYTES"]


def s_axi_addr_width(hw: dict) -> int:
    """Address bits of the s_axilite port (Vitis: enough for the register window)."""
    return max(hw["REG_SPAN"] - 1, 1).bit_length()


# ---------------------------------------------------------------------------
# Overlay description (what the SDK reads)
# ---------------------------------------------------------------------------
def vlnv(hw: dict, kind: str) -> str:
    name = hw["IP_NAME"] if kind == "bitlet" else hw["VENDOR_IP_NAME"]
    return f"{hw['IP_VENDOR']}:{hw['IP_LIBRARY']}:{name}:{hw['IP_VERSION']}"


def format_names(hw: dict, mask: int) -> list:
    """Names of the formats in an ID_FORMATS mask (bit i = ``BITLET_FMT_x`` = i)."""
    codes = {v: k[len("FMT_"):].lower() for k, v in hw.items()
             if k.startswith("FMT_") and isinstance(v, int) and v < hw["N_FMT"]}
    return [codes[i] for i in sorted(codes) if mask >> i & 1]


def kernel_clock_mhz(board: str, clock_mhz: int, hw: dict,
                     overridable: bool | None = None) -> int:
    """The clock (MHz) the kernel built for ``board`` reports in ``ID_CONFIG``.

    That is ``BITLET_CLOCK_MHZ`` of the header, which ``run_hls.tcl`` can only
    change when the header lets ``-D`` override it; the board's clock must then
    equal it.  Raises ValueError when the board's ``clock_mhz`` cannot be
    reported exactly (not a multiple of 4 MHz, too large, or not the header's).
    """
    if overridable is None:
        overridable = header_overridable("CLOCK_MHZ")
    if clock_mhz % 4 or not 0 < clock_mhz // 4 <= hw["CFG_CLK_MASK"]:
        raise ValueError(f"boards.tcl: {board} clock_mhz {clock_mhz} cannot be reported in "
                         f"ID_CONFIG (a multiple of 4 MHz up to {4 * hw['CFG_CLK_MASK']} MHz)")
    if not overridable and clock_mhz != hw["CLOCK_MHZ"]:
        raise ValueError(f"boards.tcl: {board} clock_mhz {clock_mhz}, but the kernel reports "
                         f"BITLET_CLOCK_MHZ = {hw['CLOCK_MHZ']} MHz of hls/bitlet_hw.h in "
                         "ID_CONFIG (the header does not let -D override it)")
    return clock_mhz


def macs_per_pe(hw: dict, kind: str) -> int:
    """Multiply-accumulate units of one PE: the 64 bit-interleaved MACs of a
    Bitlet PE (``GROUP``), or the ``VENDOR_LANES`` fp32 multipliers of a
    vendor-FP MAC unit."""
    return hw["GROUP"] if kind == "bitlet" else hw["VENDOR_LANES"]


def describe(board: str, kind: str, hw: dict | None = None, tables=None,
             hwh_source: str = "generated", clock_overridable: bool | None = None) -> dict:
    """The metadata JSON of one overlay (plain data)."""
    hw = hw or read_header()
    common, kinds, boards = tables or read_boards()
    b = boards[board]
    n_pe = b["n_pe"][kind]
    if not 0 < n_pe <= hw["CFG_NPE_MASK"]:
        raise ValueError(f"boards.tcl: {board} n_pe {n_pe} for {kind} cannot be reported in "
                         f"ID_CONFIG (1..{hw['CFG_NPE_MASK']})")
    clock = kernel_clock_mhz(board, int(b["clock_mhz"]), hw, clock_overridable)
    kind_code = hw["KIND_BITLET"] if kind == "bitlet" else hw["KIND_VENDOR_FP"]
    formats = hw["FORMATS_BITLET"] if kind == "bitlet" else hw["FORMATS_VENDOR"]
    id_config = ((n_pe & hw["CFG_NPE_MASK"]) << hw["CFG_NPE_SHIFT"]
                 | (kind_code & hw["CFG_KIND_MASK"]) << hw["CFG_KIND_SHIFT"]
                 | (formats & hw["CFG_FMT_MASK"]) << hw["CFG_FMT_SHIFT"]
                 | ((clock // 4) & hw["CFG_CLK_MASK"]) << hw["CFG_CLK_SHIFT"])
    instance = kinds[kind]["instance"]
    ps_irq_base = int(b["pynq_irq_base"])
    return {
        "metadata_format": METADATA_FORMAT,
        "board": board,
        "title": b["title"],
        "detect": b["detect"],
        "kind": kind,
        "part": b["part"],
        "board_part": b["board_part"],
        "ps_type": b["ps_type"],
        "isa_version": hw["ISA_VERSION"],
        "magic": hw["MAGIC"],
        "kind_code": kind_code,
        "n_pe": n_pe,
        "group": hw["GROUP"],
        "macs_per_pe": macs_per_pe(hw, kind),
        "macs": n_pe * macs_per_pe(hw, kind),
        "clock_mhz": clock,
        "formats": format_names(hw, formats),
        "formats_mask": formats,
        "act_buf_words": hw["ACT_BUF_WORDS"],
        "wgt_buf_words": hw["WGT_BUF_WORDS"],
        "out_buf_words": hw["OUT_BUF_WORDS"],
        "id_config": id_config,
        "vlnv": vlnv(hw, kind),
        "hls_top": kinds[kind]["top"],
        "ip_instance": instance,
        "ctrl_base": int(b["ctrl_base"], 0),
        "ctrl_range": int(common["ctrl_range"], 0),
        "reg_span": hw["REG_SPAN"],
        "interrupt": {
            "wired": True,
            "pin": f"{instance}/interrupt",
            "controller": common["intc_instance"],
            "controller_base": int(b["intc_base"], 0),
            "index": 0,
            "raw_irq": ps_irq_base,
        },
        "files": {"bit": f"{kind}.bit", "hwh": f"{kind}.hwh"},
        "hwh_source": hwh_source,
    }


# ---------------------------------------------------------------------------
# .hwh writer
# ---------------------------------------------------------------------------
# AXI signals: (logical, width or key, driven by the master?)
_AXI_LITE = [("AWADDR", "addr", True), ("AWVALID", 1, True), ("AWREADY", 1, False),
             ("WDATA", "data", True), ("WSTRB", "strb", True), ("WVALID", 1, True),
             ("WREADY", 1, False), ("BRESP", 2, False), ("BVALID", 1, False),
             ("BREADY", 1, True), ("ARADDR", "addr", True), ("ARVALID", 1, True),
             ("ARREADY", 1, False), ("RDATA", "data", False), ("RRESP", 2, False),
             ("RVALID", 1, False), ("RREADY", 1, True)]
_AXI_FULL_EXTRA = [("AWID", "id", True), ("AWLEN", 8, True), ("AWSIZE", 3, True),
                   ("AWBURST", 2, True), ("AWLOCK", 1, True), ("AWCACHE", 4, True),
                   ("AWPROT", 3, True), ("AWQOS", 4, True), ("WLAST", 1, True),
                   ("BID", "id", False), ("ARID", "id", True), ("ARLEN", 8, True),
                   ("ARSIZE", 3, True), ("ARBURST", 2, True), ("ARLOCK", 1, True),
                   ("ARCACHE", 4, True), ("ARPROT", 3, True), ("ARQOS", 4, True),
                   ("RID", "id", False), ("RLAST", 1, False)]


class Bus:
    """One AXI bus interface of a module."""

    def __init__(self, name, role, prefix, case, addr, data, full, idw=0, params=None):
        self.name, self.role, self.prefix, self.case = name, role, prefix, case
        self.sizes = {"addr": addr, "data": data, "strb": data // 8, "id": idw}
        self.signals = _AXI_LITE + (_AXI_FULL_EXTRA if full else [])
        self.full = full
        self.params = params or {}
        self.busname = "__NOC__"
        self.peer = None  # (module, bus)

    def physical(self, logical):
        return self.prefix + (logical.lower() if self.case == "lower" else logical)

    def width(self, spec):
        return self.sizes[spec] if isinstance(spec, str) else spec


class Module:
    """One block-design cell, written as a <MODULE> element."""

    def __init__(self, instance, vlnv_str, attrs, params=()):
        self.instance, self.vlnv = instance, vlnv_str
        self.attrs = attrs
        self.params = list(params)
        self.buses: list[Bus] = []
        self.scalars: dict[str, dict] = {}  # name -> {dir, left, sigis, conns, signame, extra}
        self.memranges: list[dict] = []
        self.regmaps: list[tuple[str, int, list]] = []

    def scalar(self, name, direction, sigis="undef", left=None, **extra):
        self.scalars.setdefault(name, {"dir": direction, "sigis": sigis, "left": left,
                                       "conns": [], "signame": None, "extra": extra})
        return self

    def bus(self, name):
        return next(b for b in self.buses if b.name == name)


def connect_bus(master: Module, mbus: str, slave: Module, sbus: str) -> None:
    """Connect a master bus interface to a slave one (the signals both have)."""
    m, s = master.bus(mbus), slave.bus(sbus)
    m.peer, s.peer = (slave, s), (master, m)
    m.busname = s.busname = f"{master.instance}_{mbus}"


def connect_scalar(src: Module, sport: str, dst: Module, dport: str) -> None:
    """Connect the output ``src/sport`` to the input ``dst/dport``."""
    signame = f"{src.instance}_{sport}"
    src.scalars[sport]["signame"] = signame
    src.scalars[sport]["conns"].append((dst.instance, dport))
    dst.scalars[dport]["signame"] = signame
    dst.scalars[dport]["conns"].append((src.instance, sport))


def _attrs(d: dict) -> str:
    return " ".join(f"{k}={quoteattr(str(v))}" for k, v in sorted(d.items()))


def _port_xml(name, p, clk_hz, out):
    attrs = {"DIR": p["dir"], "NAME": name, "SIGIS": p["sigis"]}
    if p["left"] is not None:
        attrs.update(LEFT=p["left"], RIGHT=0)
    if p["sigis"] == "clk":
        attrs["CLKFREQUENCY"] = clk_hz
    attrs.update(p["extra"])
    if p["signame"]:
        attrs["SIGNAME"] = p["signame"]
        out.append(f"        <PORT {_attrs(attrs)}>")
        out.append("          <CONNECTIONS>")
        for inst, port in p["conns"]:
            out.append(f"            <CONNECTION {_attrs({'INSTANCE': inst, 'PORT': port})}/>")
        out.append("          </CONNECTIONS>")
        out.append("        </PORT>")
    else:
        out.append(f"        <PORT {_attrs(attrs)}/>")


def _bus_ports(mod: Module, bus: Bus) -> dict:
    """Physical ports of a bus, with their connections to the peer bus."""
    is_master = bus.role == "MASTER"
    peer_logicals = {}
    if bus.peer:
        pmod, pbus = bus.peer
        peer_logicals = {lg: (pmod.instance, pbus.physical(lg))
                         for lg, spec, _ in pbus.signals if pbus.width(spec)}
    ports = {}
    for logical, spec, master_drives in bus.signals:
        width = bus.width(spec)
        if width == 0:
            continue
        drives = master_drives == is_master
        p = {"dir": "O" if drives else "I", "sigis": "undef",
             "left": width - 1 if width > 1 or logical.endswith(("ADDR", "DATA")) else None,
             "conns": [], "signame": None, "extra": {}}
        if logical in peer_logicals:
            p["signame"] = f"{bus.busname}_{logical.lower()}"
            p["conns"] = [peer_logicals[logical]]
        ports[bus.physical(logical)] = p
    return ports


def _bus_xml(bus: Bus, clk_hz: int, clk_domain: str, out: list) -> None:
    attrs = {"BUSNAME": bus.busname, "NAME": bus.name, "TYPE": bus.role,
             "VLNV": "xilinx.com:interface:aximm:1.0", "DATAWIDTH": bus.sizes["data"]}
    out.append(f"        <BUSINTERFACE {_attrs(attrs)}>")
    params = {"DATA_WIDTH": bus.sizes["data"], "PROTOCOL": "AXI4" if bus.full else "AXI4LITE",
              "FREQ_HZ": clk_hz, "ID_WIDTH": bus.sizes["id"], "ADDR_WIDTH": bus.sizes["addr"],
              "READ_WRITE_MODE": "READ_WRITE", "HAS_BURST": int(bus.full),
              "HAS_LOCK": int(bus.full), "HAS_PROT": int(bus.full), "HAS_CACHE": int(bus.full),
              "HAS_QOS": int(bus.full), "HAS_REGION": 0, "HAS_WSTRB": 1, "HAS_BRESP": 1,
              "HAS_RRESP": 1, "MAX_BURST_LENGTH": 256 if bus.full else 1,
              "PHASE": "0.000", "CLK_DOMAIN": clk_domain, "INSERT_VIP": 0}
    params.update(bus.params)
    for k, v in params.items():
        out.append(f"          <PARAMETER {_attrs({'NAME': k, 'VALUE': v})}/>")
    out.append("          <PORTMAPS>")
    for logical, spec, _ in bus.signals:
        if bus.width(spec):
            out.append(f"            <PORTMAP {_attrs({'LOGICAL': logical, 'PHYSICAL': bus.physical(logical)})}/>")
    out.append("          </PORTMAPS>")
    out.append("        </BUSINTERFACE>")


def _regmap_xml(intf: str, rng: int, regs: list, out: list) -> None:
    out.append("      <ADDRESSBLOCKS>")
    blk = {"ACCESS": "read-write", "INTERFACE": intf, "NAME": "Reg", "RANGE": rng,
           "USAGE": "register"}
    out.append(f"        <ADDRESSBLOCK {_attrs(blk)}>")
    out.append("          <REGISTERS>")
    for r in regs:
        out.append(f"            <REGISTER {_attrs({'NAME': r['name']})}>")
        for k, v in (("DESCRIPTION", r["desc"]), ("ADDRESS_OFFSET", r["offset"]),
                     ("SIZE", 32), ("ACCESS", r["access"]), ("IS_ENABLED", "true"),
                     ("RESET_VALUE", 0)):
            out.append(f"              <PROPERTY {_attrs({'NAME': k, 'VALUE': v})}/>")
        out.append("              <FIELDS>")
        for f in r["fields"]:
            out.append(f"                <FIELD {_attrs({'NAME': f['name']})}>")
            for k, v in (("DESCRIPTION", f["desc"]), ("ADDRESS_OFFSET", f["lsb"]),
                         ("ACCESS", f["access"]), ("MODIFIED_READ_VALUES", f["modified"]),
                         ("WRITE_CONSTRAINT", 0), ("READ_ACTION", f["read_action"]),
                         ("BIT_OFFSET", f["lsb"]), ("BIT_WIDTH", f["width"])):
                out.append(f"                  <PROPERTY {_attrs({'NAME': k, 'VALUE': v})}/>")
            out.append("                </FIELD>")
        out.append("              </FIELDS>")
        out.append("            </REGISTER>")
    out.append("          </REGISTERS>")
    out.append("        </ADDRESSBLOCK>")
    out.append("      </ADDRESSBLOCKS>")


def _module_xml(mod: Module, clk_hz: int, clk_domain: str, out: list) -> None:
    out.append(f"    <MODULE {_attrs(dict(mod.attrs, INSTANCE=mod.instance, FULLNAME='/' + mod.instance, VLNV=mod.vlnv))}>")
    for intf, rng, regs in mod.regmaps:
        _regmap_xml(intf, rng, regs, out)
    out.append("      <PARAMETERS>")
    for k, v in mod.params:
        out.append(f"        <PARAMETER {_attrs({'NAME': k, 'VALUE': v})}/>")
    out.append("      </PARAMETERS>")
    out.append("      <PORTS>")
    for bus in mod.buses:
        for name, p in _bus_ports(mod, bus).items():
            _port_xml(name, p, clk_hz, out)
    for name, p in mod.scalars.items():
        _port_xml(name, p, clk_hz, out)
    out.append("      </PORTS>")
    out.append("      <BUSINTERFACES>")
    for bus in mod.buses:
        _bus_xml(bus, clk_hz, clk_domain, out)
    out.append("      </BUSINTERFACES>")
    if mod.memranges:
        out.append("      <MEMORYMAP>")
        for m in mod.memranges:
            out.append(f"        <MEMRANGE {_attrs(m)}/>")
        out.append("      </MEMORYMAP>")
        out.append("      <PERIPHERALS>")
        for inst in sorted({m['INSTANCE'] for m in mod.memranges if m['MEMTYPE'] == 'REGISTER'}):
            out.append(f"        <PERIPHERAL {_attrs({'INSTANCE': inst})}/>")
        out.append("      </PERIPHERALS>")
    out.append("    </MODULE>")


def _memrange(master_bus, inst, slave_bus, block, base, high, memtype, basename="C_BASEADDR",
              highname="C_HIGHADDR"):
    return {"ADDRESSBLOCK": block, "BASENAME": basename, "BASEVALUE": f"0x{base:08X}",
            "HIGHNAME": highname, "HIGHVALUE": f"0x{high:08X}", "INSTANCE": inst,
            "IS_DATA": "TRUE", "IS_INSTRUCTION": "TRUE", "MASTERBUSINTERFACE": master_bus,
            "MEMTYPE": memtype, "SLAVEBUSINTERFACE": slave_bus}


_PERIPH = {"IPTYPE": "PERIPHERAL", "IS_ENABLE": "1", "MODCLASS": "PERIPHERAL"}
_BUSCELL = {"IPTYPE": "BUS", "IS_ENABLE": "1", "MODCLASS": "BUS"}


def ps_config(b: dict) -> dict:
    """The CONFIG.* values bd.tcl sets on the PS (``ps_config`` of boards.tcl)."""
    subst = {"%CLOCK_MHZ%": b["clock_mhz"], "%HP_WIDTH%": b["hp_data_width"]}
    return {k: subst.get(v, v) for k, v in tcl_dict(b["ps_config"]).items()}


def _ps_clock_params(b: dict, clock: int) -> list:
    """PL clock parameters of the PS (what pynq's clock_dict reads)."""
    zynq = b["ps_type"] == "processing_system7"
    pll_name, pll_mhz = _tcl_words(b["pll"])
    div0 = int(pll_mhz) // clock
    params = []
    for i in range(4):
        on = int(i == 0)
        if zynq:
            params += [(f"PCW_FPGA_FCLK{i}_ENABLE", on),
                       (f"PCW_FCLK{i}_PERIPHERAL_CLKSRC", pll_name.replace("_", " ")),
                       (f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0", div0 if on else 1),
                       (f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1", 1),
                       (f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ", clock if on else 50),
                       (f"PCW_ACT_FPGA{i}_PERIPHERAL_FREQMHZ", f"{clock if on else 10}.000000")]
        else:
            params += [(f"PSU__FPGA_PL{i}_ENABLE", on),
                       (f"PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL", pll_name),
                       (f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0", div0 if on else 4),
                       (f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1", 1),
                       (f"PSU__CRL_APB__PL{i}_REF_CTRL__FREQMHZ", clock if on else 100),
                       (f"PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ",
                        f"{clock if on else 100}.000000")]
    return params


def _ps_module(b: dict, clock: int) -> Module:
    zynq = b["ps_type"] == "processing_system7"
    attrs = {"CONFIGURABLE": "TRUE", "IPTYPE": "PERIPHERAL", "IS_ENABLE": "1", "IS_PL": "FALSE",
             "MODTYPE": b["ps_type"], "HWVERSION": b["ps_vlnv"].rsplit(":", 1)[1]}
    params = _ps_clock_params(b, clock)
    params = dict(params)
    params.update(ps_config(b))
    params.update(Component_Name=f"bitlet_bd_{b['ps_instance']}_0", EDK_IPTYPE="PERIPHERAL")
    params = list(params.items())
    ps = Module(b["ps_instance"], b["ps_vlnv"], attrs, params)
    axi3 = {"PROTOCOL": "AXI3"} if zynq else {}
    gp = Bus(b["gp_port"], "MASTER", b["gp_prefix"], b["port_case"], int(b["gp_addr_width"]),
             32, True, int(b["gp_id_width"]), axi3)
    hp = Bus(b["hp_port"], "SLAVE", b["hp_prefix"], b["port_case"], int(b["hp_addr_width"]),
             int(b["hp_data_width"]), True, 6, axi3)
    for sink in _tcl_words(b["clk_sinks"]):
        ps.scalar(sink, "I", "clk")
    ps.scalar(b["irq_port"], "I", "INTERRUPT", left=0, SENSITIVITY="LEVEL_HIGH")
    ps.buses += [gp, hp]
    ps.scalar(b["clk_port"], "O", "clk")
    ps.scalar(b["rst_port"], "O", "rst", POLARITY="ACTIVE_LOW")
    return ps


def _kernel_module(hw: dict, common: dict, kinds: dict, kind: str, regs: list,
                   board: dict | None = None) -> Module:
    name = vlnv(hw, kind)
    top = kinds[kind]["top"]
    attrs = dict(_PERIPH, MODTYPE=top, HWVERSION=hw["IP_VERSION"], COREREVISION="1")
    saxi, maxi = common["s_axi_intf"], common["m_axi_intf"]
    data_w = m_axi_data_width(hw, board)
    params = [(f"C_S_AXI_{saxi[6:].upper()}_ADDR_WIDTH", s_axi_addr_width(hw)),
              (f"C_S_AXI_{saxi[6:].upper()}_DATA_WIDTH", 32),
              (f"C_M_AXI_{maxi[6:].upper()}_ADDR_WIDTH", 64),
              (f"C_M_AXI_{maxi[6:].upper()}_DATA_WIDTH", data_w),
              (f"C_M_AXI_{maxi[6:].upper()}_ID_WIDTH", 1),
              ("Component_Name", f"bitlet_bd_{kinds[kind]['instance']}_0"),
              ("EDK_IPTYPE", "PERIPHERAL")]
    mod = Module(kinds[kind]["instance"], name, attrs, params)
    mod.buses.append(Bus(saxi, "SLAVE", f"{saxi}_", "upper", s_axi_addr_width(hw), 32, False))
    mod.buses.append(Bus(maxi, "MASTER", f"{maxi}_", "upper", 64, data_w, True, 1))
    mod.scalar("ap_clk", "I", "clk").scalar("ap_rst_n", "I", "rst", POLARITY="ACTIVE_LOW")
    mod.scalar("interrupt", "O", "INTERRUPT", SENSITIVITY="LEVEL_HIGH")
    for port, bits in wire_ports(top, wire_args(common)).items():
        mod.scalar(port, "I", "data", left=bits - 1)
    mod.regmaps.append((saxi, int(common["ctrl_range"], 0), regs))
    return mod


def _intc_registers() -> list:
    names = [("ISR", 0x0, "Interrupt Status Register"), ("IPR", 0x4, "Interrupt Pending Register"),
             ("IER", 0x8, "Interrupt Enable Register"), ("IAR", 0xC, "Interrupt Acknowledge Register"),
             ("SIE", 0x10, "Set Interrupt Enables"), ("CIE", 0x14, "Clear Interrupt Enables"),
             ("IVR", 0x18, "Interrupt Vector Register"), ("MER", 0x1C, "Master Enable Register")]
    return [{"name": n, "offset": off, "access": "read-write", "desc": d,
             "fields": [_field(n, 0, 32, "read-write", d)]} for n, off, d in names]


def _periph_module(common: dict, gp: Bus) -> Module:
    periph = Module(common["periph_instance"], common["periph_vlnv"],
                    dict(_BUSCELL, MODTYPE="axi_interconnect", HWVERSION="2.1"),
                    [("NUM_SI", 1), ("NUM_MI", 2)])
    periph.buses += [Bus("S00_AXI", "SLAVE", "S00_AXI_", "lower", gp.sizes["addr"], 32, True,
                         gp.sizes["id"]),
                     Bus("M00_AXI", "MASTER", "M00_AXI_", "lower", 32, 32, False),
                     Bus("M01_AXI", "MASTER", "M01_AXI_", "lower", 32, 32, False)]
    periph.scalar("ACLK", "I", "clk").scalar("ARESETN", "I", "rst")
    for p in ("S00", "M00", "M01"):
        periph.scalar(f"{p}_ACLK", "I", "clk").scalar(f"{p}_ARESETN", "I", "rst")
    return periph


def _smc_module(common: dict, hw: dict, hp: Bus) -> Module:
    smc = Module(common["smc_instance"], common["smc_vlnv"],
                 dict(_BUSCELL, MODTYPE="smartconnect", HWVERSION="1.0"),
                 [("NUM_SI", 1), ("NUM_MI", 1)])
    smc.buses += [Bus("S00_AXI", "SLAVE", "S00_AXI_", "lower", 64, hp.sizes["data"], True, 1),
                  Bus("M00_AXI", "MASTER", "M00_AXI_", "lower", hp.sizes["addr"],
                      hp.sizes["data"], True, 1)]
    smc.scalar("aclk", "I", "clk").scalar("aresetn", "I", "rst")
    return smc


def _intc_module(common: dict, b: dict) -> Module:
    base, size = int(b["intc_base"], 0), int(common["intc_range"], 0)
    params = ([("C_FAMILY", b["arch"]), ("C_NUM_INTR_INPUTS", 1)]
              + list(tcl_dict(common["intc_config"]).items())
              + [("C_BASEADDR", f"0x{base:08X}"), ("C_HIGHADDR", f"0x{base + size - 1:08X}")])
    intc = Module(common["intc_instance"], common["intc_vlnv"],
                  dict(_PERIPH, MODTYPE="axi_intc", HWVERSION="4.1"), params)
    intc.buses.append(Bus("s_axi", "SLAVE", "s_axi_", "lower", 9, 32, False))
    intc.regmaps.append(("S_AXI", size, _intc_registers()))
    intc.scalar("s_axi_aclk", "I", "clk").scalar("s_axi_aresetn", "I", "rst")
    intc.scalar("intr", "I", "INTERRUPT", left=0, SENSITIVITY="LEVEL_HIGH")
    intc.scalar("irq", "O", "INTERRUPT", SENSITIVITY="LEVEL_HIGH")
    return intc


def _reset_module(common: dict) -> Module:
    rst = Module(common["reset_instance"], common["reset_vlnv"],
                 dict(_PERIPH, MODTYPE="proc_sys_reset", HWVERSION="5.0"),
                 [("C_NUM_PERP_ARESETN", 1), ("C_NUM_INTERCONNECT_ARESETN", 1)])
    rst.scalar("slowest_sync_clk", "I", "clk").scalar("ext_reset_in", "I", "rst")
    rst.scalar("peripheral_aresetn", "O", "rst", left=0)
    rst.scalar("interconnect_aresetn", "O", "rst", left=0)
    rst.scalar("peripheral_reset", "O", "rst", left=0, POLARITY="ACTIVE_HIGH")
    return rst


def counter_bits(common: dict) -> int:
    """Bits of the cycle counter's Q (``Output_Width`` of ``counter_config``)."""
    return int(tcl_dict(common["counter_config"])["Output_Width"])


def _counter_module(common: dict) -> Module:
    """bd.tcl's free-running cycle counter (Binary Counter, PG121): CLK, SCLR
    (synchronous clear, active high), Q."""
    vlnv_str = common["counter_vlnv"]
    params = (list(tcl_dict(common["counter_config"]).items())
              + [("Component_Name", f"{common['design_name']}_{common['counter_instance']}_0")])
    counter = Module(common["counter_instance"], vlnv_str,
                     dict(_PERIPH, MODTYPE=vlnv_str.split(":")[2],
                          HWVERSION=vlnv_str.split(":")[3]), params)
    counter.scalar("CLK", "I", "clk").scalar("SCLR", "I", "rst", POLARITY="ACTIVE_HIGH")
    counter.scalar("Q", "O", "data", left=counter_bits(common) - 1)
    return counter


def _wire(b: dict, common: dict, cells: dict) -> None:
    """The nets of bd.tcl: AXI buses, interrupt, clock, resets, timestamp."""
    ps, kernel, periph, smc, intc, rst, counter = (
        cells[k] for k in ("ps", "kernel", "periph", "smc", "intc", "rst", "counter"))
    connect_bus(ps, b["gp_port"], periph, "S00_AXI")
    connect_bus(periph, "M00_AXI", kernel, common["s_axi_intf"])
    connect_bus(periph, "M01_AXI", intc, "s_axi")
    connect_bus(kernel, common["m_axi_intf"], smc, "S00_AXI")
    connect_bus(smc, "M00_AXI", ps, b["hp_port"])
    connect_scalar(kernel, "interrupt", intc, "intr")
    connect_scalar(intc, "irq", ps, b["irq_port"])
    connect_scalar(ps, b["rst_port"], rst, "ext_reset_in")
    for m in cells.values():
        for port, sig in m.scalars.items():
            if sig["sigis"] == "clk" and sig["dir"] == "I":
                connect_scalar(ps, b["clk_port"], m, port)
    connect_scalar(rst, "interconnect_aresetn", periph, "ARESETN")
    resets = [(kernel, "ap_rst_n"), (intc, "s_axi_aresetn"), (smc, "aresetn")]
    resets += [(periph, f"{x}_ARESETN") for x in ("S00", "M00", "M01")]
    for m, port in resets:
        connect_scalar(rst, "peripheral_aresetn", m, port)
    connect_scalar(rst, "peripheral_reset", counter, "SCLR")
    connect_scalar(counter, "Q", kernel, common["timestamp_pin"])


def _address_map(b: dict, common: dict, ps: Module, kernel: Module, intc: Module) -> None:
    """bd.tcl's assign_bd_address: registers in the PS space, DDR in the kernel's."""
    ctrl_base, ctrl_range = int(b["ctrl_base"], 0), int(common["ctrl_range"], 0)
    intc_base, intc_range = int(b["intc_base"], 0), int(common["intc_range"], 0)
    saxi = common["s_axi_intf"]
    bundle = saxi[len("s_axi_"):].upper()
    ps.memranges = [
        _memrange(b["gp_port"], kernel.instance, saxi, "Reg", ctrl_base,
                  ctrl_base + ctrl_range - 1, "REGISTER", f"C_S_AXI_{bundle}_BASEADDR",
                  f"C_S_AXI_{bundle}_HIGHADDR"),
        _memrange(b["gp_port"], intc.instance, "s_axi", "Reg", intc_base,
                  intc_base + intc_range - 1, "REGISTER"),
    ]
    segs = _tcl_words(b["ddr_segments"])
    kernel.memranges = [
        _memrange(common["m_axi_intf"], ps.instance, b["hp_port"], segs[i], int(segs[i + 1], 0),
                  int(segs[i + 2], 0), "MEMORY")
        for i in range(0, len(segs), 3)]


def build_modules(board: str, kind: str, hw: dict, tables) -> tuple[list, dict]:
    """Cells (with their nets and address map) of the block design of ``overlay/bd.tcl``."""
    common, kinds, boards = tables
    b = boards[board]
    clock = int(b["clock_mhz"])
    ps = _ps_module(b, clock)
    cells = {"ps": ps,
             "kernel": _kernel_module(hw, common, kinds, kind,
                                      register_map(hw, kinds[kind]["top"]), b),
             "periph": _periph_module(common, ps.bus(b["gp_port"])),
             "smc": _smc_module(common, hw, ps.bus(b["hp_port"])),
             "intc": _intc_module(common, b),
             "rst": _reset_module(common),
             "counter": _counter_module(common)}
    _check_timestamp_width(common, kinds[kind]["top"])
    _wire(b, common, cells)
    _address_map(b, common, ps, cells["kernel"], cells["intc"])
    return list(cells.values()), {"clk_hz": clock * 1_000_000}


def _check_timestamp_width(common: dict, top: str) -> None:
    """bd.tcl's check: the counter is as wide as the kernel's timestamp input."""
    pin = common["timestamp_pin"]
    bits = wire_ports(top, (pin,))[pin]
    if counter_bits(common) != bits:
        raise ValueError(f"boards.tcl: counter_config Output_Width {counter_bits(common)}, but "
                         f"{top}()'s {pin} input has {bits} bits (hls/bitlet_top.h)")


def write_hwh(board: str, kind: str, hw: dict | None = None, tables=None) -> str:
    """The stand-in .hwh text of overlay ``(board, kind)``."""
    hw = hw or read_header()
    tables = tables or read_boards()
    common, _, boards = tables
    b = boards[board]
    modules, info = build_modules(board, kind, hw, tables)
    domain = f"{common['design_name']}_{b['ps_instance']}_0_{b['clk_port']}"
    system = {"EDWVERSION": "1.2", "TIMESTAMP": "generated by overlay/make_metadata.py",
              "VIVADOVERSION": common["vivado_version"]}
    info_attrs = {"ARCH": b["arch"], "BOARD": b["board_part"], "DEVICE": b["device"],
                  "NAME": common["design_name"], "PACKAGE": b["package"],
                  "SPEEDGRADE": b["speedgrade"]}
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no" ?>',
           f"<EDKSYSTEM {_attrs(system)}>", "", f"  <SYSTEMINFO {_attrs(info_attrs)}/>",
           "", "  <EXTERNALPORTS/>", "", "  <EXTERNALINTERFACES/>", "", "  <MODULES>"]
    for mod in sorted(modules, key=lambda m: m.instance):
        _module_xml(mod, info["clk_hz"], domain, out)
    out += ["  </MODULES>", "", "</EDKSYSTEM>", ""]
    return "\n".join(out)


def _memranges(root, instance: str) -> list:
    """MEMRANGE elements (of any master) that map ``instance``."""
    return [m for m in root.iter("MEMRANGE") if m.get("INSTANCE") == instance]


def check_built_hwh(text: str, meta: dict, common: dict | None = None) -> tuple[list, float | None]:
    """Compare a Vivado-written .hwh with the overlay's metadata.

    Returns ``(errors, pl_clock_mhz)``: what the SDK could not work with
    (kernel instance missing or of another VLNV, registers or interrupt
    controller at another address, with ``common`` (boards.tcl's
    BITLET_COMMON) also a ``timestamp`` input not driven by the cycle
    counter's Q at full width), and the kernel's actual clock from its
    ``ap_clk`` port (None when absent).
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return [f"not a hardware handoff file ({exc})"], None
    errors = []
    kernels = [m for m in root.iter("MODULE") if m.get("INSTANCE") == meta["ip_instance"]]
    if len(kernels) != 1 or kernels[0].get("VLNV") != meta["vlnv"]:
        found = sorted(f"{m.get('INSTANCE')} ({m.get('VLNV')})" for m in root.iter("MODULE"))
        errors.append(f"no cell {meta['ip_instance']} of VLNV {meta['vlnv']}; cells: {found}")
    for instance, base, size in ((meta["ip_instance"], meta["ctrl_base"], meta["ctrl_range"]),
                                 (meta["interrupt"]["controller"],
                                  meta["interrupt"]["controller_base"], None)):
        spans = {(int(m.get("BASEVALUE"), 16), int(m.get("HIGHVALUE"), 16))
                 for m in _memranges(root, instance)}
        if not any(lo == base and (size is None or hi - lo + 1 == size) for lo, hi in spans):
            errors.append(f"{instance} is not mapped at 0x{base:08X} (found "
                          f"{sorted(f'0x{lo:08X}-0x{hi:08X}' for lo, hi in spans)})")
    if common is not None:
        errors += _timestamp_errors(root, meta, common)
    clock = None
    for kernel in kernels[:1]:
        for port in kernel.iter("PORT"):
            if port.get("NAME") == "ap_clk" and port.get("CLKFREQUENCY"):
                clock = int(float(port.get("CLKFREQUENCY"))) / 1e6
    return errors, clock


def _timestamp_errors(root, meta: dict, common: dict) -> list:
    """The kernel's timestamp input must be the counter's full-width Q."""
    pin, bits = common["timestamp_pin"], counter_bits(common)
    counters = {m.get("INSTANCE") for m in root.iter("MODULE")
                if m.get("VLNV") == common["counter_vlnv"]}
    for module in root.iter("MODULE"):
        if module.get("INSTANCE") != meta["ip_instance"]:
            continue
        for port in module.iter("PORT"):
            if port.get("NAME") != pin:
                continue
            sources = {(c.get("INSTANCE"), c.get("PORT")) for c in port.iter("CONNECTION")}
            width = int(port.get("LEFT", 0)) - int(port.get("RIGHT", 0)) + 1
            if width == bits and any(inst in counters and p == "Q" for inst, p in sources):
                return []
    return [(f"{meta['ip_instance']}/{pin} is not driven by the {bits}-bit Q of a "
             f"{common['counter_vlnv']} cell (the profile's START/END stamps and REG_CLOCK "
             "would not count cycles)")]


def install_json(board: str, kind: str, directory: Path, hw=None, tables=None) -> str:
    """Write ``<kind>.json`` for the Vivado-built ``<kind>.hwh`` in ``directory``.

    Raises ValueError (and writes nothing) when that .hwh does not describe
    the block design the metadata describes; returns a warning (or "") when
    the kernel's actual clock is more than 1% off the clock it reports in
    ID_CONFIG (e.g. a PL clock the PS PLL cannot divide down to exactly).
    """
    meta = describe(board, kind, hw, tables, hwh_source="vivado")
    hwh = directory / f"{kind}.hwh"
    if not hwh.is_file():
        raise ValueError(f"{hwh} is missing: the Vivado build installs it (make bitstream)")
    errors, clock = check_built_hwh(hwh.read_text(encoding="utf-8"), meta,
                                    (tables or read_boards())[0])
    if errors:
        raise ValueError(f"{hwh} does not match overlay/bd.tcl and boards.tcl: " + "; ".join(errors))
    warning = ""
    if clock is not None and abs(clock - meta["clock_mhz"]) > 0.01 * meta["clock_mhz"]:
        warning = (f"warning: {board}/{kind}: the PL clock is {clock:g} MHz but the kernel reports "
                   f"{meta['clock_mhz']} MHz in ID_CONFIG (time estimates use the latter); "
                   "set a reachable clock_mhz/pll in boards.tcl")
    meta["pl_clock_mhz"] = clock
    (directory / f"{kind}.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return warning


def write_json(board: str, kind: str, hw=None, tables=None, hwh_source="generated") -> str:
    return json.dumps(describe(board, kind, hw, tables, hwh_source), indent=2) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", action="append", help="board name (default: all)")
    ap.add_argument("--kind", action="append", choices=["bitlet", "vendor_fp"])
    ap.add_argument("--json-only", action="store_true",
                    help="write only the .json for the Vivado-built .hwh already installed, "
                         "after checking that .hwh (instance, VLNV, addresses, clock)")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    hw, tables = read_header(), read_boards()
    boards = args.board or sorted(tables[2])
    for board in boards:
        if board not in tables[2]:
            ap.error(f"unknown board {board!r}; known: {', '.join(sorted(tables[2]))}")
        for kind in args.kind or ["bitlet", "vendor_fp"]:
            target = args.out / board
            target.mkdir(parents=True, exist_ok=True)
            if args.json_only:
                try:
                    warning = install_json(board, kind, target, hw, tables)
                except ValueError as exc:
                    print(f"make_metadata.py: {exc}", file=sys.stderr)
                    return 1
                if warning:
                    print(warning, file=sys.stderr)
            else:
                (target / f"{kind}.json").write_text(write_json(board, kind, hw, tables),
                                                     encoding="utf-8")
                (target / f"{kind}.hwh").write_text(write_hwh(board, kind, hw, tables),
                                                    encoding="utf-8")
            print(f"wrote {target}/{kind}.json" + ("" if args.json_only else " and .hwh"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
