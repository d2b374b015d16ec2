"""The header hls/bitlet_hw.h is the single source of truth: the Python view
(bitlet.hw, built through cffi) must agree with it exactly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from bitlet import hw

pytestmark = pytest.mark.numerics

HEADER = Path(__file__).resolve().parents[1] / "hls" / "bitlet_hw.h"
_INT = re.compile(r"^#define\s+BITLET_(\w+)\s+(0[xX][0-9A-Fa-f]+|\d+)[uUlL]*\b", re.MULTILINE)
_STR = re.compile(r'^#define\s+BITLET_(\w+)\s+"([^"]*)"', re.MULTILINE)


def _header_text() -> str:
    if not HEADER.exists():
        pytest.skip("hls/ sources not present (installed without a source tree)")
    return HEADER.read_text(encoding="utf-8")


def test_every_integer_constant_matches():
    text = _header_text()
    found = {name: int(value, 0) for name, value in _INT.findall(text)}
    assert len(found) > 100
    table = hw.constants()
    for name, value in found.items():
        assert table[name] == value, name


def test_every_string_constant_matches():
    found = dict(_STR.findall(_header_text()))
    assert found, "the header defines the IP's VLNV strings"
    for name, value in found.items():
        assert getattr(hw, name) == value


def test_python_view_has_nothing_the_header_lacks():
    text = _header_text()
    names = {n for n, _ in _INT.findall(text)} | {n for n, _ in _STR.findall(text)}
    assert set(hw.constants()) <= names


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
