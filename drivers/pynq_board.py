"""A real PYNQ board through pynq: ``PynqDevice`` (needs the ``bitlet[board]`` extra).

pynq is imported inside functions only, so this module imports on a laptop;
instantiating :class:`PynqDevice` without pynq raises a clear
:class:`bitlet.DeviceError` ("install bitlet[board] on the board").

* **Overlay**: the ``.bit`` (with its ``.hwh`` beside it) located by
  :func:`bitlet.drivers.overlays.find_overlay` or given explicitly, loaded with
  ``pynq.Overlay``.  The kernel IP is found by its VLNV (``bitlet.hw.vlnv``)
  and driven by :class:`BitletIP`, a ``pynq.DefaultIP`` subclass bound to
  that VLNV (so ``register_map`` and MMIO are pynq's own).
* **Memory**: ``pynq.allocate(..., cacheable=True)``; ``sync_to_device`` is
  a cache flush and ``sync_from_device`` an invalidate, as in pynq.
* **Interrupt**: ``pynq.Interrupt`` when the overlay wires the kernel's
  interrupt (and this thread's asyncio loop is free to wait on it); else
  waits poll the ISR register with a bounded back-off.

Example (on a board)::

    dev = PynqDevice()                        # packaged overlay of this board
    buf = dev.allocate((64,), "float32")
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from bitlet import hw
from bitlet.drivers.device import Device, DeviceBuffer, buffer_dtype, buffer_shape
from bitlet.drivers.overlays import KINDS, find_overlay
from bitlet.errors import (
    BitletTypeError,
    BitletValueError,
    BusError,
    DeviceError,
    OutOfDeviceMemory,
)

INSTALL_HINT = "install bitlet[board] on the board (pip install 'bitlet[board]'), which brings pynq"
#: The kernel's m_axi port addresses physical memory from 0 (32-bit space).
MEMORY_WINDOW = (0, 0xFFFF_FFFF)


def import_pynq() -> Any:
    """Import pynq, or raise DeviceError saying how to get it.

    pynq warns (ResourceWarning) when imported on a CPU it does not support
    (a laptop running the pynq-backed simulation), and its dependency
    pynqutils imports the deprecated ``pkg_resources``; both warnings are
    about pynq's environment, expected, and silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ResourceWarning,
                                    message="Pynq does not support the CPU")
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message=".*pkg_resources")
            import pynq  # optional (bitlet[board]): imported when a board is opened
    except ImportError as exc:
        raise DeviceError(f"pynq is not installed: {INSTALL_HINT} ({exc})") from exc
    return pynq


@functools.lru_cache(maxsize=1)
def classes() -> tuple[type, type]:
    """``(BitletIP, PynqDeviceBuffer)``, created once pynq is importable.

    Creating ``BitletIP`` registers it with pynq's driver table (binding by
    VLNV), so it must exist before an Overlay is constructed.
    """
    pynq = import_pynq()
    from pynq.buffer import PynqBuffer  # optional (bitlet[board]): after import_pynq's check

    class BitletIP(pynq.DefaultIP):
        """pynq driver of the Bitlet (and vendor-FP) kernel IP: MMIO and register_map."""

        bindto = [hw.vlnv("bitlet"), hw.vlnv("vendor_fp")]  # noqa: RUF012 - pynq's API

        def __init__(self, description: dict) -> None:
            super().__init__(description=description)
            self.vlnv = description.get("type")

    class PynqDeviceBuffer(PynqBuffer, DeviceBuffer):
        """pynq's buffer with the Device buffer rules (double free, use after free)."""

        _state: _BufferState | None = None

        def __array_finalize__(self, obj: Any) -> None:
            super().__array_finalize__(obj)
            state = getattr(obj, "_state", None)
            self._state = None
            if state is not None:
                offset = self.virtual_address - state.host_address
                if 0 <= offset and offset + self.nbytes <= state.nbytes:
                    self._state = state
                else:  # arithmetic result: not device memory
                    self.device_address = None

        # The same use-after-free and not-device-memory checks as RemoteBuffer._root
        # (drivers/remote.py): the two buffer types share no base class (a pynq array vs a
        # mirror of a remote buffer), so each says it in its own terms.
        def _live(self, action: str) -> _BufferState:
            state = self._state
            if state is None:
                raise DeviceError(f"cannot {action}: this array is not in device memory (a copy or "
                                  "the result of an operation); write into an allocated buffer")
            if state.freed:
                raise DeviceError(f"cannot {action}: use after free of the buffer at device "
                                  f"address 0x{state.device_address:x} ({state.nbytes} bytes)")
            if not self.flags.c_contiguous:
                raise BitletValueError("sync of a non-contiguous view: sync the whole buffer "
                                       "(or a contiguous slice)")
            return state

        # sync_to_device/flush and sync_from_device/invalidate: pynq's two names for each
        def sync_to_device(self) -> None:
            """Flush the host cache lines of this buffer to DDR."""
            self._live("sync_to_device")
            super().sync_to_device()

        def sync_from_device(self) -> None:
            """Invalidate the host cache so the next reads see DDR."""
            self._live("sync_from_device")
            super().sync_from_device()

        def flush(self) -> None:
            """pynq's name of :meth:`sync_to_device` (same checks)."""
            self._live("flush")
            super().flush()

        def invalidate(self) -> None:
            """pynq's name of :meth:`sync_from_device` (same checks)."""
            self._live("invalidate")
            super().invalidate()

        def __exit__(self, *exc: object) -> int:
            """Leaving a ``with`` block frees the buffer (unless already freed)."""
            if self._state is not None and not self._state.freed:
                self.freebuffer()
            return 0

        def freebuffer(self) -> None:
            """Return the buffer to the CMA pool; twice raises DeviceError."""
            state = self._state
            if state is None:
                raise DeviceError("freebuffer(): this array is not a device buffer")
            if state.freed:
                raise DeviceError(f"double free of the buffer at device address "
                                  f"0x{state.device_address:x} ({state.nbytes} bytes)")
            state.freed = True
            state.raw.freebuffer()

        def __del__(self) -> None:
            # The pynq buffer underneath frees itself when the last view goes.
            pass

    return BitletIP, PynqDeviceBuffer


@dataclasses.dataclass
class _BufferState:
    """Shared by a buffer and its views: the pynq buffer and whether it was freed."""

    raw: Any
    host_address: int
    device_address: int
    nbytes: int
    freed: bool = False


class PynqDevice(Device):
    """The Bitlet overlay on a PYNQ board, through pynq.

    Parameters
    ----------
    bitfile : str or path, optional
        The overlay bitstream (``.bit``, ``.hwh`` beside it).  Default: the
        packaged overlay of this board (:func:`bitlet.drivers.overlays.find_overlay`).
    kind : {"bitlet", "vendor_fp"}
        Kernel kind of the packaged overlay and of the IP to drive.
    board : str, optional
        Board name for the packaged overlay (default: detected).
    download : bool
        Program the FPGA (False: attach to the overlay already loaded).
    pynq_device : pynq.Device, optional
        The pynq device (default ``pynq.Device.active_device``).
    interrupt : bool
        Use the kernel's interrupt when the overlay wires it.
    ip_name : str, optional
        Instance name of the kernel IP (default: found by VLNV).

    Raises
    ------
    bitlet.DeviceError
        pynq missing ("install bitlet[board]"), files missing, no kernel IP.
    """

    kind = "pynq"

    def __init__(self, bitfile: str | os.PathLike | None = None, *, kind: str = "bitlet",
                 board: str | None = None, download: bool = True, pynq_device: Any = None,
                 interrupt: bool = True, ip_name: str | None = None) -> None:
        if kind not in KINDS:
            raise BitletValueError(f"kind must be one of {KINDS}, got {kind!r}")
        pynq = import_pynq()
        ip_class, self._buffer_class = classes()
        self.kernel_name = kind
        self.bitfile = self._locate(bitfile, board, kind)
        self.overlay = self._load(pynq, download, pynq_device)
        self.pynq_device = self.overlay.device
        self.ip_name = ip_name or self._find_ip(kind)
        self.notes: list[str] = []
        if not interrupt:
            self._hide_interrupts()
        self.ip = self._driver()
        if not isinstance(self.ip, ip_class):
            raise DeviceError(f"{self.ip_name} is driven by {type(self.ip).__name__}, not "
                              "BitletIP: its VLNV in the .hwh is not the kernel's")
        self._irq = self._interrupt() if interrupt else None
        self._closed = False

    # -- opening ---------------------------------------------------------------
    @staticmethod
    def _locate(bitfile: Any, board: str | None, kind: str) -> Path:
        if bitfile is None:
            return Path(find_overlay(board, kind).bit)
        path = Path(bitfile)
        if not path.is_file():
            raise DeviceError(f"overlay bitstream {path} does not exist")
        if not path.with_suffix(".hwh").is_file() and path.suffix != ".hwh":
            raise DeviceError(f"{path.with_suffix('.hwh')} is missing: pynq needs the .hwh "
                              "beside the .bit (copy both from the overlay build)")
        return path

    def _load(self, pynq: Any, download: bool, pynq_device: Any) -> Any:
        try:
            return pynq.Overlay(str(self.bitfile), download=download, device=pynq_device)
        except (OSError, RuntimeError, ValueError) as exc:
            raise DeviceError(f"pynq could not load the overlay {self.bitfile}: {exc}") from exc

    def _find_ip(self, kind: str) -> str:
        vlnv = hw.vlnv(kind)
        names = [name for name, ip in self.overlay.ip_dict.items() if ip.get("type") == vlnv]
        if len(names) != 1:
            found = sorted(f"{n} ({ip.get('type')})" for n, ip in self.overlay.ip_dict.items())
            raise DeviceError(f"the overlay {self.bitfile} has {len(names)} IP of type {vlnv} "
                              f"(need exactly one; pass ip_name=); its IP: {', '.join(found)}")
        return names[0]

    def _hide_interrupts(self) -> None:
        """Keep pynq from setting up the kernel's interrupt (``interrupt=False``)."""
        try:  # pynq's IP map (pynq >= 2.6); the IP may sit in a hierarchy
            description = self.overlay._ip_map._description
            *hierarchy, leaf = self.ip_name.split("/")
            for part in hierarchy:
                description = description["hierarchies"][part]
            description["ip"][leaf]["interrupts"] = {}
        except (AttributeError, KeyError, TypeError):
            self.notes.append("pynq may set up the kernel's interrupt; it is not used")

    def _driver(self) -> Any:
        """Instantiate the IP driver through the overlay (pynq binds it by VLNV)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            driver = self.overlay
            for part in self.ip_name.split("/"):
                driver = getattr(driver, part)
        self.notes += [str(w.message) for w in caught]
        return driver

    def _interrupt(self) -> Any:
        """The pynq.Interrupt of the kernel's interrupt pin, or None (then poll)."""
        irq = getattr(self.ip, "interrupt", None)
        if irq is None:
            self.notes.append("the kernel's interrupt is not usable: waits poll the ISR register")
        return irq

    # -- memory ----------------------------------------------------------------
    def allocate(self, shape: Any, dtype: Any = np.uint8) -> DeviceBuffer:
        """Allocate a cacheable, physically contiguous buffer (``pynq.allocate``)."""
        self._check_open()
        pynq = import_pynq()
        dtype = buffer_dtype(dtype)
        dims = buffer_shape(shape)
        nbytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
        try:
            raw = pynq.allocate(shape, dtype, target=self.pynq_device, cacheable=True)
        except OutOfDeviceMemory:
            raise
        except (MemoryError, RuntimeError) as exc:
            raise OutOfDeviceMemory(f"device memory exhausted: requested {nbytes} bytes, "
                                    f"free {cma_free()} ({exc})") from exc
        buf = raw.view(self._buffer_class)
        buf._state = _BufferState(raw, raw.virtual_address, int(raw.device_address), raw.nbytes)
        return buf

    def free(self, buffer: DeviceBuffer) -> None:
        """Release a buffer (same as ``buffer.freebuffer()``)."""
        if not isinstance(buffer, self._buffer_class):
            raise BitletTypeError(f"free() takes a buffer of this device, "
                                  f"got {type(buffer).__name__}")
        buffer.freebuffer()

    def memory_window(self) -> tuple[int, int]:
        """``(MEM_BASE, MEM_SIZE)``: the kernel addresses physical memory directly."""
        return MEMORY_WINDOW

    # -- registers -------------------------------------------------------------
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit kernel register through the IP's MMIO."""
        self._check_open()
        return int(self.ip.read(_check_offset(offset))) & 0xFFFF_FFFF

    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit kernel register through the IP's MMIO."""
        self._check_open()
        offset = _check_offset(offset)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 0 <= value <= 0xFFFF_FFFF:
            raise BitletValueError(f"register value must be an int in [0, 2**32), got {value!r}")
        self.ip.write(offset, int(value))

    @property
    def register_map(self) -> Any:
        """pynq's register map of the kernel (names from the .hwh)."""
        return self.ip.register_map

    # -- interrupt -------------------------------------------------------------
    @property
    def has_interrupt(self) -> bool:
        """True: waits use the interrupt when wired, else poll ISR (same contract)."""
        return True

    def wait_interrupt(self, timeout: float) -> bool:
        """Wait until the kernel raises its interrupt (GIE and an ISR bit).

        Uses ``pynq.Interrupt`` when the overlay wires it and this thread's
        event loop is not already running (e.g. a script); in a notebook, or
        without the wire, it polls the ISR register.  Never blocks longer
        than ``timeout`` seconds.
        """
        self._check_open()
        loop = _idle_loop()
        if self._irq is not None and loop is not None:
            try:
                loop.run_until_complete(asyncio.wait_for(self._irq.wait(), timeout))
            except asyncio.TimeoutError:
                return False
            return True
        return self._poll_isr(time.monotonic() + timeout)

    def _poll_isr(self, deadline: float) -> bool:
        pause = 20e-6
        while True:
            if self.read_reg(hw.REG_GIE) & 1 and self.read_reg(hw.REG_ISR):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 5e-3)

    # -- identity --------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Plain data: board, overlay files, IP, interrupt, memory."""
        pynq = import_pynq()
        ip = self.overlay.ip_dict[self.ip_name]
        return {
            "backend": "pynq",
            "board": os.environ.get("BOARD") or getattr(self.pynq_device, "name", None),
            "pynq": getattr(pynq, "__version__", "?"),
            "pynq_device": type(self.pynq_device).__name__,
            "kernel": self.kernel_name,
            "overlay": str(self.bitfile),
            "ip": {"name": self.ip_name, "vlnv": ip.get("type"),
                   "phys_addr": int(ip.get("phys_addr", 0)),
                   "addr_range": int(ip.get("addr_range", 0))},
            "interrupt": self._irq is not None,
            "notes": list(self.notes),
            "memory_window": list(MEMORY_WINDOW),
            "memory": {"cma_free": cma_free()},
            "closed": self._closed,
        }

    def power_rails(self) -> tuple[dict[str, Any], str]:
        """``(pynq.get_rails(), where)``: the board's power rails (empty without sensors).

        For :func:`bitlet.drivers.power.power_meter` (``--power``).
        """
        pynq = import_pynq()
        board = os.environ.get("BOARD") or getattr(self.pynq_device, "name", None) or "this board"
        return dict(pynq.get_rails()), f"pynq.get_rails() on {board}"

    def reset(self) -> None:
        """Reload the overlay (resets the kernel, e.g. after a timeout); buffers are kept."""
        self._check_open()
        pynq = import_pynq()
        self.overlay = self._load(pynq, True, self.pynq_device)
        if self._irq is None:
            self._hide_interrupts()
        self.ip = self._driver()
        self._irq = self._interrupt() if self._irq is not None else None

    def close(self) -> None:
        """Stop using the board (the overlay stays loaded; idempotent)."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError("the PYNQ device is closed; open it again with bitlet.open('pynq')")

    def __repr__(self) -> str:
        return f"PynqDevice({str(self.bitfile)!r}, ip={self.ip_name!r})"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def cma_free() -> str:
    """Free CMA memory as reported by the kernel (``/proc/meminfo``), or "unknown"."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("CmaFree:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _idle_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's event loop if we may block on it, else None."""
    try:
        asyncio.get_running_loop()
        return None  # a notebook: its loop is running; we cannot block on it
    except RuntimeError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return None


def _check_offset(offset: Any) -> int:
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise BitletTypeError(f"register offset must be an int, got {offset!r}")
    if not 0 <= offset < hw.REG_SPAN:
        raise BusError(f"register offset 0x{int(offset):x} is outside the register window "
                       f"[0, 0x{hw.REG_SPAN:x})")
    if offset % 4:
        raise BusError(f"unaligned register access at offset 0x{int(offset):x} "
                       "(must be a multiple of 4)")
    return int(offset)


