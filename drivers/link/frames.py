"""Frames: ``SYNC | type | flags | rid | offset | total | length | header CRC32 |
payload | payload CRC32`` (little-endian, :data:`HEADER`).

The header has its own CRC so a corrupted length is rejected before anything
is allocated or awaited; a bad frame is dropped and :class:`FrameParser`
resynchronises on the next sync word.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import zlib

from bitlet.drivers.link.errors import LinkProtocolError

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
