"""Bitlet SDK: host driver, compiler and bit-exact emulator for the Bitlet
bit-interleaving floating-point deep-learning co-processor.

``import bitlet`` is cheap: sub-modules load on first use, and the board
backend (pynq) is only imported when a board is opened.
"""
from __future__ import annotations

import importlib
from typing import Any

from bitlet._version import __version__
from bitlet.errors import (
    BitletError,
    BitletTypeError,
    BitletValueError,
    BusError,
    CompileError,
    DeviceError,
    KernelTimeout,
    LinkError,
    OutOfDeviceMemory,
    OverlayMismatch,
    ProgramError,
)

# name -> "module:attribute", resolved lazily (PEP 562)
_LAZY = {
    "numerics": "bitlet.numerics",
    "hw": "bitlet.hw",
    "drivers": "bitlet.drivers",
    "open": "bitlet.drivers:open_device",
    "compile": "bitlet.runtime.compile:compile",
    "load": "bitlet.runtime.compile:load",
    "compare": "bitlet.tools.accuracy:compare",
    "enhance": "bitlet.tools.enhance",
    "evaluate": "bitlet.tools.evaluate:evaluate",
}

__all__ = [
    "BitletError",
    "BitletTypeError",
    "BitletValueError",
    "BusError",
    "CompileError",
    "DeviceError",
    "KernelTimeout",
    "LinkError",
    "OutOfDeviceMemory",
    "OverlayMismatch",
    "ProgramError",
    "__version__",
    "compare",
    "compile",
    "drivers",
    "enhance",
    "evaluate",
    "hw",
    "load",
    "numerics",
    "open",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'bitlet' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
