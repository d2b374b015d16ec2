"""A board behind a serial or TCP link, with the API of a local device.

>>> dev = open_remote("tcp://127.0.0.1:7700")            # doctest: +SKIP
>>> buf = dev.allocate((256,), "float32")                # doctest: +SKIP
>>> buf[:] = 1.0; buf.sync_to_device()                   # doctest: +SKIP

:func:`open_remote` connects to a ``bitlet agent`` (:mod:`bitlet.runtime.agent`)
and returns a :class:`RemoteDevice`: a :class:`bitlet.drivers.Device` whose
buffers, registers and interrupt live on the board.  Buffers are host numpy
arrays (:class:`RemoteBuffer`) whose ``sync_to_device``/``sync_from_device``
move their bytes over the link; ``memory_window()``, ``reset()`` and
``describe()`` are those of the board's device.  :meth:`RemoteDevice.call`
runs any operation of the agent; blobs are uploaded once, keyed by their
sha256 (:meth:`RemoteDevice.put_blob`; the weight images of a dynamic model's
shapes go this way, once, when the agent :meth:`~RemoteDevice.offers`
``shared_weights``).  Programs loaded and run on the
board are the runtime's business: ``bitlet.compile(model, device=dev)`` and
``bitlet.load(path, device=dev)`` return a
:class:`bitlet.runtime.remote.RemoteModel`, called like a local
``CompiledModel``.

An agent started with a token (``bitlet agent --token-env NAME``) needs the
same token here: ``open_remote(url, token=...)``, or the environment
variable ``BITLET_TOKEN`` (which also serves ``bitlet run --device tcp://...``).

Every call has a timeout (the ``timeout`` given to :func:`open_remote`, plus
the time its bytes need on the line).  A cut link is reconnected a bounded
number of times and the interrupted transfer resumes where the agent stands;
a request the agent already executed is never executed again.  Failures
raise :class:`bitlet.LinkError` saying what was in progress.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np
from bitlet import errors
from bitlet.drivers.device import Device, DeviceBuffer
from bitlet.drivers.link.address import parse_url
from bitlet.drivers.link.errors import LinkBroken, LinkError, LinkProtocolError, LinkTimeout
from bitlet.drivers.link.frames import ACK, ACK_COMPLETE, DATA, ERROR, HELLO, QUERY, WELCOME, Frame
from bitlet.drivers.link.handshake import auth_digest, local_versions, version_mismatch
from bitlet.drivers.link.messages import ERROR_DETAILS, pack_message, unpack_message, wire_dtype
from bitlet.drivers.link.peer import Outbound, Peer
from bitlet.drivers.link.settings import DEFAULT_LIMITS, Limits, Tuning
from bitlet.drivers.link.transport import open_transport
from bitlet.errors import BitletTypeError, BitletValueError, DeviceError
from tqdm.auto import tqdm

#: Seconds a call may take beyond its transfer time (default of open_remote).
DEFAULT_TIMEOUT = 30.0
#: Environment variable holding the agent's token when ``open_remote`` is given none.
TOKEN_ENV = "BITLET_TOKEN"
#: Transfers expected to take this many seconds of line time report their progress.
PROGRESS_AFTER = 1.0
#: ... and, on TCP (no line rate), transfers of this many bytes.
PROGRESS_TCP_BYTES = 64 << 20
#: Seconds between two progress reports of one transfer.
PROGRESS_EVERY = 0.25
#: Largest buffer piece moved by one request (bounds the agent's memory per request).
PIECE_BYTES = 16 << 20


def open_remote(url: str, **kwargs: Any) -> RemoteDevice:
    """Connect to a ``bitlet agent`` and return a device.

    Parameters
    ----------
    url : str
        ``serial:///dev/ttyUSB1?baud=921600``, ``tcp://HOST:PORT`` or
        ``socket://HOST:PORT``.
    **kwargs
        See :class:`RemoteDevice` (``token``, ``timeout``, ``reconnects``,
        ``chunk``, ``window``, ...).

    Raises
    ------
    bitlet.LinkError
        The agent cannot be reached, refuses the token or runs an
        incompatible SDK/overlay (the message names both sides' versions).
    """
    return RemoteDevice(url, **kwargs)


class RemoteBuffer(DeviceBuffer):
    """Host array of a buffer allocated on the remote device.

    Views keep the device address of their first byte; syncing a view moves
    only the bytes it spans (the whole extent for a non-contiguous view).
    Arrays computed from a buffer are not device buffers.
    """

    _owner_buf: RemoteBuffer | None  # the root buffer (holds the remote handle)
    _remote: RemoteDevice | None
    _handle: int
    _address: int
    _freed: bool

    def __array_finalize__(self, obj: Any) -> None:
        root = getattr(obj, "_owner_buf", None)
        self._owner_buf = None
        if root is not None:
            start = self.__array_interface__["data"][0]
            base = root.__array_interface__["data"][0]
            if base <= start and start + self.nbytes <= base + root.nbytes:
                self._owner_buf = root

    @property
    def device_address(self) -> int | None:  # type: ignore[override]
        root = self._owner_buf
        if root is None:
            return None
        return root._address + self._byte_extent()[0]

    # (the checks of PynqBuffer._live in drivers/pynq_board.py, for a remote buffer)
    def _root(self, action: str) -> RemoteBuffer:
        root = self._owner_buf
        if root is None:
            raise DeviceError(f"cannot {action}: this array is not in device memory (a copy or "
                              "the result of an operation); write into an allocated buffer")
        if root._freed:
            raise DeviceError(f"cannot {action}: use after free of the remote buffer at "
                              f"0x{root._address:x}")
        return root

    def _byte_extent(self) -> tuple[int, int]:
        """``(offset from the root, bytes)`` of the memory this view touches."""
        root = self._owner_buf
        start = self.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        if self.size == 0:
            return start, 0
        lo = sum(s * (n - 1) for s, n in zip(self.strides, self.shape) if s < 0)
        hi = sum(s * (n - 1) for s, n in zip(self.strides, self.shape) if s > 0)
        return start + lo, hi - lo + self.itemsize

    def sync_to_device(self) -> None:
        """Send the bytes of this view to the device."""
        root = self._root("sync_to_device")
        offset, nbytes = self._byte_extent()
        raw = root.view(np.ndarray).reshape(-1).view(np.uint8)[offset:offset + nbytes]
        root._remote._write(root._handle, offset, raw)

    def sync_from_device(self) -> None:
        """Fetch the bytes of this view from the device."""
        root = self._root("sync_from_device")
        offset, nbytes = self._byte_extent()
        data = root._remote._read(root._handle, offset, nbytes)
        root.view(np.ndarray).reshape(-1).view(np.uint8)[offset:offset + nbytes] = data

    def freebuffer(self) -> None:
        """Release the remote memory; freeing twice raises DeviceError."""
        root = self._root("freebuffer")
        root._remote.free(root)


class RemoteDevice(Device):
    """A device served by a ``bitlet agent`` over a link.

    Parameters
    ----------
    url : str
        Link URL (see :func:`bitlet.drivers.link.parse_url`).
    token : str or bytes, optional
        Shared secret of an agent started with a token; default: the
        environment variable :data:`TOKEN_ENV` (``BITLET_TOKEN``) when set,
        so ``bitlet run --device tcp://...`` reaches such an agent too.
    timeout : float
        Seconds a call may take, on top of the line time of its bytes.
    connect_timeout : float
        Seconds to open the link and complete the handshake.
    reconnects : int
        Reconnections attempted within one call after the link breaks.
    chunk, window : int, optional
        Transfer chunk size (bytes) and chunks in flight; defaults per link
        kind (:meth:`bitlet.drivers.link.Tuning.for_address`).
    ack_timeout, max_retries : optional
        Seconds of silence (beyond the line time of the bytes in flight)
        before resending, and resends without progress before the link is
        reopened (see :class:`bitlet.drivers.link.Tuning`).
    limits : Limits
        Bounds on what the agent may send back.
    progress : callable, bool or None
        Progress of long transfers (over :data:`PROGRESS_AFTER` seconds of
        line time, e.g. a program uploaded at 115200 baud):
        ``progress(done_bytes, total_bytes, what)`` is called at most every
        0.25 s and once at the end; True prints a line on stderr; False
        never reports; None (default) prints when stderr is a terminal.

    Attributes
    ----------
    agent : dict
        What the agent said in the handshake (versions, kernel, limits).
    stats : dict
        ``calls``, ``reconnects``, ``resumed_from`` (request byte offsets an
        upload resumed at after a reconnect), ``reply_resumed_from`` (reply
        byte offsets a download resumed at), ``weight_bytes_sent`` (bytes of
        weight images sent, alone or inside whole programs); :meth:`link_stats`
        adds the byte counters of the link.
    weights_held : set of str
        SHA-256 of the weight images the agent was seen to hold (sent or found
        there): programs of later shapes refer to them instead of carrying them.
    """

    kind = "remote"

    def __init__(self, url: str, *, token: str | bytes | None = None,
                 timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = 5.0,
                 reconnects: int = 3, chunk: int | None = None, window: int | None = None,
                 ack_timeout: float | None = None, max_retries: int | None = None,
                 limits: Limits = DEFAULT_LIMITS, progress: Any = None):
        self.address = parse_url(url)
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise BitletValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(reconnects, bool) or not isinstance(reconnects, int) or reconnects < 0:
            raise BitletValueError(f"reconnects must be an int >= 0, got {reconnects!r}")
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        if token is not None and (not isinstance(token, (str, bytes)) or not token):
            raise BitletTypeError(f"token must be a non-empty str or bytes, got {token!r}")
        if not isinstance(limits, Limits):
            raise BitletTypeError(f"limits must be a bitlet.drivers.link.Limits, got {limits!r}")
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise BitletTypeError(f"progress must be a callable(done, total, what), True, False "
                                  f"or None, got {progress!r}")
        if progress is None:
            progress = sys.stderr.isatty()
        self.progress = _TransferBars() if progress is True else progress or None
        self._report: _TransferProgress | None = None
        self.url = url
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.reconnects = reconnects
        self.limits = limits
        self.tuning = Tuning.for_address(self.address, chunk=chunk, window=window,
                                         ack_timeout=ack_timeout, max_retries=max_retries)
        self.token = token.encode() if isinstance(token, str) else token
        self.client_id = os.urandom(8).hex()
        self.agent: dict = {}
        self.stats: dict[str, Any] = {"calls": 0, "reconnects": 0, "resumed_from": [],
                                      "reply_resumed_from": [], "weight_bytes_sent": 0}
        self.weights_held: set[str] = set()  # sha256 of weight images the agent was seen to hold
        self._said: set[str] = set()
        self._rid = 0
        self._peer: Peer | None = None
        self._broken = False
        self._lock = threading.RLock()
        self._retired: dict[str, int] = {}  # byte counters of the connections before this one
        self._buffers: dict[int, RemoteBuffer] = {}
        self._closed = False
        self._connect()

    # -- connection ------------------------------------------------------------
    def _connect(self, deadline: float | None = None) -> None:
        """Open the link and shake hands, within ``connect_timeout`` and ``deadline``."""
        limit = self.connect_timeout
        if deadline is not None:
            limit = max(0.05, min(limit, deadline - time.monotonic()))
        transport = open_transport(self.address, write_timeout=self._write_timeout(),
                                        connect_timeout=limit)
        if self.address.scheme == "serial":
            transport.discard_input()  # whatever the line held before this connection
        peer = Peer(transport, self.tuning, self.limits)
        try:
            self.agent = self._handshake(peer, limit)
            self._fit_chunk(self.agent)
            if self._peer is not None and not self.agent.get("resumed") and self._rid > 1:
                self._session_lost()
        except BaseException:
            peer.close()
            raise
        if self._peer is not None:  # keep a half-received reply across reconnects
            peer.inbound = self._peer.inbound
            self._peer.close()
            for key, value in self._peer.stats.items():
                self._retired[key] = self._retired.get(key, 0) + value
        self._peer = peer
        self._broken = False

    def _session_lost(self) -> None:
        """The agent came back without this client's session: say so, once and clearly."""
        for buf in self._buffers.values():
            buf._freed = True
        self._buffers.clear()
        self._peer.inbound.clear()
        raise LinkError(f"the agent at {self.address} no longer holds this client's session (it "
                        "restarted, or served another client meanwhile): the buffers and programs "
                        "loaded through this device are gone; allocate or load them again")

    def _fit_chunk(self, welcome: dict) -> None:
        """Never send frames larger than the agent accepts."""
        max_frame = (welcome.get("limits") or {}).get("max_frame")
        if isinstance(max_frame, int) and 0 < max_frame < self.tuning.chunk:
            self.tuning = dataclasses.replace(self.tuning, chunk=max_frame)

    def _write_timeout(self) -> float:
        return 5.0 + 4 * self.tuning.transfer_time(self.tuning.chunk * self.tuning.window)

    def _handshake(self, peer: Peer, limit: float) -> dict:
        """HELLO until WELCOME (bounded attempts); checks versions both ways."""
        mine = local_versions()
        hello = {**mine, "client_id": self.client_id}
        deadline = time.monotonic() + limit
        wait = max(0.25, min(1.0, self.tuning.ack_timeout))
        attempts = 0
        while time.monotonic() < deadline and attempts < 20:
            attempts += 1
            peer.send_json(HELLO, hello)
            frame = self._await(peer, (WELCOME, ERROR), min(wait, deadline - time.monotonic()))
            if frame is None:
                continue
            answer = frame.json()
            if frame.ftype == ERROR and answer.get("code") == "no_session":
                continue  # the agent answering frames sent before this handshake
            if frame.ftype == ERROR:
                raise LinkError(f"agent at {self.address} refused the connection: "
                                f"{answer.get('message', answer)}")
            if answer.get("auth_required"):
                if self.token is None:
                    raise LinkError(f"agent at {self.address} requires a token: pass "
                                    "bitlet.open(url, token=...) or set the environment "
                                    f"variable {TOKEN_ENV} to the token the agent was "
                                    "started with (bitlet agent --token-env NAME)")
                hello = {**hello, "auth": auth_digest(self.token, str(answer.get("nonce")),
                                                      self.client_id)}
                continue
            problem = version_mismatch(mine, answer, "client", "agent")
            if problem:
                raise LinkError(f"agent at {self.address}: {problem}")
            return answer
        raise LinkTimeout(f"no handshake answer from an agent at {self.address} within "
                          f"{limit:.2f} s ({attempts} HELLO sent); is "
                          f"`bitlet agent --listen ...` running there"
                          + (" at the same baud rate?" if self.address.scheme == "serial" else "?"))

    @staticmethod
    def _await(peer: Peer, types: tuple, timeout: float) -> Frame | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            frame = peer.recv(max(0.0, deadline - time.monotonic()))
            if frame is None or frame.ftype in types:
                return frame

    def _drop_peer(self) -> None:
        self._broken = True
        if self._peer is not None:
            self._peer.transport.close()

    # -- requests ------------------------------------------------------------------
    def call(self, op: str, args: dict | None = None, arrays: tuple | list = (),
             timeout: float | None = None) -> tuple[Any, list]:
        """Run one operation on the agent.

        Parameters
        ----------
        op : str
            Operation name (see :mod:`bitlet.runtime.agent`).
        args : dict
            JSON arguments.
        arrays : sequence of numpy.ndarray
            Data sent along.
        timeout : float, optional
            Seconds for the operation itself (default: the device's timeout);
            the line time of the bytes is added.

        Returns
        -------
        result : JSON value
        arrays : list of numpy.ndarray

        Raises
        ------
        bitlet.LinkError
            The link failed beyond the bounded reconnects or the deadline.
        bitlet.DeviceError (or subclass)
            The agent's device raised it (re-raised here by class name).
        """
        if self._closed:
            raise DeviceError(f"remote device {self.address} is closed")
        message = pack_message({"op": op, "args": args or {}}, arrays)
        with self._lock:  # one request at a time on the link
            self._rid += 1
            rid = self._rid
            self.stats["calls"] += 1
            budget = (self.timeout if timeout is None else timeout) + 2 * self.tuning.transfer_time(
                len(message)) + 1.0
            self._report = _TransferProgress(self.progress, op, self.tuning) \
                if self.progress else None
            try:
                reply = self._call_with_retries(rid, op, message, time.monotonic() + budget,
                                                budget)
            finally:
                self._report = None
        header, out_arrays = unpack_message(reply, self.limits)
        if not header.get("ok"):
            raise _remote_error(op, header.get("error") or {})
        return header.get("result"), out_arrays

    def _call_with_retries(self, rid: int, op: str, message: bytes, deadline: float,
                           budget: float) -> bytearray:
        resume = False
        attempt = 0
        while True:
            try:
                if self._peer is None or resume or self._broken:
                    self._connect(deadline)
                return self._exchange(rid, message, deadline, resume)
            except (LinkBroken, LinkTimeout) as exc:
                self._drop_peer()
                attempt += 1
                if attempt > self.reconnects or time.monotonic() >= deadline:
                    raise LinkError(
                        f"{op} (request {rid}, {len(message)} bytes) over {self.address} failed "
                        f"after {attempt} attempt(s) within {budget:.1f} s: {exc}") from exc
                self.stats["reconnects"] += 1
                resume = True
                time.sleep(min(0.05 * attempt, max(0.0, deadline - time.monotonic())))

    def _exchange(self, rid: int, message: bytes, deadline: float, resume: bool) -> bytearray:
        """Send request ``rid`` and receive its reply, resuming if asked."""
        peer = self._peer
        tuning = self.tuning
        out = Outbound(rid, message, tuning)
        peer.outbound = out
        querying = resume
        if resume:
            out.next = out.total  # nothing goes out until the agent says where it stands
            if peer.received(rid):
                self.stats["reply_resumed_from"].append(peer.received(rid))
            peer.send(QUERY, rid, peer.received(rid))
        last_rx = time.monotonic()
        queries = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise LinkTimeout(f"no reply to request {rid} before the deadline "
                                  f"({out.acked} of {out.total} request bytes acknowledged, "
                                  f"{peer.received(rid)} reply bytes received)")
            if not querying:
                peer.pump()
            frame = peer.recv(min(tuning.poll, deadline - now))
            if frame is None:
                if (querying or out.done) and time.monotonic() - last_rx > tuning.ack_timeout:
                    queries += 1
                    if querying and queries > tuning.max_retries:
                        raise LinkTimeout(f"request {rid}: the agent does not answer QUERY")
                    peer.send(QUERY, rid, peer.received(rid))
                    last_rx = time.monotonic()
                continue
            last_rx = time.monotonic()
            if frame.ftype == DATA:
                reply = self._on_reply_data(peer, frame, rid)
                if reply is not None:
                    peer.outbound = None
                    return reply
            elif frame.ftype == ACK and frame.rid == rid:
                if querying:
                    querying = False
                    out.acked = out.next = min(frame.offset, out.total)
                    out.last_progress = time.monotonic()
                    self.stats["resumed_from"].append(out.acked)
                else:
                    peer.on_ack(frame)
                if frame.flags & ACK_COMPLETE:
                    out.acked = out.next = out.total
                if self._report is not None:
                    self._report.update("upload", out.acked, out.total)
            elif frame.ftype == ERROR:
                self._on_error(frame, rid)

    def _on_reply_data(self, peer: Peer, frame: Frame, rid: int) -> bytearray | None:
        if frame.rid < rid:  # a late copy of an older reply: let the agent finish it
            peer.ack(frame.rid, frame.total, frame.total)
            return None
        if frame.rid != rid:
            return None
        out = peer.outbound
        if out is not None:
            out.acked = out.next = out.total  # a reply means the request arrived
        reply = peer.on_data(frame)
        if self._report is not None:
            if out is not None:
                self._report.update("upload", out.total, out.total)
            self._report.update("download", peer.received(rid) if reply is None else frame.total,
                                frame.total)
        return reply

    def _on_error(self, frame: Frame, rid: int) -> None:
        try:
            info = frame.json()
        except LinkProtocolError:
            info = {}
        code, text = info.get("code"), info.get("message", "unspecified error")
        if code == "no_session":
            raise LinkBroken(f"the agent lost the session ({text}); reconnecting")
        if frame.rid in (0, rid):
            raise LinkError(f"agent at {self.address}: {text}")

    # -- Device interface ----------------------------------------------------------
    def allocate(self, shape: Any, dtype: Any = np.uint8) -> RemoteBuffer:
        """Allocate a buffer on the remote device (host copy zero-filled).

        Parameters
        ----------
        shape : int or tuple of int
        dtype : numpy dtype-like
            One of :data:`bitlet.drivers.link.WIRE_DTYPES` (native byte order).

        Raises
        ------
        bitlet.OutOfDeviceMemory
            As raised by the agent's device, with its sizes.
        """
        dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                   for n in dims):
            raise BitletValueError(f"shape must be ints >= 0, got {shape!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise BitletTypeError(f"dtype {dtype!r} is not a numpy dtype: {exc}") from None
        wire = wire_dtype(dt)
        result, _ = self.call("alloc", {"shape": [int(n) for n in dims], "dtype": wire.str})
        try:
            buf = _host_mirror(dims, dt)
        except (MemoryError, ValueError) as exc:  # nothing may stay allocated on the board
            self.call("free", {"handle": int(result["handle"])})
            nbytes = int(np.prod(dims, dtype=object)) * dt.itemsize
            raise errors.OutOfDeviceMemory(f"requested {nbytes} bytes: the device holds them but "
                                           f"this host cannot hold their copy ({exc})") from None
        buf._owner_buf = buf
        buf._remote = self
        buf._handle = int(result["handle"])
        buf._address = int(result["device_address"])
        buf._freed = False
        self._buffers[buf._handle] = buf
        return buf

    def free(self, buffer: DeviceBuffer) -> None:
        """Release a buffer; twice raises :class:`bitlet.DeviceError`."""
        root = getattr(buffer, "_owner_buf", None)
        if not isinstance(buffer, RemoteBuffer) or root is None or root._remote is not self:
            raise BitletTypeError("free() takes a buffer allocated by this remote device")
        if root._freed:
            raise DeviceError(f"double free of the remote buffer at 0x{root._address:x}")
        self.call("free", {"handle": root._handle})
        root._freed = True
        self._buffers.pop(root._handle, None)

    def _write(self, handle: int, offset: int, raw: np.ndarray) -> None:
        """Send ``raw`` (uint8) to bytes ``offset..`` of a buffer, in pieces."""
        for start in range(0, max(raw.size, 1), PIECE_BYTES):
            piece = raw[start:start + PIECE_BYTES]
            self.call("write", {"handle": handle, "offset": int(offset + start)}, [piece])

    def _read(self, handle: int, offset: int, nbytes: int) -> np.ndarray:
        """Fetch bytes ``offset..offset+nbytes`` of a buffer (uint8), in pieces."""
        out = np.empty(nbytes, np.uint8)
        for start in range(0, max(nbytes, 1), PIECE_BYTES):
            size = min(PIECE_BYTES, nbytes - start)
            _, arrays = self.call("read", {"handle": handle, "offset": int(offset + start),
                                           "nbytes": int(size)})
            if len(arrays) != 1 or arrays[0].size != size:
                raise LinkProtocolError(f"read: the agent returned the wrong size for {size} bytes")
            out[start:start + size] = arrays[0]
        return out

    def read_reg(self, offset: int) -> int:
        """Read a 32-bit kernel register of the remote device."""
        result, _ = self.call("read_reg", {"offset": _check_offset(offset)})
        return int(result)

    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit kernel register of the remote device."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 0 <= value < 1 << 32:
            raise BitletValueError(f"register value must be an int in [0, 2**32), got {value!r}")
        self.call("write_reg", {"offset": _check_offset(offset), "value": int(value)})

    @property
    def has_interrupt(self) -> bool:
        return bool(self.agent.get("interrupt"))

    def wait_interrupt(self, timeout: float) -> bool:
        """Wait on the board for its interrupt (the link time comes on top)."""
        if not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
            raise BitletValueError(f"timeout must be 0..3600 seconds, got {timeout!r}")
        result, _ = self.call("wait_interrupt", {"timeout": float(timeout)},
                              timeout=float(timeout) + self.timeout)
        return bool(result)

    def memory_window(self) -> tuple[int, int]:
        """``(device address, bytes)`` the board's kernel may address (its MEM/MEM_SIZE).

        Asked of the agent's device (:meth:`bitlet.drivers.device.Device.memory_window`).
        """
        result, _ = self.call("memory_window")
        if not (isinstance(result, list) and len(result) == 2
                and all(isinstance(v, int) and v >= 0 for v in result)):
            raise LinkProtocolError(f"memory_window: the agent answered {result!r}, not "
                                    "[address, bytes]")
        return int(result[0]), int(result[1])

    def reset(self) -> None:
        """Reset the board's kernel, e.g. after a :class:`bitlet.KernelTimeout`.

        The agent's device resets (a PYNQ board reloads its overlay, the
        simulator resets its kernel); buffers and loaded programs are kept.

        Raises
        ------
        bitlet.DeviceError
            The agent's device cannot reset (its message says why).
        """
        # a simulator waits for an abandoned run to end (sim.RESET_TIMEOUT, 60 s); a board
        # reloads its overlay: the agent may take that long to answer
        self.call("reset", timeout=max(self.timeout, 60.0))

    def describe(self) -> dict[str, Any]:
        """The agent device's description plus the link's."""
        result, _ = self.call("describe")
        return {**result, "backend": "remote", "remote_backend": result.get("backend"),
                "link": str(self.address), "agent": {k: self.agent.get(k) for k in
                                                     ("sdk", "protocol", "isa", "device")}}

    # -- content-addressed blobs (programs, weights) ----------------------------
    def put_blob(self, data: bytes, *, kind: str | None = None) -> str:
        """Upload ``data`` unless the agent already holds it; returns its sha256.

        ``kind="weights"``: a weight image (counted in ``stats["weight_bytes_sent"]``
        here and in the agent's ``weight_bytes_in``).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BitletTypeError(f"data must be bytes, got {type(data).__name__}")
        digest = hashlib.sha256(data).hexdigest()
        (present,), _ = self.call("blob_has", {"sha256": [digest]})
        if not present:
            args = {"sha256": digest, **({"kind": kind} if kind else {})}
            self.call("blob_put", args, [np.frombuffer(data, dtype=np.uint8)])
            if kind == "weights":
                self.stats["weight_bytes_sent"] += len(data)
        return digest

    def offers(self, feature: str) -> bool:
        """Whether the agent advertised ``feature`` in its handshake (see
        :data:`bitlet.runtime.agent.FEATURES`; an older agent advertises none)."""
        features = self.agent.get("features")
        return isinstance(features, list) and feature in features

    def say_once(self, key: str, text: str) -> None:
        """Warn ``text`` (a RuntimeWarning) the first time ``key`` is said on this device."""
        if key not in self._said:
            self._said.add(key)
            warnings.warn(text, RuntimeWarning, stacklevel=3)

    def close(self) -> None:
        """End the session (the agent frees its buffers and models) and the link.

        Idempotent.  The agent keeps serving other clients; if the link is
        already down the agent frees this session's memory when the next
        client connects.
        """
        if self._closed:
            return
        try:
            if not self._broken:
                self.call("close_session", timeout=1.0)
        except errors.BitletError:
            pass  # best effort: the next client's handshake frees the session anyway
        finally:
            self._closed = True
            self._drop_peer()
            for buf in self._buffers.values():
                buf._freed = True
            self._buffers.clear()

    def link_stats(self) -> dict[str, Any]:
        """Byte and retry counters of all connections so far plus :attr:`stats`."""
        totals = dict(self._retired)
        if self._peer is not None:
            for key, value in self._peer.stats.items():
                totals[key] = totals.get(key, 0) + value
        return {**totals, **self.stats}

    def __repr__(self) -> str:
        return f"RemoteDevice({str(self.address)!r}, agent SDK {self.agent.get('sdk')})"


class _TransferProgress:
    """Reports the progress of one request's long transfers (see RemoteDevice ``progress``)."""

    def __init__(self, sink: Any, op: str, tuning: Tuning):
        self.sink, self.op, self.tuning = sink, op, tuning
        self.last: dict[str, float] = {}
        self.finished: set[str] = set()

    def update(self, direction: str, done: int, total: int) -> None:
        if direction in self.finished or not self._long(total):
            return
        now = time.monotonic()
        if done < total and now - self.last.get(direction, 0.0) < PROGRESS_EVERY:
            return
        self.last[direction] = now
        if done >= total:
            self.finished.add(direction)
        self.sink(min(done, total), total, f"{self.op} {direction}")

    def _long(self, nbytes: int) -> bool:
        if self.tuning.byte_rate:
            return self.tuning.transfer_time(nbytes) >= PROGRESS_AFTER
        return nbytes >= PROGRESS_TCP_BYTES


class _TransferBars:
    """The default progress display: one tqdm bar (``tqdm.auto``: a widget in a
    notebook) per transfer, in bytes, on stderr."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def __call__(self, done: int, total: int, what: str) -> None:
        bar = self._bars.get(what)
        if bar is None:
            bar = self._bars[what] = tqdm(total=total, desc=f"bitlet link: {what}", unit="B",
                                          unit_scale=True, file=sys.stderr, leave=False)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            self._bars.pop(what).close()


def _host_mirror(dims: tuple, dtype: np.dtype) -> RemoteBuffer:
    """The zero-filled host array of a remote buffer."""
    return np.zeros(dims, dtype).view(RemoteBuffer)


def _check_offset(offset: Any) -> int:
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise BitletValueError(f"register offset must be an int >= 0, got {offset!r}")
    return int(offset)


def _remote_error(op: str, error: dict) -> Exception:
    """The local exception for an error the agent reported by class name."""
    name = str(error.get("type", "DeviceError"))
    text = f"{op} on the agent: {error.get('message', '')}"
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.BitletError):
        exc = cls(text)
        details = error.get("details")
        for key in ERROR_DETAILS:  # e.g. a KernelTimeout's register dump, as locally
            if isinstance(details, dict) and key in details:
                setattr(exc, key, details[key])
        return exc
    if name in ("LinkProtocolError", "LinkBroken", "LinkTimeout"):
        return LinkError(text)
    return DeviceError(f"{text} ({name})")
