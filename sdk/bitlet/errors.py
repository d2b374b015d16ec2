"""The SDK's exception hierarchy.

Every error raised on purpose by ``bitlet`` derives from :class:`BitletError`,
so ``except bitlet.BitletError`` catches them all.  Argument errors also
derive from the matching built-in (``ValueError``/``TypeError``) so ordinary
Python code keeps working.
"""
from __future__ import annotations


class BitletError(Exception):
    """Base class of every error raised by the Bitlet SDK."""


class BitletValueError(BitletError, ValueError):
    """An argument has a bad value (shape, range, NaN/Inf weights, ...)."""


class BitletTypeError(BitletError, TypeError):
    """An argument has the wrong type or dtype."""


class ProgramError(BitletValueError):
    """A compiled program (from a file or a wire) is malformed or reaches outside its
    own buffer; the message names the field."""


class DeviceError(BitletError):
    """A device (board, simulator or remote agent) failed."""


class BlobMissing(DeviceError):
    """``bitlet agent`` does not hold the content a request names by its SHA-256
    (never sent, or evicted from its cache): send the bytes."""


class BusError(DeviceError):
    """The kernel or the host touched an address outside device memory."""


class OutOfDeviceMemory(DeviceError, MemoryError):
    """The device memory (CMA / simulated arena) cannot hold a buffer."""


class KernelTimeout(DeviceError, TimeoutError):
    """The kernel did not finish within the timeout (carries a diagnosis)."""


class OverlayMismatch(DeviceError):
    """The loaded overlay's ID/version/config registers do not match the SDK."""


class CompileError(BitletError):
    """A model could not be compiled (unsupported ops, shapes, memory)."""


class LinkError(DeviceError):
    """The remote link (UART/TCP) failed: framing, checksum, timeout, protocol."""
