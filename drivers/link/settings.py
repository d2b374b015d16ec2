"""The bounds (:class:`Limits`) and the chunking, windowing and retry
parameters (:class:`Tuning`) of one link."""
from __future__ import annotations

import dataclasses
from typing import Any

from bitlet.drivers.link.address import BITS_PER_BYTE, LinkAddress
from bitlet.drivers.link.frames import FRAME_OVERHEAD
from bitlet.errors import BitletValueError


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
