"""Hardware constants, taken from ``hls/bitlet_hw.h`` through the cffi build.

Nothing here is typed by hand: every ``BITLET_FOO`` macro of the header is
available as ``hw.FOO`` (integers) and string macros as ``hw.FOO`` (str).
``tests/test_hw_header.py`` checks that the header and this view agree.

Example
-------
>>> from bitlet import hw
>>> hw.REG_CTRL, hw.INSN_WORDS
(0, 32)
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

_PREFIX = "BITLET_"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    from bitlet._reference import ffi, lib  # compiled at install time

    table: dict[str, Any] = {}
    for name in dir(lib):
        if not name.startswith(_PREFIX):
            continue
        value = getattr(lib, name)
        if isinstance(value, int):
            table[name[len(_PREFIX):]] = value
        elif name.endswith("_S"):
            table[name[len(_PREFIX):-2]] = ffi.string(value).decode("ascii")
    return table


def constants() -> dict[str, Any]:
    """All header constants as a ``{name_without_prefix: value}`` dict."""
    return dict(_table())


def __getattr__(name: str) -> Any:
    try:
        return _table()[name]
    except KeyError:
        raise AttributeError(f"bitlet.hw has no constant {name!r} (not in hls/bitlet_hw.h)") from None


def vlnv(kind: str = "bitlet") -> str:
    """VLNV string of the kernel IP (``kind`` is ``"bitlet"`` or ``"vendor_fp"``)."""
    t = _table()
    name = t["IP_NAME"] if kind == "bitlet" else t["VENDOR_IP_NAME"]
    return f"{t['IP_VENDOR']}:{t['IP_LIBRARY']}:{name}:{t['IP_VERSION']}"
