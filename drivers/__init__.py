"""Device access for the Bitlet SDK (``bitlet.drivers``).

``bitlet.open()`` is :func:`open_device` here (:mod:`bitlet.drivers.backends`
picks the backend).  ``import bitlet.drivers`` never imports pynq or
pyserial: the pynq backend (:mod:`~bitlet.drivers.pynq_board`) and the link
transport (:mod:`~bitlet.drivers.link.transport`) import them when a board
or a link is opened.
"""
from __future__ import annotations

from bitlet.drivers.backends import open_device
from bitlet.drivers.device import Device, DeviceBuffer

__all__ = ["Device", "DeviceBuffer", "open_device"]
