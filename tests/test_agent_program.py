"""Program-level remote runs: compile on the "laptop", upload the program once
to the agent (keyed by its content hash), run it many times; results and
cycle counts bit-identical to a local run of the same program."""
from __future__ import annotations

import contextlib

import bitlet
import numpy as np
import pytest
from bitlet import DeviceError, hw
from bitlet.drivers import link
from bitlet.drivers.link.testing import PtyRelay
from bitlet.drivers.remote import open_remote
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.runtime.remote import RemoteModel
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
            with PtyRelay() as relay, Agent(dev).start(relay.agent_url(921600)) as agent:
                yield agent, dev, relay.client_url(921600)
    finally:
        dev.close()


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_remote_runs_are_bit_identical_to_local_runs(local, kind):
    program, inputs, outputs, _ = local
    with board(kind) as (agent, _dev, url), open_remote(url, timeout=10) as remote:
        model = RemoteModel(program, remote)
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
            idle = _dev.describe()["memory"]["free"]
            first = RemoteModel(program, remote)
            uploaded = agent.stats["data_bytes_in"]
            assert uploaded > len(program.image)  # the image went over once
            second = RemoteModel(program, remote)
            assert agent.stats["data_bytes_in"] - uploaded < 2000  # only requests this time
            assert agent.stats["op_program_put"] == 1
            assert second(inputs[1]).tobytes() == outputs[1].tobytes()
            assert first(inputs[2]).tobytes() == outputs[2].tobytes()
            # the two models are independent, as two local ones: closing one keeps the other
            in_use = _dev.describe()["memory"]["free"]
            first.close()
            assert second(inputs[0]).tobytes() == outputs[0].tobytes()
            assert _dev.describe()["memory"]["free"] == in_use
            second.close()  # the last load of the program: its device memory is freed
            assert _dev.describe()["memory"]["free"] == idle > in_use
        with open_remote(url, timeout=10) as another_client:  # the cache outlives sessions
            model = RemoteModel(program, another_client)
            assert agent.stats["op_program_put"] == 1
            assert model(inputs[0]).tobytes() == outputs[0].tobytes()
            model.close()
            with pytest.raises(bitlet.BitletValueError, match="was closed"):
                model(inputs[0])


def test_remote_profile_has_the_same_cycle_counts(local):
    program, inputs, _, profile = local
    with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
        remote_profile = RemoteModel(program, remote).profile(inputs[0])
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


def test_a_program_that_would_unpack_beyond_the_limits_is_refused():
    """A compressed .npz (a zip bomb) is refused from its declared sizes, before unpacking."""
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image.npy", bytes(2 << 20))  # 2 MiB of zeros, ~2 KiB packed
    bomb = np.frombuffer(packed.getvalue(), np.uint8)
    dev = SimDevice()
    try:
        with Agent(dev, limits=link.Limits(max_message=1 << 20)).start("tcp://127.0.0.1:0") as agent, \
                open_remote(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            assert bomb.size < 64 << 10
            with pytest.raises(bitlet.BitletValueError, match="unpack to 2,097,152 bytes"):
                remote.call("program_put", {"digest": "2" * 64}, [bomb])
            assert not remote.call("program_has", {"digest": "2" * 64})[0]
            assert remote.read_reg(hw.REG_CTRL) & hw.CTRL_AP_IDLE
    finally:
        dev.close()


def test_remote_model_keeps_intermediates_like_a_local_one(local):
    program, inputs, _, _ = local
    dev = SimDevice()
    try:
        from bitlet.runtime.model import CompiledModel

        here = CompiledModel(program, dev).run({"x": inputs[0]}, keep=True)
        with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
            there = RemoteModel(program, remote).run({"x": inputs[0]}, keep=True)
    finally:
        dev.close()
    arrays = {k: v for k, v in here.items() if isinstance(v, np.ndarray)}
    assert set(there) == set(arrays) and len(there) > 3
    for name, value in arrays.items():
        assert there[name].tobytes() == np.ascontiguousarray(value).tobytes(), name


def test_remote_model_offers_the_compiled_model_api(local):
    """What users call on a CompiledModel works the same on a RemoteModel."""
    from bitlet.runtime.model import CompiledModel

    program, inputs, outputs, _ = local
    dev = SimDevice()
    try:
        here = CompiledModel(program, dev)
        here.run({"x": inputs[1]})
        here_records = here.read_profile_records()
        here_timings = here.last_timings
        here_profile = here.profile(inputs[1])
        with board() as (agent, _dev, url), open_remote(url, timeout=10) as remote:
            model = RemoteModel(program, remote)
            assert model.peak_device_bytes == here.peak_device_bytes
            assert model.input_names == here.input_names and model.meta is program.meta
            assert model.base >= _dev.base  # the program's buffer on the board
            assert "tiny_cnn" in repr(model) and str(remote.address) in repr(model)
            # a run may take the device timeout plus the runtime's kernel budget of its MACs
            from bitlet.runtime.model import SECONDS_PER_MAC

            macs = sum(layer["macs"] for layer in program.meta["layers"])
            assert macs > 0 and model._run_budget() == remote.timeout + macs * SECONDS_PER_MAC
            with pytest.raises(bitlet.BitletValueError, match="run_timeout must be"):
                RemoteModel(program, remote, run_timeout=0)
            # inputs are checked here, as onnxruntime does: float64 into a float32
            # input is refused (naming both dtypes) before a byte goes out
            sent = agent.stats["data_bytes_in"]
            with pytest.raises(bitlet.BitletTypeError, match="'x' is float64.*float32"):
                model.run({"x": inputs[1].astype(np.float64)})
            assert agent.stats["data_bytes_in"] == sent
            got = model.run({"x": inputs[1]})
            assert list(got) == model.output_names
            assert got[model.output_names[0]].tobytes() == outputs[1].tobytes()
            # the agent's timings, as CompiledModel's, plus this host's wall time
            assert set(model.last_timings) == set(here_timings) | {"wall"}
            assert [r[:2] for r in model.last_timings["kernel_runs"]] == \
                [r[:2] for r in here_timings["kernel_runs"]]
            assert [h[:2] for h in model.last_timings["host"]] == [h[:2] for h in here_timings["host"]]
            records = model.read_profile_records()
            assert records.dtype == here_records.dtype
            assert records.tobytes() == here_records.tobytes()  # cycle counters bit for bit
            profile = model.profile({"x": inputs[1]})
            # the printed layer table and its total row are the local ones (the lines below
            # them give measured host times)
            def table(p):
                return str(p).splitlines()[:len(p.layers) + 4]

            assert table(profile) == table(here_profile) and len(profile.layers) >= 3
            assert "total kernel" in table(profile)[-1]
            assert [h["name"] for h in profile.host] == [h["name"] for h in here_profile.host]
            assert profile.device.startswith("remote:") and profile.extra["client_wall_ms"] > 0
            # bad feeds are refused here, before anything crosses the link
            runs = agent.stats["op_model_run"]
            with pytest.raises(bitlet.BitletValueError, match=r"missing \['x'\], unknown \['y'\]"):
                model.run({"y": inputs[0]})
            with pytest.raises(bitlet.BitletValueError, match=r"input 'x': shape \(1, 2, 16, 16\)"):
                model.run({"x": inputs[0][:, :2]})
            with pytest.raises(bitlet.BitletTypeError, match="feeds must be a dict"):
                model.run([inputs[0]])
            assert agent.stats["op_model_run"] == runs
            model.close()
            model.close()  # idempotent, as CompiledModel.close
            assert agent.stats["op_model_close"] == 1
            with pytest.raises(bitlet.BitletValueError, match="was closed"):
                model(inputs[0])
            with pytest.raises(bitlet.BitletValueError, match="was closed"):
                model.read_profile_records()
            again = RemoteModel(program, remote)
        again.close()  # after the device closed: its session already freed the model
        here.close()
    finally:
        dev.close()


def test_a_hung_remote_run_is_a_kernel_timeout_with_its_diagnosis_and_reset_recovers(local):
    from bitlet import KernelTimeout
    from bitlet.drivers.kernel import KernelDriver

    program, inputs, outputs, _ = local
    first = next(s for s in program.meta["steps"] if s["op"] == "kernel")
    assert first["count"] >= 2
    dev = SimDevice()
    dev.kernel = KernelDriver(dev, timeout=0.3)  # the board's driver: a short kernel timeout
    try:
        with Agent(dev).start("tcp://127.0.0.1:0") as agent, \
                open_remote(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            model = RemoteModel(program, remote)
            dev.faults.hang_after = 1
            with pytest.raises(KernelTimeout, match="model_run on the agent: the kernel did not "
                                                    "finish") as info:
                model(inputs[0])
            # the board's diagnosis travels with the error, as a local KernelTimeout's
            assert info.value.insn_done == 1
            assert info.value.registers["N_INSN"] == first["count"]
            assert any("reset" in cause for cause in info.value.causes)
            with pytest.raises(DeviceError, match="busy"):
                model(inputs[0])
            dev.faults.hang_after = None
            remote.reset()
            assert model(inputs[0]).tobytes() == outputs[0].tobytes()
    finally:
        dev.close()


def test_a_remote_profile_keeps_the_agents_cycle_label(local, monkeypatch):
    """The agent's profile says whether its clock cycles are measured (a board) or
    modelled (a simulator); the RemoteModel's profile keeps that label."""
    from bitlet.runtime import model as runtime_model

    program, inputs, _, _ = local
    # the agent's device stands for a board here: its clock stamps count as measured
    monkeypatch.setattr(runtime_model, "cycle_source", lambda device: "measured")
    with board() as (_agent, _dev, url), open_remote(url, timeout=10) as remote:
        model = RemoteModel(program, remote)
        profile = model.profile(inputs[0])
        model.close()
    assert profile.cycles == "measured"
    assert "are measured on the board" in str(profile)


def test_cycle_source_of_a_remote_device_is_the_agents_backend(monkeypatch):
    """A device behind a link measures cycles when the agent serves a board (pynq)
    and models them when it serves a simulator."""
    from bitlet.runtime.model import cycle_source

    with board() as (_agent, dev, url), open_remote(url, timeout=10) as remote:
        assert remote.describe()["remote_backend"] == "sim"
        assert cycle_source(remote) == "modelled"
        described = dev.describe
        monkeypatch.setattr(dev, "describe", lambda: {**described(), "backend": "pynq"})
        assert remote.describe()["remote_backend"] == "pynq"
        assert cycle_source(remote) == "measured"
