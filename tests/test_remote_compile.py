"""``bitlet.compile`` and ``bitlet.load`` on a remote device upload the program
once and run it on the agent, bit-identical to a local run."""
from __future__ import annotations

import numpy as np
import pytest

import bitlet
from bitlet.agent import Agent
from bitlet.drivers.remote import RemoteModel
from bitlet.drivers.sim import SimDevice
from models import tiny_cnn

pytestmark = pytest.mark.device


def test_compile_and_load_on_a_remote_device_run_on_the_agent(tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with SimDevice() as local_dev:
        local = bitlet.compile(tiny_cnn(), device=local_dev)
        expect = local(x)
        local.save(tmp_path / "tiny.npz")
        local.close()
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent:
            with bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
                model = bitlet.compile(tiny_cnn(), device=remote)
                assert isinstance(model, RemoteModel)
                assert model(x).tobytes() == expect.tobytes()
                loaded = bitlet.load(tmp_path / "tiny.npz", device=remote)
                assert isinstance(loaded, RemoteModel)
                assert loaded(x).tobytes() == expect.tobytes()
            assert agent.stats["op_program_put"] == 1  # same program: uploaded once
            assert agent.stats["op_model_run"] == 2
    finally:
        board.close()
