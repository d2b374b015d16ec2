"""Fault injection between the remote client and the agent.

A relay of our own sits in the line -- a loopback TCP proxy, or a relay
between two pseudo-terminals -- and drops, corrupts, duplicates and delays
bytes, or cuts the link in the middle of a transfer.  Every request must
return the bit-exact result or raise a clear LinkError within its timeout; no
request may execute twice (the agent counts executions); the agent must
survive and serve the next client.  Faults are seeded: runs are reproducible.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
from bitlet import LinkError, hw
from bitlet.drivers.link.testing import Faults, PtyRelay, TcpProxy
from bitlet.drivers.remote import open_remote
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.runtime.remote import RemoteModel

pytestmark = pytest.mark.device

BAUD = 921600
CALL_TIMEOUT = 3.0
REG_VALUE = 0x0123_4567
TOKEN = "shared-secret"
# per forwarded block; TCP coalesces bytes into fewer, larger blocks than a pty
NOISY = {"tcp": {"drop": 0.05, "corrupt": 0.05, "duplicate": 0.05, "delay": 0.1, "max_delay": 0.01},
         "pty": {"drop": 0.03, "corrupt": 0.03, "duplicate": 0.03, "delay": 0.05, "max_delay": 0.01}}


# (test_agent.py has a fixture alike in shape: each test file owns its device)
@pytest.fixture
def sim():
    dev = SimDevice(memory=8 << 20)
    yield dev
    dev.close()


@contextlib.contextmanager
def through_tcp_proxy(device, faults, **agent_kw):
    with Agent(device, **agent_kw).start("tcp://127.0.0.1:0") as agent, \
            TcpProxy("127.0.0.1", agent.port, faults) as proxy:
        yield agent, proxy.url, f"tcp://127.0.0.1:{agent.port}", proxy.counter


@contextlib.contextmanager
def through_pty_relay(device, faults, **agent_kw):
    with PtyRelay(faults=faults) as relay, \
            Agent(device, **agent_kw).start(relay.agent_url(BAUD)) as agent:
        yield agent, relay.client_url(BAUD), None, relay.counter


def _budget(dev, nbytes):
    """The deadline RemoteDevice.call gives itself (its documented rule) plus 1 s slack."""
    return CALL_TIMEOUT + 2 * dev.tuning.transfer_time(nbytes + 4096) + 1.0 + 1.0


def _timed(dev, nbytes, fn, *args):
    """Run fn; return (ok, value); assert it ended within the call's deadline."""
    start = time.monotonic()
    try:
        value, ok = fn(*args), True
    except LinkError as exc:
        value, ok = exc, False
        assert str(exc)  # a message saying what failed
    assert time.monotonic() - start < _budget(dev, nbytes)
    return ok, value


def _exercise(dev, rounds, rng, sizes):
    """Write/read random data and registers; every success must be bit exact."""
    outcomes = {"ok": 0, "link_error": 0}
    buf = None
    for _ in range(10):  # allocation itself may hit a fault: bounded retries
        ok, buf = _timed(dev, 64, dev.allocate, max(sizes), np.uint8)
        if ok:
            break
    assert buf is not None and not isinstance(buf, Exception), "no allocation got through"
    for i in range(rounds):
        n = int(rng.choice(sizes))
        data = rng.integers(0, 256, n, dtype=np.uint8)
        view = buf[:n]
        view[:] = data
        wrote, _ = _timed(dev, n, view.sync_to_device)
        view[:] = 0
        read, _ = _timed(dev, n, view.sync_from_device)
        if wrote and read:
            assert view.tobytes() == data.tobytes(), f"round {i}: corrupted data got through"
        outcomes["ok" if wrote and read else "link_error"] += 1
        ok, value = _timed(dev, 64, dev.read_reg, hw.REG_MEM_SIZE)
        if ok:
            assert value == REG_VALUE
    return outcomes


def _check_agent_after(agent, direct_url, client_url):
    """No request ran twice, and the agent serves a new client normally."""
    assert agent.executions and set(agent.executions.values()) == {1}
    url = direct_url or client_url
    token = TOKEN if agent.token else None
    with open_remote(url, token=token, timeout=CALL_TIMEOUT) as fresh:
        buf = fresh.allocate(1000, np.uint8)
        buf[:] = np.arange(1000) % 251
        buf.sync_to_device()
        buf[:] = 0
        buf.sync_from_device()
        assert np.array_equal(buf, np.arange(1000) % 251)


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_noisy_link_gives_exact_results_or_clear_errors(sim, kind):
    through = through_tcp_proxy if kind == "tcp" else through_pty_relay
    faults = Faults(seed=11, **NOISY[kind])
    rng = np.random.default_rng(5)
    sim.write_reg(hw.REG_MEM_SIZE, REG_VALUE)
    with through(sim, faults, token=TOKEN) as (agent, url, direct_url, counter):
        with open_remote(url, token=TOKEN, timeout=CALL_TIMEOUT, connect_timeout=3) as dev:
            outcomes = _exercise(dev, 6, rng, [100, 3000, 30_000])
        injected = sum(counter.get(k, 0) for k in ("dropped", "corrupted", "duplicated"))
        assert injected >= 3, counter  # the faults really happened
        assert outcomes["ok"] >= 4, outcomes  # and the link mostly recovered from them
        _check_agent_after(agent, direct_url, url)


# (this test and the serial one after it are alike in shape: one transport each)
def test_tcp_cut_mid_upload_resumes_from_the_last_acknowledged_chunk(sim):
    size = 400_000
    with through_tcp_proxy(sim, Faults(cut_after=150_000)) as (agent, url, direct_url, counter):
        with open_remote(url, timeout=CALL_TIMEOUT) as dev:
            buf = dev.allocate(size, np.uint8)
            data = np.random.default_rng(2).integers(0, 256, size, dtype=np.uint8)
            buf[:] = data
            received_before = agent.stats["data_frame_bytes_in"]
            buf.sync_to_device()
            assert counter.get("cut") == 1
            assert dev.stats["reconnects"] == 1
            (resumed_at,) = dev.stats["resumed_from"]
            assert 0 < resumed_at < size
            # the agent got each byte about once: a restart from zero would add resumed_at
            resent = agent.stats["data_frame_bytes_in"] - received_before - size
            assert resent < resumed_at / 2
            assert sim.read_memory(buf.device_address, size) == data.tobytes()
        _check_agent_after(agent, direct_url, url)


def test_pty_cut_mid_upload_recovers_from_the_last_acknowledged_chunk(sim):
    size = 300_000
    faults = Faults(cut_after=120_000, cut_for=0.4)
    with through_pty_relay(sim, faults) as (agent, url, _, counter):
        with open_remote(url, timeout=CALL_TIMEOUT) as dev:
            buf = dev.allocate(size, np.uint8)
            data = np.random.default_rng(4).integers(0, 256, size, dtype=np.uint8)
            buf[:] = data
            received_before = agent.stats["data_frame_bytes_in"]
            buf.sync_to_device()
            assert counter.get("cut") == 1
            # only what was in flight during the cut (at most a window) went again
            window = dev.tuning.chunk * dev.tuning.window
            assert agent.stats["data_frame_bytes_in"] - received_before - size <= window
            assert sim.read_memory(buf.device_address, size) == data.tobytes()
        _check_agent_after(agent, None, url)


def test_dead_link_raises_link_error_within_the_timeout(sim):
    """A link that never delivers anything again ends every call in a LinkError."""
    faults = Faults(cut_after=5_000, cut_for=60.0)  # the cable is pulled for good
    with through_pty_relay(sim, faults) as (agent, url, _, _counter):
        with open_remote(url, timeout=0.5, reconnects=1, ack_timeout=0.1, max_retries=1) as dev:
            buf = dev.allocate(20_000, np.uint8)
            start = time.monotonic()
            with pytest.raises(LinkError, match="sync|write|request") as info:
                buf.sync_to_device()
            # the call's own budget (0.5 s + twice the line time + 1 s) plus 1 s of slack
            assert time.monotonic() - start < 0.5 + 2 * dev.tuning.transfer_time(24_000) + 2.0
            assert "attempt" in str(info.value)
        assert set(agent.executions.values()) == {1}


def test_tcp_cut_mid_download_resumes_the_reply(sim):
    size = 400_000
    faults = Faults(cut_after=150_000, cut_dir="down")
    data = np.random.default_rng(6).integers(0, 256, size, dtype=np.uint8)
    with through_tcp_proxy(sim, faults) as (agent, url, direct_url, counter):
        with open_remote(url, timeout=CALL_TIMEOUT) as dev:
            buf = dev.allocate(size, np.uint8)
            sim.write_memory(buf.device_address, data.tobytes())
            buf.sync_from_device()
            assert counter.get("cut") == 1 and dev.stats["reconnects"] == 1
            (resumed_at,) = dev.stats["reply_resumed_from"]
            assert 0 < resumed_at < size
            assert dev.link_stats()["data_frame_bytes_in"] < size + resumed_at / 2
            assert buf.tobytes() == data.tobytes()
            assert agent.stats["op_read"] == 1  # resumed, not read again
        _check_agent_after(agent, direct_url, url)


def test_serial_link_reopened_after_a_long_cut_resumes_the_upload(sim):
    """Retries run out during the cut: the port is reopened and the upload resumes."""
    size = 300_000
    faults = Faults(cut_after=120_000, cut_for=1.5)
    with through_pty_relay(sim, faults) as (agent, url, _, counter):
        with open_remote(url, timeout=8, ack_timeout=0.1, max_retries=1, reconnects=5) as dev:
            buf = dev.allocate(size, np.uint8)
            data = np.random.default_rng(8).integers(0, 256, size, dtype=np.uint8)
            buf[:] = data
            buf.sync_to_device()
            assert counter.get("cut") == 1 and dev.stats["reconnects"] >= 1
            assert dev.stats["resumed_from"] and max(dev.stats["resumed_from"]) > 0
            assert sim.read_memory(buf.device_address, size) == data.tobytes()
            assert agent.stats["op_write"] == 1
        _check_agent_after(agent, None, url)


@pytest.fixture(scope="module")
def program_and_runs():
    """A compiled program and its local results (plain and keep=True) on two inputs."""
    import bitlet
    from models import tiny_cnn

    with SimDevice() as dev:
        model = bitlet.compile(tiny_cnn(), device=dev)
        rng = np.random.default_rng(12)
        inputs = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(2)]
        kept = [{k: np.ascontiguousarray(v).tobytes() for k, v in
                 model.run({"x": x}, keep=True).items() if isinstance(v, np.ndarray)}
                for x in inputs]
        model.close()
    return model.program, inputs, kept


def test_a_model_run_whose_reply_is_cut_runs_once(sim, program_and_runs):
    program, inputs, kept = program_and_runs
    faults = Faults(cut_after=20_000, cut_dir="down")  # inside the ~46 KB keep=True reply
    with through_tcp_proxy(sim, faults) as (agent, url, direct_url, counter):
        with open_remote(url, timeout=CALL_TIMEOUT) as dev:
            model = RemoteModel(program, dev)
            got = model.run({"x": inputs[0]}, keep=True)
            assert counter.get("cut") == 1 and dev.stats["reconnects"] == 1
            assert agent.stats["op_model_run"] == 1  # the kernel ran once: the reply was re-sent
            assert agent.stats["executed"] == 4  # program_has, program_put, model_load, model_run
            assert {k: v.tobytes() for k, v in got.items()} == kept[0]
        _check_agent_after(agent, direct_url, url)


def test_model_runs_over_a_noisy_line_are_exact_or_clear_errors_and_run_once(sim, program_and_runs):
    program, inputs, kept = program_and_runs
    with through_tcp_proxy(sim, Faults(seed=3, **NOISY["tcp"]), token=TOKEN) as (
            agent, url, direct_url, counter):
        with open_remote(url, token=TOKEN, timeout=CALL_TIMEOUT, connect_timeout=3) as dev:
            model = None
            for _ in range(10):  # loading itself may meet a fault: bounded retries
                ok, model = _timed(dev, len(program.to_bytes()), RemoteModel, program, dev)
                if ok:
                    break
            assert ok, model
            calls = succeeded = 0
            for i in range(6):
                x = inputs[i % 2]
                ok, got = _timed(dev, 64 << 10, lambda feeds: model.run(feeds, keep=True), {"x": x})
                calls += 1
                if ok:
                    succeeded += 1
                    assert {k: v.tobytes() for k, v in got.items()} == kept[i % 2], f"run {i}"
        assert sum(counter.get(k, 0) for k in ("dropped", "corrupted", "duplicated")) >= 3
        assert succeeded >= 4
        assert succeeded <= agent.stats["op_model_run"] <= calls
        _check_agent_after(agent, direct_url, url)
