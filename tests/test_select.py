"""bitlet.open(): spec parsing, the BITLET_DEVICE override, board detection, delegation."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers import backends
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.sim import SimDevice, SimFaults

pytestmark = pytest.mark.device


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)


@pytest.mark.parametrize("spec, parsed", [
    (None, ("auto", None)),
    ("sim", ("sim", "bitlet")),
    ("sim:vendor_fp", ("sim", "vendor_fp")),
    ("SIM:bitlet", ("sim", "bitlet")),
    ("pynq", ("pynq", None)),
    ("pynq:vendor_fp", ("pynq", "vendor_fp")),
    ("pynq:/home/xilinx/bitlet.bit", ("pynq", "/home/xilinx/bitlet.bit")),
    ("tcp://192.168.2.99:7700", ("remote", "tcp://192.168.2.99:7700")),
    ("socket://board:7700", ("remote", "socket://board:7700")),
    ("serial:///dev/ttyUSB1?baud=921600", ("remote", "serial:///dev/ttyUSB1?baud=921600")),
])
def test_accepted_specs(spec, parsed):
    assert backends.parse_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["fpga", "sim:fast", "http://x:1", "", "pynq://x"])
def test_an_unknown_spec_lists_the_accepted_forms(spec):
    with pytest.raises(bitlet.BitletValueError, match="accepted forms: .*'sim'.*tcp://HOST:PORT"):
        backends.parse_spec(spec)


def test_a_non_string_spec_is_a_type_error():
    with pytest.raises(bitlet.BitletTypeError, match="accepted forms"):
        bitlet.open(3)


def test_sim_comes_with_a_checked_kernel_driver():
    dev = bitlet.open("sim")
    assert isinstance(dev, SimDevice) and isinstance(dev.kernel, KernelDriver)
    assert dev.kernel.identity.magic == hw.MAGIC and dev.kernel.kind == "bitlet"
    prog = dev.allocate((1, hw.INSN_WORDS), np.uint32)
    prog.sync_to_device()
    assert dev.kernel.run(prog.device_address, 1).n_insn == 1
    dev.close()


def test_kwargs_reach_the_backend_and_the_driver():
    dev = bitlet.open("sim:vendor_fp", memory=1 << 20, kernel_timeout=3.5)
    assert dev.kernel.kind == "vendor_fp" and dev.memory_size == 1 << 20
    assert dev.kernel.timeout == 3.5
    dev.close()


def test_the_environment_overrides_the_argument(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "sim:vendor_fp")
    dev = bitlet.open("sim")
    assert dev.kernel_name == "vendor_fp"
    dev.close()
    monkeypatch.setenv(backends.ENV_VAR, "nonsense")
    with pytest.raises(bitlet.BitletValueError, match="unknown device spec 'nonsense'"):
        bitlet.open()


def test_no_board_means_the_simulator(monkeypatch):
    monkeypatch.setattr(backends, "board_present", lambda: False)
    dev = bitlet.open()
    assert dev.describe()["backend"] == "sim"
    dev.close()


def test_a_board_without_the_overlay_falls_back_to_the_simulator_with_a_warning(
        monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "board_present", lambda: True)
    monkeypatch.setenv("BITLET_OVERLAY_DIR", str(tmp_path))  # no overlays at all
    with pytest.warns(RuntimeWarning, match="using the simulator"):
        dev = bitlet.open()
    assert dev.describe()["backend"] == "sim"
    dev.close()


def test_a_board_with_the_overlay_opens_the_board(monkeypatch, tmp_path):
    from bitlet.drivers.overlays import find_overlay

    packaged = find_overlay("pynqz2", "bitlet", require_bitstream=False)
    board_dir = tmp_path / "pynqz2"
    board_dir.mkdir()
    for src in (packaged.hwh, packaged.hwh.with_suffix(".json")):
        (board_dir / src.name).write_bytes(src.read_bytes())
    (board_dir / "bitlet.bit").write_bytes(b"a bitstream")
    monkeypatch.setenv("BITLET_OVERLAY_DIR", str(tmp_path))
    monkeypatch.setenv("BITLET_BOARD", "pynqz2")
    monkeypatch.setattr(backends, "board_present", lambda: True)
    opened = []

    def fake_backend(backend, arg, kwargs):
        opened.append((backend, arg))
        return SimDevice()  # stands for the board

    monkeypatch.setattr(backends, "_open_backend", fake_backend)
    dev = bitlet.open(memory=1 << 20)
    assert opened == [("pynq", str(board_dir / "bitlet.bit"))]
    assert isinstance(dev.kernel, KernelDriver)
    dev.close()


def test_board_detection_does_not_import_pynq(monkeypatch):
    monkeypatch.setattr(backends, "BOARD_MARKERS", ("/",))  # "an FPGA manager exists"
    has_pynq = importlib.util.find_spec("pynq") is not None
    assert backends.board_present() == has_pynq
    monkeypatch.setattr(backends, "BOARD_MARKERS", ("/no/such/file",))
    assert backends.board_present() is False


def test_a_mismatched_overlay_closes_the_device(monkeypatch):
    closed = []
    monkeypatch.setattr(SimDevice, "close", lambda self: closed.append(self))
    with pytest.raises(bitlet.OverlayMismatch):
        bitlet.open("sim", faults=SimFaults(registers={"ID_MAGIC": 1}))
    assert len(closed) == 1


def test_remote_urls_are_delegated_to_open_remote(monkeypatch):
    calls = []

    def fake_open_remote(url, **kwargs):
        calls.append((url, kwargs))
        return SimDevice()  # stands for the board behind the link

    monkeypatch.setattr(backends, "open_remote", fake_open_remote)
    dev = bitlet.open("tcp://127.0.0.1:7700", token="s3cret")
    assert calls == [("tcp://127.0.0.1:7700", {"token": "s3cret"})]
    assert isinstance(dev.kernel, KernelDriver)
    dev.close()


def test_a_device_with_its_own_kernel_keeps_it(monkeypatch):
    own = object()

    def fake_open_remote(url, **kwargs):
        dev = SimDevice()
        dev.kernel = own
        return dev

    monkeypatch.setattr(backends, "open_remote", fake_open_remote)
    assert bitlet.open("serial:///dev/ttyUSB0").kernel is own


@pytest.mark.skipif(importlib.util.find_spec("pynq") is not None, reason="pynq is installed here")
def test_pynq_without_pynq_says_what_to_install():
    with pytest.raises(bitlet.DeviceError, match=r"install bitlet\[board\]"):
        bitlet.open("pynq")


def test_importing_the_drivers_never_imports_pynq_or_pyserial():
    code = ("import sys, bitlet, bitlet.drivers.backends, bitlet.drivers.pynq_board, "
            "bitlet.drivers.pynq_sim, bitlet.drivers.sim, bitlet.drivers.kernel, "
            "bitlet.drivers.remote, bitlet.drivers.link, bitlet.runtime.agent; "
            "bitlet.open; assert 'pynq' not in sys.modules, 'pynq imported'; "
            "assert 'serial' not in sys.modules, 'pyserial imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
