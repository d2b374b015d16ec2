"""Transfers: one end of a link (:class:`Peer`) sends a message as DATA chunks
under a sliding window (:class:`Outbound`) and receives one (:class:`Inbound`).

Chunks are acknowledged cumulatively by ACK frames; a lost chunk is recovered
by fast retransmit (three duplicate ACKs) or, after an ACK timeout, by going
back to the last acknowledged byte.  Retries are bounded: a link that makes
no progress raises :class:`~bitlet.drivers.link.errors.LinkTimeout`.
"""
from __future__ import annotations

import json
import time

from bitlet.drivers.link.errors import LinkProtocolError, LinkTimeout
from bitlet.drivers.link.frames import ACK, ACK_COMPLETE, DATA, Frame, FrameParser, encode_frame
from bitlet.drivers.link.settings import DEFAULT_LIMITS, Limits, Tuning
from bitlet.drivers.link.transport import Transport


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
