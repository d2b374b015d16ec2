"""One driver suite, run on every device that needs no board.

Each test runs on the simulated board (``SimDevice``), on the pynq-backed
simulated board (``open_pynq_sim``: pynq's own Overlay, driver binding,
allocate and MMIO over the same simulation; skipped without pynq) and on a
simulated board behind a TCP link (``bitlet agent`` + ``open_remote``).  Real
programs built with ``bitlet.isa`` run end to end (allocate, sync, run, read
back) and must match ``bitlet.numerics`` bit for bit; then the faults.
"""
from __future__ import annotations

import time
import warnings

import bitlet
import numpy as np
import pytest
from bitlet import hw, isa, numerics
from bitlet.program import preprocess
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.sim import SimDevice, SimFaults

pytestmark = pytest.mark.device

TIMEOUT = 0.3  # seconds, for the fault tests


def _pynq_sim_factory():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", message=".*pkg_resources")
        pytest.importorskip("pynq", reason="pynq is not installed (the bitlet[board] extra); "
                                           "the pynq-backed device cannot run")
    from bitlet.drivers.pynq_sim import open_pynq_sim

    return open_pynq_sim


class _Remote:
    """A simulated board behind a TCP link: ``bitlet agent`` serving a SimDevice."""

    def __init__(self, **sim_kwargs):
        from bitlet.runtime.agent import Agent
        from bitlet.drivers.remote import open_remote

        self.sim = SimDevice(**sim_kwargs)
        self.agent = Agent(self.sim).start("tcp://127.0.0.1:0")
        try:
            self.device = open_remote(f"tcp://127.0.0.1:{self.agent.port}", timeout=10)
        except BaseException:
            self.close()
            raise
        self.device.sim = self.sim

    def close(self):
        if getattr(self, "device", None) is not None:
            self.device.close()
        self.agent.stop()
        self.sim.close()


@pytest.fixture(params=["sim", pytest.param("pynq_sim", marks=pytest.mark.pynq), "remote"])
def open_dev(request):
    """``open_dev(check=True, **sim_kwargs)`` -> a device with ``.kernel``."""
    opened = []

    def make(check: bool = True, **sim_kwargs):
        if request.param == "remote":
            remote = _Remote(**sim_kwargs)
            opened.append(remote)
            dev = remote.device
        else:
            dev = (SimDevice if request.param == "sim" else _pynq_sim_factory())(**sim_kwargs)
            opened.append(dev)
        dev.kernel = KernelDriver(dev, timeout=10.0) if check else None
        return dev

    yield make
    for dev in reversed(opened):
        dev.close()


def _to_device(dev, array):
    buf = dev.allocate(array.shape, array.dtype)
    buf[...] = array
    buf.sync_to_device()
    return buf


def _load_program(dev, insns):
    words = isa.program_words(insns)
    return _to_device(dev, words.reshape(len(insns), hw.INSN_WORDS))


class Gemm:
    """Operands, device buffers and the instruction of ``W @ A (+ b)``."""

    def __init__(self, dev, *, m, k, n, precision="fp32", relu=False, seed=0, out=None):
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal((m, k)).astype(np.float32)
        self.a = rng.standard_normal((k, n)).astype(np.float32)
        self.b = rng.standard_normal(m).astype(np.float32)
        self.precision, self.relu = precision, relu
        self.wgt = _to_device(dev, preprocess.to_device_weights(self.w, precision))
        act = preprocess.pack_activations(np.ascontiguousarray(self.a.T), precision)
        self.act = dev.allocate(act.shape, act.dtype)
        self.act[...] = act
        self.bias = _to_device(dev, preprocess.pack_bias(self.b))
        # outputs in binary32, as bitlet.numerics gives them
        self.out = out if out is not None else dev.allocate((n, m), np.uint32)
        self.insn = isa.gemm(m=m, k=k, n=n, act=self.act.device_address,
                             wgt=self.wgt.device_address, out=self.out.device_address,
                             bias=self.bias.device_address, precision=precision, relu=relu,
                             ofmt=hw.FMT_FP32)

    def expected(self, **kw):
        return numerics.matmul(self.w, self.a, bias=self.b, relu=self.relu,
                               precision=self.precision, **kw)

    def result(self):
        self.out.sync_from_device()
        return preprocess.unpack_outputs(np.asarray(self.out), "fp32").T


def _bits(x):
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


# --------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gemm_end_to_end_matches_numerics_bit_for_bit(open_dev, precision):
    dev = open_dev()
    g = Gemm(dev, m=8, k=130, n=3, precision=precision, relu=True)
    g.act.sync_to_device()
    prog = _load_program(dev, [g.insn])
    prof = dev.allocate((1, hw.PROF_WORDS), np.uint32)
    dev.kernel.run(prog.device_address, 1, prof_addr=prof.device_address, timeout=10.0)
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected()))
    prof.sync_from_device()
    record = isa.decode_profile(prof)[0]
    _, summary = g.expected(return_profile=True)
    assert record["status"] == hw.STATUS_OK
    assert record["pe_cycles"] == summary["pe_cycles"] and record["scan"] == summary["scan"]


def test_conv2d_program_of_two_layers_matches_numerics(open_dev):
    dev = open_dev()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 6, 5, 3)).astype(np.float32)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((2, 1, 1, 4)).astype(np.float32)
    act = _to_device(dev, preprocess.pack_activations(x, "fp32"))
    mid = dev.allocate((1, 3, 3, 4), np.uint32)
    out = dev.allocate((1, 3, 3, 2), np.uint32)
    k1 = _to_device(dev, preprocess.to_device_weights(w1, "fp32"))
    k2 = _to_device(dev, preprocess.to_device_weights(w2, "fp32"))
    insns = [
        isa.conv2d(n=1, ih=6, iw=5, cin=3, cout=4, kh=3, kw=3, stride=2, padding=1,
                   act=act.device_address, wgt=k1.device_address, out=mid.device_address,
                   relu=True),
        isa.conv2d(n=1, ih=3, iw=3, cin=4, cout=2, kh=1, kw=1,
                   act=mid.device_address, wgt=k2.device_address, out=out.device_address),
    ]
    prog = _load_program(dev, insns)
    dev.kernel.run(prog.device_address, 2)
    out.sync_from_device()
    hidden = numerics.conv2d(x, w1, stride=2, padding=1, relu=True)
    expected = numerics.conv2d(hidden, w2)
    np.testing.assert_array_equal(np.asarray(out), _bits(expected))


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_each_engine_gives_the_numerics_bits_and_cycles(open_dev, engine):
    from bitlet.drivers.sim import fast_available

    if engine == "fast" and not fast_available():
        pytest.skip("the fast emulator (bitlet.engines._fast) is not built here")
    dev = open_dev(engine=engine)
    assert getattr(dev, "sim", dev).describe()["engine"] == engine
    g = Gemm(dev, m=8, k=200, n=5, seed=4)
    g.act.sync_to_device()
    prof = dev.allocate((1, hw.PROF_WORDS), np.uint32)
    dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1, prof_addr=prof.device_address)
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected()))
    prof.sync_from_device()
    _, summary = g.expected(return_profile=True)
    record = isa.decode_profile(prof)[0]
    for key in ("pe_cycles", "ref_cycles", "kernel_cycles", "groups", "scan", "ddr_bytes"):
        assert record[key] == summary[key], key


def test_modelled_time_follows_the_profiled_cycles(open_dev):
    dev = open_dev(delay="cycles")
    g = Gemm(dev, m=8, k=64 * 40, n=16, seed=5)
    g.act.sync_to_device()
    prof = dev.allocate((1, hw.PROF_WORDS), np.uint32)
    result = dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1,
                            prof_addr=prof.device_address)
    prof.sync_from_device()
    cycles = int(isa.decode_profile(prof)[0]["kernel_cycles"])
    assert cycles > 0 and result.seconds >= cycles / (hw.CLOCK_MHZ * 1e6)


def test_vendor_kernel_runs_the_same_program(open_dev):
    dev = open_dev(kernel="vendor_fp")
    g = Gemm(dev, m=4, k=64, n=2)
    g.act.sync_to_device()
    dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1)
    assert dev.kernel.kind == "vendor_fp"
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected(kernel="vendor_fp")))


# --------------------------------------------------------------------------
# the board's rules
# --------------------------------------------------------------------------
def test_a_missing_sync_to_device_shows_stale_data(open_dev):
    dev = open_dev()
    g = Gemm(dev, m=4, k=64, n=2)  # activations written on the host, never synced
    dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1)
    result = g.result()
    assert (_bits(result) == hw.CANONICAL_NAN).all(), "the kernel read the stale (poison) bytes"
    g.act.sync_to_device()
    dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1)
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected()))


def test_a_missing_sync_from_device_shows_the_old_host_copy(open_dev):
    dev = open_dev()
    g = Gemm(dev, m=4, k=64, n=2)
    g.act.sync_to_device()
    dev.kernel.run(_load_program(dev, [g.insn]).device_address, 1)
    assert not np.asarray(g.out).any(), "host copy unchanged until sync_from_device"
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected()))


def test_a_buffer_too_small_is_a_bus_error_at_its_instruction(open_dev):
    dev = open_dev(memory=64 * 1024, align=128)
    good = Gemm(dev, m=8, k=64, n=4, seed=2)
    good.act.sync_to_device()
    prog = dev.allocate((3, hw.INSN_WORDS), np.uint32)
    filler = dev.allocate(dev.describe()["memory"]["free"] - 1024, np.uint8)
    small = dev.allocate(1024, np.uint8)  # the last KiB of device memory
    m, n = 8, 40  # the output needs 8 * 40 * 4 = 1280 bytes
    prog[...] = isa.program_words([
        good.insn, good.insn,
        isa.gemm(m=m, k=64, n=n, act=good.act.device_address, wgt=good.wgt.device_address,
                 out=small.device_address),
    ]).reshape(3, hw.INSN_WORDS)
    prog.sync_to_device()
    with pytest.raises(bitlet.BusError, match="instruction 2 of 3") as info:
        dev.kernel.run(prog.device_address, 3)
    assert info.value.insn_index == 2 and filler.nbytes > 0
    np.testing.assert_array_equal(_bits(good.result()), _bits(good.expected()))


# --------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------
def test_a_kernel_that_never_completes_raises_within_the_bound(open_dev):
    dev = open_dev()
    g = Gemm(dev, m=4, k=64, n=2)
    g.act.sync_to_device()
    prog = _load_program(dev, [g.insn, g.insn, g.insn])
    sim = getattr(dev, "sim", dev)
    sim.faults.hang_after = 1
    start = time.monotonic()
    with pytest.raises(bitlet.KernelTimeout) as info:
        dev.kernel.run(prog.device_address, 3, timeout=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 2.0
    assert info.value.insn_done == 1 and info.value.registers["N_INSN"] == 3
    assert "INSN_DONE = 1" in str(info.value)
    sim.faults.hang_after = None
    dev.reset()
    dev.kernel.run(prog.device_address, 3, timeout=10.0)
    np.testing.assert_array_equal(_bits(g.result()), _bits(g.expected()))


def test_a_mismatched_overlay_is_refused(open_dev):
    with pytest.raises(bitlet.OverlayMismatch, match="ISA version expected"):
        open_dev(faults=SimFaults(registers={"ID_VERSION": hw.ISA_VERSION + 1}))


def test_out_of_memory_names_the_sizes(open_dev):
    dev = open_dev(check=False, memory=1 << 20)
    with pytest.raises(bitlet.OutOfDeviceMemory, match=r"requested 2097152 bytes.*free 1048576"):
        dev.allocate((512, 1024), np.float32)


@pytest.mark.parametrize("shape", [(1 << 40, 1 << 40), (1 << 31,)])
def test_a_huge_allocation_is_out_of_memory_and_leaves_nothing_behind(open_dev, shape):
    dev = open_dev(check=False, memory=1 << 20)
    nbytes = shape[0] * (shape[1] if len(shape) > 1 else 1) * 4
    with pytest.raises(bitlet.OutOfDeviceMemory, match=f"requested {nbytes} bytes"):
        dev.allocate(shape, np.float32)
    sim = getattr(dev, "sim", dev)
    assert sim.describe()["memory"]["free"] == 1 << 20
    assert dev.allocate((1 << 18,), np.float32).nbytes == 1 << 20, "all of it still free"


def test_double_free_and_use_after_free(open_dev):
    dev = open_dev(check=False)
    buf = dev.allocate((16,), np.float32)
    view = buf[4:]
    buf.freebuffer()
    with pytest.raises(bitlet.DeviceError, match="double free"):
        dev.free(buf)
    with pytest.raises(bitlet.DeviceError, match="use after free"):
        view.sync_to_device()
    with pytest.raises(bitlet.DeviceError, match="use after free"):
        buf.sync_from_device()


def test_register_access_outside_the_window_is_a_bus_error(open_dev):
    dev = open_dev(check=False)
    with pytest.raises(bitlet.BusError):
        dev.read_reg(hw.REG_SPAN)
    with pytest.raises(bitlet.BusError):
        dev.write_reg(2, 0)


def test_describe_is_plain_data(open_dev):
    import json

    dev = open_dev()
    info = dev.describe()
    assert json.loads(json.dumps(info)) == info
    base, size = info["memory_window"]  # what the kernel driver programs as MEM_BASE/SIZE
    assert size > 0 and dev.kernel.register_dump()["MEM_BASE_LO"] == base & 0xFFFFFFFF
