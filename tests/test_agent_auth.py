"""The agent's door: unauthenticated connections, non-loopback listening, refused tokens
(issue 13, items 7 and 8).  Loopback only; every loop is bounded."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from bitlet.runtime.agent import Agent, main
from bitlet.drivers.remote import open_remote
from bitlet.drivers.sim import SimDevice

pytestmark = pytest.mark.device


@pytest.fixture
def sim():
    dev = SimDevice(memory=4 << 20)
    yield dev
    dev.close()


def _pester(port: int, stop: threading.Event, opened: list) -> None:
    """Connect without a token every 10-20 ms and send nothing; keep a few sockets open."""
    held: list[socket.socket] = []
    rng = np.random.default_rng(0)
    while not stop.is_set():
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=1.0))
            opened.append(1)
        except OSError:
            pass
        while len(held) > 4:
            held.pop(0).close()
        stop.wait(0.010 + 0.010 * rng.random())
    for s in held:
        s.close()


@pytest.mark.parametrize("token", ["s3cret", None], ids=["token", "no-token"])
def test_unauthenticated_connections_never_disturb_an_authenticated_session(sim, token):
    logs: list[str] = []
    agent = Agent(sim, token=token, log=logs.append)
    agent.handshake_timeout = 0.5  # seconds a new connection has to shake hands
    with agent.start("tcp://127.0.0.1:0"), \
            open_remote(f"tcp://127.0.0.1:{agent.port}", token=token, timeout=10) as remote:
        buf = remote.allocate(4096, np.uint8)
        stop, opened = threading.Event(), []
        pester = threading.Thread(target=_pester, args=(agent.port, stop, opened), daemon=True)
        pester.start()
        try:
            deadline = time.monotonic() + 2.5
            rounds = 0
            while time.monotonic() < deadline:  # bounded: 2.5 s of round trips
                buf[:] = rounds % 251
                buf.sync_to_device()
                buf[:] = 0
                buf.sync_from_device()
                assert (buf == rounds % 251).all()
                rounds += 1
        finally:
            stop.set()
            pester.join(5)
        assert len(opened) > 40, "the unauthenticated connections were made"
        assert rounds > 10
        assert agent.stats["sessions"] == 1, "the session was never replaced"
        assert remote.stats["reconnects"] == 0, "the session was never cut"
        assert agent.stats["dropped_connections"] > 0
        buf.freebuffer()
    assert any("did not complete a handshake" in line for line in logs), logs


def test_a_client_that_reconnects_after_a_cut_still_gets_its_session(sim):
    """A new connection still replaces the current one -- once it has shaken hands."""
    with Agent(sim, token="s3cret").start("tcp://127.0.0.1:0") as agent:
        url = f"tcp://127.0.0.1:{agent.port}"
        first = open_remote(url, token="s3cret", timeout=10)
        buf = first.allocate(16, np.uint8)
        second = open_remote(url, token="s3cret", timeout=10)  # another client takes over
        try:
            assert agent.stats["sessions"] == 2
            other = second.allocate(16, np.uint8)
            other[:] = 5
            other.sync_to_device()
        finally:
            second.close()
            del buf
            first.close()


# ---------------------------------------------------------------------------
# item 8: no token, no network; a refused token is logged as such
# ---------------------------------------------------------------------------
def _bounded(entry, argv: list[str], seconds: float = 20.0):
    """``entry(argv)`` in a thread; fails if it is still serving after ``seconds``."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(entry(argv)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{argv}: the agent is serving the network without a token"
    return result[0] if result else None


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_agent_refuses_a_non_loopback_address_without_a_token(capsys, host):
    assert _bounded(main, ["--listen", f"tcp://{host}:0", "--device", "sim"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without a token" in err[0] and "--token-env" in err[0], err


def test_agent_cli_refuses_a_non_loopback_address_without_a_token(capsys):
    from bitlet.tools import cli

    assert _bounded(cli.main, ["agent", "--listen", "tcp://0.0.0.0:0", "--device", "sim"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "without a token" in captured.err


def test_agent_api_refuses_a_non_loopback_address_without_a_token(sim):
    from bitlet import BitletValueError

    agent = Agent(sim)
    try:
        with pytest.raises(BitletValueError, match="without a token"):
            agent.start("tcp://0.0.0.0:0")  # refused before it listens
    finally:
        agent.close()


def test_a_refused_token_is_logged_as_such(sim):
    from bitlet import LinkError

    logs: list[str] = []
    with Agent(sim, token="s3cret", log=logs.append).start("tcp://127.0.0.1:0") as agent:
        with pytest.raises(LinkError, match="refused the token"):
            open_remote(f"tcp://127.0.0.1:{agent.port}", token="guess", timeout=5)
        with open_remote(f"tcp://127.0.0.1:{agent.port}", token="s3cret", timeout=5) as remote:
            remote.describe()
        time.sleep(0.3)
    refused = [line for line in logs if "refused" in line]
    assert refused and "token" in refused[0], logs
    assert not any("connection lost" in line for line in logs), logs
    assert any("closed its session" in line or "disconnected" in line for line in logs), logs
