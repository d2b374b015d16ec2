"""pynq's own code (Overlay, driver binding, register_map, allocate, MMIO) on a
simulated board described by the overlay's real .hwh.

Skipped, with the reason, where pynq is not installed (the ``bitlet[board]``
extra); CI runs these in its second environment.  The device-independent
driver suite also runs on this device: see test_device_suite.py.
"""
from __future__ import annotations

import warnings

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.pynq_board import PynqDevice, classes
from bitlet.drivers.pynq_sim import device_class, open_pynq_sim
from bitlet.drivers.sim import SimDevice

pytestmark = [pytest.mark.pynq, pytest.mark.device]

with warnings.catch_warnings():  # pynq warns about this CPU and pkg_resources on import
    warnings.filterwarnings("ignore", category=ResourceWarning)
    warnings.filterwarnings("ignore", message=".*pkg_resources")
    pynq = pytest.importorskip("pynq", reason="pynq is not installed (the bitlet[board] extra)")


@pytest.fixture
def dev():
    device = open_pynq_sim()
    yield device
    device.close()


def test_the_overlay_binds_the_kernel_driver_by_vlnv(dev):
    bitlet_ip, _ = classes()
    assert isinstance(dev, PynqDevice) and isinstance(dev.ip, bitlet_ip)
    assert isinstance(dev.ip, pynq.DefaultIP)
    assert dev.ip.vlnv == hw.vlnv("bitlet") == dev.overlay.ip_dict[dev.ip_name]["type"]
    assert isinstance(dev.overlay, pynq.Overlay) and dev.overlay.is_loaded()
    assert dev.ip.mmio.base_addr == dev.overlay.ip_dict[dev.ip_name]["phys_addr"]


def _header_name(hwh_name: str) -> str:
    """Vitis HLS register name in the .hwh -> bitlet_hw.h name (without REG_)."""
    special = {"GIER": "GIE", "IP_IER": "IER", "IP_ISR": "ISR"}
    if hwh_name in special:
        return special[hwh_name]
    stem, _, part = hwh_name.rpartition("_")
    if part in ("1", "2"):  # a 64-bit argument: word 1 = low, word 2 = high
        return stem.upper().replace("_ADDR", "") + ("_LO" if part == "1" else "_HI")
    return hwh_name.upper()


def test_the_hwh_register_map_agrees_with_the_header(dev):
    registers = dev.ip._registers
    offsets = {n[len("REG_"):]: v for n, v in hw.constants().items()
               if n.startswith("REG_") and n != "REG_SPAN"}
    found = {_header_name(name): reg["address_offset"] for name, reg in registers.items()}
    assert found == offsets
    fields = registers["CTRL"]["fields"]
    for bit in ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "AUTO_RESTART"):
        assert 1 << fields[bit]["bit_offset"] == getattr(hw, "CTRL_" + bit), bit


def test_register_map_reads_and_writes_the_simulated_registers(dev):
    KernelDriver(dev)  # the probe latches the ID registers
    rm = dev.register_map
    assert int(rm.id_magic.id_magic) == hw.MAGIC
    assert int(rm.id_version.id_version) == hw.ISA_VERSION
    rm.n_insn.n_insn = 77
    assert dev.sim.read_reg(hw.REG_N_INSN) == 77 == dev.read_reg(hw.REG_N_INSN)
    assert int(rm.CTRL.AP_IDLE) == 1


def test_pynq_allocate_uses_the_arena_with_flush_and_invalidate(dev):
    raw = pynq.allocate((8,), np.uint32, target=dev.pynq_device)
    assert isinstance(raw, pynq.buffer.PynqBuffer) and raw.cacheable
    arena_base, arena_size = dev.sim.memory_window()
    assert arena_base <= raw.device_address < arena_base + arena_size
    raw[:] = np.arange(8, dtype=np.uint32)
    raw.flush()
    assert dev.sim.read_memory(raw.device_address, 32) == raw.tobytes()
    dev.sim.write_memory(raw.device_address, np.full(8, 5, np.uint32).tobytes())
    assert raw[0] == 0
    raw.invalidate()
    assert raw.tolist() == [5] * 8
    raw.freebuffer()
    assert dev.describe()["memory"]["buffers"] == 0


def test_device_buffers_keep_pynq_names_with_the_device_rules(dev):
    with dev.allocate((4,), np.uint32) as buf:
        assert isinstance(buf, pynq.buffer.PynqBuffer) and buf.cacheable
        buf[:] = 3
        buf.flush()
        assert dev.sim.read_memory(buf.device_address, 4) == np.uint32(3).tobytes()
        dev.sim.write_memory(buf.device_address, np.uint32(8).tobytes())
        buf.invalidate()
        assert buf[0] == 8
    assert dev.describe()["memory"]["buffers"] == 0, "leaving the with block frees it"
    for method in (buf.flush, buf.invalidate):
        with pytest.raises(bitlet.DeviceError, match="use after free"):
            method()
    with dev.allocate((4,), np.uint32) as other:
        other.freebuffer()  # freed inside the block: leaving it is fine


def test_mmio_to_an_address_no_ip_decodes_is_a_bus_error(dev):
    mmio = pynq.MMIO(0x7000_0000, 16, device=dev.pynq_device)
    with pytest.raises(bitlet.BusError, match="DECERR"):
        mmio.read(0)


def test_other_ip_of_the_design_have_registers(dev):
    intc = next(ip for ip in dev.overlay.ip_dict.values() if ip["type"].split(":")[2] == "axi_intc")
    mmio = pynq.MMIO(intc["phys_addr"], 32, device=dev.pynq_device)
    mmio.write(0x1C, 3)
    assert mmio.read(0x1C) == 3


def test_runs_wait_on_pynq_interrupt_through_the_interrupt_controller():
    dev = open_pynq_sim()
    try:
        assert isinstance(dev._irq, pynq.Interrupt) and dev.describe()["interrupt"] is True
        assert dev.notes == []
        uio = dev.pynq_device.uio[dev.pynq_device.interrupt_controllers["axi_intc_0"]["raw_irq"]]
        assert dev._irq.parent().parent is uio, "pynq found the PS line of the controller"
        drv = KernelDriver(dev)
        prog = dev.allocate((1, hw.INSN_WORDS), np.uint32)
        prog.sync_to_device()
        for _ in range(3):
            assert drv.run(prog.device_address, 1, timeout=5.0).used_interrupt
        assert dev.read_reg(hw.REG_ISR) == 0
    finally:
        dev.close()


@pytest.mark.parametrize("board", ["pynqz2", "zcu104", "kv260"])
@pytest.mark.parametrize("kind", ["bitlet", "vendor_fp"])
def test_every_packaged_overlay_binds_probes_and_runs_on_its_interrupt(board, kind):
    dev = open_pynq_sim(kind, board=board, delay=0.05)  # runs last long enough to wait on
    try:
        info = dev.describe()
        assert info["ip"]["vlnv"] == hw.vlnv(kind) and info["interrupt"] is True
        assert dev.ip.mmio.base_addr == info["ip"]["phys_addr"] and dev.notes == []
        drv = KernelDriver(dev, kind=kind)
        assert drv.n_pe == hw.N_PE and drv.identity.version == hw.ISA_VERSION
        prog = dev.allocate((2, hw.INSN_WORDS), np.uint32)
        prog.sync_to_device()
        assert drv.run(prog.device_address, 2, timeout=5.0).used_interrupt
        fired = sum(uio.fired for uio in dev.pynq_device.uio.values())
        assert fired >= 1, "the run was awaited through the board's interrupt controller"
    finally:
        dev.close()


def test_wait_interrupt_blocks_on_pynq_until_the_kernel_finishes():
    import threading

    from bitlet.engines.reference import lib

    gate = threading.Event()

    def engine(*args):
        gate.wait(10.0)
        lib.bitlet_top(*args)

    dev = open_pynq_sim(engine=engine)
    try:
        uio = dev.pynq_device.uio[dev.pynq_device.interrupt_controllers["axi_intc_0"]["raw_irq"]]
        dev.write_reg(hw.REG_IER, hw.IRQ_AP_DONE)
        dev.write_reg(hw.REG_GIE, 1)
        dev.write_reg(hw.REG_CTRL, hw.CTRL_AP_START)
        assert dev.wait_interrupt(0.05) is False and uio.fired == 0
        threading.Timer(0.05, gate.set).start()
        assert dev.wait_interrupt(5.0) is True
        assert uio.fired == 1, "woken through the interrupt controller and the PS line"
        assert dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_DONE
    finally:
        gate.set()
        dev.close()


def test_without_the_interrupt_waits_poll_the_isr():
    dev = open_pynq_sim(interrupt=False)
    try:
        assert dev._irq is None and dev.describe()["interrupt"] is False
        drv = KernelDriver(dev)
        prog = dev.allocate((1, hw.INSN_WORDS), np.uint32)
        prog.sync_to_device()
        assert drv.run(prog.device_address, 1, timeout=5.0).n_insn == 1
        assert all(uio.fired == 0 for uio in dev.pynq_device.uio.values())
    finally:
        dev.close()


def test_pynq_active_device_is_restored_on_close():
    before = vars(pynq.Device).get("_active_device")
    dev = open_pynq_sim()
    assert pynq.Device.active_device is dev.pynq_device
    dev.close()
    dev.close()
    assert vars(pynq.Device).get("_active_device") is before
    with pytest.raises(bitlet.DeviceError, match="closed"):
        dev.read_reg(hw.REG_CTRL)
    from pynq.interrupt import _InterruptController

    assert all(u not in _InterruptController._uio_devices.values()
               for u in dev.pynq_device.uio.values()), "the simulated UIO is unplugged"


def test_two_simulated_boards_closed_out_of_order_restore_the_first_active_device():
    before = vars(pynq.Device).get("_active_device")
    first, second = open_pynq_sim(), open_pynq_sim()
    assert pynq.Device.active_device is second.pynq_device
    first.close()
    assert pynq.Device.active_device is second.pynq_device, "the open one stays active"
    assert second.allocate((4,), np.uint32).device_address >= second.sim.base
    second.close()
    assert vars(pynq.Device).get("_active_device") is before


def test_the_simulated_board_cannot_be_programmed():
    sim = SimDevice()
    with pytest.raises(bitlet.DeviceError, match="download=False"):
        device_class()(sim).download(None)
    sim.close()


def test_missing_overlay_files_are_named(tmp_path):
    with pytest.raises(bitlet.DeviceError, match="does not exist"):
        PynqDevice(tmp_path / "nothing.bit", download=False)
    bit = tmp_path / "bitlet.bit"
    bit.write_bytes(b"")
    with pytest.raises(bitlet.DeviceError, match="bitlet.hwh is missing"):
        PynqDevice(bit, download=False)


def test_the_vendor_overlay_binds_too():
    dev = open_pynq_sim("vendor_fp")
    assert dev.ip.vlnv == hw.vlnv("vendor_fp")
    assert KernelDriver(dev, kind="vendor_fp").kind == "vendor_fp"
    dev.close()
