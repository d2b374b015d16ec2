"""Choose and open a device: ``bitlet.open(spec=None)``.

Accepted ``spec`` forms (the environment variable ``BITLET_DEVICE``, when
set and not empty, overrides the argument):

==============================  ===============================================
``None``                        the PYNQ board when this is one with the bitlet
                                overlay installed, else the simulator
``"sim"``, ``"sim:vendor_fp"``  the simulated board with the Bitlet (default)
                                or the vendor-FP baseline kernel
``"pynq"``, ``"pynq:vendor_fp"``  the board, packaged overlay of that kind
``"pynq:path/to/bitlet.bit"``   the board, this bitstream (its .hwh beside it)
``"serial:///dev/ttyUSB1?baud=921600"``, ``"tcp://HOST:PORT"``,
``"socket://HOST:PORT"``        a board behind a link, served by ``bitlet agent``
==============================  ===============================================

The returned object has the :class:`~bitlet.drivers.device.Device` API plus
a ``.kernel`` attribute, a :class:`~bitlet.drivers.kernel.KernelDriver`
that has already checked the overlay's ID registers::

    dev = bitlet.open()
    buf = dev.allocate((64,), "float32")
    dev.kernel.run(prog.device_address, n_insn)

Nothing here imports pynq or pyserial unless that backend is chosen (the
backends import them when a board or a link is opened).
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Any

from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.link.address import REMOTE_SCHEMES
from bitlet.drivers.overlays import KINDS, find_overlay
from bitlet.drivers.pynq_board import PynqDevice
from bitlet.drivers.remote import open_remote
from bitlet.drivers.sim import SimDevice
from bitlet.errors import BitletTypeError, BitletValueError, DeviceError

#: Environment variable overriding the ``spec`` argument.
ENV_VAR = "BITLET_DEVICE"
#: Files whose presence means "this is a Zynq board with an FPGA manager".
BOARD_MARKERS = ("/dev/xdevcfg", "/sys/class/fpga_manager/fpga0")

ACCEPTED = ("None (the board if present, else the simulator)", "'sim'", "'sim:vendor_fp'",
            "'pynq'", "'pynq:vendor_fp'", "'pynq:path/to/bitlet.bit'",
            "'serial:///dev/ttyUSB1?baud=921600'", "'tcp://HOST:PORT'", "'socket://HOST:PORT'")


def parse_spec(spec: str | None) -> tuple[str, str | None]:
    """Split a device spec into ``(backend, argument)``.

    Returns
    -------
    (str, str or None)
        ``("auto", None)``, ``("sim", kind)``, ``("pynq", kind or path or
        None)`` or ``("remote", url)``.

    Raises
    ------
    bitlet.BitletValueError
        The spec is not one of the accepted forms (the message lists them).
    """
    if spec is None:
        return "auto", None
    if not isinstance(spec, str):
        raise BitletTypeError(f"device spec must be a string or None, got {type(spec).__name__}; "
                              f"accepted forms: {', '.join(ACCEPTED)}")
    text = spec.strip()
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() in REMOTE_SCHEMES:
        return "remote", text
    backend, _, arg = text.partition(":")
    backend = backend.lower()
    if backend == "sim" and arg in ("",) + KINDS:
        return "sim", arg or "bitlet"
    if backend == "pynq" and not sep:
        return "pynq", arg or None
    raise BitletValueError(f"unknown device spec {spec!r}; accepted forms: {', '.join(ACCEPTED)}")


def board_present() -> bool:
    """True on a Zynq board with an FPGA manager and pynq installed.

    Checks files and the import machinery only: pynq is not imported.
    """
    return any(os.path.exists(p) for p in BOARD_MARKERS) and \
        importlib.util.find_spec("pynq") is not None


def _board_overlay(kind: str = "bitlet") -> Any | None:
    """The installed overlay files for this board, or None (with the reason warned)."""
    try:
        return find_overlay(None, kind)
    except DeviceError as exc:
        warnings.warn(f"a PYNQ board is present but the {kind} overlay is not usable ({exc}); "
                      "using the simulator", RuntimeWarning, stacklevel=3)
        return None


def open_device(spec: str | None = None, *, kernel_timeout: float | None = None,
                **kwargs: Any) -> Any:
    """Open a device and its kernel driver.

    Parameters
    ----------
    spec : str, optional
        Which device (see the module docstring); ``$BITLET_DEVICE`` overrides it.
    kernel_timeout : float, optional
        Timeout in seconds of every kernel run (``dev.kernel.run`` and a
        model's runs): the exact limit.  None: ``KernelDriver``'s default
        (10 s), to which a model run adds an allowance per MAC
        (``bitlet.runtime.model.SECONDS_PER_MAC``) printed in a timeout error.
    **kwargs
        Passed to the backend: :class:`~bitlet.drivers.sim.SimDevice`,
        :class:`~bitlet.drivers.pynq_board.PynqDevice` or
        :func:`~bitlet.drivers.remote.open_remote`.

    Returns
    -------
    Device
        Ready to use, with ``.kernel`` (a KernelDriver that checked the overlay).

    Raises
    ------
    bitlet.BitletValueError
        Unknown spec (the accepted forms are listed).
    bitlet.OverlayMismatch
        The overlay's ID registers do not match this SDK (the device is closed).
    """
    env = os.environ.get(ENV_VAR, "").strip()
    backend, arg = parse_spec(env or spec)
    if backend == "auto":
        overlay = _board_overlay() if board_present() else None
        backend, arg = ("pynq", str(overlay.bit)) if overlay is not None else ("sim", "bitlet")
    device = _open_backend(backend, arg, kwargs)
    try:
        _attach_kernel(device, kernel_timeout)
    except BaseException:
        device.close()
        raise
    return device


def _open_backend(backend: str, arg: str | None, kwargs: dict) -> Any:
    if backend == "sim":
        return SimDevice(arg, **kwargs)
    if backend == "pynq":
        if arg in KINDS:
            return PynqDevice(kind=arg, **kwargs)
        return PynqDevice(arg, **kwargs)
    return open_remote(arg, **kwargs)


def _attach_kernel(device: Any, timeout: float | None) -> None:
    """Give ``device`` a probed and checked ``.kernel`` unless it brings its own."""
    if getattr(device, "kernel", None) is not None:
        return
    kind = getattr(device, "kernel_name", None)
    device.kernel = KernelDriver(device, kind=kind if kind in KINDS else None, timeout=timeout)
