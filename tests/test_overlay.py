"""Overlay build flow and metadata (issue 8).

* the shipped .hwh/.json agree with hls/bitlet_hw.h (through bitlet.hw), with
  overlay/boards.tcl and with each other, and are what overlay/make_metadata.py
  writes today (no stale file);
* the Vivado Tcl runs to completion under tclsh with every Vivado command
  stubbed, and builds the block design the .hwh describes;
* find_overlay / detect_board / read_reports behave, errors included;
* pynq's own parser reads every .hwh (``pynq`` tier, skipped without pynq).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bitlet import hw
from bitlet.errors import BitletValueError, DeviceError
from bitlet.overlays import (
    KINDS,
    OverlayNotFound,
    available_boards,
    detect_board,
    find_overlay,
    overlay_dir,
)

ROOT = Path(__file__).resolve().parents[1]
OVERLAY_SRC = ROOT / "overlay"
REPORTS = Path(__file__).parent / "data" / "reports"
BOARDS = ("pynqz2", "zcu104", "kv260")
CASES = [(b, k) for b in BOARDS for k in KINDS]


def _make_metadata():
    """overlay/make_metadata.py as a module (only in a source tree)."""
    path = OVERLAY_SRC / "make_metadata.py"
    if not path.exists():
        pytest.skip("overlay/ sources not present (installed without a source tree)")
    spec = importlib.util.spec_from_file_location("bitlet_make_metadata", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _hwh(board, kind) -> ET.Element:
    return ET.parse(find_overlay(board, kind, require_bitstream=False).hwh).getroot()


def _module(root: ET.Element, instance: str) -> ET.Element:
    found = [m for m in root.iter("MODULE") if m.get("INSTANCE") == instance]
    assert len(found) == 1, f"{instance} appears {len(found)} times in the .hwh"
    return found[0]


def _ps(root: ET.Element) -> ET.Element:
    found = [m for m in root.iter("MODULE") if m.get("IS_PL") == "FALSE"]
    assert len(found) == 1
    return found[0]


def _registers(module: ET.Element) -> dict[str, dict]:
    regs = {}
    for reg in module.iter("REGISTER"):
        props = {p.get("NAME"): p.get("VALUE") for p in reg.findall("PROPERTY")}
        regs[reg.get("NAME")] = {"offset": int(props["ADDRESS_OFFSET"], 0),
                                 "access": props["ACCESS"]}
    return regs


def _connections(module: ET.Element, port: str) -> list[tuple[str, str]]:
    ports = [p for p in module.iter("PORT") if p.get("NAME") == port]
    assert len(ports) == 1, f"port {port} of {module.get('INSTANCE')}"
    return [(c.get("INSTANCE"), c.get("PORT")) for c in ports[0].iter("CONNECTION")]


# ---------------------------------------------------------------------------
# shipped files
# ---------------------------------------------------------------------------
def test_every_board_ships_both_kinds():
    assert set(BOARDS) <= set(available_boards())
    for board, kind in CASES:
        ov = find_overlay(board, kind, require_bitstream=False)
        assert ov.hwh.is_file() and ov.json.is_file()
        assert (ov.board, ov.kind) == (board, kind)


@pytest.mark.parametrize("board,kind", CASES)
def test_shipped_files_are_what_the_generator_writes(board, kind):
    mm = _make_metadata()
    ov = find_overlay(board, kind, require_bitstream=False)
    if ov.metadata["hwh_source"] == "generated":
        assert ov.hwh.read_text(encoding="utf-8") == mm.write_hwh(board, kind), (
            "stale .hwh: run `python overlay/make_metadata.py`")
    expected = json.loads(mm.write_json(board, kind, hwh_source=ov.metadata["hwh_source"]))
    assert ov.metadata == expected, "stale .json: run `python overlay/make_metadata.py`"


@pytest.mark.parametrize("board,kind", CASES)
def test_metadata_agrees_with_the_header(board, kind):
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    assert meta["isa_version"] == hw.ISA_VERSION
    assert meta["magic"] == hw.MAGIC
    assert meta["vlnv"] == hw.vlnv(kind)
    assert meta["group"] == hw.GROUP
    assert meta["macs"] == meta["n_pe"] * hw.GROUP
    assert (meta["act_buf_words"], meta["wgt_buf_words"], meta["out_buf_words"]) == (
        hw.ACT_BUF_WORDS, hw.WGT_BUF_WORDS, hw.OUT_BUF_WORDS)
    assert meta["reg_span"] == hw.REG_SPAN
    assert meta["clock_mhz"] == hw.CLOCK_MHZ, "the kernel reports BITLET_CLOCK_MHZ in ID_CONFIG"
    kind_code = hw.KIND_BITLET if kind == "bitlet" else hw.KIND_VENDOR_FP
    formats = hw.FORMATS_BITLET if kind == "bitlet" else hw.FORMATS_VENDOR
    assert meta["kind_code"] == kind_code and meta["formats_mask"] == formats
    assert [1 << getattr(hw, f"FMT_{f.upper()}") for f in meta["formats"]] == [
        bit for bit in (1, 2, 4, 8) if formats & bit]
    cfg = meta["id_config"]
    assert (cfg >> hw.CFG_NPE_SHIFT) & hw.CFG_NPE_MASK == meta["n_pe"]
    assert (cfg >> hw.CFG_KIND_SHIFT) & hw.CFG_KIND_MASK == kind_code
    assert (cfg >> hw.CFG_FMT_SHIFT) & hw.CFG_FMT_MASK == formats
    assert ((cfg >> hw.CFG_CLK_SHIFT) & hw.CFG_CLK_MASK) * 4 == meta["clock_mhz"]


def test_default_board_config_matches_the_reference_build():
    """The simulator's kernel (compiled with the header's N_PE) is a PYNQ-Z2 Bitlet."""
    meta = find_overlay("pynqz2", "bitlet", require_bitstream=False).metadata
    assert meta["n_pe"] == hw.N_PE


@pytest.mark.parametrize("board,kind", CASES)
def test_hwh_kernel_ip_and_register_map(board, kind):
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    kernel = _module(_hwh(board, kind), meta["ip_instance"])
    assert kernel.get("VLNV") == hw.vlnv(kind)
    regs = _registers(kernel)
    header = sorted(v for k, v in hw.constants().items() if k.startswith("REG_") and k != "REG_SPAN")
    assert sorted(r["offset"] for r in regs.values()) == header
    named = {"CTRL": hw.REG_CTRL, "GIER": hw.REG_GIE, "IP_IER": hw.REG_IER, "IP_ISR": hw.REG_ISR,
             "mem_1": hw.REG_MEM_LO, "mem_2": hw.REG_MEM_HI, "mem_base_1": hw.REG_MEM_BASE_LO,
             "mem_size": hw.REG_MEM_SIZE, "prog_addr_1": hw.REG_PROG_LO,
             "n_insn": hw.REG_N_INSN, "prof_addr_2": hw.REG_PROF_HI,
             "status": hw.REG_STATUS, "status_ctrl": hw.REG_STATUS_CTRL,
             "insn_done": hw.REG_INSN_DONE, "id_magic": hw.REG_ID_MAGIC,
             "id_config": hw.REG_ID_CONFIG, "id_out_buf_ctrl": hw.REG_ID_OUT_BUF_CTRL}
    assert {n: regs[n]["offset"] for n in named} == named
    assert regs["id_version"]["access"] == "read-only"
    assert regs["n_insn"]["access"] == "read-write"
    assert regs["CTRL"]["access"] == "read-write"


@pytest.mark.parametrize("board,kind", CASES)
def test_hwh_address_map_interrupt_and_clock(board, kind):
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    root = _hwh(board, kind)
    ps, kernel = _ps(root), _module(root, meta["ip_instance"])
    ranges = {m.get("INSTANCE"): m for m in ps.iter("MEMRANGE")}
    ctrl = ranges[meta["ip_instance"]]
    assert int(ctrl.get("BASEVALUE"), 16) == meta["ctrl_base"]
    assert int(ctrl.get("HIGHVALUE"), 16) - meta["ctrl_base"] + 1 == meta["ctrl_range"]
    assert meta["ctrl_range"] >= hw.REG_SPAN
    saxi = [b.get("NAME") for b in kernel.iter("BUSINTERFACE") if b.get("TYPE") == "SLAVE"]
    assert ctrl.get("SLAVEBUSINTERFACE") in saxi
    irq = meta["interrupt"]
    assert irq["wired"] and irq["pin"] == f"{meta['ip_instance']}/interrupt"
    assert _connections(kernel, "interrupt") == [(irq["controller"], "intr")]
    intc = _module(root, irq["controller"])
    assert intc.get("MODTYPE") == "axi_intc"
    assert int(ranges[irq["controller"]].get("BASEVALUE"), 16) == irq["controller_base"]
    (target,) = _connections(intc, "irq")
    assert target[0] == ps.get("INSTANCE")
    clk = [p for p in kernel.iter("PORT") if p.get("NAME") == "ap_clk"][0]
    assert int(clk.get("CLKFREQUENCY")) == meta["clock_mhz"] * 1_000_000
    # the kernel's m_axi reaches PS DDR through an HP port
    mranges = list(kernel.iter("MEMRANGE"))
    assert mranges and all(m.get("INSTANCE") == ps.get("INSTANCE") for m in mranges)
    assert all(int(m.get("BASEVALUE"), 16) < int(m.get("HIGHVALUE"), 16) for m in mranges)


def test_zynq7000_and_zynqmp_address_maps():
    z7 = find_overlay("pynqz2", require_bitstream=False).metadata
    zu = find_overlay("zcu104", require_bitstream=False).metadata
    assert (z7["ps_type"], z7["ctrl_base"]) == ("processing_system7", 0x4000_0000)
    assert (zu["ps_type"], zu["ctrl_base"]) == ("zynq_ultra_ps_e", 0xA000_0000)


def test_generator_refuses_a_register_map_drift():
    mm = _make_metadata()
    table = dict(mm.read_header())
    table["REG_N_INSN"] += 4
    with pytest.raises(ValueError, match="REG_"):
        mm.register_map(table, "bitlet_top")


def test_generator_reads_the_header_like_bitlet_hw():
    mm = _make_metadata()
    table = mm.read_header()
    for name, value in hw.constants().items():
        assert table[name] == value, name


# ---------------------------------------------------------------------------
# find_overlay / detect_board
# ---------------------------------------------------------------------------
def test_unknown_board_and_kind_are_clear_errors():
    with pytest.raises(BitletValueError, match="board 'zedboard' is unknown.*pynqz2"):
        find_overlay("zedboard")
    with pytest.raises(BitletValueError, match="kind must be one of"):
        find_overlay("pynqz2", "int8")


def test_missing_bitstream_is_a_clear_error(tmp_path):
    shutil.copytree(overlay_dir() / "kv260", tmp_path / "kv260")
    with pytest.raises(OverlayNotFound, match=r"make -C overlay BOARD=kv260 KIND=bitlet"):
        find_overlay("kv260", root=tmp_path)
    assert issubclass(OverlayNotFound, DeviceError)
    assert find_overlay("kv260", root=tmp_path, require_bitstream=False).bit is None


def test_built_bitstream_is_found(tmp_path, monkeypatch):
    shutil.copytree(overlay_dir() / "pynqz2", tmp_path / "pynqz2")
    (tmp_path / "pynqz2" / "vendor_fp.bit").write_bytes(b"\x00\x09")
    monkeypatch.setenv("BITLET_OVERLAY_DIR", str(tmp_path))
    ov = find_overlay("pynqz2", "vendor_fp")
    assert ov.bit == tmp_path / "pynqz2" / "vendor_fp.bit"
    assert ov.hwh == tmp_path / "pynqz2" / "vendor_fp.hwh"
    assert ov.metadata["vlnv"] == hw.vlnv("vendor_fp")


def test_missing_hwh_and_bad_metadata(tmp_path):
    shutil.copytree(overlay_dir() / "zcu104", tmp_path / "zcu104")
    (tmp_path / "zcu104" / "bitlet.hwh").unlink()
    with pytest.raises(OverlayNotFound, match="bitlet.hwh is missing"):
        find_overlay("zcu104", root=tmp_path, require_bitstream=False)
    meta = json.loads((tmp_path / "zcu104" / "vendor_fp.json").read_text())
    meta["metadata_format"] = 99
    (tmp_path / "zcu104" / "vendor_fp.json").write_text(json.dumps(meta))
    with pytest.raises(OverlayNotFound, match="metadata_format 99"):
        find_overlay("zcu104", "vendor_fp", root=tmp_path, require_bitstream=False)


def test_board_detection(monkeypatch, tmp_path):
    import bitlet.overlays as ov

    for var in ("BITLET_BOARD", "BOARD"):
        monkeypatch.delenv(var, raising=False)
    model = tmp_path / "model"
    monkeypatch.setattr(ov, "DEVICE_TREE_FILES", (str(model),))
    assert detect_board() is None
    with pytest.raises(OverlayNotFound, match="no PYNQ board detected"):
        find_overlay()
    model.write_bytes(b"ZynqMP ZCU104 RevC\0")
    assert detect_board() == "zcu104"
    monkeypatch.setenv("BOARD", "Pynq-Z2")  # what a PYNQ image sets
    assert detect_board() == "pynqz2"
    monkeypatch.setenv("BITLET_BOARD", "kv260")
    assert detect_board() == "kv260"
    assert find_overlay(require_bitstream=False).board == "kv260"


def test_import_does_not_import_pynq():
    code = "import bitlet.overlays, sys; bitlet.overlays.find_overlay('pynqz2', require_bitstream=False); print('pynq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# pynq's own parser
# ---------------------------------------------------------------------------
@pytest.mark.pynq
@pytest.mark.parametrize("board,kind", CASES)
def test_pynq_parses_the_hwh(board, kind):
    pytest.importorskip("pynqmetadata", reason="needs the `board` extra (pynq)")
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser

    ov = find_overlay(board, kind, require_bitstream=False)
    meta = ov.metadata
    parser = RuntimeMetadataParser(Metadata(input=str(ov.hwh)))
    ip = parser.ip_dict[meta["ip_instance"]]
    assert ip["type"] == hw.vlnv(kind)
    assert ip["phys_addr"] == meta["ctrl_base"] and ip["addr_range"] == meta["ctrl_range"]
    assert ip["registers"]["n_insn"]["address_offset"] == hw.REG_N_INSN
    assert ip["registers"]["id_config"]["access"] == "read-only"
    irq = meta["interrupt"]
    assert parser.interrupt_controllers[irq["controller"]] == {
        "parent": "", "index": irq["index"], "raw_irq": irq["raw_irq"]}
    assert parser.interrupt_pins[irq["pin"]]["controller"] == irq["controller"]
    assert ip["interrupts"]["interrupt"]["fullpath"] == irq["pin"]
    assert parser.clock_dict[0]["enable"] == 1
