"""SimDevice: the DDR arena, buffers and the s_axilite register protocol.

The kernel driver and end-to-end runs are in test_kernel_driver.py and
test_device_suite.py; this file checks the simulated board's own rules.
"""
from __future__ import annotations

import gc
import json
import time

import bitlet
import numpy as np
import pytest
from bitlet import hw, isa
from bitlet.drivers import sim as sim_module
from bitlet.drivers.device import Device, DeviceBuffer
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.sim import SimDevice, SimFaults

pytestmark = pytest.mark.device


@pytest.fixture
def dev():
    device = SimDevice()
    yield device
    device.close()


def _start(dev: SimDevice, n_insn: int = 0, prog: int = 0) -> None:
    """Program the arguments as the driver does and write ap_start."""
    base, size = dev.memory_window()
    for reg, value in (("MEM_LO", base), ("MEM_BASE_LO", base), ("MEM_SIZE", size),
                       ("PROG_LO", prog), ("N_INSN", n_insn)):
        dev.write_reg(getattr(hw, "REG_" + reg), value)
    dev.write_reg(hw.REG_CTRL, hw.CTRL_AP_START)


def _wait_idle(dev: SimDevice) -> None:
    """Wait for the simulated kernel thread (without touching clear-on-read bits)."""
    if dev._thread is not None:
        dev._thread.join(10.0)


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------
def test_is_a_device_with_buffers_at_a_nonzero_aligned_base(dev):
    a = dev.allocate((3, 5), np.float32)
    b = dev.allocate(7, "uint16")
    assert isinstance(dev, Device) and isinstance(a, DeviceBuffer)
    assert a.shape == (3, 5) and a.dtype == np.float32 and b.shape == (7,)
    assert a.device_address == dev.base != 0
    assert b.device_address % 4096 == 0
    assert b.device_address >= a.device_address + a.nbytes
    assert not a.any(), "the host copy starts as zeros, like numpy.zeros"


def test_views_keep_the_device_address_of_their_first_byte(dev):
    buf = dev.allocate((4, 8), np.float32)
    assert buf[2].device_address == buf.device_address + 2 * 8 * 4
    assert buf[1:, 3:].device_address == buf.device_address + (8 + 3) * 4
    assert buf.reshape(32)[5:].device_address == buf.device_address + 20
    result = buf + 1  # arithmetic makes a new host array, not device memory
    assert result.device_address is None
    with pytest.raises(bitlet.DeviceError, match="not in device memory"):
        result.sync_to_device()
    with pytest.raises(bitlet.BitletValueError, match="non-contiguous"):
        buf[:, 1].sync_to_device()


def test_host_and_device_copies_are_separate_until_synced(dev):
    buf = dev.allocate(16, np.uint32)
    buf[:] = np.arange(16, dtype=np.uint32)
    device_view = np.frombuffer(dev.read_memory(buf.device_address, buf.nbytes), np.uint32)
    assert (device_view == 0xFFFFFFFF).all(), "before sync the device holds the poison"
    buf.sync_to_device()
    assert dev.read_memory(buf.device_address, buf.nbytes) == buf.tobytes()
    dev.write_memory(buf.device_address, np.full(16, 7, np.uint32).tobytes())
    assert (buf == np.arange(16)).all(), "the host does not see device writes before a sync"
    buf[4:8].sync_from_device()
    assert buf[:4].tolist() == [0, 1, 2, 3] and buf[4:8].tolist() == [7] * 4
    assert buf[8:].tolist() == list(range(8, 16))


def test_buffers_also_answer_to_pynq_names(dev):
    with dev.allocate(8, np.uint32) as buf:
        assert buf.physical_address == buf.device_address and buf.cacheable
        buf[:] = 5
        buf.flush()
        assert dev.read_memory(buf.device_address, 4) == np.uint32(5).tobytes()
        dev.write_memory(buf.device_address, np.uint32(9).tobytes())
        buf.invalidate()
        assert buf[0] == 9 and dev.describe()["memory"]["buffers"] == 1
    assert dev.describe()["memory"]["buffers"] == 0, "leaving the with block frees it"
    with pytest.raises(bitlet.DeviceError, match="use after free"):
        buf.flush()


def test_out_of_memory_names_requested_and_free_sizes():
    dev = SimDevice(memory=8 * 4096)
    blocks = [dev.allocate(4096, np.uint8) for _ in range(8)]
    for b in blocks[::2]:
        b.freebuffer()  # 4 free pages, none adjacent
    with pytest.raises(bitlet.OutOfDeviceMemory) as info:
        dev.allocate(2 * 4096, np.uint8)
    message = str(info.value)
    assert "requested 8192 bytes" in message
    assert "free 16384 bytes in total" in message and "largest free block 4096" in message
    assert isinstance(info.value, MemoryError)
    for b in blocks[1::2]:
        b.freebuffer()
    mem = dev.describe()["memory"]
    assert mem["free"] == mem["largest_free"] == 8 * 4096 and mem["buffers"] == 0
    assert dev.allocate(8 * 4096, np.uint8).nbytes == 8 * 4096, "free blocks coalesce"


def test_double_free_and_use_after_free_raise(dev):
    buf = dev.allocate(10, np.float32)
    view = buf[2:]
    dev.free(buf)
    with pytest.raises(bitlet.DeviceError, match="double free"):
        buf.freebuffer()
    with pytest.raises(bitlet.DeviceError, match="use after free"):
        buf.sync_to_device()
    with pytest.raises(bitlet.DeviceError, match="use after free"):
        view.sync_from_device()


def test_unreferenced_buffers_return_to_the_arena(dev):
    dev.allocate(1 << 20, np.uint8)
    gc.collect()
    assert dev.describe()["memory"]["free"] == dev.memory_size


@pytest.mark.parametrize("shape, dtype, error", [
    ((-1, 2), np.float32, bitlet.BitletValueError),
    ("abc", np.float32, bitlet.BitletValueError),
    (3, object, bitlet.BitletTypeError),
    (3, "not-a-dtype", bitlet.BitletTypeError),
])
def test_bad_allocate_arguments(dev, shape, dtype, error):
    with pytest.raises(error):
        dev.allocate(shape, dtype)


def test_bad_constructor_arguments():
    with pytest.raises(bitlet.BitletValueError, match="kernel"):
        SimDevice("nope")
    with pytest.raises(bitlet.BitletValueError, match="align"):
        SimDevice(align=100)
    with pytest.raises(bitlet.BitletValueError, match="memory"):
        SimDevice(memory=1 << 33)


def test_memory_access_outside_the_arena_is_a_bus_error(dev):
    with pytest.raises(bitlet.BusError, match="outside the arena"):
        dev.read_memory(dev.base - 4, 8)
    with pytest.raises(bitlet.BusError):
        dev.write_memory(dev.base + dev.memory_size - 2, b"1234")


# --------------------------------------------------------------------------
# registers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [hw.REG_SPAN, -4, 2, 0x1000])
def test_register_access_outside_the_window_or_unaligned_is_a_bus_error(dev, offset):
    with pytest.raises(bitlet.BusError):
        dev.read_reg(offset)
    with pytest.raises(bitlet.BusError):
        dev.write_reg(offset, 0)


def test_register_values_are_32_bit(dev):
    with pytest.raises(bitlet.BitletValueError):
        dev.write_reg(hw.REG_N_INSN, 1 << 32)
    dev.write_reg(hw.REG_N_INSN, 0xFFFFFFFF)
    assert dev.read_reg(hw.REG_N_INSN) == 0xFFFFFFFF


def test_control_protocol_of_one_run(dev):
    assert dev.read_reg(hw.REG_CTRL) == hw.CTRL_AP_IDLE, "idle after reset"
    assert dev.read_reg(hw.REG_ID_MAGIC) == 0, "ID registers hold what the last run latched"
    _start(dev)
    _wait_idle(dev)
    ctrl = dev.read_reg(hw.REG_CTRL)
    assert ctrl & hw.CTRL_AP_DONE and ctrl & hw.CTRL_AP_READY and ctrl & hw.CTRL_AP_IDLE
    assert not ctrl & hw.CTRL_AP_START, "ap_start clears itself"
    assert dev.read_reg(hw.REG_CTRL) == hw.CTRL_AP_IDLE, "ap_done and ap_ready clear on read"
    assert dev.read_reg(hw.REG_ID_MAGIC) == hw.MAGIC
    assert dev.read_reg(hw.REG_ID_VERSION) == hw.ISA_VERSION
    assert dev.read_reg(hw.REG_STATUS) == hw.STATUS_OK
    assert dev.read_reg(hw.REG_STATUS_CTRL) == 1 and dev.read_reg(hw.REG_STATUS_CTRL) == 0, \
        "ap_vld is clear-on-read"
    dev.write_reg(hw.REG_STATUS, 5)
    assert dev.read_reg(hw.REG_STATUS) == hw.STATUS_OK, "outputs are read-only"


def test_isr_toggles_on_write_and_drives_the_interrupt_line(dev):
    dev.write_reg(hw.REG_IER, hw.IRQ_AP_DONE)
    _start(dev)
    dev._thread.join(5.0)
    assert dev.read_reg(hw.REG_ISR) == hw.IRQ_AP_DONE
    assert dev.wait_interrupt(0.01) is False, "GIE = 0 masks the line"
    dev.write_reg(hw.REG_GIE, 1)
    assert dev.wait_interrupt(5.0)
    assert dev.read_reg(hw.REG_ISR) == hw.IRQ_AP_DONE and dev.irq_line()
    dev.write_reg(hw.REG_ISR, hw.IRQ_AP_DONE)
    assert dev.read_reg(hw.REG_ISR) == 0 and not dev.irq_line()
    dev.write_reg(hw.REG_ISR, hw.IRQ_AP_DONE)
    assert dev.read_reg(hw.REG_ISR) == hw.IRQ_AP_DONE, "writing 1 toggles, even from 0"
    dev.write_reg(hw.REG_ISR, hw.IRQ_AP_DONE)
    assert dev.wait_interrupt(0.01) is False


def test_isr_stays_clear_when_the_event_is_not_enabled(dev):
    dev.write_reg(hw.REG_GIE, 1)
    _start(dev)
    dev._thread.join(5.0)
    assert dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_DONE
    assert dev.read_reg(hw.REG_ISR) == 0 and not dev.irq_line()


def _gated_engine():
    """The reference kernel, held until ``gate.set()`` (at most 10 s)."""
    import threading

    from bitlet.engines.reference import lib

    gate = threading.Event()

    def engine(*args):
        gate.wait(10.0)
        lib.bitlet_top(*args)

    return engine, gate


def test_done_appears_only_when_the_kernel_finishes():
    engine, gate = _gated_engine()
    dev = SimDevice(engine=engine)
    dev.write_reg(hw.REG_IER, hw.IRQ_AP_DONE)
    dev.write_reg(hw.REG_GIE, 1)
    _start(dev)
    ctrl = dev.read_reg(hw.REG_CTRL)
    assert not ctrl & hw.CTRL_AP_IDLE and not ctrl & hw.CTRL_AP_DONE, "running"
    assert ctrl & hw.CTRL_AP_START, "ap_start is held until ap_ready, at the end of the run"
    assert dev.wait_interrupt(0.02) is False
    dev.write_reg(hw.REG_CTRL, hw.CTRL_AP_START)  # a start during the run is absorbed
    first = dev._thread
    gate.set()
    assert dev.wait_interrupt(5.0)
    first.join(10.0)
    assert dev._thread is first and dev.runs == 1, "no second run"
    ctrl = dev.read_reg(hw.REG_CTRL)
    assert ctrl & hw.CTRL_AP_DONE and ctrl & hw.CTRL_AP_IDLE and not ctrl & hw.CTRL_AP_START
    dev.close()


def test_auto_restart_runs_the_kernel_again_until_it_is_cleared():
    dev = SimDevice(delay=0.005)
    base, size = dev.memory_window()
    for reg, value in (("MEM_LO", base), ("MEM_BASE_LO", base), ("MEM_SIZE", size)):
        dev.write_reg(getattr(hw, "REG_" + reg), value)
    dev.write_reg(hw.REG_CTRL, hw.CTRL_AP_START | hw.CTRL_AUTO_RESTART)
    deadline = time.monotonic() + 10.0
    while dev.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert dev.runs >= 3, "auto_restart starts the next run when one finishes"
    ctrl = dev.read_reg(hw.REG_CTRL)
    assert ctrl & hw.CTRL_AUTO_RESTART and ctrl & hw.CTRL_AP_START, "re-armed at each end"
    dev.write_reg(hw.REG_CTRL, 0)  # clear auto_restart: the current run is the last
    _wait_idle(dev)
    runs = dev.runs
    ctrl = dev.read_reg(hw.REG_CTRL)
    assert ctrl & hw.CTRL_AP_IDLE and not ctrl & (hw.CTRL_AP_START | hw.CTRL_AUTO_RESTART)
    time.sleep(0.05)
    assert dev.runs == runs and dev.read_reg(hw.REG_ID_MAGIC) == hw.MAGIC
    dev.close()


def test_the_modelled_delay_holds_done_back():
    dev = SimDevice(delay=0.2, threaded=True)
    _start(dev)
    dev._thread.join(5.0)
    assert dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_DONE, "done after the delay"
    assert dev.describe()["delay_s"] == 0.2
    dev.close()


def test_synchronous_mode_finishes_inside_the_start_write():
    dev = SimDevice(threaded=False, interrupt=False)
    _start(dev)
    assert dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_DONE
    assert not dev.has_interrupt
    with pytest.raises(bitlet.DeviceError, match="no interrupt"):
        dev.wait_interrupt(0.01)


@pytest.mark.parametrize("kernel", ["bitlet", "vendor_fp"])
def test_both_kernels_latch_their_kind(kernel):
    dev = SimDevice(kernel, threaded=False)
    _start(dev)
    kind = dev.read_reg(hw.REG_ID_CONFIG) >> hw.CFG_KIND_SHIFT & hw.CFG_KIND_MASK
    assert kind == {"bitlet": hw.KIND_BITLET, "vendor_fp": hw.KIND_VENDOR_FP}[kernel]


# --------------------------------------------------------------------------
# engines and faults
# --------------------------------------------------------------------------
def test_the_default_engine_is_fast_for_bitlet_and_reference_for_vendor_fp():
    expected = "fast" if sim_module.fast_available() else "reference"
    assert sim_module.default_engine("bitlet") == expected
    with SimDevice() as dev:
        assert dev.engine_name == dev.describe()["engine"] == expected
    with SimDevice("vendor_fp") as dev:
        assert dev.describe()["engine"] == "reference"
    with pytest.raises(bitlet.BitletValueError, match="bitlet kernel only"):
        SimDevice("vendor_fp", engine="fast")


def test_without_the_fast_emulator_the_default_is_the_reference(monkeypatch):
    monkeypatch.setattr(sim_module, "fast_available", lambda: False)
    with SimDevice() as dev:
        assert dev.describe()["engine"] == "reference"
        assert KernelDriver(dev).identity.magic == hw.MAGIC
    with pytest.raises(bitlet.BitletValueError, match="not built"):
        SimDevice(engine="fast")


@pytest.mark.parametrize("engine", ["reference", "no_such_module_xyz", 3])
def test_engine_names_are_checked(engine):
    if engine == "reference":
        with SimDevice(engine=engine) as dev:
            assert dev.describe()["engine"] == "reference"
        return
    with pytest.raises(bitlet.BitletError, match="engine"):
        SimDevice(engine=engine)


def _engine_program(dev: SimDevice, rng: np.random.Generator, keep: list) -> list:
    """Operands of random values and a program exercising every layer feature.

    The buffers are appended to ``keep`` (an unreferenced buffer is freed).
    """
    def operand(values: np.ndarray) -> int:
        buf = dev.allocate(values.nbytes, np.uint8)
        buf[:] = values.view(np.uint8)
        buf.sync_to_device()
        keep.append(buf)
        return buf.device_address

    f32 = rng.standard_normal(16384).astype(np.float32)
    f32[rng.random(f32.size) < 0.2] = 0.0  # zero weights and activations too
    f = operand(f32)
    h = operand(rng.standard_normal(8192).astype(np.float16))
    i = operand(rng.integers(-2**20, 2**20, 16384).astype(np.int32))
    q = operand(rng.integers(-2**40, 2**40, 64).astype(np.int64))
    keep.append(dev.allocate(16 * 8192, np.uint8))
    out = keep[-1].device_address
    o = [out + j * 8192 for j in range(16)]
    return [
        isa.gemm(m=8, k=130, n=3, act=f, wgt=f, out=o[0], bias=f, relu=True, prune=0xFFF0F0,
                 layer=1),
        isa.gemm(m=5, k=200, n=4, act=h, wgt=h, out=o[1], precision="fp16"),
        isa.gemm(m=5, k=200, n=4, act=h, wgt=h, out=o[2], precision="bf16", ofmt=hw.FMT_FP32),
        isa.gemm(m=6, k=100, n=3, act=i, wgt=i, out=o[3], bias=q, precision="fixed", quant=20,
                 relu=True),
        isa.conv2d(n=1, ih=9, iw=7, cin=5, cout=6, kh=3, kw=3, stride=2, padding=1,
                   act=f, wgt=f, out=o[4], bias=f),
        isa.conv2d(n=2, ih=8, iw=8, cin=8, cout=8, kh=3, kw=3, padding=1, groups=8,
                   act=f, wgt=f, out=o[5], relu=True),
        isa.conv2d(n=1, ih=10, iw=10, cin=8, cout=4, kh=3, kw=3, dilation=2, groups=2,
                   act=f, wgt=f, out=o[6]),
        isa.gemm(m=4, k=300, n=2, act=f, wgt=f, out=o[7], partial=True, kg_end=3),
        isa.gemm(m=4, k=300, n=2, act=f, wgt=f + 4 * 4 * 192, out=o[7], acc=o[7], accum=True,
                 bias=f, kg_begin=3, kg_end=5),
        isa.gemm(m=4, k=70, n=3, act=i, wgt=i, out=o[8], precision="fixed", partial=True),
        isa.nop(layer=9),
        isa.gemm(m=4, k=64, n=2, act=f, wgt=f, out=o[9], ofmt=hw.FMT_FP16),
    ]


_BAD_INSN = {  # instruction 3 replaced by: -> expected STATUS
    None: None,
    "bad_opcode": (lambda p, dev: p[0].replace(opcode=hw.OP_MASK), hw.STATUS_BAD_OPCODE),
    "bad_field": (lambda p, dev: p[3].replace(quant=hw.QUANT_MAX + 1), hw.STATUS_BAD_FIELD),
    "bus_error": (lambda p, dev: p[0].replace(out=dev.base + dev.memory_size - 16),
                  hw.STATUS_BUS_ERROR),
    "buf_overflow": (lambda p, dev: p[0].replace(  # weights of N_PE rows > WGT_BUF_WORDS
        cin=hw.WGT_BUF_WORDS // hw.N_PE + 1, in_cstride=hw.WGT_BUF_WORDS // hw.N_PE + 1),
        hw.STATUS_BUF_OVERFLOW),
}


def _run_on_engine(engine: str, bad: str | None) -> tuple[bytes, dict, list]:
    """Run the program on a fresh device; return (device memory, registers, records)."""
    with SimDevice(engine=engine, memory=1 << 20, align=256) as dev:
        drv = KernelDriver(dev)
        buffers = []
        program = _engine_program(dev, np.random.default_rng(7), buffers)
        if bad is not None:
            program.insert(3, _BAD_INSN[bad][0](program, dev))
        words = isa.program_words(program)
        prog = dev.allocate(words.shape, words.dtype)
        prog[:] = words
        prog.sync_to_device()
        prof = dev.allocate((len(program), hw.PROF_WORDS), np.uint32)
        try:
            drv.run(prog.device_address, len(program), prof_addr=prof.device_address)
        except bitlet.DeviceError as exc:
            assert bad is not None and exc.status == _BAD_INSN[bad][1] and exc.insn_index == 3
        else:
            assert bad is None
        prof.sync_from_device()
        memory = dev.read_memory(dev.base, dev.memory_size)
        return memory, drv.register_dump(), isa.decode_profile(prof).tolist()


@pytest.mark.parametrize("bad", list(_BAD_INSN))
def test_both_engines_leave_the_same_memory_registers_and_profile(bad):
    if not sim_module.fast_available():
        pytest.skip("the fast emulator (bitlet.engines._fast) is not built here")
    memory, registers, records = _run_on_engine("reference", bad)
    assert _run_on_engine("fast", bad) == (memory, registers, records)
    assert registers["STATUS"] == (hw.STATUS_OK if bad is None else _BAD_INSN[bad][1])
    done = 3 if bad else len(records)
    assert registers["INSN_DONE"] == done
    assert all(r[0] == hw.STATUS_OK for r in records[:done])
    assert all(r[4] > 0 for r in records[:done]), "every record has kernel cycles"
    assert sum(r[6] for r in records[:done]) > 0, "scan cycles were modelled"


def test_engine_is_pluggable():
    from bitlet.engines.reference import lib

    calls = []

    def engine(*args):
        calls.append(args[4])  # n_insn
        lib.bitlet_top(*args)

    dev = SimDevice(engine=engine, threaded=False)
    _start(dev)
    assert calls == [0] and dev.read_reg(hw.REG_ID_MAGIC) == hw.MAGIC
    assert dev.describe()["engine"] == "engine"


def test_an_engine_crash_is_reported_on_the_next_access():
    def engine(*args):
        raise RuntimeError("boom")

    dev = SimDevice(engine=engine)
    _start(dev)
    dev._thread.join(5.0)
    with pytest.raises(bitlet.DeviceError, match="boom"):
        dev.read_reg(hw.REG_CTRL)
    assert dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_IDLE, "usable again after the report"


def test_wrong_id_registers_can_be_injected():
    dev = SimDevice(threaded=False, faults=SimFaults(registers={"ID_MAGIC": 0x12345678}))
    _start(dev)
    assert dev.read_reg(hw.REG_ID_MAGIC) == 0x12345678
    assert dev.read_reg(hw.REG_ID_VERSION) == hw.ISA_VERSION


def test_close_ends_a_hung_run_and_the_device(dev):
    dev.faults.hang_after = 0
    _start(dev)
    assert dev.wait_interrupt(0.05) is False
    assert not dev.read_reg(hw.REG_CTRL) & hw.CTRL_AP_IDLE
    dev.close()
    dev.close()  # idempotent
    with pytest.raises(bitlet.DeviceError, match="closed"):
        dev.read_reg(hw.REG_CTRL)
    with pytest.raises(bitlet.DeviceError, match="closed"):
        dev.allocate(4)


def test_describe_is_plain_data(dev):
    buf = dev.allocate(100, np.uint8)
    info = dev.describe()
    assert json.loads(json.dumps(info)) == info
    assert info["backend"] == "sim" and info["memory"]["base"] == dev.base
    assert info["memory"]["free"] == dev.memory_size - 4096
    assert info["ip"] == hw.vlnv("bitlet") and buf.device_address == dev.base
