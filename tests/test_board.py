"""What a real board must pass (``board`` tier): run on the board with
``BITLET_DEVICE=pynq pytest -m board`` (or another spec naming the board, e.g.
``tcp://board:7700`` from a laptop).  Skipped elsewhere, with the reason
(tests/conftest.py: no FPGA manager on this machine).

Open the device with the installed overlay; its ID registers equal the SDK's
header; one small layer (a GEMM and a convolution program) gives exactly the
bits of the reference engine and the profile's scan counts of the cycle
model; a run that exceeds its timeout raises KernelTimeout carrying the
register dump, and the documented recovery (``dev.reset()``) leaves the board
computing correct results.
"""
from __future__ import annotations

import os

import bitlet
import numpy as np
import pytest
from bitlet import hw, isa, numerics
from test_device_suite import Gemm, _bits, _load_program

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def dev():
    device = bitlet.open(os.environ.get("BITLET_DEVICE", "pynq"))
    yield device
    device.close()


def _overlay_n_pe(dev) -> int:
    """n_pe of the loaded overlay: its .json beside the bitstream, else the
    packaged metadata of the detected board (both written from boards.tcl)."""
    import json
    from pathlib import Path

    from bitlet.drivers.overlays import find_overlay

    meta = Path(str(dev.describe().get("overlay", ""))).with_suffix(".json")
    if meta.is_file():
        return int(json.loads(meta.read_text(encoding="utf-8"))["n_pe"])
    return int(find_overlay(kind="bitlet", require_bitstream=False).metadata["n_pe"])


def test_the_device_is_a_board_with_the_bitlet_overlay(dev):
    info = dev.describe()
    assert (info.get("remote_backend") or info.get("backend")) == "pynq", info
    assert dev.kernel.identity.kind == "bitlet"


def test_id_registers_equal_the_header(dev):
    assert dev.read_reg(hw.REG_ID_MAGIC) == hw.MAGIC
    assert dev.read_reg(hw.REG_ID_VERSION) == hw.ISA_VERSION
    assert dev.read_reg(hw.REG_ID_ACT_BUF) == hw.ACT_BUF_WORDS
    assert dev.read_reg(hw.REG_ID_WGT_BUF) == hw.WGT_BUF_WORDS
    assert dev.read_reg(hw.REG_ID_OUT_BUF) == hw.OUT_BUF_WORDS
    # the overlay's N_PE (overlay/boards.tcl, sized by the resource model)
    assert dev.kernel.n_pe == _overlay_n_pe(dev)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_small_layer_is_bit_exact_against_the_reference(dev, precision):
    g = Gemm(dev, m=8, k=130, n=3, precision=precision, relu=True)
    g.act.sync_to_device()
    prog = _load_program(dev, [g.insn])
    prof = dev.allocate((1, hw.PROF_WORDS), np.uint32)
    dev.kernel.run(prog.device_address, 1, prof_addr=prof.device_address, timeout=10.0)
    want, summary = g.expected(engine="reference", return_profile=True)
    np.testing.assert_array_equal(_bits(g.result()), _bits(want))
    prof.sync_from_device()
    record = isa.decode_profile(prof)[0]
    assert record["status"] == hw.STATUS_OK
    assert record["scan"] == summary["scan"] and record["groups"] == summary["groups"]


def test_a_compiled_model_equals_the_simulator_bit_for_bit(dev):
    from bitlet.demo import model_path

    x = np.random.default_rng(0).random((1, 1, 12, 12), dtype=np.float32)
    shapes = {"lr": x.shape}
    on_board = bitlet.compile(str(model_path()), device=dev, input_shapes=shapes)
    with bitlet.open("sim", engine="reference") as sim:
        on_sim = bitlet.compile(str(model_path()), device=sim, input_shapes=shapes)
        np.testing.assert_array_equal(_bits(on_board(x)), _bits(on_sim(x)))
        on_sim.close()
    on_board.close()


def test_a_timeout_is_diagnosed_and_reset_recovers(dev):
    g = Gemm(dev, m=64, k=4096, n=64, seed=3)
    g.act.sync_to_device()
    prog = _load_program(dev, [g.insn] * 64)           # ~1 G MACs: far beyond 1 ms
    with pytest.raises(bitlet.KernelTimeout) as info:
        dev.kernel.run(prog.device_address, 64, timeout=1e-3)
    message = str(info.value)
    assert "INSN_DONE" in message and info.value.registers["N_INSN"] == 64
    dev.reset()
    small = Gemm(dev, m=8, k=130, n=3, seed=4)
    small.act.sync_to_device()
    prog = _load_program(dev, [small.insn])
    dev.kernel.run(prog.device_address, 1, timeout=10.0)
    np.testing.assert_array_equal(_bits(small.result()),
                                  _bits(numerics.matmul(small.w, small.a, bias=small.b,
                                                        engine="reference")))
