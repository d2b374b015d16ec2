"""Transports: bytes in and out with a bound on every wait.

:class:`SerialTransport` (any pyserial port, including pyserial's ``socket://``
handler used by the client for TCP) and :class:`SocketTransport` (a socket
accepted by the agent).  pyserial is imported only where a port is used, so
``import bitlet.drivers`` works without it.
"""
from __future__ import annotations

import contextlib
import os
import select
import socket
from typing import Any

from bitlet.drivers.link.address import LinkAddress
from bitlet.drivers.link.errors import LinkBroken, LinkTimeout


class Transport:
    """Bytes in and out; every wait bounded."""

    name = "transport"

    def read_some(self, timeout: float) -> bytes:
        """Return the bytes available (b"" after ``timeout`` seconds without any)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (bounded by the transport's write timeout)."""
        raise NotImplementedError

    def discard_input(self) -> None:
        """Drop whatever is waiting to be read."""

    def close(self) -> None:
        """Close (idempotent)."""


class SerialTransport(Transport):
    """A pyserial port (a UART, a pty, or pyserial's ``socket://`` handler).

    Parameters
    ----------
    port : serial.SerialBase
        An open port.  Its read timeout is set to 0 (reads never block; the
        waits are ``select`` calls with a timeout, or bounded polls where the
        platform has no ``select`` on serial ports).
    write_timeout : float
        Seconds one write may block.
    """

    def __init__(self, port: Any, *, write_timeout: float, name: str = "serial"):
        self.port = port
        self.name = name
        self._fileno = self._selectable_fileno(port)
        port.timeout = 0 if self._fileno is not None else 0.02
        port.write_timeout = write_timeout

    @staticmethod
    def _selectable_fileno(port: Any) -> int | None:
        if os.name == "nt" and getattr(port, "_socket", None) is None:
            return None  # Windows selects sockets only: COM ports use bounded polls
        try:
            return port.fileno()
        except (AttributeError, OSError, ValueError):  # pragma: no cover - no fileno
            return None

    def read_some(self, timeout: float) -> bytes:
        import serial  # loaded on use: `import bitlet.drivers` never imports pyserial

        try:
            if self._fileno is not None:
                ready, _, _ = select.select([self._fileno], [], [], max(timeout, 0.0))
                if not ready:
                    return b""
                return self.port.read(1 << 16)
            data = self.port.read(1)  # pragma: no cover - Windows: bounded poll
            return data + self.port.read(self.port.in_waiting) if data else b""  # pragma: no cover
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkBroken(f"{self.name}: read failed: {exc}") from exc

    def write(self, data: bytes) -> None:
        import serial  # loaded on use: `import bitlet.drivers` never imports pyserial

        try:
            self.port.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkTimeout(f"{self.name}: write of {len(data)} bytes blocked longer than "
                              f"{self.port.write_timeout} s (nothing reading the line?)") from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkBroken(f"{self.name}: write failed: {exc}") from exc

    def discard_input(self) -> None:
        with contextlib.suppress(Exception):  # a broken port is reported by the next read
            self.port.reset_input_buffer()

    def close(self) -> None:
        sock = getattr(self.port, "_socket", None)  # pyserial's socket:// handler
        with contextlib.suppress(Exception):  # closing a broken port must not raise
            self.port.close()
        if sock is not None:  # pyserial skips close() when shutdown() fails
            sock.close()


class SocketTransport(Transport):
    """A connected TCP socket (the agent's side of a TCP link)."""

    def __init__(self, sock: socket.socket, *, write_timeout: float, name: str = "tcp"):
        self.sock = sock
        self.name = name
        sock.settimeout(write_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_some(self, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
            if not ready:
                return b""
            data = self.sock.recv(1 << 16)
        except OSError as exc:
            raise LinkBroken(f"{self.name}: read failed: {exc}") from exc
        if not data:
            raise LinkBroken(f"{self.name}: connection closed by the peer")
        return data

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise LinkTimeout(f"{self.name}: write of {len(data)} bytes timed out") from exc
        except OSError as exc:
            raise LinkBroken(f"{self.name}: write failed: {exc}") from exc

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_transport(address: LinkAddress, *, write_timeout: float = 10.0,
                   connect_timeout: float = 5.0) -> SerialTransport:
    """Open the client side of a link through pyserial.

    Serial devices open at ``address.baud``; TCP goes through pyserial's
    ``socket://`` handler.

    Raises
    ------
    bitlet.LinkError
        The port cannot be opened or the host does not answer.
    """
    import serial  # loaded on use: `import bitlet.drivers` never imports pyserial

    url = address.pyserial_url()
    try:
        if address.scheme == "serial":
            port = serial.serial_for_url(url, baudrate=address.baud, timeout=0,
                                         write_timeout=write_timeout)
        else:
            port = _open_socket_port(url, connect_timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkBroken(f"cannot open link {address}: {exc}") from exc
    return SerialTransport(port, write_timeout=write_timeout, name=str(address))


def _open_socket_port(url: str, connect_timeout: float) -> Any:
    """pyserial ``socket://`` port whose connect is bounded by ``connect_timeout``."""
    import serial  # loaded on use: `import bitlet.drivers` never imports pyserial

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(connect_timeout)  # pyserial's connect has no timeout of its own
    try:
        port = serial.serial_for_url(url, timeout=0, do_not_open=True)
        port.open()
    finally:
        socket.setdefaulttimeout(previous)
    try:
        port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # pragma: no cover - older pyserial
        pass
    return port
