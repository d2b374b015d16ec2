"""KernelDriver: ID check at open, the start/wait protocol, timeouts and status errors.

Runs against SimDevice (the pynq-backed device runs the same driver in
test_device_suite.py).  Programs here are NOP instructions (all-zero words);
real GEMM/conv programs are in test_device_suite.py.
"""
from __future__ import annotations

import time

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers.kernel import KernelDriver, KernelIdentity, check_identity, status_name
from bitlet.drivers.sim import DEFAULT_BASE, SimDevice, SimFaults

pytestmark = pytest.mark.device

TIMEOUT = 0.3  # seconds: short, so the fault tests stay fast


@pytest.fixture(params=[True, False], ids=["irq", "poll"])
def dev(request):
    device = SimDevice(interrupt=request.param)
    yield device
    device.close()


def _nops(dev, n):
    prog = dev.allocate((n, hw.INSN_WORDS), np.uint32)
    prog.sync_to_device()  # all-zero words: OP_NOP
    return prog


def test_open_probes_and_decodes_the_identity(dev):
    drv = KernelDriver(dev)
    assert drv.kind == "bitlet" and drv.n_pe == hw.N_PE and drv.clock_mhz == hw.CLOCK_MHZ
    assert drv.formats == ("fp32", "fp16", "bf16", "fixed")
    assert (drv.act_buf_words, drv.wgt_buf_words, drv.out_buf_words) == \
        (hw.ACT_BUF_WORDS, hw.WGT_BUF_WORDS, hw.OUT_BUF_WORDS)
    assert drv.identity.magic == hw.MAGIC and dev.runs == 1
    assert drv.use_interrupt == dev.has_interrupt


def test_vendor_kernel_is_recognised():
    drv = KernelDriver(SimDevice("vendor_fp"), kind="vendor_fp")
    assert drv.kind == "vendor_fp" and "fixed" not in drv.formats
    with pytest.raises(bitlet.OverlayMismatch, match="kind expected bitlet, found vendor_fp"):
        KernelDriver(SimDevice("vendor_fp"), kind="bitlet")


def test_run_completes_and_reports(dev):
    drv = KernelDriver(dev)
    prog = _nops(dev, 5)
    result = drv.run(prog.device_address, 5, timeout=5.0)
    assert result.n_insn == 5 and result.status == hw.STATUS_OK
    assert result.used_interrupt == dev.has_interrupt
    assert dev.read_reg(hw.REG_ISR) == 0, "the driver acknowledges the interrupt"
    for _ in range(3):  # back to back: no stale ap_done confuses the next run
        drv.run(prog.device_address, 5, timeout=5.0)
    drv.run(np.uint64(prog.device_address), np.int64(5))  # numpy integers are fine
    assert dev.runs == 6


def test_a_run_that_finishes_before_the_wait_is_not_missed():
    dev = SimDevice(threaded=False)  # done is already set when the driver starts waiting
    drv = KernelDriver(dev)
    prog = _nops(dev, 2)
    start = time.monotonic()
    drv.run(prog.device_address, 2, timeout=30.0)
    assert time.monotonic() - start < 10.0


def test_stale_done_and_interrupt_from_before_are_cleared():
    dev = SimDevice(delay=0.2)
    drv = KernelDriver(dev)
    prog = _nops(dev, 1)
    dev.write_reg(hw.REG_ISR, hw.IRQ_AP_DONE)  # a stale interrupt left pending
    result = drv.run(prog.device_address, 1, timeout=5.0)
    assert result.seconds >= 0.2, "the stale interrupt was not taken for this run's end"
    assert dev.runs == 2 and dev.describe()["delay_s"] == 0.2
    assert not dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_DONE


@pytest.mark.parametrize("faults, match", [
    (SimFaults(registers={"ID_VERSION": hw.ISA_VERSION + 1}),
     rf"ISA version expected {hw.ISA_VERSION}, found {hw.ISA_VERSION + 1}"),
    (SimFaults(registers={"ID_MAGIC": 0}), f"ID_MAGIC expected 0x{hw.MAGIC:08X}, found 0x00000000"),
    (SimFaults(registers={"ID_CONFIG": hw.N_PE | 9 << hw.CFG_KIND_SHIFT}), "found code 9"),
    (SimFaults(registers={"ID_WGT_BUF": hw.WGT_BUF_WORDS // 2}),
     rf"ID_WGT_BUF expected >= {hw.WGT_BUF_WORDS} words, found {hw.WGT_BUF_WORDS // 2}"),
])
def test_a_mismatched_overlay_is_refused_with_what_to_do(faults, match):
    with pytest.raises(bitlet.OverlayMismatch, match=match) as info:
        KernelDriver(SimDevice(faults=faults))
    message = str(info.value)
    assert "overlay" in message and ("rebuild" in message or "load" in message)


def test_identity_decoding_uses_the_header_fields():
    config = (3 << hw.CFG_NPE_SHIFT | hw.KIND_VENDOR_FP << hw.CFG_KIND_SHIFT
              | 0b101 << hw.CFG_FMT_SHIFT | 25 << hw.CFG_CLK_SHIFT)
    ident = KernelIdentity(hw.MAGIC, hw.ISA_VERSION, config, 1, 2, 3)
    assert (ident.n_pe, ident.kind, ident.clock_mhz) == (3, "vendor_fp", 100)
    assert ident.formats == ("fp32", "bf16")
    with pytest.raises(bitlet.OverlayMismatch, match="formats mask"):
        check_identity(ident)
    assert status_name(hw.STATUS_BUS_ERROR) == "BUS_ERROR" and status_name(99) == "UNKNOWN(99)"


def test_a_kernel_that_never_completes_times_out_with_a_diagnosis(dev):
    drv = KernelDriver(dev)
    prog = _nops(dev, 6)
    dev.faults.hang_after = 4
    start = time.monotonic()
    with pytest.raises(bitlet.KernelTimeout) as info:
        drv.run(prog.device_address, 6, timeout=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 2.0, "the error comes within the bound"
    err = info.value
    assert err.insn_done == 4 and err.n_insn == 6
    assert err.registers["N_INSN"] == 6 and err.registers["PROG_LO"] == prog.device_address
    assert not err.registers["CTRL"] & hw.CTRL_AP_IDLE
    assert "INSN_DONE = 4" in str(err) and "likely causes" in str(err)
    assert any("memory access (instruction 4)" in c for c in err.causes)
    assert isinstance(err, TimeoutError)
    with pytest.raises(bitlet.DeviceError, match=r"busy.*dev\.reset\(\)"):
        drv.run(prog.device_address, 6, timeout=TIMEOUT)
    dev.faults.hang_after = None
    dev.reset()  # as reloading the overlay: the hung run is abandoned
    assert dev.read_reg(hw.REG_CTRL) == hw.CTRL_AP_IDLE and dev.read_reg(hw.REG_INSN_DONE) == 0
    assert drv.run(prog.device_address, 6, timeout=5.0).n_insn == 6


def test_a_hung_probe_times_out_at_open():
    dev = SimDevice(faults=SimFaults(hang_after=0))
    with pytest.raises(bitlet.KernelTimeout, match="ID probe") as info:
        KernelDriver(dev, probe_timeout=TIMEOUT)
    assert info.value.insn_done is None, "no instruction reported done"
    dev.close()


def test_a_kernel_that_never_starts_is_diagnosed():
    dev = SimDevice()
    drv = KernelDriver(dev)
    prog = _nops(dev, 1)
    dev.faults.no_clock = True
    with pytest.raises(bitlet.KernelTimeout) as info:
        drv.run(prog.device_address, 1, timeout=TIMEOUT)
    assert "never started" in info.value.causes[0]
    ctrl = info.value.registers["CTRL"]
    assert ctrl & hw.CTRL_AP_START and ctrl & hw.CTRL_AP_IDLE
    with pytest.raises(bitlet.DeviceError, match="busy"):
        drv.run(prog.device_address, 1, timeout=TIMEOUT)


def test_a_bus_error_names_the_instruction(dev):
    drv = KernelDriver(dev)
    prog = _nops(dev, 8)
    dev.faults.bus_error_at = 3
    with pytest.raises(bitlet.BusError, match="instruction 3 of 8") as info:
        drv.run(prog.device_address, 8, timeout=5.0)
    assert info.value.insn_index == 3 and info.value.status == hw.STATUS_BUS_ERROR
    assert f"0x{prog.device_address + 3 * hw.INSN_BYTES:x}" in str(info.value)


def test_a_program_running_off_the_arena_is_a_bus_error_from_the_kernel(dev):
    drv = KernelDriver(dev)
    last = dev.base + dev.memory_size - 2 * hw.INSN_BYTES
    dev.write_memory(last, bytes(2 * hw.INSN_BYTES))  # two NOPs at the very end
    with pytest.raises(bitlet.BusError, match="instruction 2 of 3"):
        drv.run(last, 3, timeout=5.0)


def test_an_unsynced_program_is_a_bad_opcode(dev):
    drv = KernelDriver(dev)
    prog = dev.allocate((2, hw.INSN_WORDS), np.uint32)  # never synced: device holds poison
    with pytest.raises(bitlet.DeviceError, match="instruction 0 of 2.*STATUS_BAD_OPCODE") as info:
        drv.run(prog.device_address, 2, timeout=5.0)
    assert not isinstance(info.value, bitlet.BusError)


@pytest.mark.parametrize("kwargs, match", [
    ({"prog_addr": 0, "n_insn": 1}, "prog_addr"),
    ({"prog_addr": DEFAULT_BASE + 4, "n_insn": 1}, "aligned"),
    ({"prog_addr": DEFAULT_BASE, "n_insn": -1}, "n_insn"),
    ({"prog_addr": DEFAULT_BASE, "n_insn": 1, "prof_addr": hw.AXI_BYTES // 2}, "prof_addr"),
    ({"prog_addr": DEFAULT_BASE, "n_insn": 1, "timeout": 0}, "timeout"),
])
def test_bad_run_arguments_are_named(kwargs, match):
    drv = KernelDriver(SimDevice())
    with pytest.raises(bitlet.BitletError, match=match):
        drv.run(**kwargs)


def test_register_dump_names_every_register():
    drv = KernelDriver(SimDevice())
    dump = drv.register_dump()
    assert dump["ID_MAGIC"] == hw.MAGIC
    assert set(dump) == {n[4:] for n in hw.constants() if n.startswith("REG_") and n != "REG_SPAN"}
