"""Framed, checksummed link between the SDK and a board agent (UART or TCP).

Layers, bottom to top (the agent, :mod:`bitlet.runtime.agent`, and the client,
:mod:`bitlet.drivers.remote`, share all of them):

1. **URL** -- :func:`parse_url`: ``serial:///dev/ttyUSB1?baud=921600``,
   ``tcp://HOST:PORT`` (``socket://`` is an alias, as in pyserial).
2. **Transport** -- bytes in and out with a bound on every wait:
   :class:`SerialTransport` (any pyserial port, including pyserial's
   ``socket://`` handler used by the client for TCP) and
   :class:`SocketTransport` (a socket accepted by the agent).
3. **Frames** -- ``SYNC | type | flags | rid | offset | total | length |
   header CRC32 | payload | payload CRC32`` (little-endian, see
   :data:`HEADER`).  The header has its own CRC so a corrupted length is
   rejected before anything is allocated or awaited; a bad frame is dropped
   and the parser resynchronises on the next sync word.
4. **Messages** -- :func:`pack_message`/:func:`unpack_message`: a JSON
   header plus raw numpy payloads (dtype from :data:`WIRE_DTYPES`, shape,
   bytes).  Nothing executable or pickled ever crosses the link.
5. **Transfers** -- :class:`Peer`: a message travels as DATA chunks under a
   sliding window (several chunks in flight), acknowledged cumulatively by
   ACK frames; a lost chunk is recovered by fast retransmit (three duplicate
   ACKs) or, after an ACK timeout, by going back to the last acknowledged
   byte.  After a cut link the client asks (QUERY) where the agent stands and
   resumes from there, never from zero.  Retries are bounded: a link that
   makes no progress raises :class:`LinkTimeout`.

:class:`PtyRelay` and :class:`TcpProxy` emulate a line between two endpoints
(a pseudo-terminal pair or loopback TCP) with optional pacing at a baud rate
(8N1: 10 line bits per byte) and fault injection (drop, corrupt, duplicate,
delay, cut); the tests and ``benchmarks/link_throughput.py`` use them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import random
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from bitlet.errors import BitletValueError, LinkError

# ---------------------------------------------------------------------------
# Protocol constants
# ---------------------------------------------------------------------------
#: bump on any change of frames, message layout or operations
PROTOCOL_VERSION = 2  # 2: memory_window, reset, model_profile_records; run timings

SYNC = b"\xb1\x7e"
#: sync(2s) type(B) flags(B) rid(I) offset(Q) total(Q) length(I) header_crc(I)
HEADER = struct.Struct("<2sBBIQQII")
_HEADER_CRC_SPAN = HEADER.size - 4
_U32 = struct.Struct("<I")
FRAME_OVERHEAD = HEADER.size + _U32.size

# frame types
HELLO, WELCOME, DATA, ACK, QUERY, ERROR = 1, 2, 3, 4, 5, 6
FRAME_NAMES = {HELLO: "HELLO", WELCOME: "WELCOME", DATA: "DATA", ACK: "ACK",
               QUERY: "QUERY", ERROR: "ERROR"}
# ACK flags
ACK_COMPLETE = 0x01  # the receiver holds the whole message

#: attributes of an exception raised on the agent that travel with its error reply
#: (a KernelTimeout's diagnosis: register dump, last instruction, likely causes)
ERROR_DETAILS = ("registers", "insn_done", "n_insn", "causes", "timeout")

#: baud rate of a serial URL without ``?baud=``
DEFAULT_BAUD = 115200
#: line bits per byte on a UART (8N1: start + 8 data + stop)
BITS_PER_BYTE = 10

#: numpy dtypes allowed on the wire (little-endian byte strings)
WIRE_DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8",
                         "<f2", "<f4", "<f8"})
_MAX_NDIM = 8


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds every length read from the link is checked against.

    Attributes
    ----------
    max_frame : int
        Largest frame payload accepted, bytes.
    max_message : int
        Largest message (request or reply) accepted, bytes.
    max_json : int
        Largest JSON header of a message, bytes.
    max_arrays : int
        Most arrays in one message.
    max_ahead : int
        Most bytes kept of chunks received beyond a gap (out of order).

    A message buffer grows with the bytes actually received, so an announced
    size is never allocated on trust; DATA frames are only accepted after a
    handshake (and the token, when the agent has one).
    """

    max_frame: int = 1 << 20
    max_message: int = 256 << 20
    max_json: int = 1 << 20
    max_arrays: int = 64
    max_ahead: int = 4 << 20


#: the limits used when none are given
DEFAULT_LIMITS = Limits()


@dataclasses.dataclass(frozen=True)
class Tuning:
    """Chunking, windowing and retry parameters of one link.

    Attributes
    ----------
    chunk : int
        Payload bytes per DATA frame.
    window : int
        DATA frames in flight before an acknowledgement is needed.
    byte_rate : float or None
        Line rate in bytes/s (baud / 10 for a UART); None for TCP.
    ack_timeout : float
        Seconds without acknowledged progress before going back to the last
        acknowledged byte, on top of twice the line time of the bytes in
        flight (:meth:`timeout_for`).
    max_retries : int
        Consecutive ACK timeouts without progress before :class:`LinkTimeout`.
    poll : float
        Longest single blocking read, seconds (the loops re-check deadlines
        at least this often).
    """

    chunk: int
    window: int
    byte_rate: float | None
    ack_timeout: float
    max_retries: int = 6
    poll: float = 0.02

    def __post_init__(self) -> None:
        for name in ("chunk", "window", "max_retries"):
            value = getattr(self, name)
            low = 0 if name == "max_retries" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise BitletValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("ack_timeout", "poll"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise BitletValueError(f"{name} must be a positive number of seconds, "
                                       f"got {value!r}")
        if self.byte_rate is not None and not self.byte_rate > 0:
            raise BitletValueError(f"byte_rate must be positive or None, got {self.byte_rate!r}")

    @classmethod
    def for_address(cls, address: LinkAddress, **overrides: Any) -> Tuning:
        """Defaults for a link: 4 KiB x 8 chunks on a UART, 32 KiB x 8 on TCP."""
        if address.scheme == "serial":
            byte_rate, chunk, window, ack_timeout = address.baud / BITS_PER_BYTE, 4096, 8, 0.4
        else:  # TCP itself never loses bytes: timeouts only matter around a cut
            byte_rate, chunk, window, ack_timeout = None, 32768, 8, 0.25
        values = {"chunk": chunk, "window": window, "byte_rate": byte_rate,
                  "ack_timeout": ack_timeout}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def timeout_for(self, in_flight: int) -> float:
        """Seconds to wait for an acknowledgement with ``in_flight`` bytes sent.

        The bytes must cross the line and their acknowledgements come back
        behind whatever the peer is sending: twice their line time, plus
        :attr:`ack_timeout` for latency and scheduling.
        """
        return self.ack_timeout + 2.0 * self.transfer_time(in_flight)

    def transfer_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` need on the line (0 for TCP)."""
        if not self.byte_rate:
            return 0.0
        chunks = -(-nbytes // self.chunk)
        return (nbytes + chunks * FRAME_OVERHEAD) / self.byte_rate


class LinkBroken(LinkError):
    """The connection was closed or failed (reconnect may help)."""


class LinkTimeout(LinkError, TimeoutError):
    """No progress on the link within the bounded timeouts and retries."""


class LinkProtocolError(LinkError):
    """The peer sent something the protocol does not allow."""


# ---------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LinkAddress:
    """A parsed link URL.

    Attributes
    ----------
    scheme : str
        ``"serial"`` or ``"tcp"`` (``socket://`` parses as ``"tcp"``).
    path : str
        Serial device (``/dev/ttyUSB1``, ``COM3``); empty for TCP.
    host : str
        TCP host; empty for serial.
    port : int
        TCP port (0: any free port, for a listening agent); 0 for serial.
    baud : int
        Serial baud rate; 0 for TCP.
    options : dict
        The remaining query parameters (string values).
    """

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 0
    options: dict = dataclasses.field(default_factory=dict)

    def pyserial_url(self) -> str:
        """The URL to hand to ``serial.serial_for_url``."""
        if self.scheme == "serial":
            return self.path
        return f"socket://{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.scheme == "serial":
            return f"serial://{self.path}?baud={self.baud}"
        return f"tcp://{self.host}:{self.port}"


REMOTE_SCHEMES = ("serial", "tcp", "socket")


def parse_url(url: str, *, default_host: str = "127.0.0.1") -> LinkAddress:
    """Parse a link URL.

    Parameters
    ----------
    url : str
        ``serial:///dev/ttyPS0?baud=921600``, ``serial://COM3``,
        ``tcp://HOST:PORT``, ``tcp://:PORT`` (host = ``default_host``) or
        ``socket://HOST:PORT``.
    default_host : str
        Host used when the URL names none.

    Returns
    -------
    LinkAddress

    Raises
    ------
    bitlet.BitletValueError
        Unknown scheme, missing device or port, bad baud rate.
    """
    if not isinstance(url, str):
        raise BitletValueError(f"url must be a string like 'tcp://HOST:PORT', got {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "serial":
        path = parts.netloc + parts.path
        if not path:
            raise BitletValueError(f"url {url!r}: no serial device (serial:///dev/ttyUSB1?baud=921600)")
        baud_text = options.pop("baud", str(DEFAULT_BAUD))
        try:
            baud = int(baud_text)
        except ValueError:
            baud = 0
        if baud <= 0:
            raise BitletValueError(f"url {url!r}: baud must be a positive integer, got {baud_text!r}")
        return LinkAddress("serial", path=path, baud=baud, options=options)
    if scheme in ("tcp", "socket"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise BitletValueError(f"url {url!r}: no TCP port (tcp://HOST:PORT)")
        return LinkAddress("tcp", host=parts.hostname or default_host, port=port, options=options)
    raise BitletValueError(
        f"url {url!r}: unknown link scheme {parts.scheme!r}; use serial://DEVICE?baud=N or tcp://HOST:PORT")


# ---------------------------------------------------------------------------
# Versions exchanged in the handshake
# ---------------------------------------------------------------------------
def local_versions() -> dict[str, Any]:
    """Protocol, SDK and ISA versions and the kernel configuration of this SDK."""
    from bitlet import hw
    from bitlet._version import __version__

    return {
        "protocol": PROTOCOL_VERSION,
        "sdk": __version__,
        "isa": hw.ISA_VERSION,
        "magic": hw.MAGIC,
        "config": {"n_pe": hw.N_PE, "group": hw.GROUP, "act_buf_words": hw.ACT_BUF_WORDS,
                   "wgt_buf_words": hw.WGT_BUF_WORDS, "out_buf_words": hw.OUT_BUF_WORDS},
    }


def version_mismatch(mine: dict, theirs: dict, me: str, them: str) -> str | None:
    """A sentence naming both sides when two version sets cannot work together.

    Protocol, ISA version and magic must be equal; SDK versions must agree in
    major.minor; the kernel configurations must be equal where both give it;
    the ID registers of the served kernel (``theirs["kernel"]``, when the
    agent's device has probed them) must carry ``mine``'s magic and ISA.
    """
    problems = []
    for key in ("protocol", "isa", "magic"):
        if mine.get(key) != theirs.get(key):
            problems.append(f"{key} {me}={mine.get(key)!r} {them}={theirs.get(key)!r}")
    kernel = theirs.get("kernel")
    if isinstance(kernel, dict):
        for key, reg in (("magic", "magic"), ("isa", "version")):
            if reg in kernel and kernel[reg] != mine.get(key):
                problems.append(f"{key} {me}={mine.get(key)!r} {them}'s overlay={kernel[reg]!r}")
    if _major_minor(mine.get("sdk")) != _major_minor(theirs.get("sdk")):
        problems.append(f"SDK {me}={mine.get('sdk')!r} {them}={theirs.get('sdk')!r}")
    mine_cfg, their_cfg = mine.get("config") or {}, theirs.get("config") or {}
    for key in sorted(set(mine_cfg) & set(their_cfg)):
        if mine_cfg[key] != their_cfg[key]:
            problems.append(f"kernel {key} {me}={mine_cfg[key]!r} {them}={their_cfg[key]!r}")
    if not problems:
        return None
    return ("version mismatch between " + me + " and " + them + ": " + "; ".join(problems)
            + ". Install the same bitlet SDK on both sides (pip install bitlet==<version>) "
              "and load the overlay this SDK was built for.")


def _major_minor(version: Any) -> tuple:
    return tuple(str(version).split(".")[:2])


def auth_digest(token: bytes, nonce: str, client_id: str) -> str:
    """HMAC-SHA256 of the agent's nonce and the client id under the shared token."""
    return hmac.new(token, f"{nonce}:{client_id}".encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------
# Transports
# ---------------------------------------------------------------------------
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
        import serial

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
        import serial

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
    import serial

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
    import serial

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


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Frame:
    """One received frame (fields as in :data:`HEADER`)."""

    ftype: int
    flags: int
    rid: int
    offset: int
    total: int
    payload: bytes

    def json(self) -> dict:
        """The payload decoded as a JSON object (HELLO, WELCOME, ERROR)."""
        try:
            value = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise LinkProtocolError(f"{FRAME_NAMES.get(self.ftype)} frame: payload is not JSON") from exc
        if not isinstance(value, dict):
            raise LinkProtocolError(f"{FRAME_NAMES.get(self.ftype)} frame: payload is not a JSON object")
        return value


def encode_frame(ftype: int, rid: int = 0, offset: int = 0, total: int = 0,
                 payload: bytes | memoryview = b"", flags: int = 0) -> bytes:
    """Serialise one frame: header, header CRC32, payload, payload CRC32."""
    head = HEADER.pack(SYNC, ftype, flags, rid, offset, total, len(payload), 0)
    head = head[:_HEADER_CRC_SPAN] + _U32.pack(zlib.crc32(head[:_HEADER_CRC_SPAN]))
    return b"".join((head, payload, _U32.pack(zlib.crc32(payload))))


class FrameParser:
    """Incremental frame decoder with resynchronisation.

    Parameters
    ----------
    max_payload : int
        Frames announcing a longer payload are rejected from their header,
        before any byte of payload is buffered for them.

    Attributes
    ----------
    bad_frames : int
        Headers or payloads that failed their CRC or bounds (each costs a
        resynchronisation).
    skipped : int
        Bytes skipped while looking for a sync word.
    """

    def __init__(self, max_payload: int):
        self.max_payload = max_payload
        self._buf = bytearray()
        self.bad_frames = 0
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()

    def next(self) -> Frame | None:
        """The next complete valid frame, or None when more bytes are needed."""
        buf = self._buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self.skipped += len(buf) - keep
                del buf[:len(buf) - keep]
                return None
            if start:
                self.skipped += start
                del buf[:start]
            if len(buf) < HEADER.size:
                return None
            _, ftype, flags, rid, offset, total, length, hcrc = HEADER.unpack_from(buf)
            if (zlib.crc32(bytes(buf[:_HEADER_CRC_SPAN])) != hcrc
                    or ftype not in FRAME_NAMES or length > self.max_payload):
                self._resync()
                continue
            end = HEADER.size + length
            if len(buf) < end + _U32.size:
                return None
            payload = bytes(buf[HEADER.size:end])
            if zlib.crc32(payload) != _U32.unpack_from(buf, end)[0]:
                self._resync()
                continue
            del buf[:end + _U32.size]
            return Frame(ftype, flags, rid, offset, total, payload)

    def _resync(self) -> None:
        self.bad_frames += 1
        self.skipped += 1
        del self._buf[:1]


# ---------------------------------------------------------------------------
# Messages: JSON header + raw arrays
# ---------------------------------------------------------------------------
def wire_dtype(dtype: Any) -> np.dtype:
    """The little-endian wire form of ``dtype``; raises if it is not allowed."""
    dt = np.dtype(dtype)
    if dt.kind in "biuf" and dt.itemsize > 1:
        dt = dt.newbyteorder("<")
    if dt.str not in WIRE_DTYPES:
        raise BitletValueError(
            f"dtype {dt} cannot cross the link; allowed: {sorted(WIRE_DTYPES)}")
    return dt


def pack_message(header: dict, arrays: tuple | list = ()) -> bytes:
    """Serialise a message.

    Parameters
    ----------
    header : dict
        JSON-serialisable values only (no key ``"arrays"``).
    arrays : sequence of numpy.ndarray
        Any shape; dtypes from :data:`WIRE_DTYPES` (sent little-endian).

    Returns
    -------
    bytes
        ``uint32 json_length | JSON | array bytes...``.
    """
    metas, blobs = [], []
    for index, array in enumerate(arrays):
        array = np.asarray(array)
        try:
            dt = wire_dtype(array.dtype)
        except BitletValueError as exc:
            raise BitletValueError(f"array {index}: {exc}") from None
        array = np.ascontiguousarray(array, dtype=dt)
        metas.append({"dtype": dt.str, "shape": list(array.shape)})
        blobs.append(array.reshape(-1).view(np.uint8).data)
    text = json.dumps(dict(header, arrays=metas), separators=(",", ":"), allow_nan=False)
    head = text.encode("utf-8")
    return b"".join([_U32.pack(len(head)), head, *blobs])


def unpack_message(data: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> tuple[dict, list]:
    """Parse a message built by :func:`pack_message`, checking every bound.

    Returns
    -------
    header : dict
    arrays : list of numpy.ndarray
        Writable arrays (views of ``data`` when it is a bytearray).

    Raises
    ------
    LinkProtocolError
        Malformed header, dtype outside the allow-list, sizes that do not add up.
    """
    view = memoryview(data)
    if len(view) < _U32.size:
        raise LinkProtocolError("message shorter than its length prefix")
    (json_len,) = _U32.unpack_from(view)
    if json_len > limits.max_json or _U32.size + json_len > len(view):
        raise LinkProtocolError(f"message JSON header length {json_len} out of bounds")
    try:
        header = json.loads(bytes(view[_U32.size:_U32.size + json_len]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LinkProtocolError(f"message header is not valid JSON: {exc}") from exc
    metas = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(metas, list) or len(metas) > limits.max_arrays:
        raise LinkProtocolError("message header lacks a bounded 'arrays' list")
    offset = _U32.size + json_len
    arrays = []
    for meta in metas:
        dt, shape = _check_array_meta(meta)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if offset + nbytes > len(view):
            raise LinkProtocolError(f"array of {nbytes} bytes overruns the message")
        arrays.append(np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize,
                                    offset=offset).reshape(shape))
        offset += nbytes
    if offset != len(view):
        raise LinkProtocolError(f"{len(view) - offset} stray bytes after the arrays of a message")
    return header, arrays


def _check_array_meta(meta: Any) -> tuple[np.dtype, tuple]:
    if not isinstance(meta, dict) or meta.get("dtype") not in WIRE_DTYPES:
        raise LinkProtocolError(f"array descriptor {meta!r}: dtype not in the allow-list")
    shape = meta.get("shape")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 40
                       for n in shape)):
        raise LinkProtocolError(f"array descriptor {meta!r}: bad shape")
    return np.dtype(meta["dtype"]), tuple(shape)


# ---------------------------------------------------------------------------
# Transfers
# ---------------------------------------------------------------------------
class Outbound:
    """Sender state of one message: window, acknowledgements, retries."""

    def __init__(self, rid: int, data: bytes, tuning: Tuning, acked: int = 0):
        self.rid = rid
        self.data = memoryview(data)
        self.total = len(data)
        self.tuning = tuning
        self.acked = min(acked, self.total)
        self.next = self.acked
        self.retries = 0
        self.dup_acks = 0
        self.last_progress = time.monotonic()
        self.resent_bytes = 0

    @property
    def done(self) -> bool:
        return self.acked >= self.total

    def frames_to_send(self, now: float) -> list[bytes]:
        """DATA frames to write now (window fill, or a go-back after a timeout).

        Raises
        ------
        LinkTimeout
            ``max_retries`` timeouts in a row without acknowledged progress.
        """
        t = self.tuning
        wait = t.timeout_for(max(self.next - self.acked, t.chunk))
        if not self.done and now - self.last_progress > wait:
            self.retries += 1
            if self.retries > t.max_retries:
                raise LinkTimeout(
                    f"request {self.rid}: no acknowledgement for {self.retries} x {wait:.2f} s; "
                    f"{self.acked} of {self.total} bytes acknowledged")
            self.resent_bytes += self.next - self.acked
            self.next = self.acked  # go back to the last acknowledged byte
            self.last_progress = now
        frames = []
        limit = self.acked + t.chunk * t.window
        while self.next < self.total and self.next < limit:
            frames.append(self._frame(self.next))
            self.next = min(self.next + t.chunk, self.total)
        if self.total == 0 and self.next == 0 and not frames and not self.done:
            frames.append(self._frame(0))  # pragma: no cover - messages are never empty
        return frames

    def _frame(self, offset: int) -> bytes:
        end = min(offset + self.tuning.chunk, self.total)
        return encode_frame(DATA, self.rid, offset, self.total, self.data[offset:end])

    def on_ack(self, acked: int, now: float) -> list[bytes]:
        """Account an ACK; returns a frame to resend on a third duplicate ACK."""
        if acked > self.acked:
            self.acked = min(acked, self.total)
            self.next = max(self.next, self.acked)
            self.retries = 0
            self.dup_acks = 0
            self.last_progress = now
            return []
        if acked == self.acked and self.next > self.acked:
            self.dup_acks += 1
            if self.dup_acks == 3:  # fast retransmit of the first missing chunk
                self.resent_bytes += min(self.tuning.chunk, self.total - self.acked)
                return [self._frame(self.acked)]
        return []


class Inbound:
    """Receiver state of one message: buffer and received chunks."""

    def __init__(self, rid: int, total: int, limits: Limits):
        if total > limits.max_message:
            raise LinkProtocolError(
                f"request {rid}: message of {total} bytes exceeds the limit of {limits.max_message}")
        self.rid = rid
        self.total = total
        self.buf = bytearray()  # grows with the bytes received: nothing allocated on trust
        self._ahead: dict[int, bytes] = {}  # chunks received beyond a gap
        self._ahead_bytes = 0
        self.max_ahead = limits.max_ahead

    @property
    def received(self) -> int:
        """Contiguous bytes held from offset 0."""
        return len(self.buf)

    @property
    def done(self) -> bool:
        return self.received >= self.total

    def add(self, offset: int, payload: bytes) -> int:
        """Store a chunk; returns the bytes newly stored (0 for a duplicate).

        Chunks past a gap are kept (at most ``max_ahead`` bytes of them) until
        the gap is filled.
        """
        end = offset + len(payload)
        if not payload or end > self.total or offset < self.received or offset in self._ahead:
            return 0
        if offset > self.received:
            if self._ahead_bytes + len(payload) > self.max_ahead:
                return 0  # the sender goes back to the gap anyway
            self._ahead[offset] = payload
            self._ahead_bytes += len(payload)
            return len(payload)
        self.buf += payload
        while self.received in self._ahead:
            chunk = self._ahead.pop(self.received)
            self._ahead_bytes -= len(chunk)
            self.buf += chunk
        return len(payload)


class Peer:
    """One end of a link: frame I/O plus the inbound and outbound transfers.

    Parameters
    ----------
    transport : Transport
    tuning : Tuning
    limits : Limits

    Attributes
    ----------
    stats : dict
        ``bytes_out``, ``bytes_in`` (line bytes), ``data_bytes_in`` (new
        message bytes stored), ``data_frame_bytes_in`` (DATA payload bytes
        received, duplicates included), ``frames_in``, ``bad_frames``,
        ``resent_bytes``.
    """

    def __init__(self, transport: Transport, tuning: Tuning, limits: Limits = DEFAULT_LIMITS):
        self.transport = transport
        self.tuning = tuning
        self.limits = limits
        self.parser = FrameParser(max(limits.max_frame, tuning.chunk))
        self.outbound: Outbound | None = None
        self.inbound: dict[int, Inbound] = {}
        self.stats = {"bytes_out": 0, "bytes_in": 0, "data_bytes_in": 0,
                      "data_frame_bytes_in": 0, "frames_in": 0,
                      "bad_frames": 0, "resent_bytes": 0}

    # -- raw frames -------------------------------------------------------
    def send(self, ftype: int, rid: int = 0, offset: int = 0, total: int = 0,
             payload: bytes = b"", flags: int = 0) -> None:
        self._write(encode_frame(ftype, rid, offset, total, payload, flags))

    def send_json(self, ftype: int, obj: dict, rid: int = 0) -> None:
        self.send(ftype, rid, payload=json.dumps(obj, separators=(",", ":")).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        self.transport.write(data)
        self.stats["bytes_out"] += len(data)

    def recv(self, timeout: float) -> Frame | None:
        """The next valid frame, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.parser.next()
            if frame is not None:
                self.stats["frames_in"] += 1
                self.stats["bad_frames"] = self.parser.bad_frames
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read_some(min(left, self.tuning.poll))
            self.stats["bytes_in"] += len(data)
            self.parser.feed(data)

    # -- transfers ----------------------------------------------------------
    def start_outbound(self, rid: int, data: bytes, acked: int = 0) -> None:
        self.outbound = Outbound(rid, data, self.tuning, acked)

    def pump(self) -> None:
        """Send what the window allows (and go back after an ACK timeout)."""
        out = self.outbound
        if out is None or out.done:
            return
        for frame in out.frames_to_send(time.monotonic()):
            self._write(frame)
        self.stats["resent_bytes"] = out.resent_bytes

    def on_ack(self, frame: Frame) -> None:
        out = self.outbound
        if out is None or frame.rid != out.rid:
            return
        for data in out.on_ack(frame.offset, time.monotonic()):
            self._write(data)

    def on_data(self, frame: Frame) -> bytearray | None:
        """Store a DATA frame, acknowledge it; returns the message once complete.

        Raises
        ------
        LinkProtocolError
            The announced message size exceeds :attr:`Limits.max_message`
            (before anything is allocated).
        """
        inbound = self.inbound.get(frame.rid)
        if inbound is None or inbound.total != frame.total:
            inbound = Inbound(frame.rid, frame.total, self.limits)
            self.inbound.clear()  # one message in flight per direction
            self.inbound[frame.rid] = inbound
        self.stats["data_frame_bytes_in"] += len(frame.payload)
        self.stats["data_bytes_in"] += inbound.add(frame.offset, frame.payload)
        self.ack(inbound.rid, inbound.received, inbound.total)
        if inbound.done:
            del self.inbound[frame.rid]
            return inbound.buf
        return None

    def ack(self, rid: int, received: int, total: int) -> None:
        flags = ACK_COMPLETE if received >= total else 0
        self.send(ACK, rid, received, total, flags=flags)

    def received(self, rid: int) -> int:
        """Contiguous bytes of message ``rid`` held so far (0 if none)."""
        inbound = self.inbound.get(rid)
        return inbound.received if inbound else 0

    def close(self) -> None:
        self.transport.close()


# ---------------------------------------------------------------------------
# Line emulation for tests and benchmarks: pacing and fault injection
# ---------------------------------------------------------------------------
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
        import tty

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
