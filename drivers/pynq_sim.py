"""pynq's own code against a simulated board: ``open_pynq_sim()``.

:class:`SimPynqDevice` is a ``pynq.Device`` (pynq.pl_server.device.Device)
with the REGISTER_RW capability whose bus is a
:class:`~bitlet.drivers.sim.SimDevice`:

* register reads/writes at the kernel IP's address (from the overlay's real
  ``.hwh``) go to the SimDevice register file; an AXI interrupt controller
  the kernel's interrupt is wired to is modelled (ISR, IPR, IER, IAR, SIE,
  CIE, IVR, MER), and other IP get a plain register bank;
* the interrupt controller's line to the PS is a simulated UIO device, so
  ``pynq.Interrupt`` (and pynq's ``_InterruptController``) wait for the
  kernel's interrupt for real, on an asyncio loop;
* ``allocate`` returns ``pynq.buffer.PynqBuffer`` objects whose device
  copy is a block of the SimDevice arena; pynq's ``flush``/``invalidate``
  copy between the host array and the arena;
* metadata comes from the ``.hwh`` through pynq's own parser (pynqmetadata,
  as on a board).

So ``pynq.Overlay(hwh, download=False, device=...)``, driver binding by
VLNV, ``register_map``, ``pynq.allocate(..., target=...)`` and MMIO all run
unmodified; :func:`open_pynq_sim` returns a
:class:`~bitlet.drivers.pynq_board.PynqDevice` on top of it.  The device is
not registered in pynq's device list (no ``_probe_``); while open it is
``pynq.Device.active_device`` (as the board is on a board), restored on close.

Needs pynq (the ``bitlet[board]`` extra); importing this module does not.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bitlet import hw
from bitlet.drivers.overlays import find_overlay
from bitlet.drivers.pynq_board import PynqDevice, import_pynq
from bitlet.drivers.sim import SimDevice, host_bytes_at
from bitlet.errors import BusError, DeviceError

_MASK32 = 0xFFFF_FFFF
_COUNTER = itertools.count(1)
INTC_VLNV_NAME = "axi_intc"


class SimIntc:
    """Register model of a Xilinx AXI interrupt controller (PG099), level inputs.

    Parameters
    ----------
    inputs : dict
        Input index -> callable returning the level of that interrupt line.
    """

    ISR, IPR, IER, IAR, SIE, CIE, IVR, MER = range(0, 0x20, 4)
    NO_VECTOR = _MASK32

    def __init__(self, inputs: dict[int, Callable[[], bool]]) -> None:
        self.inputs = inputs
        self.isr = self.ier = self.mer = 0

    def _sample(self) -> None:
        for index, line in self.inputs.items():
            if line():
                self.isr |= 1 << index

    def output(self) -> bool:
        """Level of the controller's ``irq`` output (to the PS)."""
        self._sample()
        return bool(self.mer & 1 and self.isr & self.ier)

    def read(self, offset: int) -> int:
        self._sample()
        pending = self.isr & self.ier
        values = {self.ISR: self.isr, self.IPR: pending, self.IER: self.ier, self.MER: self.mer,
                  self.IVR: (pending & -pending).bit_length() - 1 if pending else self.NO_VECTOR}
        return values.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset == self.ISR and not self.mer & 2:  # software interrupts before HIE
            self.isr |= value
        elif offset == self.IAR:
            self.isr &= ~value
        elif offset == self.IER:
            self.ier = value
        elif offset == self.SIE:
            self.ier |= value
        elif offset == self.CIE:
            self.ier &= ~value
        elif offset == self.MER:
            self.mer = value & 3 if not self.mer & 2 else self.mer | (value & 1)


class SimUio:
    """The UIO device of an interrupt line into the PS, for pynq's interrupt code.

    pynq's ``_InterruptController`` hands it events (``add_event``); a
    watcher thread sets them on the waiting asyncio loop once ``line()`` is
    high, as the UIO file descriptor's readiness does on a board.
    """

    def __init__(self, line: Callable[[], bool], cond: threading.Condition,
                 closed: Callable[[], bool]) -> None:
        self.line, self.cond, self.closed = line, cond, closed
        self.wait_events: list[Any] = []
        self.fired = 0
        self._watching = False

    def add_event(self, event: Any, number: int) -> None:
        self.wait_events.append(event)
        if not self._watching:
            self._watching = True
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._watch, args=(loop,), name="bitlet-sim-uio",
                             daemon=True).start()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.cond:
            while not self.closed() and not self.line():
                self.cond.wait(0.05)
        self._watching = False
        if not self.closed():
            try:
                loop.call_soon_threadsafe(self._fire)
            except RuntimeError:  # the loop has been closed meanwhile
                pass

    def _fire(self) -> None:
        events, self.wait_events = self.wait_events, []
        self.fired += 1
        for event in events:
            event.set()


@functools.lru_cache(maxsize=1)
def device_class() -> type:
    """The ``SimPynqDevice`` class (created once pynq is importable)."""
    pynq = import_pynq()
    from pynq.buffer import PynqBuffer  # optional (bitlet[board]): after import_pynq's check

    class SimPynqDevice(pynq.Device):
        """A pynq Device whose registers and memory are a SimDevice's."""

        def __init__(self, sim: Any, tag: str = "bitlet_sim") -> None:
            super().__init__(tag)
            self.sim = sim
            self.name = tag
            self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
            self.bitfile_name = None
            # unique, so pynq drops interrupt controllers cached for another board
            self.timestamp = f"simulated board {next(_COUNTER)}"
            self.kernel_base: int | None = None
            self._banks: dict[int, tuple[int, list[int]]] = {}  # base -> (size, words)
            self._intcs: dict[int, tuple[int, SimIntc]] = {}    # base -> (size, model)
            self.uio: dict[int, SimUio] = {}                    # raw PS irq -> UIO

        # -- metadata (pynq's own parser, as EmbeddedDevice) -------------------
        def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False) -> Any:
            # optional (pynq's metadata parser, installed with pynq): used only on a simulated board
            from pynqmetadata.frontends import Metadata
            from pynqmetadata.views.runtime import RuntimeMetadataParser  # optional, as above

            hwh = Path(bitfile_name).with_suffix(".hwh")
            if not hwh.is_file():
                raise DeviceError(f"{hwh} is missing: the simulated board reads the overlay's .hwh")
            return RuntimeMetadataParser(Metadata(input=hwh))

        def set_bitfile_name(self, bitfile_name: str) -> None:
            super().set_bitfile_name(bitfile_name)
            _unplug_uio(self)
            self._map_ip()
            _uio_table().update(self.uio)  # where pynq's interrupt code finds the PS lines

        def _map_ip(self) -> None:
            """Find the kernel IP's window and give other IP a register bank."""
            vlnvs = {hw.vlnv(k) for k in ("bitlet", "vendor_fp")}
            self._banks, self._intcs, self.uio = {}, {}, {}
            kernel_ips = set()
            for name, ip in self.ip_dict.items():
                base, size = ip.get("phys_addr"), ip.get("addr_range")
                if base is None or not size:
                    continue
                if ip.get("type") in vlnvs:
                    self.kernel_base = int(base)
                    kernel_ips.add(name)
                elif (ip.get("type") or "").split(":")[2:3] != [INTC_VLNV_NAME]:
                    self._banks[int(base)] = (int(size), [0] * min(int(size) // 4, 1024))
            for name, ctrl in self.interrupt_controllers.items():
                self._wire_intc(name, ctrl, kernel_ips)

        def _wire_intc(self, name: str, ctrl: dict, kernel_ips: set) -> None:
            """Model an AXI INTC whose inputs include the kernel's interrupt."""
            inputs = {pin["index"]: self.sim.irq_line
                      for path, pin in self.interrupt_pins.items()
                      if pin.get("controller") == name and path.rpartition("/")[0] in kernel_ips}
            ip = self.ip_dict.get(name, {})
            if not inputs or "phys_addr" not in ip:
                return
            intc = SimIntc(inputs)
            self._intcs[int(ip["phys_addr"])] = (int(ip["addr_range"]), intc)
            if ctrl.get("parent") == "" and "raw_irq" in ctrl:
                self.uio[int(ctrl["raw_irq"])] = SimUio(intc.output, self.sim._cond,
                                                        lambda: self.sim._closed)

        def download(self, bitstream: Any, parser: Any = None) -> None:
            raise DeviceError("the simulated board cannot be programmed: open the overlay with "
                              "download=False")

        # -- REGISTER_RW --------------------------------------------------------
        def read_registers(self, address: int, length: int) -> bytes:
            words = [self._read_word(address + 4 * i) for i in range(max(1, length // 4))]
            return np.array(words, dtype="<u4").tobytes()[:length]

        def write_registers(self, address: int, data: bytes) -> None:
            if len(data) % 4:
                raise BusError(f"register write of {len(data)} bytes at 0x{address:x}: "
                               "AXI-Lite writes are whole 32-bit words")
            for i, word in enumerate(np.frombuffer(bytes(data), dtype="<u4")):
                self._write_word(address + 4 * i, int(word))

        def _read_word(self, address: int) -> int:
            target, offset = self._decode(address)
            if target is None:
                return self.sim.read_reg(offset)
            if isinstance(target, SimIntc):
                with self.sim._cond:
                    return target.read(offset)
            return target[offset // 4] if offset // 4 < len(target) else 0

        def _write_word(self, address: int, value: int) -> None:
            target, offset = self._decode(address)
            if target is None:
                self.sim.write_reg(offset, value & _MASK32)
            elif isinstance(target, SimIntc):
                with self.sim._cond:
                    target.write(offset, value & _MASK32)
                    self.sim._cond.notify_all()
            elif offset // 4 < len(target):
                target[offset // 4] = value & _MASK32

        def _decode(self, address: int) -> tuple[Any, int]:
            """(None: the kernel | SimIntc | register bank, offset); BusError if unmapped."""
            if address % 4:
                raise BusError(f"unaligned register access at 0x{address:x}")
            if self.kernel_base is not None and 0 <= address - self.kernel_base < _kernel_span():
                return None, address - self.kernel_base
            for base, (size, intc) in self._intcs.items():
                if 0 <= address - base < size:
                    return intc, address - base
            for base, (size, words) in self._banks.items():
                if 0 <= address - base < size:
                    return words, address - base
            raise BusError(f"no IP of the overlay decodes address 0x{address:x} (AXI DECERR)")

        # -- memory -------------------------------------------------------------
        def allocate(self, shape: Any, dtype: Any, **kwargs: Any) -> Any:
            dtype = np.dtype(dtype)
            dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
            nbytes = math.prod(int(d) for d in dims) * dtype.itemsize  # no overflow
            block = self.sim.alloc_block(nbytes)
            try:
                buf = PynqBuffer(shape, dtype, device=self, bo=block, coherent=False,
                                 device_address=self.sim.base + block.offset)
            except BaseException:
                self.sim.free_block(block)
                raise
            buf[...] = 0
            # pynq's free protocol: freebuffer() hands `pointer` to `return_to`.
            buf.memory, buf.pointer, buf.return_to = self, block, self
            buf.freed = True  # pynq unmaps only board memory; nothing to unmap here
            return buf

        def return_pointer(self, block: Any) -> None:
            if not block.freed and not self.sim._closed:
                self.sim.free_block(block)

        def flush(self, bo: Any, offset: int, ptr: int, size: int) -> None:
            self._check_block(bo)
            self.sim._write_arena(bo.offset + offset, host_bytes_at(ptr, size).copy())

        def invalidate(self, bo: Any, offset: int, ptr: int, size: int) -> None:
            self._check_block(bo)
            host_bytes_at(ptr, size)[...] = self.sim._read_arena(bo.offset + offset, size)

        def _check_block(self, block: Any) -> None:
            if block.freed:
                raise DeviceError(f"sync of a freed buffer (device address "
                                  f"0x{self.sim.base + block.offset:x})")
            self.sim._check_open()

        def close(self) -> None:  # pynq's Device.close only warns (deprecated)
            pass

    return SimPynqDevice


def _kernel_span() -> int:
    return hw.REG_SPAN


def default_hwh(kind: str = "bitlet", board: str = "pynqz2") -> Path:
    """The packaged ``.hwh`` of an overlay (no bitstream needed)."""
    return Path(find_overlay(board, kind, require_bitstream=False).hwh)


def open_pynq_sim(kernel: str = "bitlet", *, board: str = "pynqz2", hwh: str | Path | None = None,
                  interrupt: bool = True, rails: dict[str, Any] | None = None,
                  **sim_kwargs: Any) -> Any:
    """A :class:`~bitlet.drivers.pynq_board.PynqDevice` running on a simulated board.

    Parameters
    ----------
    kernel : {"bitlet", "vendor_fp"}
        Kernel of the simulated board and of the overlay (as SimDevice).
    board : str
        Whose packaged ``.hwh`` to load (default ``"pynqz2"``).
    hwh : path, optional
        Another ``.hwh`` to load instead.
    interrupt : bool
        Use the overlay's interrupt wiring through ``pynq.Interrupt`` (the
        simulated interrupt controller and UIO); False: waits poll the ISR.
    rails : dict, optional
        Simulated power rails ``{name: rail}`` (objects like ``pynq.Rail``
        with a ``power`` sensor: ``.name``, ``.value`` in watts), returned by
        ``power_rails()``; default none (a board without power sensors).
    **sim_kwargs
        Passed to :class:`~bitlet.drivers.sim.SimDevice` (``memory``, ``delay``,
        ``faults``, ...).

    Returns
    -------
    PynqDevice
        With ``.sim`` (the SimDevice) and ``.pynq_device`` (the SimPynqDevice);
        closing it closes the simulation and restores pynq's active device.
    """
    pynq = import_pynq()
    sim = SimDevice(kernel, **sim_kwargs)
    pynq_dev = device_class()(sim)
    saved = vars(pynq.Device).get("_active_device")
    pynq_dev.bitlet_saved_active, pynq_dev.bitlet_closed = saved, False
    pynq.Device.active_device = pynq_dev
    hwh_path = Path(hwh) if hwh is not None else default_hwh(kernel, board)
    try:
        dev = sim_pynq_class()(hwh_path, kind=kernel, download=False,
                               pynq_device=pynq_dev, interrupt=interrupt)
    except BaseException:
        _restore_active(pynq, saved, pynq_dev)
        sim.close()
        raise
    dev.sim, dev._saved_active = sim, saved
    dev.sim_rails = dict(rails or {})
    return dev


_NO_TABLE: dict = {}


def _uio_table() -> dict:
    """pynq's table of UIO devices by raw PS interrupt number.

    A pynq without that table cannot use the simulated line: its interrupt
    setup then fails as on a laptop, pynq warns (kept in ``dev.notes``)
    and waits poll the ISR.
    """
    from pynq.interrupt import _InterruptController  # optional (bitlet[board]): pynq is loaded here

    return getattr(_InterruptController, "_uio_devices", _NO_TABLE)


def _unplug_uio(pynq_dev: Any) -> None:
    table = _uio_table()
    for irq, uio in pynq_dev.uio.items():
        if table.get(irq) is uio:
            del table[irq]


def _restore_active(pynq: Any, saved: Any, pynq_dev: Any) -> None:
    """Unplug the simulated UIO devices and, if ``pynq_dev`` is still pynq's
    active device, put back the one active before it (skipping simulated
    boards closed meanwhile, when several were opened)."""
    _unplug_uio(pynq_dev)
    pynq_dev.bitlet_closed = True
    if vars(pynq.Device).get("_active_device") is not pynq_dev:
        return  # another device became active since: leave it so
    while saved is not None and getattr(saved, "bitlet_closed", False):
        saved = getattr(saved, "bitlet_saved_active", None)
    if saved is None:
        del pynq.Device._active_device
    else:
        pynq.Device.active_device = saved


@functools.lru_cache(maxsize=1)
def sim_pynq_class() -> type:
    """``PynqSimDevice``: a PynqDevice over a simulated board; close() ends both."""
    class PynqSimDevice(PynqDevice):
        """PynqDevice whose pynq device is a SimPynqDevice (``.sim`` is its SimDevice)."""

        sim: Any = None
        _saved_active: Any = None
        sim_rails: dict = {}

        def memory_window(self) -> tuple[int, int]:
            """The simulated arena (the kernel's m_axi sees only it)."""
            return self.sim.memory_window()

        def reset(self) -> None:
            """Reset the simulated kernel (the board would reload the overlay)."""
            self._check_open()
            self.sim.reset()

        def power_rails(self) -> tuple[dict[str, Any], str]:
            """The simulated rails given to :func:`open_pynq_sim` (none by default)."""
            return dict(self.sim_rails), "the simulated board (pynq)"

        def describe(self) -> dict[str, Any]:
            info = super().describe()
            info.update(board="simulated (pynq)", memory_window=list(self.sim.memory_window()),
                        memory=self.sim.describe()["memory"])
            return info

        def close(self) -> None:
            if self._closed:
                return
            super().close()
            _restore_active(import_pynq(), self._saved_active, self.pynq_device)
            self.sim.close()

    return PynqSimDevice
