"""Framed, checksummed link between the SDK and a board agent (UART or TCP).

The agent (:mod:`bitlet.runtime.agent`) and the client
(:mod:`bitlet.drivers.remote`) share these modules, bottom to top:

1. **URL** -- :mod:`~bitlet.drivers.link.address`: :func:`parse_url` of
   ``serial:///dev/ttyUSB1?baud=921600``, ``tcp://HOST:PORT`` (``socket://``
   is an alias, as in pyserial).
2. **Transport** -- :mod:`~bitlet.drivers.link.transport`: bytes in and out
   with a bound on every wait: :class:`SerialTransport` (any pyserial port,
   including pyserial's ``socket://`` handler used by the client for TCP) and
   :class:`SocketTransport` (a socket accepted by the agent).
3. **Frames** -- :mod:`~bitlet.drivers.link.frames`: ``SYNC | type | flags |
   rid | offset | total | length | header CRC32 | payload | payload CRC32``
   (little-endian, see :data:`HEADER`).  The header has its own CRC so a
   corrupted length is rejected before anything is allocated or awaited; a
   bad frame is dropped and the parser resynchronises on the next sync word.
4. **Messages** -- :mod:`~bitlet.drivers.link.messages`:
   :func:`pack_message`/:func:`unpack_message`: a JSON header plus raw numpy
   payloads (dtype from :data:`WIRE_DTYPES`, shape, bytes).  Nothing
   executable or pickled ever crosses the link.
5. **Transfers** -- :mod:`~bitlet.drivers.link.peer`: :class:`Peer`: a
   message travels as DATA chunks under a sliding window (several chunks in
   flight), acknowledged cumulatively by ACK frames; a lost chunk is
   recovered by fast retransmit (three duplicate ACKs) or, after an ACK
   timeout, by going back to the last acknowledged byte.  After a cut link
   the client asks (QUERY) where the agent stands and resumes from there,
   never from zero.  Retries are bounded: a link that makes no progress
   raises :class:`LinkTimeout`.

Beside them: :mod:`~bitlet.drivers.link.settings` (:class:`Limits` on what is
accepted, :class:`Tuning` of chunks, window and retries),
:mod:`~bitlet.drivers.link.handshake` (versions and the token's digest),
:mod:`~bitlet.drivers.link.errors` (the exceptions), and, for tests and
benchmarks only, :mod:`bitlet.drivers.link.testing` (a paced, fault-injecting
line: ``PtyRelay``, ``TcpProxy``, ``Faults``; not imported here).

This module gathers the protocol's public names (what the client and the
agent use); each is defined in one of the modules above.
"""
from __future__ import annotations

from bitlet.drivers.link.address import (
    BITS_PER_BYTE,
    DEFAULT_BAUD,
    REMOTE_SCHEMES,
    LinkAddress,
    parse_url,
)
from bitlet.drivers.link.errors import LinkBroken, LinkError, LinkProtocolError, LinkTimeout
from bitlet.drivers.link.frames import (
    ACK,
    ACK_COMPLETE,
    DATA,
    ERROR,
    FRAME_NAMES,
    FRAME_OVERHEAD,
    HEADER,
    HELLO,
    QUERY,
    SYNC,
    WELCOME,
    Frame,
    FrameParser,
    encode_frame,
)
from bitlet.drivers.link.handshake import (
    PROTOCOL_VERSION,
    auth_digest,
    local_versions,
    version_mismatch,
)
from bitlet.drivers.link.messages import (
    ERROR_DETAILS,
    WIRE_DTYPES,
    pack_message,
    unpack_message,
    wire_dtype,
)
from bitlet.drivers.link.peer import Inbound, Outbound, Peer
from bitlet.drivers.link.settings import DEFAULT_LIMITS, Limits, Tuning
from bitlet.drivers.link.transport import (
    SerialTransport,
    SocketTransport,
    Transport,
    open_transport,
)

__all__ = [
    "ACK",
    "ACK_COMPLETE",
    "BITS_PER_BYTE",
    "DATA",
    "DEFAULT_BAUD",
    "DEFAULT_LIMITS",
    "ERROR",
    "ERROR_DETAILS",
    "FRAME_NAMES",
    "FRAME_OVERHEAD",
    "HEADER",
    "HELLO",
    "PROTOCOL_VERSION",
    "QUERY",
    "REMOTE_SCHEMES",
    "SYNC",
    "WELCOME",
    "WIRE_DTYPES",
    "Frame",
    "FrameParser",
    "Inbound",
    "Limits",
    "LinkAddress",
    "LinkBroken",
    "LinkError",
    "LinkProtocolError",
    "LinkTimeout",
    "Outbound",
    "Peer",
    "SerialTransport",
    "SocketTransport",
    "Transport",
    "Tuning",
    "auth_digest",
    "encode_frame",
    "local_versions",
    "open_transport",
    "pack_message",
    "parse_url",
    "unpack_message",
    "version_mismatch",
    "wire_dtype",
]
