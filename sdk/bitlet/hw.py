"""Hardware constants, read from ``hls/bitlet_hw.h`` (the copy shipped in the
package, or the source tree's) by :func:`bitlet.sources.read_header`.

Nothing here is typed by hand: every ``BITLET_FOO`` macro of the header is
available as ``hw.FOO`` (integers) and string macros as ``hw.FOO`` (str).
``tests/test_hw_header.py`` checks this view against the values the C
compiler sees in the compiled reference.

Example
-------
>>> from bitlet import hw
>>> hw.REG_CTRL, hw.INSN_WORDS
(0, 32)
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from bitlet.sources import read_header


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return read_header()


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
