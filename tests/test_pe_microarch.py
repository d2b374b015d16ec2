"""The PE (hls/bitlet_pe.c) has the Bitlet microarchitecture's arithmetic:
no multiplication of two data operands, no division or modulo by a data
operand, no floating-point type.

The source is preprocessed (gcc -E against a stub <stdint.h>) and parsed with
pycparser (installed with cffi); every ``*``, ``/``, ``%`` (and ``*=`` ...) is
inspected.  A constant operand is a literal or an expression of literals (the
header's macros are literals after preprocessing).  The full HLS rules checker
of the project is separate; this is the PE's own guard.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pycparser = pytest.importorskip("pycparser", reason="pycparser (a cffi dependency) is missing")
from pycparser import c_ast  # noqa: E402

HLS = Path(__file__).resolve().parents[1] / "hls"
PE_SOURCE = HLS / "bitlet_pe.c"
STUB_STDINT = """
typedef signed char int8_t; typedef unsigned char uint8_t;
typedef short int16_t; typedef unsigned short uint16_t;
typedef int int32_t; typedef unsigned int uint32_t;
typedef long long int64_t; typedef unsigned long long uint64_t;
"""


def _preprocess(text: str, tmp_path: Path) -> str:
    cpp = shutil.which("gcc") or shutil.which("cc")
    if cpp is None:
        pytest.skip("no C compiler (gcc/cc) to preprocess hls/bitlet_pe.c")
    (tmp_path / "stdint.h").write_text(STUB_STDINT)
    src = tmp_path / "pe.c"
    src.write_text(text)
    proc = subprocess.run([cpp, "-E", "-P", "-nostdinc", f"-I{tmp_path}", f"-I{HLS}", str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _is_constant(node: c_ast.Node) -> bool:
    if isinstance(node, c_ast.Constant):
        return True
    if isinstance(node, c_ast.Cast):
        return _is_constant(node.expr)
    if isinstance(node, c_ast.UnaryOp):
        return node.op == "sizeof" or _is_constant(node.expr)
    if isinstance(node, c_ast.BinaryOp):
        return _is_constant(node.left) and _is_constant(node.right)
    if isinstance(node, c_ast.TernaryOp):
        return all(_is_constant(n) for n in (node.cond, node.iftrue, node.iffalse))
    return False


class _Checker(c_ast.NodeVisitor):
    def __init__(self) -> None:
        self.func = "<file>"
        self.found: list[str] = []

    def visit_FuncDef(self, node):  # noqa: N802 (pycparser's visitor names)
        self.func = node.decl.name
        self.generic_visit(node)

    def _check(self, op, left, right, coord):
        op = op.rstrip("=")
        if op == "*" and not _is_constant(left) and not _is_constant(right):
            self.found.append(f"{self.func}: data multiplication at {coord}")
        if op in ("/", "%") and not _is_constant(right):
            self.found.append(f"{self.func}: {op} by a data operand at {coord}")

    def visit_BinaryOp(self, node):  # noqa: N802
        self._check(node.op, node.left, node.right, node.coord)
        self.generic_visit(node)

    def visit_Assignment(self, node):  # noqa: N802
        if node.op in ("*=", "/=", "%="):
            self._check(node.op, node.lvalue, node.rvalue, node.coord)
        self.generic_visit(node)

    def visit_IdentifierType(self, node):  # noqa: N802
        for name in ("float", "double"):
            if name in node.names:
                self.found.append(f"{self.func}: {name} type")


def violations(text: str, tmp_path: Path) -> list[str]:
    """Return the arithmetic violations of a PE source text."""
    ast = pycparser.CParser().parse(_preprocess(text, tmp_path), "bitlet_pe.c")
    checker = _Checker()
    checker.visit(ast)
    return checker.found


def _source() -> str:
    if not PE_SOURCE.exists():
        pytest.skip("hls/ not present (installed without a source tree)")
    return PE_SOURCE.read_text()


def test_pe_has_no_data_multiplier_divider_or_float(tmp_path):
    assert violations(_source(), tmp_path) == []


@pytest.mark.parametrize("planted, what", [
    ("int64_t f(int32_t a, uint32_t w) { return (int64_t)a * (int64_t)w; }", "multiplication"),
    ("int32_t f(int32_t a, int32_t w) { a *= w; return a; }", "multiplication"),
    ("uint32_t f(uint32_t a, uint32_t q) { return a / q; }", "/ by a data"),
    ("uint32_t f(uint32_t a, uint32_t q) { return a % (q + 1u); }", "% by a data"),
    ("float f(int32_t a) { return (float)a; }", "float"),
])
def test_planted_violation_is_caught(tmp_path, planted, what):
    found = violations(_source() + "\n" + planted + "\n", tmp_path)
    assert len(found) >= 1 and all(what in f and f.startswith("f:") for f in found), found


@pytest.mark.parametrize("allowed", [
    "int32_t f(int32_t k) { return k * 64 + (k << 2); }",
    "uint32_t f(uint32_t a) { return a / 8u + a % 2u; }",
])
def test_constant_operands_are_allowed(tmp_path, allowed):
    assert violations(_source() + "\n" + allowed + "\n", tmp_path) == []
