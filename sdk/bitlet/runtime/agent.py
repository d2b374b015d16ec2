"""The board-side agent: serves a device to a remote SDK over UART or TCP.

Run on the board (``bitlet agent --listen URL`` calls :func:`main`)::

    bitlet agent --listen serial:///dev/ttyPS0?baud=921600
    bitlet agent --listen tcp://127.0.0.1:7700          # localhost only
    BITLET_TOKEN=... bitlet agent --listen tcp://0.0.0.0:7700 --token-env BITLET_TOKEN

and on the laptop ``bitlet.open("tcp://board:7700")`` (see
:mod:`bitlet.drivers.remote`; for an agent with a token pass ``token=`` or
set ``BITLET_TOKEN``, which ``bitlet run --device tcp://...`` reads too); its
programs run there as :class:`bitlet.runtime.remote.RemoteModel`.
The protocol is :mod:`bitlet.drivers.link`.

On a PYNQ board ``/dev/ttyPS0`` is also the Linux console: stop its login
prompt first (``sudo systemctl stop serial-getty@ttyPS0``) and keep kernel
messages off it (``sudo dmesg -n 1``).  Stray console text is harmless to the
protocol (frames are found by sync word and CRC) but costs retransmissions.
A TCP agent listens on 127.0.0.1 unless another interface is named; any
other interface (``0.0.0.0``) is refused without a token (``--token-env``).
The link is not encrypted: use it on a trusted network or through an SSH
tunnel.

The agent serves one client at a time (a board has one kernel).  On TCP a new
connection first has :data:`HANDSHAKE_TIMEOUT` seconds to shake hands (HELLO
and, with a token, the challenge-response) while the current client goes on
being served; only a connection that completed its handshake replaces the
current one (that is how a client comes back after a cut), so two laptops
must not share one board, and a connection that never authenticates is
dropped without disturbing anyone.  A client is
identified by the ``client_id`` of its handshake, so a client that reconnects
after a cut keeps its buffers, its half-received request and its last reply;
a different client starts a fresh session (the previous client's buffers are
freed).  Requests carry increasing ids: a request whose id was already
executed is never executed again -- the cached reply is sent instead.

Operations (``op`` of a request; arguments in the JSON header, data as
arrays): ``describe``, ``memory_window``, ``reset`` (the device's
:meth:`~bitlet.drivers.device.Device.reset`: buffers and loaded models are
kept), ``alloc``, ``free``, ``write``, ``read``, ``read_reg``, ``write_reg``,
``wait_interrupt``, ``blob_has``, ``blob_put`` (content-addressed bytes),
``program_has``, ``program_put`` (a compiled Program, keyed by
:meth:`bitlet.program.Program.digest`), ``model_load``, ``model_run``,
``model_profile``, ``model_profile_records``, ``model_close`` (the program
loaded on the device once and run many times), ``close_session`` (the client
leaves: its buffers and models are freed at once).

Shared weights (the ``shared_weights`` feature of :data:`FEATURES`, said in
WELCOME; the protocol version is unchanged, so agents and clients without it
still talk): the shapes of one dynamic model send their weight image once
(``blob_put`` with ``kind="weights"``; the cache recomputes its sha256) and
their programs without it (``program_put`` with ``weights``: that sha256;
a hash the agent does not hold is refused with
:class:`bitlet.errors.BlobMissing`, and the client sends the bytes); the
program is rebuilt with the weights, must hash to its digest and goes
through the same validating reader.  ``model_load`` with a ``group`` places
it in that group's :class:`~bitlet.runtime.arena.Arena`: one device buffer of
the session per group, each distinct weight image written once, the
kernel's memory window that buffer; the buffer is freed when the group's
last program is closed (or with the session).  ``describe`` replies carry
``agent_stats``: ``weight_bytes_in`` and ``weight_writes`` (see
:class:`Agent`).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import ipaddress
import math
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bitlet import errors
from bitlet._version import __version__
from bitlet.drivers import link, open_device
from bitlet.drivers.link import (
    ACK,
    DATA,
    DEFAULT_LIMITS,
    ERROR,
    HELLO,
    QUERY,
    WELCOME,
    Frame,
    Limits,
    LinkBroken,
    LinkError,
    LinkProtocolError,
    LinkTimeout,
    Peer,
    Tuning,
    auth_digest,
    local_versions,
    version_mismatch,
)
from bitlet.errors import BitletValueError, BlobMissing, DeviceError
from bitlet.jsonable import jsonable
from bitlet.program import Program
from bitlet.runtime.arena import Arena, check_group
from bitlet.runtime.model import CompiledModel, check_compatible, driver_of


# ---------------------------------------------------------------------------
# Content-addressed cache (programs, weights)
# ---------------------------------------------------------------------------
class BlobCache:
    """Bytes keyed by their sha256, least recently used evicted past ``max_bytes``."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._blobs: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self.size = 0

    def __contains__(self, digest: str) -> bool:
        return digest in self._blobs

    def get(self, digest: str) -> bytes:
        try:
            self._blobs.move_to_end(digest)
            return self._blobs[digest]
        except KeyError:
            raise BlobMissing(f"blob {digest[:16]}... is not in the agent's cache "
                              "(evicted or never uploaded); upload it again") from None

    def discard(self, digest: str) -> None:
        """Forget ``digest`` (nothing if not held)."""
        data = self._blobs.pop(digest, None)
        if data is not None:
            self.size -= len(data)

    def put(self, digest: str, data: bytes, verified: bool = False) -> None:
        """Store ``data``; unless ``verified``, its sha256 must be ``digest``."""
        if not verified and hashlib.sha256(data).hexdigest() != digest:
            raise BitletValueError(f"blob {digest[:16]}...: the bytes received do not hash to it")
        if len(data) > self.max_bytes:
            raise BitletValueError(f"blob of {len(data)} bytes exceeds the agent cache "
                                   f"({self.max_bytes} bytes; start the agent with a larger --cache-mb)")
        if digest in self._blobs:
            return
        self._blobs[digest] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, old = self._blobs.popitem(last=False)
            self.size -= len(old)


#: what this agent offers beyond protocol version 2 (said in WELCOME ``features``; a
#: client falls back to what every agent of the version does when one is missing):
#: ``shared_weights``: ``program_put`` of a program without its weights (``weights``: the
#: sha256 of a weight image sent by ``blob_put``) and ``model_load`` into a ``group``
#: (an :class:`~bitlet.runtime.arena.Arena`: the group's programs share one device
#: buffer, each distinct weight image written once)
FEATURES = ("shared_weights",)
#: groups (shared device buffers) one session may hold at once
MAX_GROUPS = 64
#: wrong token answers accepted on one connection before the agent refuses it
AUTH_ATTEMPTS = 3
#: seconds a new TCP connection has to complete its handshake before it is dropped
HANDSHAKE_TIMEOUT = 5.0
#: TCP connections waiting for their handshake at once (more are closed at once)
MAX_PENDING = 8
#: write timeout of a connection still shaking hands (a client that never reads
#: cannot stall the served client for long), seconds
PENDING_WRITE_TIMEOUT = 1.0


class _Connection:
    """A link and its handshake state (``authenticated``, ``nonce``, ``failures``)."""

    def __init__(self, peer: Peer, address: Any = None, deadline: float = math.inf):
        self.peer = peer
        self.address = address
        self.deadline = deadline  # of the handshake (pending TCP connections)
        self.state: dict[str, Any] = {"authenticated": False, "nonce": None}

    def close(self) -> None:
        self.peer.transport.close()


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------
class Session:
    """What the agent remembers of one client across reconnects."""

    def __init__(self, client_id: str):
        self.client_id = client_id
        self.executed_upto = 0  # highest request id executed
        self.last_reply: tuple[int, bytes] | None = None
        self.inbound: dict = {}  # request id -> link.Inbound being received
        self.buffers: dict[int, Any] = {}
        self.next_handle = 1
        self.models: dict[str, Any] = {}  # program digest -> CompiledModel on the device
        self.model_refs: collections.Counter = collections.Counter()  # loads not yet closed
        self.groups: dict[str, Arena] = {}  # group -> the device buffer its programs share


class Agent:
    """Serves ``device`` over a link.

    Parameters
    ----------
    device : bitlet.drivers.Device
        The device to serve (the caller keeps ownership).
    token : str or bytes, optional
        Shared secret; clients must prove they know it (HMAC of a fresh nonce,
        compared in constant time).
    limits : Limits
        Bounds on frames and messages accepted.
    cache_bytes : int
        Bytes of the program/weight cache (programs and blobs share it; least
        recently used entries are evicted).
    log : callable, optional
        Called with one line of text per event (listening, client connected
        or gone, a token refused, connections dropped without a handshake);
        ``bitlet agent`` prints them to stderr.
    tuning : dict, optional
        Overrides of :class:`bitlet.drivers.link.Tuning` (chunk, window, ...).
    handshake_timeout : float
        Seconds a new TCP connection has to complete its handshake (default
        :data:`HANDSHAKE_TIMEOUT`); also settable as an attribute.

    Attributes
    ----------
    executions : collections.Counter
        ``(client_id, request id) -> times executed`` (always 1).
    stats : dict
        Counters: ``sessions``, ``connections``, ``disconnects``, ``executed``,
        ``duplicates`` (late copies of executed requests), ``data_bytes_in``
        (new request bytes), ``data_frame_bytes_in`` (DATA payload bytes
        received, duplicates included), ``bad_frames`` (of the current
        connection), ``auth_failures`` (wrong token answers), ``auth_refused``
        (connections refused for their token), ``dropped_connections``
        (closed, timed out or in excess before completing a handshake),
        ``weight_bytes_in`` (bytes of weight images received: ``blob_put`` of
        weights plus the weights inside whole programs), ``weight_writes``
        (weight images written to device memory); ``describe`` replies carry
        the last two as ``agent_stats``.
    features : list of str
        What WELCOME advertises (default :data:`FEATURES`; an empty list makes
        this agent behave as one from before the features, for tests).
    port : int or None
        The TCP port listened on, once listening (useful with port 0).
    """

    def __init__(self, device: Any, *, token: str | bytes | None = None,
                 limits: Limits = DEFAULT_LIMITS, cache_bytes: int = 128 << 20,
                 tuning: dict | None = None, log: Callable[[str], None] | None = None,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT):
        if token is not None and (not isinstance(token, (str, bytes)) or not token):
            raise errors.BitletTypeError(f"token must be a non-empty str or bytes, got {token!r}")
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes <= 0:
            raise BitletValueError(f"cache_bytes must be a positive int, got {cache_bytes!r}")
        if not isinstance(limits, Limits):
            raise errors.BitletTypeError(f"limits must be a bitlet.drivers.link.Limits, "
                                         f"got {limits!r}")
        self.device = device
        self.token = token.encode() if isinstance(token, str) else token
        self.limits = limits
        self.cache = BlobCache(cache_bytes)
        self.tuning_overrides = dict(tuning or {})
        self.log = log or (lambda line: None)
        self.executions: collections.Counter = collections.Counter()
        self.stats = collections.Counter()
        self.session: Session | None = None
        self.port: int | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.programs = self.cache  # one memory budget for programs and blobs
        self.features = list(FEATURES)
        self._weights_of: dict[str, str] = {}  # program digest -> sha256 of its weights, for
                                               # programs cached without them
        self._versions: dict | None = None
        self.handshake_timeout = float(handshake_timeout)
        self._pending: list[_Connection] = []
        self._drops_logged = (0.0, 0)  # (time of the last drop line, drops counted then)

    def stop(self) -> None:
        """Ask :meth:`serve` to return (within a poll interval)."""
        self._stop.set()

    def start(self, listen_url: str, timeout: float = 5.0) -> Agent:
        """Serve in a background thread; returns once listening.

        Raises
        ------
        bitlet.LinkError
            The agent could not listen within ``timeout`` seconds (the cause
            is chained).
        """
        self._failure: BaseException | None = None
        self._check_exposure(link.parse_url(listen_url, default_host="127.0.0.1"))

        def run() -> None:
            try:
                self.serve(listen_url)
            except BaseException as exc:  # noqa: BLE001 - reported by start()/close()
                self._failure = exc
                self.ready.set()

        self._thread = threading.Thread(target=run, name="bitlet-agent", daemon=True)
        self._thread.start()
        if not self.ready.wait(timeout) or self._failure is not None:
            self.close()
            raise LinkError(f"agent could not listen on {listen_url}: {self._failure}") \
                from self._failure
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop a :meth:`start`-ed agent and join its thread."""
        self.stop()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> Agent:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listening -----------------------------------------------------------
    def serve(self, listen_url: str) -> None:
        """Serve until :meth:`stop` (or Ctrl-C).

        Parameters
        ----------
        listen_url : str
            ``serial:///dev/ttyPS0?baud=921600`` or ``tcp://HOST:PORT``
            (HOST defaults to 127.0.0.1; any other interface only when named,
            e.g. ``tcp://0.0.0.0:7700``; port 0 picks a free port, see
            :attr:`port`).
        """
        address = link.parse_url(listen_url, default_host="127.0.0.1")
        self._check_exposure(address)
        tuning = Tuning.for_address(address, **self.tuning_overrides)
        if address.scheme == "serial":
            self._serve_serial(address, tuning)
        else:
            self._serve_tcp(address, tuning)

    def _check_exposure(self, address: link.LinkAddress) -> None:
        """Refuse to serve a TCP interface other than loopback without a token."""
        problem = exposure_problem(address, self.token)
        if problem:
            raise BitletValueError(problem)

    def _serve_serial(self, address: link.LinkAddress, tuning: Tuning) -> None:
        transport = link.open_transport(address, write_timeout=10.0)
        self.log(f"listening on {address}")
        self.ready.set()
        try:
            while not self._stop.is_set():
                try:
                    self._serve_connection(_Connection(Peer(transport, tuning, self.limits)))
                except LinkError:  # the port failed or a write blocked: start over
                    self.stats["disconnects"] += 1
                    time.sleep(tuning.poll)
        finally:
            transport.close()

    def _serve_tcp(self, address: link.LinkAddress, tuning: Tuning) -> None:
        try:
            listener = socket.create_server((address.host, address.port))
        except OSError as exc:
            raise LinkBroken(f"cannot listen on {address}: {exc}") from exc
        self.port = listener.getsockname()[1]
        self.log(f"listening on tcp://{address.host}:{self.port}")
        self.ready.set()
        current: _Connection | None = None
        try:
            while not self._stop.is_set():
                if current is None:  # nobody served: wait for a connection's handshake
                    current = self._admit(listener, tuning, tuning.poll)
                    continue
                try:
                    promoted = self._serve_connection(
                        current, lambda: self._admit(listener, tuning, 0.0))
                except LinkError as exc:
                    self.stats["disconnects"] += 1
                    self.log(self._gone(exc))
                    promoted = None
                current.close()
                current = promoted  # a client that completed its handshake replaces it
        finally:
            if current is not None:
                current.close()
            for pending in self._pending:
                pending.close()
            self._pending.clear()
            listener.close()

    def _admit(self, listener: socket.socket, tuning: Tuning, wait: float) -> _Connection | None:
        """Accept new TCP connections and advance their handshakes (at most ``wait`` s).

        Returns the first connection that completed its handshake (its session
        is set up and WELCOMEd): it replaces the current client.  A connection
        that closes, fails, times out (:attr:`handshake_timeout`) or has its
        token refused is dropped; none of this touches the current client.
        """
        socks = [listener] + [p.peer.transport.sock for p in self._pending]
        readable, _, _ = select.select(socks, [], [], wait)
        if listener in readable:
            sock, peer_address = listener.accept()
            if len(self._pending) >= MAX_PENDING:
                sock.close()
                self._dropped(f"more than {MAX_PENDING} connections waiting for a handshake")
            else:
                transport = link.SocketTransport(sock, write_timeout=PENDING_WRITE_TIMEOUT,
                                                 name=f"tcp:{self.port}")
                self._pending.append(_Connection(Peer(transport, tuning, self.limits),
                                                 peer_address,
                                                 time.monotonic() + self.handshake_timeout))
        for pending in list(self._pending):
            outcome = None
            if pending.peer.transport.sock in readable:
                try:
                    outcome = self._advance_handshake(pending)
                except LinkError:
                    outcome = "closed"
            if outcome is None and time.monotonic() > pending.deadline:
                outcome = "timeout"
            if outcome is None:
                continue
            self._pending.remove(pending)
            if outcome == "welcome":
                pending.peer.transport.sock.settimeout(10.0)  # a served client's write timeout
                return pending
            pending.close()
            if outcome == "refused":
                self.stats["auth_refused"] += 1
                self.log(f"refused a connection from {_host(pending.address)}: wrong token "
                         f"({AUTH_ATTEMPTS} attempts)")
            else:
                self._dropped(f"no handshake within {self.handshake_timeout:g} s"
                              if outcome == "timeout" else "closed before its handshake")
        return None

    def _advance_handshake(self, pending: _Connection) -> str | None:
        """Read a pending connection's frames: ``"welcome"`` once it shook hands,
        ``"refused"`` for a refused token, None while it is still shaking hands."""
        peer, state = pending.peer, pending.state
        frame = peer.recv(0.001)
        while frame is not None:
            if frame.ftype != HELLO:
                peer.send_json(ERROR, {"code": "no_session", "message": "no session on this "
                                       "link: handshake (HELLO) first"}, frame.rid)
            else:
                done = self._handshake(peer, frame, state)
                if done is not None:
                    self._welcome(peer, *done)
                    return "welcome"
                if state.get("refused"):
                    return "refused"
            frame = peer.recv(0.0)
        return None

    def _dropped(self, reason: str) -> None:
        """Count a connection dropped before its handshake; log at most a line a second."""
        self.stats["dropped_connections"] += 1
        last, logged = self._drops_logged
        if time.monotonic() - last >= 1.0:
            n = self.stats["dropped_connections"] - logged
            self.log(f"dropped {n} connection(s) that did not complete a handshake "
                     f"(latest: {reason}); the current client is not affected")
            self._drops_logged = (time.monotonic(), self.stats["dropped_connections"])

    def _gone(self, exc: LinkError) -> str:
        """The log line for the end of the served connection."""
        who = f"client {self.session.client_id}" if self.session is not None else "the client"
        if "closed by the peer" in str(exc):
            return f"{who} disconnected"
        return f"connection lost ({exc})"

    # -- one connection --------------------------------------------------------
    def _serve_connection(self, connection: _Connection,
                          admit: Callable[[], _Connection | None] | None = None
                          ) -> _Connection | None:
        """Handle frames until the link breaks, stop, or ``admit()`` returns a new TCP
        client that completed its handshake (returned: it replaces this one)."""
        self.stats["connections"] += 1
        self._counted = (0, 0)
        peer, conn = connection.peer, connection.state
        while not self._stop.is_set():
            if admit is not None:
                newcomer = admit()
                if newcomer is not None:
                    return newcomer  # the newest authenticated client wins (a reconnect)
            try:
                peer.pump()
            except LinkTimeout:
                peer.outbound = None  # the reply stays cached for a QUERY
            frame = peer.recv(peer.tuning.poll)
            self.stats["bad_frames"] = peer.parser.bad_frames
            if frame is not None:
                self._dispatch_guarded(peer, frame, conn)
        return None

    def _dispatch_guarded(self, peer: Peer, frame: Frame, conn: dict) -> None:
        """Handle one frame; nothing a client sends can stop the agent."""
        try:
            self._dispatch(peer, frame, conn)
        except (LinkBroken, LinkTimeout):
            raise  # the connection itself failed
        except Exception as exc:  # noqa: BLE001 - reported to the client, the agent goes on
            self.stats["internal_errors"] += 1
            peer.send_json(ERROR, {"code": "internal",
                                   "message": f"agent error on a {link.FRAME_NAMES[frame.ftype]} "
                                              f"frame: {type(exc).__name__}: {exc}"}, frame.rid)

    def _dispatch(self, peer: Peer, frame: Frame, conn: dict) -> None:
        if frame.ftype == HELLO:
            conn["authenticated"] = False  # every handshake proves itself again
            self._on_hello(peer, frame, conn)
        elif not conn["authenticated"] or self.session is None:
            peer.send_json(ERROR, {"code": "no_session",
                                   "message": "no session on this link: handshake (HELLO) first"},
                           frame.rid)
        elif frame.ftype == DATA:
            self._on_data(peer, frame)
        elif frame.ftype == ACK:
            peer.on_ack(frame)
        elif frame.ftype == QUERY:
            self._on_query(peer, frame)

    def _on_hello(self, peer: Peer, frame: Frame, conn: dict) -> None:
        """A HELLO on the served connection: shake hands again."""
        done = self._handshake(peer, frame, conn)
        if done is not None:
            self._welcome(peer, *done)
        elif conn.get("refused"):
            self.stats["auth_refused"] += 1
            self.log("refused the served connection's new handshake: wrong token")

    def _handshake(self, peer: Peer, frame: Frame, conn: dict) -> tuple[dict, str] | None:
        """Check a HELLO (versions, client id, token); ``(hello, client_id)`` once the
        client proved itself, else None (an error or a token challenge was sent)."""
        try:
            hello = frame.json()
        except LinkProtocolError as exc:
            peer.send_json(ERROR, {"code": "protocol", "message": str(exc)})
            return None
        mine = self._agent_versions()
        problem = version_mismatch(hello, mine, "client", "agent")
        if problem:
            peer.send_json(ERROR, {"code": "version", "message": problem, "agent": mine})
            return None
        client_id = str(hello.get("client_id", ""))[:64]
        if not client_id:
            peer.send_json(ERROR, {"code": "protocol", "message": "HELLO without client_id"})
            return None
        if self.token is not None and not self._authenticate(peer, hello, conn, client_id):
            return None
        conn["authenticated"] = True
        return hello, client_id

    def _welcome(self, peer: Peer, hello: dict, client_id: str) -> None:
        """Start or resume ``client_id``'s session on ``peer`` and send WELCOME."""
        mine = self._agent_versions()
        resumed = self.session is not None and self.session.client_id == client_id
        self.log(f"client {client_id} {'reconnected' if resumed else 'connected'} "
                 f"(SDK {hello.get('sdk')})")
        if not resumed:
            self._new_session(client_id)
            peer.outbound = None  # a reply still going to the previous client
        peer.inbound = self.session.inbound  # a half-received request survives a cut
        peer.send_json(WELCOME, {"ok": True, **mine, "resumed": resumed,
                                 "limits": {"max_frame": self.limits.max_frame,
                                            "max_message": self.limits.max_message},
                                 "interrupt": bool(self.device.has_interrupt),
                                 "features": list(self.features)})

    def _authenticate(self, peer: Peer, hello: dict, conn: dict, client_id: str) -> bool:
        """Challenge-response on the shared token; True once the client proved it.

        A wrong answer gets a fresh challenge (on a lossy line the client may
        have answered an older nonce), up to :data:`AUTH_ATTEMPTS` per
        connection, then an error.
        """
        nonce, conn["nonce"] = conn["nonce"], None  # a nonce answers one attempt only
        auth = hello.get("auth")
        if nonce is not None and isinstance(auth, str) and hmac.compare_digest(
                auth.encode(), auth_digest(self.token, nonce, client_id).encode()):
            return True
        if auth is not None:
            self.stats["auth_failures"] += 1
            conn["failures"] = conn.get("failures", 0) + 1
            if conn["failures"] >= AUTH_ATTEMPTS:
                conn["refused"] = True
                peer.send_json(ERROR, {"code": "auth", "message": "the agent refused the token "
                                       "(the client's token differs from the agent's)"})
                return False
        conn["nonce"] = os.urandom(16).hex()
        peer.send_json(WELCOME, {"ok": False, "auth_required": True, "nonce": conn["nonce"]})
        return False

    def _agent_versions(self) -> dict:
        if self._versions is None:
            self._versions = {**local_versions(), **device_identity(self.device)}
        return self._versions

    def _new_session(self, client_id: str) -> None:
        if self.session is not None:
            self._release(self.session)
        self.session = Session(client_id)
        self.stats["sessions"] += 1

    @staticmethod
    def _release(session: Session) -> None:
        """Free a session's models and buffers (its reply cache stays)."""
        for model in session.models.values():
            _quietly_close(model)
        for arena in session.groups.values():
            _quietly_close(arena)
        for buf in session.buffers.values():
            _quietly_free(buf)
        session.models.clear()
        session.model_refs.clear()
        session.groups.clear()
        session.buffers.clear()

    def _on_data(self, peer: Peer, frame: Frame) -> None:
        session = self.session
        if frame.rid <= session.executed_upto:
            peer.ack(frame.rid, frame.total, frame.total)  # a late copy: already done
            self.stats["duplicates"] += 1
            return
        if peer.outbound is not None and peer.outbound.rid < frame.rid:
            peer.outbound = None  # a new request: the client has the previous reply
        try:
            message = peer.on_data(frame)
        except LinkProtocolError as exc:
            peer.send_json(ERROR, {"code": "limit", "message": str(exc)}, frame.rid)
            return
        self.stats["data_bytes_in"] += peer.stats["data_bytes_in"] - self._counted[0]
        self.stats["data_frame_bytes_in"] += peer.stats["data_frame_bytes_in"] - self._counted[1]
        self._counted = (peer.stats["data_bytes_in"], peer.stats["data_frame_bytes_in"])
        if message is None:
            return
        reply = self._execute(frame.rid, message)
        session.executed_upto = frame.rid
        session.last_reply = (frame.rid, reply)
        peer.start_outbound(frame.rid, reply)

    def _on_query(self, peer: Peer, frame: Frame) -> None:
        session, rid = self.session, frame.rid
        out = peer.outbound
        if session.last_reply is not None and session.last_reply[0] == rid:
            if out is not None and out.rid == rid and not out.done:
                peer.on_ack(frame)  # the reply is on its way: the query acknowledges
            else:
                peer.start_outbound(rid, session.last_reply[1], acked=frame.offset)
        elif rid <= session.executed_upto:
            peer.send_json(ERROR, {"code": "gone", "message":
                                   f"request {rid} was executed but its reply is no longer held"},
                           rid)
        else:
            inbound = peer.inbound.get(rid)
            peer.send(ACK, rid, inbound.received if inbound else 0,
                      inbound.total if inbound else 0)

    # -- execution ----------------------------------------------------------------
    def _execute(self, rid: int, message: bytearray) -> bytes:
        """Run one request; every error becomes an error reply (the agent survives)."""
        self.executions[(self.session.client_id, rid)] += 1
        self.stats["executed"] += 1
        try:
            header, arrays = link.unpack_message(message, self.limits)
            op = header.get("op")
            handler = _OPS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise LinkProtocolError(f"unknown operation {op!r}")
            args = header.get("args") or {}
            if not isinstance(args, dict):
                raise LinkProtocolError(f"{op}: args must be a JSON object")
            self.stats["op_" + op] += 1
            result, out_arrays = handler(self, args, arrays)
            return link.pack_message({"ok": True, "result": result}, out_arrays)
        except Exception as exc:  # noqa: BLE001 - reported to the client by name
            details = {k: jsonable(getattr(exc, k)) for k in link.ERROR_DETAILS if hasattr(exc, k)}
            return link.pack_message({"ok": False, "error": {
                "type": type(exc).__name__, "message": str(exc), "details": details}})

    def _buffer(self, args: dict) -> Any:
        handle = _int_arg(args, "handle")
        try:
            return self.session.buffers[handle]
        except KeyError:
            raise DeviceError(f"buffer handle {handle} is unknown or freed on the agent") from None

    def op_describe(self, args: dict, arrays: list) -> tuple[Any, list]:
        stats = {k: int(self.stats[k]) for k in ("weight_bytes_in", "weight_writes")}
        return {**jsonable(self.device.describe()),
                "agent_stats": {**stats, "features": list(self.features)}}, []

    def op_memory_window(self, args: dict, arrays: list) -> tuple[Any, list]:
        base, size = self.device.memory_window()
        return [int(base), int(size)], []

    def op_reset(self, args: dict, arrays: list) -> tuple[Any, list]:
        """Reset the served kernel (a board reloads its overlay); buffers and models are kept."""
        self.device.reset()
        self.log(f"kernel reset by client {self.session.client_id}")
        return None, []

    def op_alloc(self, args: dict, arrays: list) -> tuple[Any, list]:
        shape = args.get("shape")
        if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
            raise BitletValueError(f"alloc: shape must be a list of ints, got {shape!r}")
        dtype = link.wire_dtype(str(args.get("dtype")))
        buf = self.device.allocate(tuple(shape), dtype)
        session = self.session
        handle = session.next_handle
        session.next_handle += 1
        session.buffers[handle] = buf
        return {"handle": handle, "device_address": int(buf.device_address)}, []

    def op_free(self, args: dict, arrays: list) -> tuple[Any, list]:
        buf = self._buffer(args)
        del self.session.buffers[args["handle"]]
        self.device.free(buf)
        return None, []

    def op_write(self, args: dict, arrays: list) -> tuple[Any, list]:
        if len(arrays) != 1 or arrays[0].dtype != np.uint8:
            raise LinkProtocolError("write: expects one uint8 array")
        view = self._byte_range(args, arrays[0].size)
        view[...] = arrays[0]
        view.sync_to_device()
        return None, []

    def op_read(self, args: dict, arrays: list) -> tuple[Any, list]:
        view = self._byte_range(args, _int_arg(args, "nbytes"))
        view.sync_from_device()
        return None, [np.array(view, dtype=np.uint8, copy=True).view(np.ndarray)]

    def _byte_range(self, args: dict, nbytes: int) -> Any:
        buf = self._buffer(args)
        offset = _int_arg(args, "offset")
        raw = buf.reshape(-1).view(np.uint8)
        if offset + nbytes > raw.size:
            raise BitletValueError(f"byte range [{offset}, {offset + nbytes}) outside the "
                                   f"buffer of {raw.size} bytes")
        return raw[offset:offset + nbytes]

    def op_read_reg(self, args: dict, arrays: list) -> tuple[Any, list]:
        return int(self.device.read_reg(_int_arg(args, "offset"))), []

    def op_write_reg(self, args: dict, arrays: list) -> tuple[Any, list]:
        self.device.write_reg(_int_arg(args, "offset"), _int_arg(args, "value"))
        return None, []

    def op_wait_interrupt(self, args: dict, arrays: list) -> tuple[Any, list]:
        timeout = args.get("timeout")
        if not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
            raise BitletValueError(f"wait_interrupt: timeout must be 0..3600 s, got {timeout!r}")
        return bool(self.device.wait_interrupt(float(timeout))), []

    def op_blob_has(self, args: dict, arrays: list) -> tuple[Any, list]:
        digests = args.get("sha256")
        if not isinstance(digests, list) or len(digests) > 1024:
            raise BitletValueError("blob_has: sha256 must be a list of at most 1024 digests")
        return [d in self.cache for d in digests], []

    def op_blob_put(self, args: dict, arrays: list) -> tuple[Any, list]:
        if len(arrays) != 1 or arrays[0].dtype != np.uint8:
            raise LinkProtocolError("blob_put: expects one uint8 array")
        self.cache.put(str(args.get("sha256")), arrays[0].tobytes())
        if args.get("kind") == "weights":
            self.stats["weight_bytes_in"] += int(arrays[0].size)
        return None, []

    def op_close_session(self, args: dict, arrays: list) -> tuple[Any, list]:
        """The client is leaving: free its models and buffers now."""
        self._release(self.session)
        self.log(f"client {self.session.client_id} closed its session")
        return None, []

    # -- programs: uploaded once (keyed by Program.digest), loaded once, run many times
    def op_program_has(self, args: dict, arrays: list) -> tuple[Any, list]:
        return self._has_program(_digest_arg(args)), []

    def _has_program(self, digest: str) -> bool:
        """Cached, and with its weights when it was sent without them."""
        weights = self._weights_of.get(digest)
        return digest in self.programs and (weights is None or weights in self.cache)

    def op_program_put(self, args: dict, arrays: list) -> tuple[Any, list]:
        """A program, whole or (``weights``: the sha256 of a weight image this
        agent holds) without its weights; its digest is checked either way."""
        digest = _digest_arg(args)
        if len(arrays) != 1 or arrays[0].dtype != np.uint8:
            raise LinkProtocolError("program_put: expects one uint8 array")
        data = arrays[0].tobytes()
        weights = _digest_arg(args, "weights") if args.get("weights") is not None else None
        # the one bounded, validating reader of bitlet.load: declared sizes checked before
        # inflating, every field bounded by the program's own buffer; a program without its
        # weights gets them from the cache (BlobMissing when not held: the client sends them)
        # and must hash to the weights' sha256 and size it records
        program = Program.from_bytes(data, max_bytes=self.limits.max_message,
                                     weights=None if weights is None else self.cache.get(weights))
        if program.digest() != digest:
            raise BitletValueError(f"program_put: the program received has digest "
                                   f"{program.digest()[:16]}..., not {digest[:16]}...")
        if weights is None:
            self.stats["weight_bytes_in"] += int(program.meta["buffers"]["blob_bytes"])
        if self._has_program(digest):
            return None, []
        self.programs.discard(digest)  # kept without weights that were evicted since
        self.programs.put(digest, data, verified=True)
        if weights is None:
            self._weights_of.pop(digest, None)
        else:
            self._weights_of[digest] = weights
            if len(self._weights_of) > 4 * 1024:  # forget programs the cache evicted
                self._weights_of = {d: w for d, w in self._weights_of.items() if d in self.programs}
        return None, []

    def _program(self, digest: str) -> Program:
        """A cached program (rebuilt with its weights when it was sent without them)."""
        data = self.programs.get(digest)
        weights = self._weights_of.get(digest)
        return Program.from_bytes(data, weights=None if weights is None else self.cache.get(weights))

    def op_model_load(self, args: dict, arrays: list) -> tuple[Any, list]:
        """Load a cached program on the device, in its own buffer or (``group``) in the
        buffer the group's programs share (their weight images written once)."""
        digest = _digest_arg(args)
        group = _group_arg(args)
        session = self.session
        if digest not in session.models:
            program = self._program(digest)
            if group is None:
                session.models[digest] = CompiledModel(program, self.device)
                self.stats["weight_writes"] += 1
            else:
                session.models[digest] = self._load_in_group(program, group)
        session.model_refs[digest] += 1  # each client-side model closes its own load
        model = session.models[digest]
        placement = model.placement
        return {"base": int(model.base),
                "device_bytes": int(placement.arena.size if placement is not None
                                    else model.peak_device_bytes),
                "group": group if placement is not None else None}, []

    def _load_in_group(self, program: Program, group: str) -> CompiledModel:
        groups = self.session.groups
        if group not in groups and len(groups) >= MAX_GROUPS:
            raise BitletValueError(f"model_load: this session already holds {MAX_GROUPS} groups "
                                   "(shared buffers); close models first")
        check_compatible(program, driver_of(self.device))  # before anything is written
        arena = groups.setdefault(group, Arena(self.device))
        before = arena.uploads
        try:
            placement = arena.place(program)
        finally:
            self.stats["weight_writes"] += arena.uploads - before
            if not len(arena):
                del groups[group]
                arena.close()
        try:
            return CompiledModel(program, self.device, placement=placement)
        except BaseException:
            self._unplace(placement)
            raise

    def _unplace(self, placement: Any) -> None:
        """Release a placement; the group's buffer is freed with its last program."""
        arena = placement.arena
        arena.release(placement)
        if not len(arena):
            arena.close()
            for name in [g for g, a in self.session.groups.items() if a is arena]:
                del self.session.groups[name]

    def _model(self, args: dict) -> Any:
        digest = _digest_arg(args)
        try:
            return self.session.models[digest]
        except KeyError:
            raise DeviceError(f"program {digest[:16]}... is not loaded on the agent "
                              "(RemoteModel(program, device) loads it)") from None

    @staticmethod
    def _feeds(args: dict, arrays: list) -> dict:
        names = args.get("inputs")
        if not isinstance(names, list) or len(names) != len(arrays) \
                or not all(isinstance(n, str) for n in names):
            raise LinkProtocolError("model_run: 'inputs' must name each array sent")
        return dict(zip(names, arrays))

    def op_model_run(self, args: dict, arrays: list) -> tuple[Any, list]:
        model = self._model(args)
        outputs = model.run(self._feeds(args, arrays), keep=bool(args.get("keep")))
        names = [n for n in outputs if isinstance(outputs[n], np.ndarray)]
        scalars = {n: jsonable(v) for n, v in outputs.items()  # keep=True: fixed-point scales
                   if isinstance(v, (int, float, np.generic)) and np.isfinite(v)}
        return ({"outputs": names, "scalars": scalars, "timings": jsonable(model.last_timings)},
                [np.ascontiguousarray(outputs[n]) for n in names])

    def op_model_profile(self, args: dict, arrays: list) -> tuple[Any, list]:
        model = self._model(args)
        profile = model.profile(self._feeds(args, arrays))
        return {**jsonable(profile.as_dict()), "timings": jsonable(model.last_timings)}, []

    def op_model_profile_records(self, args: dict, arrays: list) -> tuple[Any, list]:
        """The profile records of the last run, one array per field (no structured dtype)."""
        records = self._model(args).read_profile_records()
        names = list(records.dtype.names)
        return {"fields": names}, [np.ascontiguousarray(records[n]) for n in names]

    def op_model_close(self, args: dict, arrays: list) -> tuple[Any, list]:
        """Close one load of a program; its device memory is freed with the last one."""
        model, digest = self._model(args), _digest_arg(args)
        refs = self.session.model_refs
        refs[digest] -= 1
        if refs[digest] <= 0:
            del self.session.models[digest], refs[digest]
            model.close()
            if model.placement is not None:
                self._unplace(model.placement)
        return None, []


_OPS: dict[str, Callable[[Agent, dict, list], tuple[Any, list]]] = {
    name[3:]: getattr(Agent, name) for name in dir(Agent) if name.startswith("op_")
}


def device_identity(device: Any) -> dict:
    """What the handshake says of the served device: backend and kernel ID registers."""
    out: dict[str, Any] = {"device": str(getattr(device, "kind", "?"))}
    identity = getattr(getattr(device, "kernel", None), "identity", None)
    if identity is not None and hasattr(identity, "as_dict"):
        out["kernel"] = jsonable(identity.as_dict())
    return out


def exposure_problem(address: link.LinkAddress, token: Any) -> str | None:
    """Why serving ``address`` without ``token`` is refused (a non-loopback TCP
    interface and no token), or None."""
    if address.scheme != "tcp" or token is not None or _is_loopback(address.host):
        return None
    return (f"refusing to listen on {address} without a token: anyone who can reach it could "
            "use the board; give a token (--token-env NAME or --token-file PATH) or listen on "
            "tcp://127.0.0.1:PORT")


def _is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback
                               for info in infos)


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else "?"


# Small argument checks and quiet closers below, alike in shape (one per kind of value).
def _int_arg(args: dict, name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BitletValueError(f"argument {name} must be an int >= 0, got {value!r}")
    return value


def _quietly_close(model: Any) -> None:
    try:
        model.close()
    except errors.BitletError:
        pass


def _digest_arg(args: dict, name: str = "digest") -> str:
    digest = args.get(name)
    if not isinstance(digest, str) or len(digest) != 64 \
            or any(c not in "0123456789abcdef" for c in digest):
        raise BitletValueError(f"argument {name} must be a sha256 hex string, got {digest!r:.80}")
    return digest


def _group_arg(args: dict) -> str | None:
    return check_group(args.get("group"), "argument group")


def _quietly_free(buf: Any) -> None:
    try:
        buf.freebuffer()
    except errors.BitletError:
        pass


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
def serve(listen_url: str, device: Any = None, token: str | bytes | None = None,
          **kwargs: Any) -> None:
    """Serve a device on ``listen_url`` until interrupted.

    Parameters
    ----------
    listen_url : str
        ``serial:///dev/ttyPS0?baud=921600`` or ``tcp://HOST:PORT``.
    device : bitlet.drivers.Device, optional
        The device to serve; default ``bitlet.open()`` (the board when there is
        one, else the simulator), closed on return.
    token : str or bytes, optional
        Shared secret clients must know.
    **kwargs
        Passed to :class:`Agent` (``limits``, ``cache_bytes``, ``tuning``).
    """
    own = device is None
    if own:
        device = open_device(None)
    try:
        Agent(device, token=token, **kwargs).serve(listen_url)
    finally:
        if own:
            device.close()


def main(argv: list[str] | None = None) -> int:
    """``bitlet agent --listen URL [--device SPEC] [--token-env NAME | --token-file PATH]``.

    Returns the process exit code (0 after Ctrl-C, 2 when the link cannot be opened or
    a non-loopback TCP address is given without a token).
    """
    parser = argparse.ArgumentParser(prog="bitlet agent", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True,
                        help="serial:///dev/ttyPS0?baud=921600 or tcp://127.0.0.1:7700 "
                             "(another interface only when named, e.g. tcp://0.0.0.0:7700)")
    parser.add_argument("--device", default=None, help="device to serve (default: auto)")
    parser.add_argument("--token-env", default=None,
                        help="name of an environment variable holding the shared token")
    parser.add_argument("--token-file", default=None, help="file holding the shared token")
    parser.add_argument("--cache-mb", type=int, default=128, help="program/weight cache size, MiB")
    args = parser.parse_args(argv)
    address = link.parse_url(args.listen, default_host="127.0.0.1")  # before the device opens
    if args.cache_mb <= 0:
        raise BitletValueError(f"--cache-mb must be a positive number of MiB, got {args.cache_mb}")
    token = _read_token(args.token_env, args.token_file)
    problem = exposure_problem(address, token)
    if problem:
        print(f"bitlet agent: {problem}", file=sys.stderr)
        return 2
    def log(line: str) -> None:
        print(f"bitlet agent: {line}", file=sys.stderr, flush=True)

    device = open_device(args.device)
    try:
        agent = Agent(device, token=token, cache_bytes=args.cache_mb << 20, log=log)
        log(f"SDK {__version__}, serving a {getattr(device, 'kind', '?')} device"
            + (" (token required)" if token else ""))
        agent.serve(args.listen)
    except KeyboardInterrupt:
        pass
    except LinkError as exc:
        print(f"bitlet agent: {exc}", file=sys.stderr)
        return 2
    finally:
        device.close()
    return 0


def _read_token(env_name: str | None, path: str | None) -> str | None:
    """The shared token from an environment variable or a file (None: no token)."""
    if env_name and path:
        raise BitletValueError("--token-env and --token-file: give one of them, not both")
    if env_name:
        token = os.environ.get(env_name)
        if not token:
            raise BitletValueError(f"--token-env {env_name}: the environment variable is unset or empty")
        return token
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BitletValueError(f"--token-file {path}: cannot read it: {exc}") from None
        if not token:
            raise BitletValueError(f"--token-file {path}: the file is empty")
        return token
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
