"""Program-level remote runs: compile on the "laptop", upload the program once
to the agent (keyed by its content hash), run it many times; results and
cycle counts bit-identical to a local run of the same program."""
from __future__ import annotations

import contextlib

import bitlet
import numpy as np
import pytest
from bitlet import DeviceError, hw
from bitlet.agent import Agent
from bitlet.drivers import link
from bitlet.drivers.remote import RemoteModel, open_remote
from bitlet.drivers.sim import SimDevice
from models import tiny_cnn

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def local():
    """The program compiled on a local simulator, and its local outputs."""
    dev = SimDevice()
    model = bitlet.compile(tiny_cnn(), device=dev)
    rng = np.random.default_rng(9)
    inputs = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(3)]
    outputs = [model(x) for x in inputs]
    profile = model.profile(inputs[0])
    yield model.program, inputs, outputs, profile
    model.close()
    dev.close()


@contextlib.contextmanager
def board(url_kind="tcp"):
    dev = SimDevice()
    try:
        if url_kind == "tcp":
            with Agent(dev).start("tcp://127.0.0.1:0") as agent:
                yield agent, dev, f"tcp://127.0.0.1:{agent.port}"
        else:
            with link.PtyRelay() as relay, Agent(dev).start(relay.agent_url(921600)) as agent:
                yield agent, dev, relay.client_url(921600)
    finally:
        dev.close()


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_remote_runs_are_bit_identical_to_local_runs(local, kind):
    program, inputs, outputs, _ = local
    with board(kind) as (agent, _dev, url), open_remote(url, timeout=10) as remote:
        model = remote.load_program(program)
        assert isinstance(model, RemoteModel)
        assert model.output_names == [o["name"] for o in program.meta["outputs"]]
        for x, expect in zip(inputs, outputs):
            got = model(x)
            assert got.dtype == expect.dtype and got.shape == expect.shape
            assert got.tobytes() == expect.tobytes()
        assert agent.stats["op_model_run"] == len(inputs)
        assert set(agent.executions.values()) == {1}


def test_program_is_uploaded_once_and_loaded_once(local):
    program, inputs, outputs, _ = local
    with board() as (agent, _dev, url):
        with open_remote(url, timeout=10) as remote:
            first = remote.load_program(program)
            uploaded = agent.stats["data_bytes_in"]
            assert uploaded > len(program.image)  # the image went over once
            second = remote.load_program(program)
            assert agent.stats["data_bytes_in"] - uploaded < 2000  # only requests this time
            assert agent.stats["op_program_put"] == 1
            assert second(inputs[1]).tobytes() == outputs[1].tobytes()
            assert first(inputs[2]).tobytes() == outputs[2].tobytes()
        with open_remote(url, timeout=10) as another_client:  # the cache outlives sessions
            model = another_client.load_program(program)
            assert agent.stats["op_program_put"] == 1
            assert model(inputs[0]).tobytes() == outputs[0].tobytes()
            model.close()
            with pytest.raises(DeviceError, match="not loaded"):
                model(inputs[0])


def test_remote_profile_has_the_same_cycle_counts(local):
    program, inputs, _, profile = local
    with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
        remote_profile = remote.load_program(program).profile(inputs[0])
    for key in ("pe_cycles", "ref_cycles", "kernel_cycles", "ddr_bytes", "macs"):
        assert remote_profile.totals[key] == profile.totals[key]
    assert [l["pe_cycles"] for l in remote_profile.layers] == [l["pe_cycles"] for l in profile.layers]
    assert remote_profile.clock_mhz == profile.clock_mhz


def test_a_tampered_program_is_refused(local):
    program, *_ = local
    with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
        data = np.frombuffer(program.to_bytes(), dtype=np.uint8)
        with pytest.raises(bitlet.BitletValueError, match="digest"):
            remote.call("program_put", {"digest": "0" * 64}, [data])
        with pytest.raises(bitlet.BitletValueError, match="not a Bitlet program"):
            remote.call("program_put", {"digest": "1" * 64}, [np.zeros(100, np.uint8)])
        assert remote.read_reg(hw.REG_CTRL) & hw.CTRL_AP_IDLE


def test_remote_model_keeps_intermediates_like_a_local_one(local):
    program, inputs, _, _ = local
    dev = SimDevice()
    try:
        from bitlet.runtime import CompiledModel

        here = CompiledModel(program, dev).run({"x": inputs[0]}, keep=True)
        with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
            there = remote.load_program(program).run({"x": inputs[0]}, keep=True)
    finally:
        dev.close()
    arrays = {k: v for k, v in here.items() if isinstance(v, np.ndarray)}
    assert set(there) == set(arrays) and len(there) > 3
    for name, value in arrays.items():
        assert there[name].tobytes() == np.ascontiguousarray(value).tobytes(), name
