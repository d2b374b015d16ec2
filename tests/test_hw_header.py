"""The header hls/bitlet_hw.h is the single source of truth: the Python view
(bitlet.hw, read by bitlet.sources.parse_header) must agree exactly with what
the C compiler sees (the compiled reference's ``lib.BITLET_*`` values), and
no macro of the header may escape the reader."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from bitlet import hw
from bitlet.engines.reference import ffi, lib
from bitlet.sources import parse_header

pytestmark = pytest.mark.numerics

HEADER = Path(__file__).resolve().parents[1] / "hls" / "bitlet_hw.h"
# every object-like BITLET_ macro with a value, whatever its form
_ANY_DEFINE = re.compile(r"^\s*#\s*define\s+BITLET_(\w+)[ \t]+\S", re.MULTILINE)


def _header_text() -> str:
    if not HEADER.exists():
        pytest.skip("hls/ sources not present (installed without a source tree)")
    return HEADER.read_text(encoding="utf-8")


def _compiled() -> tuple[dict, dict]:
    """Integer and string macros as the C compiler evaluated them."""
    ints, strs = {}, {}
    for name in dir(lib):
        if not name.startswith("BITLET_"):
            continue
        value = getattr(lib, name)
        if isinstance(value, int):
            ints[name[len("BITLET_"):]] = value
        elif name.endswith("_S"):
            strs[name[len("BITLET_"):-2]] = ffi.string(value).decode("ascii")
    return ints, strs


def test_every_integer_constant_matches_the_compiler():
    ints, _ = _compiled()
    assert len(ints) > 100
    table = hw.constants()
    for name, value in ints.items():
        assert table[name] == value, name


def test_every_string_constant_matches_the_compiler():
    _, strs = _compiled()
    assert strs, "the header defines the IP's VLNV strings"
    for name, value in strs.items():
        assert getattr(hw, name) == value


def test_no_macro_escapes_the_reader():
    """A macro the reader does not understand (an expression, say) fails here
    instead of vanishing from bitlet.hw."""
    text = _header_text()
    defined = set(_ANY_DEFINE.findall(text)) - {"HW_H"}
    assert defined == set(parse_header(text)) == set(hw.constants())


def test_the_reader_refuses_nothing_silently():
    table = parse_header('#define BITLET_A 0x10u\n#define BITLET_B "x:y"\n#define BITLET_C (1 << 3)\n')
    assert table == {"A": 16, "B": "x:y"}   # C is an expression: not read (the test above fails on it)


def test_register_map_is_word_aligned_and_inside_the_window():
    regs = {k: v for k, v in hw.constants().items() if k.startswith("REG_") and k != "REG_SPAN"}
    for name, offset in regs.items():
        assert offset % 4 == 0, name
        assert 0 <= offset < hw.REG_SPAN, name
    assert len(set(regs.values())) == len(regs), "two registers share an offset"


def test_instruction_words_are_distinct_and_fit():
    words = {k: v for k, v in hw.constants().items() if k.startswith("W_")}
    assert sorted(words.values()) == list(range(hw.INSN_WORDS))
    assert hw.INSN_BYTES == 4 * hw.INSN_WORDS


def test_unknown_constant_is_a_clear_error():
    with pytest.raises(AttributeError, match="bitlet_hw.h"):
        hw.NO_SUCH_REGISTER  # noqa: B018


def test_vlnv():
    assert hw.vlnv() == f"{hw.IP_VENDOR}:{hw.IP_LIBRARY}:{hw.IP_NAME}:{hw.IP_VERSION}"
    assert hw.vlnv("vendor_fp").split(":")[2] == hw.VENDOR_IP_NAME
