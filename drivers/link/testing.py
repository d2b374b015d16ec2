"""Line emulation for tests and benchmarks: pacing and fault injection.

:class:`PtyRelay` and :class:`TcpProxy` emulate a line between two endpoints
(a pseudo-terminal pair or loopback TCP) with optional pacing at a baud rate
(8N1: 10 line bits per byte) and fault injection (:class:`Faults`: drop,
corrupt, duplicate, delay, cut); the tests and ``benchmarks/link_throughput.py``
use them.  Nothing of the SDK (client, agent, CLI) imports this module.
"""
from __future__ import annotations

import dataclasses
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable

from bitlet.drivers.link.address import BITS_PER_BYTE

__all__ = ["Faults", "PtyRelay", "TcpProxy"]


@dataclasses.dataclass
class Faults:
    """Faults a relay injects into each block of bytes it forwards.

    Attributes
    ----------
    drop, corrupt, duplicate : float
        Probability per forwarded block of deleting a slice (1..16 bytes),
        flipping one bit, repeating a slice.
    delay : float
        Probability per block of holding the stream for up to ``max_delay`` s.
    max_delay : float
        Longest injected delay, seconds.
    cut_after : int or None
        Cut the link once, after this many bytes went in direction
        ``cut_dir``: a TCP proxy closes both connections, a pty relay
        discards everything in that direction for ``cut_for`` seconds (an
        unplugged cable).
    cut_dir : {"up", "down"}
        ``"up"``: client to agent (requests); ``"down"``: agent to client.
    cut_for : float
        Length of a pty cut, seconds.
    seed : int
        Seed of the fault generator (runs are reproducible).
    """

    # (a dataclass of defaults, like tests/pyref_layers.py's operand layout: alike in shape only)
    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    max_delay: float = 0.02
    cut_after: int | None = None
    cut_dir: str = "up"
    cut_for: float = 0.5
    seed: int = 0


class _Pump(threading.Thread):
    """Moves bytes one way: read, fault, pace, write.  Stops on ``stop``."""

    def __init__(self, read: Callable[[float, int], bytes | None], write: Callable[[bytes], None],
                 faults: Faults | None, byte_rate: float | None, stop: threading.Event,
                 on_cut: Callable[[], None] | None, counter: dict, key: str, seed: int):
        super().__init__(daemon=True, name=f"bitlet-link-pump-{key}")
        self._read, self._write = read, write
        self.faults = faults
        self.byte_rate = byte_rate
        self.stop_event = stop
        self.on_cut = on_cut
        self.counter, self.key = counter, key
        self.rng = random.Random(seed)
        # at most ~5 ms of line time per block so the pacing stays smooth
        self.block = max(16, int(byte_rate * 0.005)) if byte_rate else 1 << 16
        self.blackout_until = 0.0

    def run(self) -> None:
        line_clock = float("-inf")  # when the line finishes sending what it was given
        queued = b""  # bytes found waiting right after the previous block went out
        while not self.stop_event.is_set():
            data, waiting = (queued, True) if queued else (self._read_or_none(0.02), False)
            if data is None:  # end of stream: close the other side too
                self._close_pair()
                return
            if not data:
                continue
            now = time.monotonic()
            if self.byte_rate:
                # A UART sends back to back while its FIFO holds data: bytes that
                # were already waiting follow the previous block without a gap
                # (this thread's late wake-up is not the line's idle time).
                start = line_clock if waiting and now - line_clock < 0.05 else now
                line_clock = start + len(data) / self.byte_rate
                if line_clock > now:
                    time.sleep(line_clock - now)
            data = self._apply_faults(data)
            if data and time.monotonic() >= self.blackout_until:
                try:
                    self._write(data)
                except OSError:
                    self._close_pair()
                    return
            queued = self._read_or_none(0.0)
            if queued is None:
                self._close_pair()
                return

    def _read_or_none(self, timeout: float) -> bytes | None:
        try:
            return self._read(timeout, self.block)
        except OSError:
            return None

    def _close_pair(self) -> None:
        if self.on_cut is not None:
            self.on_cut()

    def _apply_faults(self, data: bytes) -> bytes:
        f = self.faults
        if f is None:
            return data
        self.counter[self.key] = self.counter.get(self.key, 0) + len(data)
        if (f.cut_after is not None and self.key == f.cut_dir and not self.counter.get("cut")
                and self.counter[self.key] >= f.cut_after):
            self.counter["cut"] = 1
            if self.on_cut is not None:
                self.on_cut()
            self.blackout_until = time.monotonic() + f.cut_for
            return b""
        rng, buf = self.rng, bytearray(data)
        if f.drop and rng.random() < f.drop and buf:
            start = rng.randrange(len(buf))
            del buf[start:start + rng.randint(1, 16)]
            self.counter["dropped"] = self.counter.get("dropped", 0) + 1
        if f.corrupt and rng.random() < f.corrupt and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            self.counter["corrupted"] = self.counter.get("corrupted", 0) + 1
        if f.duplicate and rng.random() < f.duplicate and buf:
            start = rng.randrange(len(buf))
            buf[start:start] = buf[start:start + rng.randint(1, 64)]
            self.counter["duplicated"] = self.counter.get("duplicated", 0) + 1
        if f.delay and rng.random() < f.delay:
            time.sleep(rng.uniform(0, f.max_delay))
            self.counter["delayed"] = self.counter.get("delayed", 0) + 1
        return bytes(buf)


def _fd_reader(fd: int) -> Callable[[float, int], bytes | None]:
    def read(timeout: float, max_bytes: int) -> bytes | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(fd, max_bytes)
        except OSError:  # EIO: no process has the slave open right now
            time.sleep(timeout)
            return b""
    return read


def _fd_writer(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [fd], [], 1.0)
            if not ready:
                return  # the far end is not reading: the line drops the bytes
            view = view[os.write(fd, view):]
    return write


class PtyRelay:
    """Two pseudo-terminals joined by a relay: ``client_path`` <-> ``agent_path``.

    Each side opens its path with pyserial like a real UART.  The relay paces
    each direction at ``baud`` (10 line bits per byte) when given and injects
    ``faults`` when given.

    Parameters
    ----------
    baud : int or None
        Line rate to enforce; None forwards as fast as the ptys allow.
    faults : Faults or None

    Attributes
    ----------
    client_path, agent_path : str
        Slave device paths (``/dev/pts/N``).
    counter : dict
        Bytes forwarded (``up``: client to agent, ``down``) and faults injected.

    Use as a context manager, or call :meth:`close` (joins the threads).
    """

    def __init__(self, baud: int | None = None, faults: Faults | None = None):
        import tty  # POSIX only: imported here so the module loads everywhere

        self._fds: list[int] = []
        self.counter: dict = {}
        self._stop = threading.Event()
        masters = []
        paths = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo or line editing before pyserial opens it
            self._fds += [master, slave]
            masters.append(master)
            paths.append(os.ttyname(slave))
        self.client_path, self.agent_path = paths
        byte_rate = baud / BITS_PER_BYTE if baud else None
        seed = faults.seed if faults else 0
        self._pumps = [
            _Pump(_fd_reader(masters[0]), _fd_writer(masters[1]), faults, byte_rate, self._stop,
                  None, self.counter, "up", seed),
            _Pump(_fd_reader(masters[1]), _fd_writer(masters[0]), faults, byte_rate, self._stop,
                  None, self.counter, "down", seed + 1),
        ]
        for pump in self._pumps:
            pump.start()

    def client_url(self, baud: int) -> str:
        return f"serial://{self.client_path}?baud={baud}"

    def agent_url(self, baud: int) -> str:
        return f"serial://{self.agent_path}?baud={baud}"

    def close(self) -> None:
        self._stop.set()
        for pump in self._pumps:
            pump.join(timeout=5)
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __enter__(self) -> PtyRelay:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpProxy:
    """A loopback TCP proxy to ``(host, port)`` that paces and injects faults.

    Listens on 127.0.0.1 (an ephemeral port, :attr:`port`).  Every accepted
    connection gets its own upstream connection; a cut closes both.
    """

    def __init__(self, host: str, port: int, faults: Faults | None = None,
                 baud: int | None = None):
        self.target = (host, port)
        self.faults = faults
        self.byte_rate = baud / BITS_PER_BYTE if baud else None
        self.counter: dict = {}
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="bitlet-tcp-proxy")
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        connections = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            down, _ = self._listener.accept()
            try:
                up = socket.create_connection(self.target, timeout=2)
            except OSError:
                down.close()
                continue
            connections += 1
            self._start_pair(down, up, connections)

    def _start_pair(self, down: socket.socket, up: socket.socket, index: int) -> None:
        stop = threading.Event()

        def cut() -> None:
            stop.set()
            for s in (down, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        both = _AnyEvent(stop, self._stop)
        seed = (self.faults.seed if self.faults else 0) + 2 * index
        pumps = [
            _Pump(_sock_reader(down), up.sendall, self.faults, self.byte_rate, both, cut,
                  self.counter, "up", seed),
            _Pump(_sock_reader(up), down.sendall, self.faults, self.byte_rate, both, cut,
                  self.counter, "down", seed + 1),
        ]
        with self._lock:
            self._socks += [down, up]
            self._threads += pumps
        for pump in pumps:
            pump.start()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=5)
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TcpProxy:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AnyEvent:
    """``is_set`` true when any of the events is set (pump stop condition)."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _sock_reader(sock: socket.socket) -> Callable[[float, int], bytes | None]:
    def read(timeout: float, max_bytes: int) -> bytes | None:
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return b""
        data = sock.recv(max_bytes)
        return data if data else None
    return read
