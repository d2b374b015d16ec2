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
from bitlet.drivers.overlays import (
    KINDS,
    OverlayNotFound,
    available_boards,
    detect_board,
    find_overlay,
    overlay_dir,
)
from bitlet.errors import BitletValueError, DeviceError

ROOT = Path(__file__).resolve().parents[1]
OVERLAY_SRC = ROOT / "overlay"
REPORTS = Path(__file__).parent / "data" / "reports"
BOARDS = ("pynqz2", "zcu104", "kv260")
CASES = [(b, k) for b in BOARDS for k in KINDS]


def _make_metadata():
    """overlay/make_metadata.py as a module (only in a source tree)."""
    path = OVERLAY_SRC / "make_metadata.py"
    # (tests/test_resources.py loads make_metadata.py by path the same way)
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
    if ov.metadata["hwh_source"] == "vivado":  # a build installed here: its measured PL clock
        expected["pl_clock_mhz"] = ov.metadata["pl_clock_mhz"]
    assert ov.metadata == expected, "stale .json: run `python overlay/make_metadata.py`"


@pytest.mark.parametrize("board,kind", CASES)
def test_metadata_agrees_with_the_header(board, kind):
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    assert meta["isa_version"] == hw.ISA_VERSION
    assert meta["magic"] == hw.MAGIC
    assert meta["vlnv"] == hw.vlnv(kind)
    assert meta["group"] == hw.GROUP
    # a Bitlet PE is 64 bit-interleaved MACs, a vendor-FP unit VENDOR_LANES fp32 multipliers
    per_pe = hw.GROUP if kind == "bitlet" else hw.VENDOR_LANES
    assert (meta["macs_per_pe"], meta["macs"]) == (per_pe, meta["n_pe"] * per_pe)
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


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_simulated_kernel_at_the_board_n_pe_reports_the_pynqz2_metadata(kind):
    """The simulator's kernel compiled at the PYNQ-Z2 overlay's n_pe (the C
    kernel with -DBITLET_N_PE=<n_pe>, bitlet.tools.variants.kernel_engine) answers
    the probe with the ID registers the PYNQ-Z2 metadata expects."""
    from bitlet.drivers import open_device
    from bitlet.tools.variants import kernel_engine

    meta = find_overlay("pynqz2", kind, require_bitstream=False).metadata
    top, _ = kernel_engine(kind, meta["n_pe"])
    dev = open_device(f"sim:{kind}", engine=top)
    try:
        ident = dev.kernel.probe()
    finally:
        dev.close()
    assert (ident.magic, ident.version, ident.config) == (meta["magic"], meta["isa_version"],
                                                         meta["id_config"])
    assert (ident.act_buf_words, ident.wgt_buf_words, ident.out_buf_words) == (
        meta["act_buf_words"], meta["wgt_buf_words"], meta["out_buf_words"])
    assert (ident.n_pe, ident.clock_mhz) == (meta["n_pe"], meta["clock_mhz"])


def test_identity_mismatches_against_a_probe():
    """The simulator's default kernel (the header's N_PE) against the overlay
    metadata: only ID_CONFIG can differ (n_pe, kind), and it is named."""
    from bitlet.drivers import open_device
    from bitlet.drivers.overlays import identity_mismatches

    dev = open_device("sim:bitlet")
    try:
        ident = dev.kernel.probe()
    finally:
        dev.close()
    for board in BOARDS:
        meta = find_overlay(board, "bitlet", require_bitstream=False).metadata
        want = [] if meta["n_pe"] == hw.N_PE else [
            f"id_config: metadata 0x{meta['id_config']:08X}, kernel 0x{ident.config:08X}"]
        assert identity_mismatches(meta, ident) == want, board
    vendor = find_overlay("pynqz2", "vendor_fp", require_bitstream=False).metadata
    assert [m.split(":")[0] for m in identity_mismatches(vendor, ident)] == ["id_config"]
    other = dict(find_overlay("pynqz2", require_bitstream=False).metadata, act_buf_words=1)
    assert [m.split(":")[0] for m in identity_mismatches(other, ident)][-1] == "act_buf_words"


def test_generator_refuses_a_clock_the_kernel_cannot_report():
    mm = _make_metadata()
    table = mm.read_header()
    assert mm.kernel_clock_mhz("pynqz2", hw.CLOCK_MHZ, table) == hw.CLOCK_MHZ
    with pytest.raises(ValueError, match=r"pynqz2 clock_mhz 248.*BITLET_CLOCK_MHZ = 200"):
        mm.kernel_clock_mhz("pynqz2", 248, table, overridable=False)
    assert mm.kernel_clock_mhz("kv260", 248, table, overridable=True) == 248
    with pytest.raises(ValueError, match="multiple of 4 MHz"):
        mm.kernel_clock_mhz("kv260", 150, table, overridable=True)
    with pytest.raises(ValueError, match="up to 1020 MHz"):
        mm.kernel_clock_mhz("kv260", 1024, table, overridable=True)
    # today the header fixes BITLET_CLOCK_MHZ (no #ifndef): what the generator uses
    assert mm.header_overridable("CLOCK_MHZ") is False
    assert mm.header_overridable("N_PE") is True


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
    clk = next(p for p in kernel.iter("PORT") if p.get("NAME") == "ap_clk")
    assert int(clk.get("CLKFREQUENCY")) == meta["clock_mhz"] * 1_000_000
    # the kernel's m_axi reaches PS DDR through an HP port
    mranges = list(kernel.iter("MEMRANGE"))
    assert mranges and all(m.get("INSTANCE") == ps.get("INSTANCE") for m in mranges)
    assert all(int(m.get("BASEVALUE"), 16) < int(m.get("HIGHVALUE"), 16) for m in mranges)


@pytest.mark.parametrize("board,kind", CASES)
def test_hwh_timestamp_is_the_free_running_counter(board, kind):
    """The kernel's timestamp input is the 64-bit Q of the cycle counter,
    clocked by the kernel's clock and cleared by the PL reset."""
    mm = _make_metadata()
    common = mm.read_boards()[0]
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    root = _hwh(board, kind)
    kernel, counter = _module(root, meta["ip_instance"]), _module(root, common["counter_instance"])
    assert counter.get("VLNV") == common["counter_vlnv"]
    ports = {p.get("NAME"): p for p in kernel.iter("PORT")}
    ts = ports[common["timestamp_pin"]]
    assert (ts.get("DIR"), ts.get("LEFT"), ts.get("RIGHT")) == ("I", "63", "0")
    assert _connections(kernel, common["timestamp_pin"]) == [(counter.get("INSTANCE"), "Q")]
    q = next(p for p in counter.iter("PORT") if p.get("NAME") == "Q")
    assert (q.get("DIR"), q.get("LEFT"), q.get("RIGHT")) == ("O", "63", "0")
    clk = next(p for p in counter.iter("PORT") if p.get("NAME") == "CLK")
    assert clk.get("SIGNAME") == ports["ap_clk"].get("SIGNAME")
    assert _connections(counter, "SCLR") == [(common["reset_instance"], "peripheral_reset")]
    assert mm.check_built_hwh(ET.tostring(root, encoding="unicode"), meta, common) == (
        [], meta["clock_mhz"])


def test_generator_refuses_a_counter_narrower_than_the_timestamp():
    mm = _make_metadata()
    common, kinds, boards = mm.read_boards()
    narrow = dict(common, counter_config="Output_Width 48 SCLR true")
    with pytest.raises(ValueError, match="Output_Width 48, but bitlet_top.*timestamp input has 64"):
        mm.write_hwh("pynqz2", "bitlet", tables=(narrow, kinds, boards))
    with pytest.raises(ValueError, match="vendor_fp_top.*has no argument stamp"):
        mm.wire_ports("vendor_fp_top", ("stamp",))
    assert mm.wire_ports("vendor_fp_top") == {"timestamp": 64}


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
    import bitlet.drivers.overlays.boards as ov

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
    code = "import bitlet.drivers.overlays, sys; bitlet.drivers.overlays.find_overlay('pynqz2', require_bitstream=False); print('pynq' in sys.modules)"
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


# ---------------------------------------------------------------------------
# Vivado Tcl under tclsh with stubbed Vivado commands
# ---------------------------------------------------------------------------
def _tclsh() -> str:
    exe = shutil.which("tclsh")
    if exe is None:
        pytest.skip("tclsh is not installed (apt-get install tcl)")
    if not (OVERLAY_SRC / "dry_run.tcl").exists():
        pytest.skip("overlay/ sources not present (installed without a source tree)")
    return exe


def _dry_run(board, kind, work: Path, slack="0.250", exported_ip="1"):
    return subprocess.run([_tclsh(), str(OVERLAY_SRC / "dry_run.tcl"), board, kind, str(work), slack,
                           exported_ip],
                          capture_output=True, text=True, timeout=60, check=False)


def _calls(work: Path):
    mm = _make_metadata()
    lines = (work / "calls.txt").read_text().splitlines()
    return [mm._tcl_words(line) for line in lines]


def _opt(call, flag):
    return call[call.index(flag) + 1]


@pytest.mark.parametrize("board,kind", CASES)
def test_vivado_flow_runs_with_stubbed_commands(board, kind, tmp_path):
    done = _dry_run(board, kind, tmp_path)
    assert done.returncode == 0, done.stderr
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    calls = _calls(tmp_path)
    cmds = [c[0] for c in calls]
    assert cmds.index("create_bd_design") < cmds.index("validate_bd_design") < cmds.index(
        "make_wrapper") < cmds.index("launch_runs")
    project = next(c for c in calls if c[0] == "create_project")
    assert _opt(project, "-part") == meta["part"]
    # cells: the kernel with the header's VLNV, under the instance name of the .hwh
    cells = {c[-1]: _opt(c, "-vlnv") for c in calls if c[0] == "create_bd_cell"}
    assert cells[meta["ip_instance"]] == hw.vlnv(kind)
    hwh = _hwh(board, kind)
    assert set(cells) == {m.get("INSTANCE") for m in hwh.iter("MODULE")}
    assert all(cells[m.get("INSTANCE")] == m.get("VLNV") for m in hwh.iter("MODULE"))
    # interrupt: kernel -> intc -> PS
    nets = [c[1:] for c in calls if c[0] == "connect_bd_net"]
    irq = meta["interrupt"]
    assert [irq["pin"], f"{irq['controller']}/intr"] in nets
    ps = _ps(hwh).get("INSTANCE")
    assert any(n[0] == f"{irq['controller']}/irq" and n[1].startswith(ps + "/") for n in nets)
    # clock: one net from the PS clock reaches the kernel
    clk = next(n for n in nets if f"{meta['ip_instance']}/ap_clk" in n)
    assert clk[0].startswith(ps + "/")
    # timestamp: a free-running counter of that clock, cleared by the PL reset
    # only, as wide as the top's argument, drives the kernel's ap_none input
    common = _make_metadata().read_boards()[0]
    counter, pin = common["counter_instance"], common["timestamp_pin"]
    assert cells[counter] == common["counter_vlnv"] == "xilinx.com:ip:c_counter_binary:12.0"
    config = next(c for c in calls if c[0] == "set_property" and c[-1] == counter)
    width = _make_metadata().wire_ports(meta["hls_top"])[pin]
    assert width == 64 and _opt(config, "-dict").split() == [
        "CONFIG.Output_Width", str(width), "CONFIG.SCLR", "true"]
    assert [f"{counter}/Q", f"{meta['ip_instance']}/{pin}"] in nets
    assert f"{counter}/CLK" in clk
    assert [f"{common['reset_instance']}/peripheral_reset", f"{counter}/SCLR"] in nets
    assert not any(f"{counter}/CE" in n for n in nets)  # no clock enable: counts every cycle
    # address map
    addr = {c[-2]: c for c in calls if c[0] == "assign_bd_address"}
    ctrl = addr[f"{meta['ip_instance']}/s_axi_control/Reg"]
    assert int(_opt(ctrl, "-offset"), 16) == meta["ctrl_base"]
    assert int(_opt(ctrl, "-range"), 16) == meta["ctrl_range"]
    intc = addr[f"{irq['controller']}/S_AXI/Reg"]
    assert int(_opt(intc, "-offset"), 16) == irq["controller_base"]
    # PS DDR mapped into the kernel's m_axi space: the segments the .hwh lists for the kernel
    ddr = {k.split("/")[-1] for k in addr if k.startswith(ps + "/")}
    kernel_hwh = _module(hwh, meta["ip_instance"])
    assert ddr and ddr == {m.get("ADDRESSBLOCK") for m in kernel_hwh.iter("MEMRANGE")}
    assert all(_opt(addr[k], "-target_address_space").endswith(
        f"{meta['ip_instance']}/Data_m_axi_gmem") for k in addr if k.startswith(ps + "/"))
    # PS clock configured at the metadata's frequency
    ps_cfg = next(c for c in calls if c[0] == "set_property" and c[-1] == ps)
    assert str(meta["clock_mhz"]) in ps_cfg[2].split()
    # outputs installed where the SDK looks, under the SDK's names
    installed = sorted(p.name for p in (tmp_path / "install").iterdir())
    assert installed == sorted(f"{kind}.{ext}" for ext in (
        "bit", "hwh", "timing.rpt", "utilization.rpt", "utilization_hier.rpt"))


def test_vivado_flow_refuses_a_counter_narrower_than_the_timestamp(tmp_path):
    """bd.tcl compares the widths of the counter's Q and the kernel's
    timestamp pin (Vivado would only warn) and stops on a mismatch."""
    _tclsh()
    tree = tmp_path / "tree"
    shutil.copytree(OVERLAY_SRC, tree / "overlay", ignore=shutil.ignore_patterns("build"))
    (tree / "hls").mkdir()
    for name in ("bitlet_hw.h", "bitlet_top.h"):
        shutil.copy(ROOT / "hls" / name, tree / "hls" / name)
    boards = tree / "overlay" / "boards.tcl"
    text = boards.read_text()
    assert text.count("Output_Width 64") == 1
    boards.write_text(text.replace("Output_Width 64", "Output_Width 32"))

    def run(work):
        return subprocess.run([_tclsh(), str(tree / "overlay" / "dry_run.tcl"), "kv260", "bitlet",
                               str(work), "0.250", "1"],
                              capture_output=True, text=True, timeout=60, check=False)

    done = run(tmp_path / "narrow")
    assert done.returncode == 1
    assert ("the cycle counter cycle_counter/Q has 32 bits but the kernel's bitlet_0/timestamp "
            "input 64") in done.stderr
    assert not (tmp_path / "narrow" / "install").exists()
    boards.write_text(text)  # the same copy with the table's width builds
    assert run(tmp_path / "ok").returncode == 0


def test_vivado_flow_refuses_a_design_that_misses_timing(tmp_path):
    done = _dry_run("pynqz2", "bitlet", tmp_path, slack="-0.120")
    assert done.returncode == 1
    assert "timing not met at 200 MHz (WNS -0.120 ns, WHS -0.120 ns)" in done.stderr
    assert not (tmp_path / "install" / "bitlet.bit").exists()


def test_vivado_flow_refuses_an_ip_repository_without_the_kernel(tmp_path):
    done = _dry_run("kv260", "vendor_fp", tmp_path, "0.250", "0")
    assert done.returncode == 1
    assert f"holds no {hw.vlnv('vendor_fp')}" in done.stderr
    assert "make hls BOARD=kv260 KIND=vendor_fp" in done.stderr
    assert not (tmp_path / "install").exists()


# ---------------------------------------------------------------------------
# The Makefile end to end: HLS -> IP -> Vivado -> install, tools stubbed
# ---------------------------------------------------------------------------
_ID_PROBE = r"""
#include <stdio.h>
#include <stdint.h>
#include "bitlet_top.h"
/* Both tops with n_insn = 0 (the driver's probe): print their ID outputs. */
int main(void) {
    static uint64_t mem[32];
    uint32_t r[8];
    uint64_t clock, timestamp = 0;
    bitlet_top(mem, 0, sizeof mem, 0, 0, 0, &timestamp, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6],
               &r[7], &clock);
    printf("bitlet %u %u %u %u %u %u\n", r[2], r[3], r[4], r[5], r[6], r[7]);
    vendor_fp_top(mem, 0, sizeof mem, 0, 0, 0, &timestamp, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6],
                  &r[7], &clock);
    printf("vendor_fp %u %u %u %u %u %u\n", r[2], r[3], r[4], r[5], r[6], r[7]);
    return 0;
}
"""


def _make_dry_run(board, kind, build_dir: Path, *overrides: str):
    """`make -C overlay dry-run`: the real hls/bitstream/install recipes with
    tclsh stand-ins for vitis_hls and vivado."""
    exe = _tclsh()
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    cmd = ["make", "-s", "-C", str(OVERLAY_SRC), "dry-run", f"BOARD={board}", f"KIND={kind}",
           f"BUILD_DIR={build_dir}", f"TCLSH={exe}", f"PYTHON={sys.executable}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _probe_kernel_ids(cflags: list[str], tmp_path: Path) -> dict[str, list[int]]:
    """Compile both tops with ``cflags`` (what Vitis HLS is given) and probe them."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "id_probe.c"
    src.write_text(_ID_PROBE)
    exe = tmp_path / "id_probe"
    sources = [str(ROOT / "hls" / n) for n in ("bitlet_kernel.c", "vendor_kernel.c", "bitlet_pe.c")]
    subprocess.run(["gcc", "-std=c99", "-O0", *cflags, str(src), *sources, "-lm", "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30)
    return {line.split()[0]: [int(v) for v in line.split()[1:]] for line in out.stdout.splitlines()}


@pytest.mark.parametrize("board,kind", CASES)
def test_makefile_runs_hls_then_vivado_then_installs(board, kind, tmp_path):
    """What the Makefile hands Vitis HLS (hls/run_hls.tcl) builds the IP the
    block design instantiates, from the IP repository Vivado is given, with
    the part, N_PE and clock of boards.tcl; the kernel built with those flags
    reports the ID registers of the metadata; everything lands where the SDK
    looks."""
    done = _make_dry_run(board, kind, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    meta = find_overlay(board, kind, require_bitstream=False).metadata
    build = tmp_path / "dry-run" / board / kind
    mm = _make_metadata()
    hls = [mm._tcl_words(line) for line in (build / "hls" / "vitis_hls_calls.txt").read_text().splitlines()]
    verbs = [c[1] for c in hls]
    assert verbs[-1] == "exit" and hls[-1][2] == "0"
    assert {"csynth_design", "export_design"} <= set(verbs)
    assert ["set_top", meta["hls_top"]] == hls[verbs.index("set_top")][1:]
    assert ["set_part", meta["part"]] == hls[verbs.index("set_part")][1:]
    period = float(_opt(hls[verbs.index("create_clock")], "-period"))
    assert period == pytest.approx(1000.0 / meta["clock_mhz"], abs=1e-3)
    kernel_files = [c for c in hls if c[1] == "add_files" and c[2].endswith(".c")]
    assert len(kernel_files) == 3
    cflags = {_opt(c, "-cflags") for c in kernel_files}
    assert len(cflags) == 1
    cflags = cflags.pop().split()
    assert f"-DBITLET_N_PE={meta['n_pe']}" in cflags
    # the m_axi width: the board's HP port, in the kernel's build and the .hwh
    hp_bits = int(_board_param(board, "hp_data_width"))
    assert f"-DBITLET_AXI_BYTES={hp_bits // 8}" in cflags
    hwh = (overlay_dir() / board / f"{kind}.hwh").read_text()
    assert f'C_M_AXI_GMEM_DATA_WIDTH" VALUE="{hp_bits}"' in hwh
    # the exported IP: VLNV of the header, in the directory Vivado takes as IP repository
    (component,) = (build / "hls").rglob("component.xml")
    assert f'vlnv="{meta["vlnv"]}"' in component.read_text()
    calls = _calls(build)
    repo = next(c for c in calls if c[:2] == ["set_property", "ip_repo_paths"])
    assert Path(repo[2]) == component.parent
    cells = {c[-1]: _opt(c, "-vlnv") for c in calls if c[0] == "create_bd_cell"}
    assert cells[meta["ip_instance"]] == meta["vlnv"]
    assert _opt(next(c for c in calls if c[0] == "create_project"), "-part") == meta["part"]
    # the kernel compiled with exactly those flags reports the metadata's ID registers
    ids = _probe_kernel_ids(cflags, tmp_path)[kind]
    assert ids == [meta["magic"], meta["isa_version"], meta["id_config"], meta["act_buf_words"],
                   meta["wgt_buf_words"], meta["out_buf_words"]]
    # installed into INSTALL_ROOT/<board>, the metadata rewritten for the Vivado .hwh
    installed = find_overlay(board, kind, root=tmp_path / "dry-run" / "install")
    assert installed.bit.name == f"{kind}.bit"
    assert installed.metadata == dict(meta, hwh_source="vivado", pl_clock_mhz=meta["clock_mhz"])
    assert installed.hwh.read_text() == find_overlay(board, kind, require_bitstream=False).hwh.read_text()


def test_makefile_rebuilds_the_ip_when_the_board_table_changes(tmp_path):
    """n_pe, part and clock of boards.tcl are compiled into the IP: a newer
    boards.tcl reruns Vitis HLS, an unchanged one does not."""
    assert _make_dry_run("pynqz2", "vendor_fp", tmp_path).returncode == 0
    hls = "stub_vitis_hls.tcl"
    def plan(*extra):
        cmd = ["make", "-n", "-C", str(OVERLAY_SRC), "hls", "BOARD=pynqz2", "KIND=vendor_fp",
               f"BUILD_DIR={tmp_path / 'dry-run'}", f"VITIS_HLS=tclsh {hls}", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout

    assert hls not in plan()
    assert hls in plan("-W", str(OVERLAY_SRC / "boards.tcl"))
    assert hls in plan("-W", str(ROOT / "hls" / "vendor_kernel.c"))


def test_install_checks_the_vivado_built_hwh(tmp_path, capsys):
    """make install (make_metadata.py --json-only) refuses a .hwh the SDK
    could not drive, writing nothing, and warns about an inexact PL clock."""
    mm = _make_metadata()
    target = tmp_path / "kv260"
    target.mkdir()
    good = find_overlay("kv260", "bitlet", require_bitstream=False).hwh.read_text()
    meta = find_overlay("kv260", "bitlet", require_bitstream=False).metadata

    def install(text):
        (target / "bitlet.hwh").write_text(text)
        return mm.main(["--board", "kv260", "--kind", "bitlet", "--json-only", "--out", str(tmp_path)])

    moved = good.replace(f'BASEVALUE="0x{meta["ctrl_base"]:08X}"', 'BASEVALUE="0xA0020000"')
    assert install(moved) == 1
    assert f"bitlet_0 is not mapped at 0x{meta['ctrl_base']:08X}" in capsys.readouterr().err
    assert install(good.replace(f'INSTANCE="{meta["ip_instance"]}"', 'INSTANCE="kernel_0"')) == 1
    assert f"no cell bitlet_0 of VLNV {hw.vlnv('bitlet')}" in capsys.readouterr().err
    assert install("<EDKSYSTEM") == 1
    assert "not a hardware handoff" in capsys.readouterr().err
    # the timestamp input not driven by the counter, or by a narrower one
    undriven = "bitlet_0/timestamp is not driven by the 64-bit Q of a xilinx.com:ip:c_counter_binary"
    wire = '<CONNECTION INSTANCE="cycle_counter" PORT="Q"/>'
    assert good.count(wire) == 1
    assert install(good.replace(wire, '<CONNECTION INSTANCE="xlconstant_0" PORT="dout"/>')) == 1
    assert undriven in capsys.readouterr().err
    port = 'LEFT="63" NAME="timestamp"'
    assert good.count(port) == 1
    assert install(good.replace(port, 'LEFT="31" NAME="timestamp"')) == 1
    assert undriven in capsys.readouterr().err
    assert not (target / "bitlet.json").exists()
    ap_clk = 'CLKFREQUENCY="200000000" DIR="I" NAME="ap_clk"'
    assert good.count(ap_clk) == 1
    slow = good.replace(ap_clk, ap_clk.replace("200000000", "187498000"))
    assert install(slow) == 0
    assert "PL clock is 187.498 MHz but the kernel reports 200 MHz" in capsys.readouterr().err
    written = json.loads((target / "bitlet.json").read_text())
    assert (written["hwh_source"], written["pl_clock_mhz"]) == ("vivado", 187.498)


def test_makefile_hls_step_refuses_what_the_kernel_cannot_report(tmp_path):
    done = _make_dry_run("pynqz2", "bitlet", tmp_path / "a", "CLOCK_MHZ=248")
    assert done.returncode != 0
    assert "BITLET_CLOCK_MHZ=248, but the kernel reports 200 MHz in ID_CONFIG" in done.stderr
    assert not list((tmp_path / "a").rglob("component.xml"))
    assert not (tmp_path / "a" / "dry-run" / "install").exists()
    done = _make_dry_run("pynqz2", "bitlet", tmp_path / "b", "N_PE=256")
    assert done.returncode != 0
    assert "BITLET_N_PE must be an integer in 1..255, got '256'" in done.stderr


def _board_param(board: str, name: str, kind: str = "bitlet") -> str:
    """One parameter of overlay/boards.tcl (through overlay/board_param.tcl)."""
    proc = subprocess.run([_tclsh(), str(OVERLAY_SRC / "board_param.tcl"), board, kind, name],
                          capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


def test_board_param_tool(tmp_path):
    exe = _tclsh()
    tool = str(OVERLAY_SRC / "board_param.tcl")
    def run(*args):
        return subprocess.run([exe, tool, *args], capture_output=True, text=True, timeout=30,
                              check=False)

    for board in BOARDS:
        meta = find_overlay(board, require_bitstream=False).metadata
        assert run(board, "bitlet", "part").stdout.strip() == meta["part"]
        assert int(run(board, "bitlet", "n_pe").stdout) == meta["n_pe"]
    assert run("pynqz2", "vendor_fp", "vlnv").stdout.strip() == hw.vlnv("vendor_fp")
    bad = run("zedboard", "bitlet", "part")
    assert bad.returncode == 1 and "unknown board 'zedboard'" in bad.stderr


def test_tcl_reads_the_header_like_bitlet_hw():
    exe = _tclsh()
    script = (f"source {{{OVERLAY_SRC / 'common.tcl'}}}; "
              "puts [list [bitlet_header_value REG_SPAN] [bitlet_header_value MAGIC] [bitlet_vlnv bitlet]]")
    out = subprocess.run([exe], input=script, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == [str(hw.REG_SPAN), str(hw.MAGIC), hw.vlnv("bitlet")]


# ---------------------------------------------------------------------------
# Vivado report parsing
# ---------------------------------------------------------------------------
def test_utilization_report_7series_and_ultrascale():
    from bitlet.drivers.overlays.reports import parse_utilization

    z7 = parse_utilization(REPORTS / "pynqz2_bitlet.utilization.rpt")
    assert z7["device"] == "xc7z020clg400-1" and z7["design_state"] == "Routed"
    assert z7["resources"]["lut"] == {"used": 14873, "available": 53200, "util_pct": 27.96}
    assert z7["resources"]["ff"]["used"] == 16214
    assert (z7["resources"]["bram_tile"]["used"], z7["resources"]["dsp"]["used"]) == (92, 12)
    assert "uram" not in z7["resources"]
    zu = parse_utilization(REPORTS / "zcu104_vendor_fp.utilization.rpt")
    assert zu["resources"]["lut"]["used"] == 141207 and zu["resources"]["ff"]["available"] == 460800
    assert zu["resources"]["uram"] == {"used": 0, "available": 96, "util_pct": 0.0}


def test_hierarchical_report_gives_the_kernel_alone():
    from bitlet.drivers.overlays.reports import parse_hier_utilization

    row = parse_hier_utilization(REPORTS / "pynqz2_bitlet.utilization_hier.rpt", "bitlet_0")
    assert row == {"instance": "bitlet_0", "module": "bitlet_bd_bitlet_0_0", "lut": 12741,
                   "ff": 13492, "ramb36": 90, "ramb18": 4, "dsp": 12}
    assert parse_hier_utilization(REPORTS / "pynqz2_bitlet.utilization_hier.rpt", "nope_0") is None


def test_timing_summary_met_and_failed():
    from bitlet.drivers.overlays.reports import parse_timing_summary

    met = parse_timing_summary(REPORTS / "pynqz2_bitlet.timing.rpt")
    assert (met["wns_ns"], met["whs_ns"], met["failing_endpoints"], met["met"]) == (0.412, 0.021, 0, True)
    assert met["clocks"] == {"clk_fpga_0": {"period_ns": 5.0, "freq_mhz": 200.0}}
    assert met["fmax_estimate_mhz"] == pytest.approx(1000 / (5.0 - 0.412), abs=1e-3)
    failed = parse_timing_summary(REPORTS / "zcu104_vendor_fp.timing.rpt")
    assert (failed["wns_ns"], failed["tns_ns"], failed["failing_endpoints"]) == (-0.318, -152.64, 1207)
    assert failed["met"] is False and "clk_pl_0" in failed["clocks"]


def test_reports_that_are_not_reports_are_clear_errors(tmp_path):
    from bitlet.drivers.overlays.reports import parse_timing_summary, parse_utilization

    with pytest.raises(BitletValueError, match="not a Vivado report_utilization"):
        parse_utilization(REPORTS / "pynqz2_bitlet.timing.rpt")
    with pytest.raises(BitletValueError, match="not a Vivado report_timing_summary"):
        parse_timing_summary("Vivado crashed\nno report\n")
    with pytest.raises(BitletValueError, match="cannot read Vivado report"):
        parse_timing_summary(tmp_path / "missing.rpt")


def test_read_reports_of_an_installed_build(tmp_path):
    from bitlet.drivers.overlays import read_reports

    shutil.copytree(overlay_dir() / "pynqz2", tmp_path / "pynqz2")
    assert read_reports("pynqz2", root=tmp_path) is None  # nothing built yet
    for section in ("utilization", "utilization_hier", "timing"):
        shutil.copy(REPORTS / f"pynqz2_bitlet.{section}.rpt", tmp_path / "pynqz2" / f"bitlet.{section}.rpt")
    rep = read_reports("pynqz2", "bitlet", root=tmp_path)
    assert (rep["board"], rep["kind"]) == ("pynqz2", "bitlet")
    assert rep["utilization"]["resources"]["lut"]["used"] == 14873
    assert rep["kernel"]["instance"] == "bitlet_0" and rep["kernel"]["lut"] == 12741
    assert rep["timing"]["met"] is True
    assert read_reports("pynqz2", "vendor_fp", root=tmp_path) is None
    with pytest.raises(BitletValueError, match="kind must be one of"):
        read_reports("pynqz2", "fpga", root=tmp_path)
    with pytest.raises(BitletValueError, match="board 'zedboard' is unknown.*pynqz2"):
        read_reports("zedboard", root=tmp_path)



def test_format_reports_shows_measured_and_paper_figures(tmp_path):
    from bitlet.drivers.overlays.reports import format_reports, read_reports

    def with_n_pe(board: str, kind: str, n_pe: int) -> None:
        """The copied metadata at a fixed n_pe (boards.tcl's is sized by the
        resource model and changes with the PE's area)."""
        path = tmp_path / board / f"{kind}.json"
        meta = json.loads(path.read_text())
        meta.update(n_pe=n_pe, macs=n_pe * meta["macs_per_pe"])
        path.write_text(json.dumps(meta))

    assert "not been built" in format_reports(None)
    shutil.copytree(overlay_dir() / "pynqz2", tmp_path / "pynqz2")
    with_n_pe("pynqz2", "bitlet", 4)
    for section in ("utilization", "utilization_hier", "timing"):
        shutil.copy(REPORTS / f"pynqz2_bitlet.{section}.rpt", tmp_path / "pynqz2" / f"bitlet.{section}.rpt")
    text = format_reports(read_reports("pynqz2", root=tmp_path))
    assert "14,873 / 53,200 (27.96%)" in text
    assert "kernel IP bitlet_0: 12,741 LUT, 13,492 FF, 12 DSP" in text
    assert "timing met: WNS 0.412 ns at 200.0 MHz" in text
    assert "paper (one 64-MAC Bitlet IP): 2,558 LUT, 2,040 FF, 300 MHz" in text
    assert "paper scaled to this array (4 PEs x 64): ~10,232 LUT (estimate)" in text
    shutil.copytree(overlay_dir() / "zcu104", tmp_path / "zcu104")
    with_n_pe("zcu104", "vendor_fp", 16)
    for section in ("utilization", "timing"):
        shutil.copy(REPORTS / f"zcu104_vendor_fp.{section}.rpt",
                    tmp_path / "zcu104" / f"vendor_fp.{section}.rpt")
    text = format_reports(read_reports("zcu104", "vendor_fp", root=tmp_path))
    assert "timing NOT met: WNS -0.318 ns" in text
    assert "paper scaled to this array (16 MAC units x 4): ~33,000-36,000 LUT (estimate)" in text


def test_paper_scaled_estimates():
    from bitlet.drivers.overlays.reports import paper_scaled_luts

    assert paper_scaled_luts("bitlet", 1, hw.GROUP) == (2558, 2558)
    assert paper_scaled_luts("bitlet", 16, hw.GROUP) == (16 * 2558, 16 * 2558)
    # 64 vendor fp32 multipliers are the paper's vendor configuration
    assert paper_scaled_luts("vendor_fp", 16, hw.VENDOR_LANES) == (33000, 36000)
    assert paper_scaled_luts("vendor_fp", 4, hw.VENDOR_LANES) == (8250, 9000)


def test_bitlet_bench_shows_the_build_reports(tmp_path, monkeypatch, capsys):
    """`bitlet bench` on the simulator of a board whose overlay build left
    reports: the parsed resource and timing figures, next to the paper's."""
    from bitlet.demo import model_path
    from bitlet.tools import cli

    shutil.copytree(overlay_dir() / "pynqz2", tmp_path / "pynqz2")
    for section in ("utilization", "utilization_hier", "timing"):
        shutil.copy(REPORTS / f"pynqz2_bitlet.{section}.rpt", tmp_path / "pynqz2" / f"bitlet.{section}.rpt")
    monkeypatch.setenv("BITLET_OVERLAY_DIR", str(tmp_path))
    monkeypatch.setenv("BITLET_BOARD", "pynqz2")
    code = cli.main(["bench", "--device", "sim", "--model", str(model_path()),
                     "--shape", "lr=1,1,8,8"])
    out = capsys.readouterr().out
    assert code == 0
    bitlet_line = next(line for line in out.splitlines() if line.startswith("resources bitlet:"))
    assert "pynqz2 / bitlet (Vivado reports)" in bitlet_line
    assert "14,873 / 53,200 (27.96%)" in out
    assert "kernel IP bitlet_0: 12,741 LUT, 13,492 FF, 12 DSP" in out
    assert "timing met: WNS 0.412 ns at 200.0 MHz" in out
    assert "paper (one 64-MAC Bitlet IP): 2,558 LUT, 2,040 FF, 300 MHz" in out
    vendor_line = next(line for line in out.splitlines() if line.startswith("resources vendor_fp:"))
    assert "not been built" in vendor_line


def test_bitlet_bench_off_board_shows_the_reports_a_build_left(tmp_path, monkeypatch, capsys):
    """On the workstation that built the overlay (no board detected), `bitlet
    bench` shows the reports of the board that has them."""
    from bitlet.tools import cli

    shutil.copytree(overlay_dir() / "zcu104", tmp_path / "zcu104")
    shutil.copytree(overlay_dir() / "pynqz2", tmp_path / "pynqz2")
    for section in ("utilization", "utilization_hier", "timing"):
        shutil.copy(REPORTS / f"pynqz2_bitlet.{section}.rpt", tmp_path / "pynqz2" / f"bitlet.{section}.rpt")
    monkeypatch.setenv("BITLET_OVERLAY_DIR", str(tmp_path))
    for var in ("BITLET_BOARD", "BOARD"):
        monkeypatch.delenv(var, raising=False)
    from bitlet.drivers.overlays import detect_board

    if detect_board() is not None:
        pytest.skip("this machine is a PYNQ board: bench shows its own overlays")
    assert cli.main(["bench", "--device", "sim", "--shape", "lr=1,1,8,8", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)["reports"]
    assert reports["figures"]["bitlet"]["board"] == "pynqz2"
    assert reports["figures"]["vendor_fp"] is None
    assert "pynqz2 / bitlet (Vivado reports)" in reports["text"]["bitlet"]


@pytest.mark.pynq
def test_pynq_overlay_binds_a_driver_to_the_kernel_vlnv(tmp_path):
    """pynq.Overlay(download=False) on a register-backed fake device: the .hwh
    is all pynq needs to find the kernel, bind a driver by VLNV and map its
    registers at the metadata's base address."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynq warns on import off-board (x86)
        pynq = pytest.importorskip("pynq", reason="needs the `board` extra (pynq)")
        from pynqmetadata.frontends import Metadata
        from pynqmetadata.views.runtime import RuntimeMetadataParser

    ov = find_overlay("pynqz2", require_bitstream=False)
    shutil.copy(ov.hwh, tmp_path / "bitlet.hwh")
    (tmp_path / "bitlet.bit").write_bytes(b"not a bitstream: download=False")

    class RegisterDevice(pynq.Device):
        def __init__(self):
            super().__init__("bitlet-overlay-test")
            self.capabilities = {"REGISTER_RW": True}
            self.words = {}

        def get_bitfile_metadata(self, bitfile_name, partial=False):
            return RuntimeMetadataParser(Metadata(input=str(Path(bitfile_name).with_suffix(".hwh"))))

        def read_registers(self, address, length):
            return b"".join(self.words.get(address + i, 0).to_bytes(4, "little")
                            for i in range(0, length, 4))

        def write_registers(self, address, data):
            for i in range(0, len(data), 4):
                self.words[address + i] = int.from_bytes(data[i:i + 4], "little")

    from pynq import overlay as pynq_overlay

    vlnv = hw.vlnv("bitlet")
    # pynq keeps one driver per VLNV: remember who had it (e.g. bitlet's BitletIP,
    # registered by another test) and give it back afterwards
    saved = {k: v for k, v in pynq_overlay._ip_drivers.items() if k in (vlnv, vlnv.rpartition(":")[0])}

    class KernelIP(pynq.DefaultIP):
        bindto = (vlnv,)

    device = RegisterDevice()
    previous = getattr(pynq.Device, "_active_device", None)
    pynq.Device.active_device = device
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no UIO for the interrupt off-board
            overlay = pynq.Overlay(str(tmp_path / "bitlet.bit"), download=False, device=device)
            ip = getattr(overlay, ov.metadata["ip_instance"])
        assert isinstance(ip, KernelIP)
        ip.register_map.n_insn = 7
        assert device.words[ov.metadata["ctrl_base"] + hw.REG_N_INSN] == 7
        assert ip.read(hw.REG_N_INSN) == 7
    finally:
        KernelIP.unregister()
        pynq_overlay._ip_drivers.update(saved)
        if previous is None:
            del pynq.Device._active_device
        else:
            pynq.Device.active_device = previous
