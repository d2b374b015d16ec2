"""The one narrow interface every device backend implements.

A *device* is what the kernel driver and the runtime need of a board:

* physically contiguous buffers: numpy arrays with a device (physical)
  address and explicit cache maintenance (``sync_to_device`` after the host
  writes, ``sync_from_device`` before the host reads), as PYNQ's
  ``PynqBuffer``;
* 32-bit access to the kernel's s_axilite register window (offsets from
  ``bitlet.hw``, e.g. ``hw.REG_CTRL``);
* a bounded wait for the kernel's interrupt (devices without one return
  ``False`` from :attr:`Device.has_interrupt` and the driver polls);
* a description of itself.

Backends: :mod:`bitlet.drivers.sim` (simulated board),
:mod:`bitlet.drivers.pynq_board` (a real board through pynq, optional;
:mod:`bitlet.drivers.pynq_sim` runs it on the simulator) and :mod:`bitlet.drivers.remote` (a board
behind a serial/TCP link).  Everything above this interface is identical on
all of them.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np
from bitlet.errors import BitletTypeError, BitletValueError


def buffer_shape(shape: Any) -> tuple[int, ...]:
    """Check ``allocate``'s ``shape`` (an int or a sequence of ints >= 0) -> tuple of ints."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise BitletTypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise BitletValueError(f"shape must hold ints >= 0, got {shape!r}")
    return tuple(int(d) for d in dims)


def buffer_dtype(dtype: Any) -> np.dtype:
    """Check ``allocate``'s ``dtype``: a numpy dtype without Python objects."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise BitletTypeError(f"dtype {dtype!r} is not a numpy dtype: {exc}") from None
    if dt.hasobject:
        raise BitletTypeError(f"dtype {dt} holds Python objects and cannot live in device memory")
    return dt


class DeviceBuffer(np.ndarray):
    """A numpy array living in device memory.

    Attributes
    ----------
    device_address : int
        Physical (device) byte address of element 0.
    nbytes : int
        Size in bytes (numpy's own attribute).

    Methods ``sync_to_device()``, ``sync_from_device()`` and ``freebuffer()``
    are provided by the backend that allocated the buffer.  Views keep the
    address of their base buffer's first byte plus their offset.
    """

    device_address: int

    def sync_to_device(self) -> None:  # pragma: no cover - backend provides
        raise NotImplementedError

    def sync_from_device(self) -> None:  # pragma: no cover - backend provides
        raise NotImplementedError

    def freebuffer(self) -> None:  # pragma: no cover - backend provides
        raise NotImplementedError


class Device(abc.ABC):
    """Abstract device: memory, registers, interrupt, description."""

    #: short backend name: "sim", "pynq", "remote", ...
    kind: str = "abstract"

    # -- memory ---------------------------------------------------------
    @abc.abstractmethod
    def allocate(self, shape: Any, dtype: Any = np.uint8) -> DeviceBuffer:
        """Allocate a contiguous device buffer (mirrors ``numpy.empty``).

        Raises :class:`bitlet.OutOfDeviceMemory` with the requested and free
        sizes when the device memory cannot hold it.
        """

    @abc.abstractmethod
    def free(self, buffer: DeviceBuffer) -> None:
        """Release a buffer; freeing twice raises :class:`bitlet.DeviceError`."""

    # -- registers ------------------------------------------------------
    @abc.abstractmethod
    def read_reg(self, offset: int) -> int:
        """Read the 32-bit kernel register at byte ``offset``."""

    @abc.abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """Write the 32-bit kernel register at byte ``offset``."""

    # -- completion -----------------------------------------------------
    @property
    def has_interrupt(self) -> bool:
        """True when :meth:`wait_interrupt` can be used (else poll)."""
        return False

    def wait_interrupt(self, timeout: float) -> bool:
        """Block until the kernel's interrupt fires or ``timeout`` seconds pass.

        Returns True on interrupt, False on timeout.  Never blocks longer than
        ``timeout``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no interrupt; poll instead")

    def memory_window(self) -> tuple[int, int]:
        """``(device address, bytes)`` the kernel may address.

        What the kernel driver programs as MEM/MEM_BASE and MEM_SIZE.  A board
        addresses physical memory from 0; the simulator its arena.  The default
        reads ``describe()["memory_window"]`` (what a remote agent reports),
        else the whole 32-bit physical space.
        """
        window = self.describe().get("memory_window")
        return (int(window[0]), int(window[1])) if window else (0, 0xFFFF_FFFF)

    def reset(self) -> None:
        """Reset the kernel (reload the overlay), e.g. after a KernelTimeout; buffers are kept."""
        raise NotImplementedError(f"{type(self).__name__} cannot reset its kernel")

    # -- identity -------------------------------------------------------
    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain-data description: backend, board, overlay, memory size/free, clock."""

    def close(self) -> None:
        """Release the device (idempotent)."""

    def __enter__(self) -> Device:  # noqa: PYI034 - no typing.Self on Python 3.10
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
