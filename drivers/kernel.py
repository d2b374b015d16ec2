"""The kernel's control protocol, shared by every device: ``KernelDriver``.

The Bitlet kernel (and the vendor-FP baseline) is a Vitis HLS top with an
``ap_ctrl_hs`` s_axilite interface (register map in ``bitlet.hw``).  The
driver talks to it only through the :class:`~bitlet.drivers.device.Device`
interface, so the same code runs on the simulator, on a PYNQ board and over
a remote link:

* **open**: an ID probe (a run with ``n_insn = 0``) latches the ID registers;
  magic, ISA version, kind, formats and buffer sizes are checked against
  ``bitlet.hw`` and a mismatched overlay is refused with
  :class:`bitlet.OverlayMismatch` saying what to do;
* **run**: clears stale ap_done/ISR/ap_vld, writes the arguments, enables
  the interrupt (when the device has one) *before* ap_start, starts, then
  waits: it checks ap_done/ap_idle before every wait (so a run that finished
  before the wait began is never missed) and sleeps on the interrupt or
  polls with a bounded back-off, up to a hard timeout;
* **timeout**: :class:`bitlet.KernelTimeout` carries a named register dump,
  the last completed instruction (INSN_DONE) and the likely causes;
* **status**: a run that stops early raises :class:`bitlet.BusError`
  (STATUS_BUS_ERROR) or :class:`bitlet.DeviceError` naming the instruction
  index and the status.

Example
-------
>>> from bitlet.drivers.sim import SimDevice
>>> drv = KernelDriver(SimDevice())          # doctest: +SKIP
>>> drv.kind, drv.n_pe, drv.formats          # doctest: +SKIP
('bitlet', 4, ('fp32', 'fp16', 'bf16', 'fixed'))
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from bitlet import hw
from bitlet._version import __version__
from bitlet.errors import (
    BitletTypeError,
    BitletValueError,
    BusError,
    DeviceError,
    KernelTimeout,
    OverlayMismatch,
)
from bitlet.isa import status_name  # the one table of STATUS names (from the header)

#: Default hard timeout of one run, in seconds.
DEFAULT_TIMEOUT = 10.0
#: Timeout of the ID probe at open, in seconds.
PROBE_TIMEOUT = 2.0
#: First and longest sleep of the polling back-off, in seconds.
POLL_FIRST = 20e-6
POLL_MAX = 5e-3
#: Longest single interrupt wait before the registers are checked again.
IRQ_SLICE = 0.25

# What each STATUS means to a user (keys are the names of bitlet.hw.STATUS_*).
_STATUS_HINTS = {
    "BAD_OPCODE": "an unknown opcode: the program was built for another ISA version, or the "
                  "instruction buffer was not synced to the device (sync_to_device)",
    "BAD_FIELD": "a field out of range (shape, format, quant) in the instruction",
    "BUS_ERROR": "an address outside [MEM_BASE, MEM_BASE + MEM_SIZE): a buffer of the "
                 "instruction is too small, freed, or from another device",
    "BUF_OVERFLOW": "the tile does not fit the kernel's on-chip buffers (ID_*_BUF registers)",
}
# Expected ID_FORMATS mask per kind name (values from bitlet.hw).
_KIND_FORMATS = {"bitlet": "FORMATS_BITLET", "vendor_fp": "FORMATS_VENDOR"}
_BUFFERS = ("ACT_BUF", "WGT_BUF", "OUT_BUF")


def _names(prefix: str, exclude: tuple[str, ...] = ()) -> dict[int, str]:
    """``value -> lower-case name`` of the bitlet.hw constants ``PREFIX_*``."""
    out = {}
    for name, value in hw.constants().items():
        if name.startswith(prefix) and name[len(prefix):] not in exclude and isinstance(value, int):
            out[value] = name[len(prefix):].lower()
    return out


def register_names() -> dict[int, str]:
    """``offset -> name`` of every register in the window (from bitlet.hw)."""
    return {offset: name.upper() for offset, name in _names("REG_", exclude=("SPAN",)).items()}


# ---------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KernelIdentity:
    """The ID registers latched by a run, decoded with ``bitlet.hw`` fields.

    Attributes
    ----------
    magic, version, config : int
        ID_MAGIC, ID_VERSION and ID_CONFIG as read.
    act_buf_words, wgt_buf_words, out_buf_words : int
        On-chip buffer sizes in 32-bit words.
    """

    magic: int
    version: int
    config: int
    act_buf_words: int
    wgt_buf_words: int
    out_buf_words: int

    def _field(self, name: str) -> int:
        return (self.config >> getattr(hw, f"CFG_{name}_SHIFT")) & getattr(hw, f"CFG_{name}_MASK")

    @property
    def n_pe(self) -> int:
        """PEs in the array."""
        return self._field("NPE")

    @property
    def kind_code(self) -> int:
        """Kernel kind as coded in ID_CONFIG (``bitlet.hw.KIND_*``)."""
        return self._field("KIND")

    @property
    def kind(self) -> str:
        """``"bitlet"``, ``"vendor_fp"`` or ``"unknown(n)"``."""
        return _names("KIND_").get(self.kind_code, f"unknown({self.kind_code})")

    @property
    def formats_mask(self) -> int:
        """Bit mask of supported formats (bit ``bitlet.hw.FMT_x``)."""
        return self._field("FMT")

    @property
    def formats(self) -> tuple[str, ...]:
        """Names of the supported formats, e.g. ``("fp32", "fp16", ...)``."""
        names = _names("FMT_", exclude=("MASK",))
        return tuple(names[b] for b in sorted(names) if self.formats_mask >> b & 1)

    @property
    def clock_mhz(self) -> int:
        """Kernel clock in MHz (ID_CONFIG codes it in units of 4 MHz)."""
        return self._field("CLK") * 4

    def as_dict(self) -> dict[str, Any]:
        """Plain data (raw registers and decoded fields)."""
        return {**dataclasses.asdict(self), "n_pe": self.n_pe, "kind": self.kind,
                "formats": list(self.formats), "clock_mhz": self.clock_mhz}


def check_identity(ident: KernelIdentity, kind: str | None = None) -> None:
    """Raise :class:`bitlet.OverlayMismatch` unless ``ident`` suits this SDK.

    Checks the magic, the ISA version, the kind (one this SDK knows, and
    ``kind`` if given), the format mask of that kind and that every on-chip
    buffer is at least as large as the SDK's compiler assumes.
    """
    rebuild = (f"rebuild or reinstall the overlay from this SDK (bitlet {__version__}; "
               "overlay/ and bitlet.drivers.overlays), or install the SDK release the overlay was "
               "built with")
    if ident.magic != hw.MAGIC:
        raise OverlayMismatch(
            f"no Bitlet kernel at this address: ID_MAGIC expected 0x{hw.MAGIC:08X}, found "
            f"0x{ident.magic:08X}; load the bitlet overlay (its .bit and .hwh must match), "
            "or check the IP's base address")
    problems = []
    if ident.version != hw.ISA_VERSION:
        problems.append(f"ISA version expected {hw.ISA_VERSION}, found {ident.version}")
    if ident.kind not in _KIND_FORMATS:
        problems.append(f"kernel kind expected one of {sorted(_KIND_FORMATS)}, "
                        f"found code {ident.kind_code}")
    elif kind is not None and ident.kind != kind:
        problems.append(f"kernel kind expected {kind}, found {ident.kind}")
    else:
        want = getattr(hw, _KIND_FORMATS[ident.kind])
        if ident.formats_mask != want:
            problems.append(f"{ident.kind} formats mask expected 0x{want:02X}, "
                            f"found 0x{ident.formats_mask:02X}")
    for name in _BUFFERS:
        want, found = getattr(hw, f"{name}_WORDS"), getattr(ident, f"{name.lower()}_words")
        if found < want:
            problems.append(f"ID_{name} expected >= {want} words, found {found}")
    if ident.n_pe < 1 or ident.clock_mhz < 1:
        problems.append(f"ID_CONFIG 0x{ident.config:08X} decodes to n_pe={ident.n_pe}, "
                        f"clock={ident.clock_mhz} MHz")
    if problems:
        raise OverlayMismatch("the overlay does not match this SDK: " + "; ".join(problems)
                              + f". To fix: {rebuild}.")


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outcome of one successful run.

    Attributes
    ----------
    n_insn : int
        Instructions run (= INSN_DONE).
    status : int
        STATUS register (``bitlet.hw.STATUS_OK``).
    seconds : float
        Wall time from ap_start to the observed ap_done, host clock.
    used_interrupt : bool
        Whether completion was awaited on the interrupt.
    """

    n_insn: int
    status: int
    seconds: float
    used_interrupt: bool


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------
class KernelDriver:
    """Start and supervise the kernel of a device.

    Parameters
    ----------
    device : bitlet.drivers.device.Device
        Any backend (simulator, PYNQ board, remote).
    kind : {"bitlet", "vendor_fp"}, optional
        Kernel kind the overlay must carry (None: either).
    timeout : float, optional
        Hard timeout of :meth:`run`, in seconds: exactly this limit.  None:
        :data:`DEFAULT_TIMEOUT`, which a caller may extend by a documented
        allowance (``run(allowance=...)``; the runtime's per-MAC allowance).
    use_interrupt : bool
        Wait on the device's interrupt when it has one (else poll).
    check : bool
        Probe and check the ID registers now (refuse a mismatched overlay).
    probe_timeout : float
        Hard timeout of that probe, in seconds.

    Raises
    ------
    bitlet.OverlayMismatch
        The ID registers do not match this SDK.
    bitlet.KernelTimeout
        The ID probe did not complete.
    """

    def __init__(self, device: Any, *, kind: str | None = None, timeout: float | None = None,
                 use_interrupt: bool = True, check: bool = True,
                 probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.device = device
        #: True when nobody chose the timeout (then run(allowance=...) may extend it)
        self.timeout_is_default = timeout is None
        self.timeout = _check_timeout(DEFAULT_TIMEOUT if timeout is None else timeout)
        self.use_interrupt = bool(use_interrupt and device.has_interrupt)
        self.identity: KernelIdentity | None = None
        self.last_run: RunResult | None = None
        self._window: tuple[int, int] | None = None
        if check:
            self.identity = self.probe(_check_timeout(probe_timeout))
            check_identity(self.identity, kind)

    # -- identity ------------------------------------------------------------
    def probe(self, timeout: float = PROBE_TIMEOUT) -> KernelIdentity:
        """Run with ``n_insn = 0`` and return the ID registers it latched."""
        self._execute(0, 0, 0, timeout, probe=True)
        return self.read_identity()

    def read_identity(self) -> KernelIdentity:
        """Decode the ID registers as latched by the last run."""
        read = self.device.read_reg
        return KernelIdentity(
            magic=read(hw.REG_ID_MAGIC), version=read(hw.REG_ID_VERSION),
            config=read(hw.REG_ID_CONFIG), act_buf_words=read(hw.REG_ID_ACT_BUF),
            wgt_buf_words=read(hw.REG_ID_WGT_BUF), out_buf_words=read(hw.REG_ID_OUT_BUF))

    def _ident(self) -> KernelIdentity:
        if self.identity is None:
            self.identity = self.probe()
        return self.identity

    # The identity's fields, one delegating property each (alike in shape only:
    # `duplicates` pairs them; a loop over names would hide them from readers).
    @property
    def kind(self) -> str:
        """Kernel kind: ``"bitlet"`` or ``"vendor_fp"``."""
        return self._ident().kind

    @property
    def n_pe(self) -> int:
        """PEs in the kernel's array."""
        return self._ident().n_pe

    @property
    def formats(self) -> tuple[str, ...]:
        """Supported data formats, e.g. ``("fp32", "fp16", "bf16", "fixed")``."""
        return self._ident().formats

    @property
    def clock_mhz(self) -> int:
        """Kernel clock in MHz, as reported by ID_CONFIG."""
        return self._ident().clock_mhz

    @property
    def act_buf_words(self) -> int:
        """Activation buffer size, 32-bit words."""
        return self._ident().act_buf_words

    @property
    def wgt_buf_words(self) -> int:
        """Weight buffer size, 32-bit words."""
        return self._ident().wgt_buf_words

    @property
    def out_buf_words(self) -> int:
        """Output buffer size, 32-bit words."""
        return self._ident().out_buf_words

    # -- running ---------------------------------------------------------------
    def run(self, prog_addr: int, n_insn: int, prof_addr: int = 0,
            timeout: float | None = None,
            allowance: tuple[float, str] | None = None,
            window: tuple[int, int] | None = None) -> RunResult:
        """Run ``n_insn`` instructions at device address ``prog_addr``.

        Parameters
        ----------
        prog_addr : int
            Device address of instruction 0 (aligned to ``hw.INSN_BYTES``).
        n_insn : int
            Number of instructions, 0 <= n_insn < 2**32.
        prof_addr : int
            Device address of the profile area (``hw.PROF_BYTES`` per
            instruction, aligned to the kernel's m_axi beat ``hw.AXI_BYTES``),
            or 0 for no profiling.
        timeout : float, optional
            Hard limit in seconds (default: the driver's ``timeout``).  A
            timeout chosen by the user (here or at construction) is the
            exact limit.
        allowance : (float, str), optional
            Seconds added to the *default* timeout (when neither this call
            nor the constructor chose one) and what they are for; a timeout
            error prints both.  Ignored when the user chose a timeout.
        window : (int, int), optional
            ``(device address, bytes)`` the kernel may touch in this run
            (MEM = MEM_BASE = address, MEM_SIZE = bytes): e.g. one program's
            own buffer, so any access outside it is a bus error that writes
            nothing.  Default: the device's whole memory window.  It must lie
            inside that window.

        Returns
        -------
        RunResult

        Raises
        ------
        bitlet.KernelTimeout
            Not finished in time; carries ``registers``, ``insn_done``, ``causes``.
        bitlet.BusError
            The kernel reported STATUS_BUS_ERROR (``insn_index`` names the instruction).
        bitlet.DeviceError
            Any other STATUS, or the kernel is still busy from an earlier run.
        """
        prog_addr = _check_addr("prog_addr", prog_addr, hw.INSN_BYTES, allow_zero=False)
        prof_addr = _check_addr("prof_addr", prof_addr, hw.AXI_BYTES, allow_zero=True)
        if isinstance(n_insn, bool) or not isinstance(n_insn, (int, np.integer)) \
                or not 0 <= n_insn <= 0xFFFF_FFFF:
            raise BitletValueError(f"n_insn must be an int in [0, 2**32), got {n_insn!r}")
        n_insn = int(n_insn)
        limit = self.timeout if timeout is None else _check_timeout(timeout)
        extra = None
        if timeout is None and self.timeout_is_default and allowance is not None \
                and allowance[0] > 0:
            extra = (float(allowance[0]), str(allowance[1]))
            limit += extra[0]
        if window is not None:
            window = self._check_window(window)
        result = self._execute(prog_addr, n_insn, prof_addr, limit, allowance=extra,
                               window=window)
        self.last_run = result
        return result

    def _execute(self, prog_addr: int, n_insn: int, prof_addr: int, timeout: float,
                 probe: bool = False, allowance: tuple[float, str] | None = None,
                 window: tuple[int, int] | None = None) -> RunResult:
        dev = self.device
        self._prepare()
        base, size = self.device_window() if window is None else window
        for reg, value in (("MEM_LO", base), ("MEM_BASE_LO", base), ("PROG_LO", prog_addr),
                           ("PROF_LO", prof_addr)):
            dev.write_reg(getattr(hw, "REG_" + reg), value & 0xFFFF_FFFF)
            dev.write_reg(getattr(hw, "REG_" + reg.replace("_LO", "_HI")), value >> 32)
        dev.write_reg(hw.REG_MEM_SIZE, min(size, 0xFFFF_FFFF))
        dev.write_reg(hw.REG_N_INSN, n_insn)
        if self.use_interrupt:
            dev.write_reg(hw.REG_IER, hw.IRQ_AP_DONE)
            dev.write_reg(hw.REG_GIE, 1)
        started = time.monotonic()
        dev.write_reg(hw.REG_CTRL, hw.CTRL_AP_START)
        if not self._wait(started + timeout):
            raise self._timeout_error(prog_addr, n_insn, timeout, probe, allowance)
        seconds = time.monotonic() - started
        self._clear_isr()
        status, done = dev.read_reg(hw.REG_STATUS), dev.read_reg(hw.REG_INSN_DONE)
        if status != hw.STATUS_OK:
            raise self._status_error(status, done, n_insn, prog_addr)
        if done != n_insn:
            raise DeviceError(f"the kernel reported STATUS_OK but completed {done} of {n_insn} "
                              "instructions: the overlay does not implement this SDK's protocol")
        return RunResult(n_insn, status, seconds, self.use_interrupt)

    def device_window(self) -> tuple[int, int]:
        """``(device address, bytes)`` of all the memory the device lets the kernel address."""
        if self._window is None:
            self._window = _memory_window(self.device)
        return self._window

    def _check_window(self, window: Any) -> tuple[int, int]:
        try:
            base, size = (int(v) for v in window)
        except (TypeError, ValueError):
            raise BitletTypeError(f"window must be (device address, bytes), got {window!r}") from None
        low, span = self.device_window()
        if size <= 0 or size > 0xFFFF_FFFF or base < low or base + size > low + span:
            raise BitletValueError(f"window [0x{base:x}, 0x{base + size:x}) must be non-empty, "
                                   f"below 4 GiB and inside the device's memory "
                                   f"[0x{low:x}, 0x{low + span:x})")
        return base, size

    def _prepare(self) -> None:
        """Refuse a busy kernel; clear stale ap_done, ISR and ap_vld bits."""
        dev = self.device
        ctrl = dev.read_reg(hw.REG_CTRL)  # clears a stale ap_done / ap_ready
        if not ctrl & hw.CTRL_AP_IDLE or ctrl & hw.CTRL_AP_START:
            raise DeviceError(
                f"the kernel is busy (CTRL = 0x{ctrl:08X}): a previous run has not finished "
                "(did it time out?). Call dev.reset() (reloads the overlay on a board, resets "
                "the simulated kernel), then run again.")
        self._clear_isr()
        for name in ("STATUS", "INSN_DONE"):
            dev.read_reg(getattr(hw, f"REG_{name}_CTRL"))  # ap_vld is clear-on-read

    def _clear_isr(self) -> None:
        dev = self.device
        isr = dev.read_reg(hw.REG_ISR)
        if isr:
            dev.write_reg(hw.REG_ISR, isr)  # toggle-on-write clears the set bits

    def _finished(self) -> bool:
        ctrl = self.device.read_reg(hw.REG_CTRL)
        idle = ctrl & hw.CTRL_AP_IDLE and not ctrl & hw.CTRL_AP_START
        return bool(ctrl & hw.CTRL_AP_DONE or idle)

    def _wait(self, deadline: float) -> bool:
        """Wait for ap_done (or ap_idle) until ``deadline``; False on timeout."""
        pause = POLL_FIRST
        while True:
            if self._finished():  # checked before every wait: no lost wake-up
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.use_interrupt and self.device.wait_interrupt(min(remaining, IRQ_SLICE)):
                if self._finished():
                    return True
                self._clear_isr()  # a stale or spurious interrupt: back off below
            elif self.use_interrupt:
                continue
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_MAX)

    # -- diagnosis -------------------------------------------------------------
    def register_dump(self) -> dict[str, int]:
        """Read every register of the window: ``{name: value}``.

        Reading clears the clear-on-read bits (ap_done, ap_ready, ap_vld).
        """
        return {name: self.device.read_reg(off) for off, name in sorted(register_names().items())}

    def _timeout_error(self, prog_addr: int, n_insn: int, timeout: float, probe: bool,
                       allowance: tuple[float, str] | None = None) -> KernelTimeout:
        regs = self.register_dump()
        ctrl, done, vld = regs["CTRL"], regs["INSN_DONE"], regs["INSN_DONE_CTRL"] & 1
        causes = _likely_causes(ctrl, done if vld else None, n_insn, timeout, probe)
        what = "the ID probe (n_insn = 0) at open" if probe else \
            f"a run of {n_insn} instructions at 0x{prog_addr:x}"
        progress = (f"last completed instruction: INSN_DONE = {done} "
                    f"(instruction {done} did not finish)" if vld else
                    "INSN_DONE was not updated by this run (no instruction reported done)")
        bits = " ".join(f"{n}={int(bool(ctrl & getattr(hw, 'CTRL_' + n.upper())))}"
                        for n in ("ap_start", "ap_done", "ap_idle", "ap_ready"))
        dump = ", ".join(f"{k}=0x{v:08X}" for k, v in regs.items())
        limit = f"{timeout:g} s"
        if allowance is not None:
            limit += (f" (the default timeout {timeout - allowance[0]:g} s + an allowance of "
                      f"{allowance[0]:g} s for {allowance[1]}; bitlet.open(kernel_timeout=T) "
                      "makes T the exact limit)")
        message = (f"the kernel did not finish {what} within {limit}\n  {progress}\n"
                   f"  CTRL = 0x{ctrl:08X} ({bits})\n  likely causes:\n"
                   + "".join(f"    - {c}\n" for c in causes) + f"  registers: {dump}")
        err = KernelTimeout(message)
        err.registers, err.insn_done = regs, (done if vld else None)
        err.n_insn, err.causes = n_insn, causes
        err.timeout = timeout
        return err

    def _status_error(self, status: int, done: int, n_insn: int, prog_addr: int) -> DeviceError:
        name = status_name(status)
        hint = _STATUS_HINTS.get(name, "an unknown status: the overlay is newer than this SDK")
        cls = BusError if status == hw.STATUS_BUS_ERROR else DeviceError
        insn_addr = prog_addr + done * hw.INSN_BYTES
        err = cls(f"the kernel stopped at instruction {done} of {n_insn} (at 0x{insn_addr:x}) with "
                  f"STATUS_{name} ({status}): {hint}")
        err.status, err.status_name, err.insn_index, err.n_insn = status, name, done, n_insn
        return err

    def describe(self) -> dict[str, Any]:
        """Plain data: identity, interrupt use, default timeout."""
        return {"identity": None if self.identity is None else self.identity.as_dict(),
                "use_interrupt": self.use_interrupt, "timeout_s": self.timeout}

    def __repr__(self) -> str:
        ident = self.identity
        what = ("unprobed" if ident is None
                else f"{ident.kind}, {ident.n_pe} PEs, {ident.clock_mhz} MHz")
        return f"KernelDriver({type(self.device).__name__}: {what})"


def _likely_causes(ctrl: int, done: int | None, n_insn: int, timeout: float,
                   probe: bool) -> list[str]:
    causes = []
    if ctrl & hw.CTRL_AP_START and ctrl & hw.CTRL_AP_IDLE:
        causes.append("the kernel never started (ap_start still set, ap_idle high): the overlay "
                      "is not loaded, its clock is stopped or the IP is held in reset; reload "
                      "the overlay")
    elif not ctrl & hw.CTRL_AP_IDLE:
        where = "" if done is None else f" (instruction {done})"
        causes.append(f"the kernel is stuck on a memory access{where}: an address not backed by "
                      "DDR (a freed buffer, a buffer of another device) stalls the AXI master; "
                      "check the instruction's buffer addresses")
        if not probe:
            causes.append(f"the program needs longer than {timeout:g} s ({n_insn} instructions): "
                          "pass a larger timeout= to run()")
    if probe:
        causes.append("the bitstream on the FPGA is not the bitlet overlay, or its .hwh describes "
                      "another design (wrong register address)")
    causes.append("after a timeout the kernel may still be running: call dev.reset() (reloads "
                  "the overlay on a board, resets the simulated kernel) before the next run")
    return causes


def _memory_window(device: Any) -> tuple[int, int]:
    """``(MEM_BASE, MEM_SIZE)`` the kernel may address on ``device``.

    From ``device.memory_window()``, else the ``"memory_window"`` entry of
    ``device.describe()`` (a remote device passes its board's on), else the
    whole 32-bit physical space (a board: MEM_BASE = 0).
    """
    window = getattr(device, "memory_window", None)
    if callable(window):
        base, size = window()
        return int(base), int(size)
    described = device.describe().get("memory_window")
    if described:
        return int(described[0]), int(described[1])
    return 0, 0xFFFF_FFFF


def _check_addr(name: str, value: Any, align: int, allow_zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitletTypeError(f"{name} must be an int device address, got {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise BitletValueError(f"{name} must be a 64-bit device address, got {value}")
    if value == 0 and not allow_zero:
        raise BitletValueError(f"{name} must be a device address (buffer.device_address), got 0")
    if value % align:
        raise BitletValueError(f"{name} = 0x{int(value):x} must be aligned to {align} bytes")
    return int(value)


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise BitletValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)
