"""Device access for the Bitlet SDK (``bitlet.drivers``).

``bitlet.open()`` (``open_device`` here) picks the backend.  Backends are
imported lazily: ``import bitlet.drivers`` never imports pynq or pyserial.
"""
from __future__ import annotations

from bitlet.drivers.device import Device, DeviceBuffer

__all__ = ["Device", "DeviceBuffer", "open_device"]


def open_device(spec: str | None = None, **kwargs):
    """Open a device; see :func:`bitlet.drivers.backends.open_device`."""
    from bitlet.drivers.backends import open_device as _open

    return _open(spec, **kwargs)
