"""Simulated board: DDR arena, s_axilite register file and the reference kernel.

:class:`SimDevice` implements :class:`bitlet.drivers.device.Device` with the
rules of a real board, so that code which runs on the simulator runs on a
PYNQ board unchanged:

* **Memory.**  A bounded DDR arena (default 128 MiB, like a board's CMA) at
  a nonzero device base address (default ``0x1000_0000``), carved by a
  first-fit allocator with page alignment (4 KiB; configurable down to 64 B).
  Buffers are numpy arrays (:class:`SimBuffer`) whose *host* copy is separate
  from the *device* copy in the arena: the kernel only sees the arena, the
  host only its array, and ``sync_to_device()`` / ``sync_from_device()`` copy
  between them.  A missing sync therefore shows stale data exactly as a missing
  cache flush/invalidate does on a board.  Fresh device memory is filled
  with a poison byte (0xFF: NaN in every float format, -1 as an integer).
* **Registers.**  The Vitis HLS s_axilite control protocol of the kernel's
  register window (``bitlet.hw.REG_*``): CTRL with ap_start (held until
  the run completes, as the HLS RTL clears it on ap_ready; a start written
  during a run is absorbed), ap_done and ap_ready (clear-on-read), ap_idle
  and auto_restart (re-arms ap_start at the end of each run); GIE, IER and ISR (toggle-on-write); argument registers;
  output registers with their clear-on-read ap_vld words.  Accesses outside
  the window or unaligned raise :class:`bitlet.BusError`.
* **Kernel.**  Writing ap_start runs the kernel callable (by default the
  hls/ C source compiled through cffi, ``bitlet.engines._reference.lib.bitlet_top``)
  on the arena with the argument registers, in a background thread, so
  ap_done appears later, as on hardware (``delay`` adds modelled time: a
  fixed number of seconds, or ``"cycles"``: the kernel cycles the profile
  records report at the kernel clock).
* **Faults.**  :class:`SimFaults` injects a kernel that never completes, a
  stopped clock, an AXI bus error at a given instruction and wrong ID
  registers; :meth:`SimDevice.reset` recovers, as reloading the overlay does.
* **Engines.**  The kernel callable is pluggable (``engine=``): the fast
  emulator (``"fast"``, :mod:`bitlet.engines.fast`; the default for the Bitlet
  kernel whenever it is built), the reference (``"reference"``: the hls/ C
  source itself, the default for the vendor-FP kernel and wherever the fast
  emulator is missing) or any function with the C signature of
  ``bitlet_top``.  Both engines leave the same bytes in device memory
  (outputs and profile records) and the same registers.  Any mix of devices,
  engines and threads is safe: every call into the reference library (whose
  kernel tops keep static on-chip buffers) holds one process-wide lock
  (:mod:`bitlet.engines.reference`); the fast emulator needs none.

Example
-------
>>> from bitlet.drivers.sim import SimDevice
>>> dev = SimDevice()
>>> buf = dev.allocate((4, 64), "float32")
>>> hex(buf.device_address)
'0x10000000'
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import importlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bitlet import hw
from bitlet.drivers.arena import Arena, Block
from bitlet.drivers.device import Device, DeviceBuffer, buffer_dtype, buffer_shape
from bitlet.engines import KERNEL_TOPS, TOP_OUTPUTS, check_kernel, fast
from bitlet.engines.fast import available as fast_available
from bitlet.engines.reference import LOCK, ffi, lib
from bitlet.errors import (
    BitletTypeError,
    BitletValueError,
    BusError,
    DeviceError,
    OutOfDeviceMemory,
)

#: Default device address of the first arena byte (where CMA often sits).
DEFAULT_BASE = 0x1000_0000
#: Default arena size in bytes (a typical PYNQ CMA pool).
DEFAULT_SIZE = 128 << 20
#: Default allocation alignment in bytes: a page, as CMA buffers on a board.
DEFAULT_ALIGN = 4096
#: Smallest alignment accepted (the kernel's m_axi burst granule).
MIN_ALIGN = 64
#: Byte written into freshly allocated device memory.
DEFAULT_POISON = 0xFF
#: Longest wait of :meth:`SimDevice.reset` for an abandoned run to end, in seconds.
RESET_TIMEOUT = 60.0

# 32-bit output arguments of the kernel top, in C argument order (bitlet_top.h),
# as register names; the 64-bit `clock` output (REG_CLOCK_LO/HI) follows them.
_OUTPUTS = tuple(name.upper() for name in TOP_OUTPUTS)
_MASK32 = 0xFFFF_FFFF


# ---------------------------------------------------------------------------
# Buffers
# ---------------------------------------------------------------------------
class SimBuffer(DeviceBuffer):
    """A host numpy array mirrored by a block of the simulated DDR arena.

    Created by :meth:`SimDevice.allocate`.  Slices and views keep the device
    address of their first byte.  Arrays produced by arithmetic on a buffer
    are not in device memory (``device_address`` is None and syncing them
    raises DeviceError).
    """

    device_address: int | None
    _device: SimDevice | None
    _block: Block | None
    _host_base: int  # host address of the root buffer's first byte
    _owner: bool

    def __array_finalize__(self, obj: Any) -> None:
        self._owner = False
        self._device = None
        self._block = None
        self.device_address = None
        self._host_base = 0
        if isinstance(obj, SimBuffer) and obj._block is not None:
            start = self.__array_interface__["data"][0]
            offset = start - obj._host_base
            if 0 <= offset and offset + self.nbytes <= obj._block.nbytes:
                self._device = obj._device
                self._block = obj._block
                self._host_base = obj._host_base
                self.device_address = obj._device.base + obj._block.offset + offset

    # -- checks ------------------------------------------------------------
    def _live(self, action: str) -> tuple[SimDevice, Block, int]:
        if self._block is None or self._device is None:
            raise DeviceError(
                f"cannot {action}: this array is not in device memory (it is the result of "
                "an operation on a device buffer, or a copy); write into a buffer from "
                "allocate() instead, e.g. buf[:] = values"
            )
        if self._block.freed:
            raise DeviceError(
                f"cannot {action}: use after free of the buffer at device address "
                f"0x{self._device.base + self._block.offset:x} ({self._block.nbytes} bytes)"
            )
        self._device._check_open()
        offset = self.device_address - self._device.base
        return self._device, self._block, offset

    def _host_bytes(self) -> np.ndarray:
        """The bytes this view spans in host memory (contiguous views only)."""
        if self.flags.c_contiguous:
            return self.reshape(-1).view(np.uint8)
        raise BitletValueError(
            "sync of a non-contiguous view: sync the whole buffer (or a contiguous slice)"
        )

    # -- the Device buffer API ---------------------------------------------
    def sync_to_device(self) -> None:
        """Copy the host array into device memory (a cache flush on a board)."""
        device, _block, offset = self._live("sync_to_device")
        device._write_arena(offset, self._host_bytes())

    def sync_from_device(self) -> None:
        """Copy device memory into the host array (a cache invalidate on a board)."""
        device, _block, offset = self._live("sync_from_device")
        self._host_bytes()[...] = device._read_arena(offset, self.nbytes)

    def freebuffer(self) -> None:
        """Return the buffer's device memory; freeing twice raises DeviceError."""
        if self._block is None or self._device is None:
            raise DeviceError("freebuffer(): this array is not a device buffer")
        if self._block.freed:
            raise DeviceError(
                f"double free of the buffer at device address "
                f"0x{self._device.base + self._block.offset:x} ({self._block.nbytes} bytes)"
            )
        self._device._release(self._block)

    # -- pynq.buffer.PynqBuffer names, so pynq code runs unchanged -----------
    def flush(self) -> None:
        """Same as :meth:`sync_to_device` (pynq's name)."""
        self.sync_to_device()

    def invalidate(self) -> None:
        """Same as :meth:`sync_from_device` (pynq's name)."""
        self.sync_from_device()

    @property
    def physical_address(self) -> int | None:
        """Same as ``device_address`` (pynq's name)."""
        return self.device_address

    @property
    def cacheable(self) -> bool:
        """True: host and device copies need syncs, as a cacheable pynq buffer."""
        return True

    def __enter__(self) -> Any:  # this buffer
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a ``with`` block frees the buffer, as with pynq."""
        if self._block is not None and not self._block.freed:
            self.freebuffer()

    def __del__(self) -> None:
        # Like pynq: a buffer nobody references any more goes back to the pool.
        block = getattr(self, "_block", None)
        if getattr(self, "_owner", False) and block is not None and not block.freed:
            try:
                self._device._release(block)
            except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nobody to tell
                pass


# ---------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class SimFaults:
    """Faults a :class:`SimDevice` injects (for tests of error paths).

    Attributes
    ----------
    hang_after : int or None
        The kernel completes this many instructions, publishes INSN_DONE and
        then never finishes (ap_done never rises).  0 hangs even the ID probe.
    bus_error_at : int or None
        The AXI master gets a bus error on this instruction index: the run
        stops with STATUS_BUS_ERROR and INSN_DONE = that index.
    registers : dict
        Output register name (e.g. ``"ID_VERSION"``) -> value latched in
        place of the kernel's (a wrong or old overlay).
    no_clock : bool
        The kernel's clock is stopped: ap_start stays latched, nothing runs.
    """

    hang_after: int | None = None
    bus_error_at: int | None = None
    registers: dict[str, int] = dataclasses.field(default_factory=dict)
    no_clock: bool = False


# ---------------------------------------------------------------------------
# Kernel engines
# ---------------------------------------------------------------------------
KernelFn = Callable[..., None]


def default_engine(kernel: str = "bitlet") -> str:
    """Engine a :class:`SimDevice` uses when ``engine=None``.

    ``"fast"`` for the Bitlet kernel when :func:`fast_available`, else
    ``"reference"`` (the vendor-FP kernel has only the reference).  Both give
    the same bytes in device memory, profile records included.
    """
    return "fast" if kernel == "bitlet" and fast_available() else "reference"


def resolve_kernel(kernel: str = "bitlet", engine: Any = None) -> tuple[KernelFn, str]:
    """Return ``(function, engine name)`` of a kernel top.

    Parameters
    ----------
    kernel : {"bitlet", "vendor_fp"}
        Which top (``bitlet_top`` or ``vendor_fp_top``).
    engine : None, str or callable
        None: :func:`default_engine` (``"fast"`` for the Bitlet kernel when
        it is built, else ``"reference"``).  ``"reference"``: the cffi
        reference compiled from hls/.  ``"fast"``: the fast emulator
        (:func:`bitlet.engines.fast.make_top`, Bitlet kernel only).  Another module
        name: its ``lib.<top>``.  A callable: used as is; it must have the C
        signature of ``bitlet_top`` (hls/bitlet_top.h) and is called with
        cffi pointers.
    """
    check_kernel(kernel)
    if callable(engine):
        return engine, getattr(engine, "__name__", type(engine).__name__)
    if engine is None:
        engine = default_engine(kernel)
    if engine == "fast":
        if kernel != "bitlet":
            raise BitletValueError(f"engine='fast' implements the bitlet kernel only, "
                                   f"not {kernel!r}; "
                                   "use engine='reference' (the default for it)")
        if not fast_available():
            raise BitletValueError("engine='fast': the fast emulator (bitlet.engines._fast) is not "
                                   "built in this installation; reinstall the SDK with a C "
                                   "compiler (pip install .) or use engine='reference'")
        return fast.make_top(), "fast"
    if engine == "reference":
        return _reference_top(kernel), "reference"
    module_name = engine
    if not isinstance(module_name, str):
        raise BitletTypeError(f"engine must be None, 'fast', 'reference', a module name or a "
                              f"callable, got {engine!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BitletValueError(f"engine={engine!r} is not 'fast', 'reference' or an importable "
                               f"cffi module ({exc})") from exc
    func = getattr(getattr(module, "lib", None), KERNEL_TOPS[kernel], None)
    if func is None:
        raise DeviceError(
            f"{module_name} has no {KERNEL_TOPS[kernel]}(): the kernel sources "
            "(hls/bitlet_kernel.c, hls/vendor_kernel.c) were missing when the SDK was "
            "built; reinstall it (pip install -e .)"
        )
    return func, module_name


def _reference_top(kernel: str) -> KernelFn:
    """``bitlet_top`` / ``vendor_fp_top`` of the cffi reference (hls/ C source)."""
    func = getattr(lib, KERNEL_TOPS[kernel], None)
    if func is None:
        raise DeviceError(
            f"bitlet.engines._reference has no {KERNEL_TOPS[kernel]}(): the kernel sources "
            "(hls/bitlet_kernel.c, hls/vendor_kernel.c) were missing when the SDK was "
            "built; reinstall it (pip install -e .)")
    return func


class _KernelOutputs:
    """cffi out-parameters of one kernel call, read back as a dict (``CLOCK``:
    the 64-bit clock output)."""

    def __init__(self, ffi: Any, timestamp: int) -> None:
        self.ptrs = {name: ffi.new("uint32_t *") for name in _OUTPUTS}
        self.clock = ffi.new("uint64_t *", timestamp)
        #: the `timestamp` port (a pointer, read at each stamp by the kernel)
        self.timestamp = ffi.new("uint64_t *", timestamp)

    def values(self) -> dict[str, int]:
        out = {name: int(p[0]) for name, p in self.ptrs.items()}
        out["CLOCK"] = int(self.clock[0])
        return out


# ---------------------------------------------------------------------------
# The device
# ---------------------------------------------------------------------------
class SimDevice(Device):
    """A simulated PYNQ board: DDR arena, register file and kernel.

    Parameters
    ----------
    kernel : {"bitlet", "vendor_fp"}
        The kernel top the overlay carries.
    engine : None, "fast", "reference" or callable
        Implementation of the kernel (see :func:`resolve_kernel`).  None:
        the fast emulator for the Bitlet kernel when it is built, else the
        reference (:func:`default_engine`); ``describe()["engine"]`` says
        which one runs.
    memory : int
        Arena size in bytes (default 128 MiB); at most 4 GiB - 1.
    base : int
        Device address of the first arena byte (default 0x1000_0000).
    align : int
        Allocation alignment in bytes, a power of two >= 64 (default 4096,
        a page, like CMA buffers on a board).
    delay : float or "cycles"
        Modelled kernel time: ap_done rises no earlier than this many seconds
        after ap_start (the simulation's own run time counts too).
        ``"cycles"``: the kernel cycles of the run's profile records
        (``P_KERNEL_CYCLES``, when PROF is set) at ``hw.CLOCK_MHZ``.
    threaded : bool
        Run the kernel in a background thread (ap_done appears later, as on
        hardware).  False runs it inside the ap_start write (then a start
        while busy cannot happen and auto_restart has no effect).
    interrupt : bool
        Whether the kernel's interrupt line is wired (``has_interrupt``).
    poison : int or None
        Byte written into freshly allocated device memory (None: keep the
        arena's previous contents).
    faults : SimFaults, optional
        Faults to inject; can also be changed later through ``.faults``.
    """

    kind = "sim"

    def __init__(
        self,
        kernel: str = "bitlet",
        engine: Any = None,
        *,
        memory: int = DEFAULT_SIZE,
        base: int = DEFAULT_BASE,
        align: int = DEFAULT_ALIGN,
        delay: float | str = 0.0,
        threaded: bool = True,
        interrupt: bool = True,
        poison: int | None = DEFAULT_POISON,
        faults: SimFaults | None = None,
    ) -> None:
        _check_int("memory", memory, 4096, _MASK32)
        _check_int("base", base, 0, (1 << 64) - 1 - memory)
        if align < MIN_ALIGN or align & (align - 1):
            raise BitletValueError(f"align must be a power of two >= {MIN_ALIGN}, got {align}")
        if base % align or memory % align:
            raise BitletValueError(f"base and memory must be multiples of align={align}")
        if delay != "cycles" and not (isinstance(delay, (int, float)) and delay >= 0):
            raise BitletValueError(f"delay must be a number of seconds >= 0 or 'cycles', "
                                   f"got {delay!r}")
        if poison is not None:
            _check_int("poison", poison, 0, 255)
        self._kernel_fn, self.engine_name = resolve_kernel(kernel, engine)
        self.kernel_name = kernel
        self.base = base
        self.memory_size = memory
        self.delay = delay if delay == "cycles" else float(delay)
        self.threaded = threaded
        self.poison = poison
        self.faults = faults if faults is not None else SimFaults()
        self._interrupt = interrupt
        self._words = np.zeros(memory // 4, dtype=np.uint32)  # calloc: lazy pages
        self._bytes = self._words.view(np.uint8)
        self._arena = Arena(memory, align)
        self._cond = threading.Condition(threading.RLock())
        self._regs = [0] * (hw.REG_SPAN // 4)
        self._regs[hw.REG_CTRL // 4] = hw.CTRL_AP_IDLE
        #: The free-running cycle counter fed to the kernel's `timestamp`
        #: input (modelled cycles: it advances by the runs' KERNEL_CYCLES;
        #: the fast engine models cycles only for profiled runs, so its
        #: results-only runs leave it where it is).
        self.clock = 0
        self._busy = False
        self._generation = 0  # bumped by reset(): an abandoned run must not report
        self._crash: BaseException | None = None
        self._thread: threading.Thread | None = None  # the latest run
        self._threads: list[threading.Thread] = []  # runs that may still be computing
        self._last_start = (0.0, 0)  # (monotonic start, n_insn) of the latest run
        self._closed = False
        self.runs = 0

    # -- memory ------------------------------------------------------------
    def allocate(self, shape: Any, dtype: Any = np.uint8) -> SimBuffer:
        """Allocate a device buffer (mirrors ``numpy.zeros(shape, dtype)``).

        Parameters
        ----------
        shape : int or tuple of int
            Array shape.
        dtype : numpy dtype-like
            Element type (not object).

        Returns
        -------
        SimBuffer
            Host array (zeros) with ``device_address``; the device copy
            holds the poison byte until ``sync_to_device()``.
        """
        self._check_open()
        dtype = buffer_dtype(dtype)
        shape = buffer_shape(shape)
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        block = self._arena.alloc(nbytes)
        try:
            host = np.zeros(shape, dtype)
        except (MemoryError, ValueError) as exc:  # the host cannot hold the mirror
            self._arena.release(block)
            raise OutOfDeviceMemory(f"the host copy of {nbytes} bytes cannot be allocated: "
                                    f"{exc}") from exc
        if self.poison is not None:
            self._bytes[block.offset:block.offset + block.size] = self.poison
        buf = host.view(SimBuffer)
        buf._owner = True
        buf._device = self
        buf._block = block
        buf._host_base = buf.__array_interface__["data"][0]
        buf.device_address = self.base + block.offset
        return buf

    def free(self, buffer: DeviceBuffer) -> None:
        """Release a buffer (same as ``buffer.freebuffer()``)."""
        if not isinstance(buffer, SimBuffer):
            raise BitletTypeError(f"free() takes a buffer from this device, "
                                  f"got {type(buffer).__name__}")
        if buffer._device is not self:
            raise DeviceError("free(): the buffer belongs to another device")
        buffer.freebuffer()

    def memory_window(self) -> tuple[int, int]:
        """``(device address, bytes)`` of the memory the kernel may address."""
        return self.base, self.memory_size

    def alloc_block(self, nbytes: int) -> Block:
        """Reserve raw arena bytes (for adapters such as the pynq simulation)."""
        self._check_open()
        _check_int("nbytes", nbytes, 0, float("inf"))  # too large: OutOfDeviceMemory below
        block = self._arena.alloc(int(nbytes))
        if self.poison is not None:
            self._bytes[block.offset:block.offset + block.size] = self.poison
        return block

    def free_block(self, block: Block) -> None:
        """Return a block from :meth:`alloc_block`; twice raises DeviceError."""
        if block.freed:
            raise DeviceError(f"double free of the block at device address "
                              f"0x{self.base + block.offset:x}")
        self._release(block)

    def read_memory(self, address: int, nbytes: int) -> bytes:
        """Read the device copy (what the kernel sees); BusError outside the arena."""
        return self._read_arena(self._arena_offset(address, nbytes), nbytes).tobytes()

    def write_memory(self, address: int, data: bytes | np.ndarray) -> None:
        """Write the device copy directly (a DMA by another master)."""
        raw = np.frombuffer(bytes(data), dtype=np.uint8)
        self._write_arena(self._arena_offset(address, raw.size), raw)

    def _arena_offset(self, address: int, nbytes: int) -> int:
        self._check_open()
        offset = address - self.base
        if offset < 0 or nbytes < 0 or offset + nbytes > self.memory_size:
            raise BusError(
                f"device address range [0x{address:x}, 0x{address + nbytes:x}) is outside the "
                f"arena [0x{self.base:x}, 0x{self.base + self.memory_size:x})"
            )
        return offset

    def _read_arena(self, offset: int, nbytes: int) -> np.ndarray:
        return self._bytes[offset:offset + nbytes].copy()

    def _write_arena(self, offset: int, data: np.ndarray) -> None:
        self._bytes[offset:offset + data.size] = data

    def _release(self, block: Block) -> None:
        with self._cond:
            if block.freed:
                raise DeviceError(f"double free of the block at device address "
                                  f"0x{self.base + block.offset:x}")
            block.freed = True
        self._arena.release(block)

    # -- registers ---------------------------------------------------------
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit register (clear-on-read bits are cleared)."""
        index = self._reg_index(offset)
        with self._cond:
            self._raise_crash()
            value = self._regs[index]
            if offset == hw.REG_CTRL:
                self._regs[index] &= ~(hw.CTRL_AP_DONE | hw.CTRL_AP_READY)
            elif offset in self._vld_offsets:
                self._regs[index] = 0
            return value

    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit register with the s_axilite semantics of Vitis HLS."""
        index = self._reg_index(offset)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 0 <= value <= _MASK32:
            raise BitletValueError(f"register value must be an int in [0, 2**32), got {value!r}")
        value = int(value)
        with self._cond:
            self._raise_crash()
            if offset == hw.REG_CTRL:
                self._write_ctrl(value)
            elif offset == hw.REG_GIE:
                self._regs[index] = value & 1
            elif offset == hw.REG_IER:
                self._regs[index] = value & (hw.IRQ_AP_DONE | hw.IRQ_AP_READY)
            elif offset == hw.REG_ISR:
                self._regs[index] ^= value & (hw.IRQ_AP_DONE | hw.IRQ_AP_READY)
            elif offset in self._arg_offsets:
                self._regs[index] = value
            # outputs, ap_vld words and reserved words ignore writes
            self._cond.notify_all()

    def _reg_index(self, offset: int) -> int:
        span = hw.REG_SPAN
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
            raise BitletTypeError(f"register offset must be an int, got {offset!r}")
        if not 0 <= offset < span:
            raise BusError(f"register offset 0x{int(offset):x} is outside the register window "
                           f"[0, 0x{span:x})")
        if offset % 4:
            raise BusError(f"unaligned register access at offset 0x{int(offset):x} "
                           "(must be a multiple of 4)")
        self._check_open()
        return int(offset) // 4

    @functools.cached_property
    def _arg_offsets(self) -> frozenset[int]:
        names = ("MEM_LO", "MEM_HI", "MEM_BASE_LO", "MEM_BASE_HI", "MEM_SIZE",
                 "PROG_LO", "PROG_HI", "N_INSN", "PROF_LO", "PROF_HI")
        return frozenset(getattr(hw, "REG_" + n) for n in names)

    @functools.cached_property
    def _vld_offsets(self) -> frozenset[int]:
        return frozenset(getattr(hw, f"REG_{n}_CTRL") for n in _OUTPUTS + ("CLOCK",))

    def _reg(self, name: str) -> int:
        return self._regs[getattr(hw, "REG_" + name) // 4]

    def _write_ctrl(self, value: int) -> None:
        """CTRL write: auto_restart is read/write; writing ap_start = 1 sets it
        (a start while it is still set, i.e. during a run, changes nothing)."""
        ctrl = self._regs[hw.REG_CTRL // 4]
        ctrl = (ctrl & ~hw.CTRL_AUTO_RESTART) | (value & hw.CTRL_AUTO_RESTART)
        if value & hw.CTRL_AP_START:
            ctrl |= hw.CTRL_AP_START
        self._regs[hw.REG_CTRL // 4] = ctrl
        if ctrl & hw.CTRL_AP_START and not self._busy and not self.faults.no_clock:
            self._start()

    # -- interrupt -----------------------------------------------------------
    @property
    def has_interrupt(self) -> bool:
        """True: the simulated overlay wires the kernel's interrupt."""
        return self._interrupt

    def irq_line(self) -> bool:
        """Level of the kernel's interrupt output: GIE and any ISR bit."""
        with self._cond:
            return bool(self._regs[hw.REG_GIE // 4] & 1 and self._regs[hw.REG_ISR // 4])

    def wait_interrupt(self, timeout: float) -> bool:
        """Wait until the interrupt line is high; False after ``timeout`` s."""
        if not self._interrupt:
            raise DeviceError("this simulated device has no interrupt wired; poll instead")
        with self._cond:
            self._check_open()
            fired = self._cond.wait_for(lambda: self.irq_line() or self._closed, max(0.0, timeout))
            return bool(fired and not self._closed)

    # -- the kernel ----------------------------------------------------------
    def _start(self) -> None:
        """ap_start seen while idle: latch the arguments and launch the kernel.

        ap_start stays set until the run completes (the kernel raises ap_ready
        only at its end), as in the Vitis HLS control RTL.
        """
        self._regs[hw.REG_CTRL // 4] &= ~hw.CTRL_AP_IDLE
        self._busy = True
        self.runs += 1
        args = self._latched_args()
        started = time.monotonic()
        self._last_start = (started, args["n_insn"])
        if self.threaded:
            self._thread = threading.Thread(target=self._run,
                                            args=(args, started, self._generation),
                                            name="bitlet-sim-kernel", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [self._thread]
            self._thread.start()
        else:
            self._run(args, started, self._generation)

    def _latched_args(self) -> dict[str, int]:
        r = self._reg
        return {
            "mem": r("MEM_LO") | r("MEM_HI") << 32,
            "mem_base": r("MEM_BASE_LO") | r("MEM_BASE_HI") << 32,
            "mem_size": r("MEM_SIZE"),
            "prog_addr": r("PROG_LO") | r("PROG_HI") << 32,
            "n_insn": r("N_INSN"),
            "prof_addr": r("PROF_LO") | r("PROF_HI") << 32,
        }

    def _run(self, args: dict[str, int], started: float, generation: int) -> None:
        try:
            outputs = self._execute(args, generation)
        except BaseException as exc:  # noqa: BLE001 - reported on the host's next access
            with self._cond:
                if generation == self._generation:
                    self._crash = exc
                    self._busy = False
                    ctrl = self._regs[hw.REG_CTRL // 4] | hw.CTRL_AP_IDLE
                    self._regs[hw.REG_CTRL // 4] = ctrl & ~hw.CTRL_AP_START
                    self._cond.notify_all()
            return
        if outputs is None:  # hung: never completes (until reset or close)
            return
        remaining = started + self._modelled_seconds(args, outputs) - time.monotonic()
        with self._cond:
            # the modelled time; a reset (new generation) or close ends the wait at once
            if self._cond.wait_for(lambda: self._closed or generation != self._generation,
                                   max(0.0, remaining)):
                return
            self._finish(outputs)

    def _modelled_seconds(self, args: dict[str, int], outputs: dict[str, int]) -> float:
        """How long the run takes on the modelled board (see ``delay``)."""
        if self.delay != "cycles":
            return self.delay
        offset, count = args["prof_addr"] - self.base, outputs["INSN_DONE"]
        end = offset + count * hw.PROF_BYTES
        if not args["prof_addr"] or offset < 0 or end > self.memory_size:
            return 0.0
        rec = self._words[offset // 4:end // 4].reshape(-1, hw.PROF_WORDS)
        cycles = (rec[:, hw.P_KERNEL_CYCLES_LO].astype(np.uint64)
                  | rec[:, hw.P_KERNEL_CYCLES_HI].astype(np.uint64) << np.uint64(32)).sum()
        return float(cycles) / (hw.CLOCK_MHZ * 1e6)

    def _execute(self, args: dict[str, int], generation: int) -> dict[str, int] | None:
        """Run the kernel for the latched arguments; None if it hangs."""
        n_insn = args["n_insn"]
        hang, bus = self.faults.hang_after, self.faults.bus_error_at
        if hang is not None and hang <= n_insn and (bus is None or hang <= bus):
            mode, stop = "hang", hang
        elif bus is not None and bus < n_insn:
            mode, stop = "bus", bus
        else:
            mode, stop = None, n_insn
        outputs = self._call_kernel(args, stop, generation)
        if outputs is None:  # reset before it began: never runs
            return None
        if mode == "hang" and outputs["STATUS"] == hw.STATUS_OK:
            if outputs["INSN_DONE"]:  # progress reported so far (ap_vld pulses)
                with self._cond:
                    if generation == self._generation:
                        self._latch({"INSN_DONE": outputs["INSN_DONE"]})
            return None
        if mode == "bus" and outputs["STATUS"] == hw.STATUS_OK:
            outputs["STATUS"] = hw.STATUS_BUS_ERROR
        outputs.update(self.faults.registers)
        return outputs

    def _call_kernel(self, args: dict[str, int], n_insn: int,
                     generation: int | None = None) -> dict[str, int] | None:
        """Call the kernel top on the arena window [MEM, MEM + MEM_SIZE).

        None (nothing run) when the device was reset since ``generation``
        while this run waited for the reference library's lock.
        """
        # m_axi: 64-bit word i of `mem` is the device (physical) address
        # MEM + 8*i (bitlet_top.h).  The kernel sees the part of
        # [MEM, MEM + MEM_SIZE) inside the arena (whole 8-byte words) and
        # reports a bus error for any access beyond it.  The device's
        # free-running clock is the `timestamp` input (a uint64_t * port that
        # stays put during the call, so the stamps are modelled); the run's
        # `clock` output (+ modelled cycles) becomes the new clock.
        words = self._words  # (empty once closed: then nothing is addressable)
        offset = args["mem"] - self.base
        if 0 <= offset < words.size * 4 and offset % 8 == 0:
            mem_size = min(args["mem_size"], (words.size * 4 - offset) // 8 * 8)
            window = words[offset // 4:offset // 4 + mem_size // 4]
        else:
            mem_size, window = 0, np.zeros(2, dtype=np.uint32)
        if window.size < 2:
            window = np.zeros(2, dtype=np.uint32)
        out = _KernelOutputs(ffi, self.clock)
        # The reference tops keep their on-chip buffers in static arrays: one caller in
        # the process at a time (any device, any thread; bitlet.engines.reference).  The
        # fast emulator has no shared state; a custom callable is treated as the C.
        with contextlib.nullcontext() if self.engine_name == "fast" else LOCK:
            if generation is not None and generation != self._generation:
                return None
            self._kernel_fn(ffi.from_buffer("uint64_t[]", window.view(np.uint64)),
                            args["mem_base"], mem_size, args["prog_addr"], n_insn,
                            args["prof_addr"], out.timestamp, *out.ptrs.values(), out.clock)
        return out.values()

    def _latch(self, values: dict[str, int]) -> None:
        values = dict(values)
        if "CLOCK" in values:                       # the 64-bit output
            clock = int(values.pop("CLOCK"))
            self.clock = clock
            self._regs[hw.REG_CLOCK_LO // 4] = clock & _MASK32
            self._regs[hw.REG_CLOCK_HI // 4] = clock >> 32 & _MASK32
            self._regs[hw.REG_CLOCK_CTRL // 4] = 1  # ap_vld
        for name, value in values.items():
            self._regs[getattr(hw, "REG_" + name) // 4] = int(value) & _MASK32
            self._regs[getattr(hw, f"REG_{name}_CTRL") // 4] = 1  # ap_vld

    def _finish(self, outputs: dict[str, int]) -> None:
        """Latch the outputs, raise ap_done/ap_ready/ap_idle and the interrupt.

        ap_ready clears ap_start, or re-arms it when auto_restart is set (then
        the next run starts at once).
        """
        self._latch(outputs)
        self._busy = False
        ctrl = self._regs[hw.REG_CTRL // 4] | hw.CTRL_AP_DONE | hw.CTRL_AP_READY | hw.CTRL_AP_IDLE
        if not ctrl & hw.CTRL_AUTO_RESTART:
            ctrl &= ~hw.CTRL_AP_START
        self._regs[hw.REG_CTRL // 4] = ctrl
        ier = self._regs[hw.REG_IER // 4]
        self._regs[hw.REG_ISR // 4] |= ier & (hw.IRQ_AP_DONE | hw.IRQ_AP_READY)
        self._cond.notify_all()
        if self.threaded and ctrl & hw.CTRL_AUTO_RESTART:
            self._start()

    def _raise_crash(self) -> None:
        if self._crash is not None:
            exc, self._crash = self._crash, None
            raise DeviceError(f"the simulated kernel ({self.engine_name}) raised "
                              f"{type(exc).__name__}: {exc}") from exc

    def reset(self, timeout: float = RESET_TIMEOUT) -> None:
        """Reset the kernel, as reloading the overlay does on a board.

        A running or hung run is abandoned: it never reports, and once
        ``reset()`` returns it touches neither device memory nor any kernel
        state, exactly as after a board's reset.  A simulated kernel cannot be
        interrupted inside its C call, so ``reset()`` waits for an abandoned
        run that is still computing to end (at most ``timeout`` seconds; a run
        waiting to start is dropped at once).  Every register then returns to
        its reset value (ap_idle set; ID registers 0 until the next run).
        Device memory and buffers are kept.

        Raises
        ------
        bitlet.DeviceError
            The abandoned run was still computing after ``timeout`` seconds
            (the kernel stays busy and never reports; call ``reset()`` again).
        """
        with self._cond:
            self._check_open()
            self._generation += 1  # the abandoned run never reports (checked under _cond)
            self._cond.notify_all()  # ends a run's modelled delay
            threads = [t for t in self._threads
                       if t.is_alive() and t is not threading.current_thread()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            started, n_insn = self._last_start
            raise DeviceError(
                f"reset(): the abandoned run of {n_insn} instructions (started "
                f"{time.monotonic() - started:.1f} s ago) is still computing in the simulated "
                f"kernel ({self.engine_name} engine), which cannot be interrupted; waited "
                f"{timeout:g} s. It will never report, but it may still write device memory: "
                "call dev.reset() again before the next run")
        with self._cond:
            self._busy = False
            self._crash = None
            self._regs = [0] * len(self._regs)
            self._regs[hw.REG_CTRL // 4] = hw.CTRL_AP_IDLE
            self._cond.notify_all()

    # -- identity / lifetime -------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Plain-data description of the simulated board."""
        free, largest = self._arena.free_bytes()
        return {
            "backend": "sim",
            "board": "simulated",
            "kernel": self.kernel_name,
            "engine": self.engine_name,
            "ip": hw.vlnv(self.kernel_name),
            "memory": {"base": self.base, "size": self.memory_size, "free": free,
                       "largest_free": largest, "buffers": self._arena.n_blocks,
                       "align": self._arena.align},
            "memory_window": [self.base, self.memory_size],
            "registers": {"span": hw.REG_SPAN},
            "interrupt": self._interrupt,
            "clock_mhz": hw.CLOCK_MHZ,
            "delay_s": self.delay,
            "threaded": self.threaded,
            "runs": self.runs,
            "closed": self._closed,
        }

    def close(self) -> None:
        """Stop a hung or delayed run and release the arena (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        # drop the arena (a kernel still running keeps its own reference)
        self._words = np.zeros(0, dtype=np.uint32)
        self._bytes = self._words.view(np.uint8)

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError("the simulated device is closed; open a new one with "
                              "bitlet.open('sim')")

    def __repr__(self) -> str:
        free, _ = self._arena.free_bytes()
        return (f"SimDevice(kernel={self.kernel_name!r}, engine={self.engine_name!r}, "
                f"memory=0x{self.base:x}+{self.memory_size}, free={free})")


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------
def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitletTypeError(f"{name} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BitletValueError(f"{name} must be in [{lo}, {hi}], got {value}")


# ctypes is used by adapters (pynq_sim) that copy from raw host pointers.
def host_bytes_at(address: int, nbytes: int) -> np.ndarray:
    """A uint8 numpy view of ``nbytes`` of host memory at ``address``."""
    if nbytes == 0:
        return np.zeros(0, np.uint8)
    return np.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype=np.uint8)
