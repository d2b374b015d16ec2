"""Where the kernel's C sources are, and the one reader of ``hls/bitlet_hw.h``.

Base layer, standard library only: the cffi build scripts
(``bitlet/engines/_*_build.py``, run by setuptools before the package is
installed) and ``overlay/make_metadata.py`` load this file by its path, so
every reader of the header shares this parser.

The header's macros are plain literals by design (its own comment says so):
``#define BITLET_NAME 123`` / ``0x1F`` (integers, optional ``u``/``l``
suffixes) and ``#define BITLET_NAME "text"`` (strings).  ``tests/test_hw_header.py``
checks this reading against the values the C compiler sees (the compiled
reference) and fails on any macro it would miss.
"""
from __future__ import annotations

import re
from pathlib import Path

HW_HEADER = "bitlet_hw.h"
PREFIX = "BITLET_"

_INT = re.compile(r"^#define\s+BITLET_(\w+)\s+(0[xX][0-9A-Fa-f]+|\d+)[uUlL]*\b", re.MULTILINE)
_STR = re.compile(r'^#define\s+BITLET_(\w+)\s+"([^"]*)"', re.MULTILINE)

_PACKAGE = Path(__file__).resolve().parent


def source_dirs() -> dict[str, Path | None]:
    """``{"hls": dir, "emu": dir}`` of the kernel sources, None when absent.

    ``hls``: the package's ``bitlet/hls`` (an installed SDK: setup.py copies
    it) or the source tree's ``hls/`` (an editable install); ``emu``: the
    source tree's ``emu/`` (a wheel does not ship it).
    """
    found: dict[str, Path | None] = {}
    for name, marker in (("hls", HW_HEADER), ("emu", "bitlet_fast.h")):
        candidates = (_PACKAGE / name, _PACKAGE.parent.parent / name)
        found[name] = next((c for c in candidates if (c / marker).is_file()), None)
    return found


def header_path() -> Path:
    """``bitlet_hw.h`` of :func:`source_dirs` (FileNotFoundError when absent)."""
    hls = source_dirs()["hls"]
    if hls is None:
        raise FileNotFoundError(f"{HW_HEADER} is neither in {_PACKAGE / 'hls'} nor in "
                                f"{_PACKAGE.parent.parent / 'hls'}: reinstall the SDK")
    return hls / HW_HEADER


def parse_header(text: str) -> dict[str, int | str]:
    """The ``BITLET_*`` macros of a header's text as ``{NAME_without_prefix: value}``
    (int for integer literals, str for string literals)."""
    table: dict[str, int | str] = {name: int(value, 0) for name, value in _INT.findall(text)}
    table.update(_STR.findall(text))
    return table


def read_header(path: str | Path | None = None) -> dict[str, int | str]:
    """:func:`parse_header` of the file at ``path`` (default :func:`header_path`)."""
    return parse_header(Path(path or header_path()).read_text(encoding="utf-8"))


def header_overridable(name: str, path: str | Path | None = None) -> bool:
    """Whether ``BITLET_<name>`` sits in an ``#ifndef`` guard of the header (then
    ``-DBITLET_<name>=...`` at build time changes what the kernel reports)."""
    text = Path(path or header_path()).read_text(encoding="utf-8")
    return re.search(rf"^#ifndef\s+BITLET_{name}\s*$", text, re.MULTILINE) is not None
