#!/usr/bin/env python3
"""HLS rules checker: what hls/*.c must obey to be the hardware it claims.

Usage
-----
``python hls/tools/hls_rules.py [-D NAME[=VALUE]]... [--list-rules] PATH...``

PATH is a directory (its ``*.c`` files) or ``.c`` files.  Each file is
preprocessed as Vitis HLS synthesises it (``gcc -E -D__SYNTHESIS__ -I<its
directory>``, a minimal stand-in for the C library so that pycparser can read
it) and parsed with pycparser; ``#pragma HLS`` lines survive ``gcc -E`` and are
kept by pycparser as ``Pragma`` nodes in place.  Only code in the checked
directories is judged (never the stand-in library).  Output: one line per
violation, ``file:line: rule: message``; exit 0 when clean, 1 on violations
(or when a file cannot be preprocessed or parsed: rule ``parse``), 2 on a
usage error.

Rules (``--list-rules``), one function each below:

div-in-pipeline
    ``/``, ``%``, ``/=``, ``%=`` by a non-constant inside a loop with
    ``#pragma HLS PIPELINE`` (its body, loops nested in it, and every function
    it calls that is defined in the checked sources, followed transitively) or
    inside a function with a function-level PIPELINE.  A constant divisor
    (literal, macro, enum, const variable, sizeof) is allowed.
loop-bound-in-pipeline
    a loop inside such a PIPELINE region whose trip count is data dependent:
    a ``for`` whose init, step or condition is not ``i <op> constant`` on its
    induction variable, and every ``while``/``do`` loop.  A ``for`` with
    ``#pragma HLS UNROLL`` (no factor: fully unrolled) is exempt; ``while``
    loops never are (they cannot be unrolled).  The pipelined loop itself may
    have a variable trip count.
float-type
    ``float``/``double`` (declarations, casts, typedefs of them, floating
    literals) in the Bitlet kernel: every checked ``.c`` file and every header
    of the checked directories it includes, except files that opt out, by the
    comment ``hls-rules: allow float-type`` in the file or by
    ``FLOAT_OPT_OUT_FILES`` (``vendor_kernel.c``, the vendor-FP baseline).
pe-multiply
    ``a * b`` / ``a *= b`` with two non-constant operands in the PE (files
    named ``bitlet_pe*.c`` / ``bitlet_pe*.h``), except in host-only functions:
    those in ``HOST_ONLY_FUNCTIONS`` or marked by a comment
    ``hls-rules: host-only`` before their definition.
host-only
    a host-only function reachable from a top (a function with
    ``#pragma HLS INTERFACE``): it would be synthesised after all.
recursion
    a call inside a cycle of the call graph (direct or mutual recursion).
dynamic-memory
    malloc, calloc, realloc, free, aligned_alloc, alloca and variable-length
    arrays.
function-pointer
    a pointer-to-function type (variable, parameter, member, typedef, cast),
    a call through a pointer, or a function name used as a value.
array-partition-scope
    ``#pragma HLS ARRAY_PARTITION`` / ``ARRAY_RESHAPE`` whose ``variable=``
    is not an array declared in that function, an array parameter of it, or
    a file-scope array (for a pragma at file scope: a file-scope array).
on-chip-budget
    the on-chip arrays of a kernel exceed the header's budgets.  On-chip
    arrays: file-scope and static arrays, and local arrays of at least
    ``LOCAL_ONCHIP_MIN_BITS`` bits, in the functions reachable from a top
    (every function when no top is defined).  Budgets: each
    ``BITLET_<X>_BUF_WORDS`` of the headers is a budget of that many 32-bit
    words for the arrays whose declared size refers to that macro (through
    other macros too); all on-chip arrays together may use the sum of those
    budgets plus ``SCRATCH_FRACTION`` (1/16) of it for working arrays tied to
    no header buffer.  With hls/bitlet_hw.h today: ACT 65536 + WGT 16384 +
    OUT 8192 + BIAS 8192 words = 3 Mibit, total 3.1875 Mibit.

Limits (stated, not hidden): calls are followed only into functions defined
in the checked files (same file first, else a unique external definition);
a top's reachable set binds constant arguments and skips ``if`` branches dead
under them, nothing more; a local array is counted once per function even if
the function is instantiated several times; arrays declared inside macros are
sized but may miss their budget association (they then count against the
total only).  Code under ``#ifndef __SYNTHESIS__`` is not checked (HLS does
not synthesise it): another way to keep host-only code out.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pycparser import c_ast, c_generator, c_parser

RULES = {
    "div-in-pipeline": "non-constant division or modulo inside a PIPELINE region",
    "loop-bound-in-pipeline": "data-dependent loop bound inside a PIPELINE region "
                              "(not fully unrolled; while loops always)",
    "float-type": "float/double in the Bitlet kernel or PE",
    "pe-multiply": "multiplication of two non-constant operands in the PE",
    "host-only": "host-only function reachable from a top",
    "recursion": "direct or mutual recursion",
    "dynamic-memory": "malloc/calloc/realloc/free/alloca or variable-length array",
    "function-pointer": "pointer-to-function type, call through a pointer, function as value",
    "array-partition-scope": "ARRAY_PARTITION/ARRAY_RESHAPE on an array not defined in "
                             "that function, its parameters or at file scope",
    "on-chip-budget": "on-chip arrays beyond the header's buffer budgets",
    "parse": "the file could not be preprocessed or parsed",
}

#: Files that may use float/double (the vendor-FP baseline computes in fp32).
FLOAT_OPT_OUT_FILES = ("vendor_kernel.c",)
#: Host-only helpers of the PE (batch wrappers for the Python side; no top calls them).
HOST_ONLY_FUNCTIONS = ("bitlet_pe_group_batch", "bitlet_weight_port_batch")
#: Files that make up the PE (rule pe-multiply).
PE_FILE_PATTERNS = ("bitlet_pe*.c", "bitlet_pe*.h")
FLOAT_OPT_OUT_MARK = "hls-rules: allow float-type"
HOST_ONLY_MARK = "hls-rules: host-only"
#: A non-static local array of at least this many bits counts as on-chip memory.
LOCAL_ONCHIP_MIN_BITS = 1024
#: Working arrays tied to no header buffer may add this fraction of the header total.
SCRATCH_FRACTION = 1 / 16
BUDGET_WORD_BITS = 32
_BUDGET_MACRO = re.compile(r"^BITLET_(\w+)_BUF_WORDS$")
DYNAMIC_MEMORY = frozenset({"malloc", "calloc", "realloc", "free", "aligned_alloc", "alloca",
                            "posix_memalign", "valloc", "__builtin_alloca", "__builtin_malloc",
                            "__builtin_free"})
LOOPS = (c_ast.For, c_ast.While, c_ast.DoWhile)

# A stand-in for the C library: enough for HLS code (gcc's own headers use
# extensions pycparser cannot read).  Declarations only; never judged.
_FAKE_LIBC = {
    "stdint.h": """
typedef signed char int8_t; typedef short int16_t; typedef int int32_t; typedef long long int64_t;
typedef unsigned char uint8_t; typedef unsigned short uint16_t; typedef unsigned int uint32_t;
typedef unsigned long long uint64_t; typedef long intptr_t; typedef unsigned long uintptr_t;
#define INT8_MIN (-128)
#define INT8_MAX 127
#define UINT8_MAX 255
#define INT16_MIN (-32768)
#define INT16_MAX 32767
#define UINT16_MAX 65535
#define INT32_MIN (-2147483647 - 1)
#define INT32_MAX 2147483647
#define UINT32_MAX 4294967295U
#define INT64_MIN (-9223372036854775807LL - 1)
#define INT64_MAX 9223372036854775807LL
#define UINT64_MAX 18446744073709551615ULL
""",
    "stddef.h": "typedef unsigned long size_t; typedef long ptrdiff_t;\n#define NULL ((void *)0)\n",
    "stdbool.h": "#define bool _Bool\n#define true 1\n#define false 0\n",
    "limits.h": "#define CHAR_BIT 8\n#define INT_MAX 2147483647\n#define INT_MIN (-2147483647 - 1)\n"
                "#define UINT_MAX 4294967295U\n",
    "stdlib.h": "#include <stddef.h>\nvoid *malloc(size_t n); void *calloc(size_t n, size_t s);\n"
                "void *realloc(void *p, size_t n); void free(void *p); void abort(void);\n",
    "string.h": "#include <stddef.h>\nvoid *memcpy(void *d, const void *s, size_t n);\n"
                "void *memset(void *d, int c, size_t n);\n",
    "stdio.h": "int printf(const char *f, ...); int fprintf(void *s, const char *f, ...);\n",
    "assert.h": "#define assert(x) ((void)0)\n",
    "math.h": "double fabs(double x); float fabsf(float x);\n",
}


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Violation:
    """One finding: ``file:line: rule: message``."""

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


def _display(path: str | Path) -> str:
    p = Path(path)
    try:
        return os.path.relpath(p, Path.cwd()) if p.is_absolute() else str(p)
    except ValueError:  # another drive (Windows)
        return str(p)


# ---------------------------------------------------------------------------
# Pragmas
# ---------------------------------------------------------------------------
_OPT = re.compile(r"([A-Za-z_]\w*)\s*=\s*(\S+)|(\S+)")


@dataclass
class HlsPragma:
    """``#pragma HLS DIRECTIVE key=value flag ...`` (keys lower case)."""

    directive: str
    options: dict
    node: c_ast.Pragma

    def flag(self, key: str) -> bool:
        v = self.options.get(key)
        return v is True or (isinstance(v, str) and v.lower() in ("true", "1"))


def parse_pragma(node: c_ast.Pragma) -> HlsPragma | None:
    """The HLS pragma of a Pragma node, or None for any other pragma."""
    words = node.string.strip().split(None, 1)
    if not words or words[0].upper() != "HLS" or len(words) < 2:
        return None
    m = re.match(r"\s*(\w+)(.*)", words[1], re.DOTALL)
    if not m:
        return None
    options: dict = {}
    for key, value, flag in _OPT.findall(m.group(2)):
        if key:
            options[key.lower()] = value
        else:
            options[flag.lower()] = True
    return HlsPragma(m.group(1).upper(), options, node)


# ---------------------------------------------------------------------------
# Constant expressions and type sizes
# ---------------------------------------------------------------------------
_INT_LIT = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*$")


def _int_literal(text: str) -> int | None:
    m = _INT_LIT.match(text)
    if not m:
        if len(text) >= 3 and text[0] == "'" and text[-1] == "'":
            body = text[1:-1].encode().decode("unicode_escape")
            return ord(body) if len(body) == 1 else None
        return None
    digits = m.group(1)
    if digits.startswith(("0x", "0X")):
        return int(digits, 16)
    if len(digits) > 1 and digits.startswith("0"):
        return int(digits, 8)
    return int(digits)


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_BINOPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: _cdiv(a, b) if b else None,
    "%": lambda a, b: a - _cdiv(a, b) * b if b else None,
    "<<": lambda a, b: a << b if 0 <= b < 128 else None, ">>": lambda a, b: a >> b if b >= 0 else None,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<": lambda a, b: int(a < b), "<=": lambda a, b: int(a <= b), ">": lambda a, b: int(a > b),
    ">=": lambda a, b: int(a >= b), "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
    "&&": lambda a, b: int(bool(a) and bool(b)), "||": lambda a, b: int(bool(a) or bool(b)),
}


def const_value(node, env: dict, unit: Unit | None = None) -> int | None:
    """Value of a constant integer expression, or None if it is not one.

    ``env`` maps names of enum constants and const variables to values.
    """
    if isinstance(node, c_ast.Constant):
        return _int_literal(node.value) if node.type not in ("float", "double", "string") else None
    if isinstance(node, c_ast.ID):
        return env.get(node.name)
    if isinstance(node, c_ast.Cast):
        return const_value(node.expr, env, unit)
    if isinstance(node, c_ast.UnaryOp):
        if node.op == "sizeof":
            bits = type_bits(node.expr.type, unit) if isinstance(node.expr, c_ast.Typename) \
                else None
            return bits // 8 if bits else None
        v = const_value(node.expr, env, unit)
        if v is None:
            return None
        return {"-": -v, "+": v, "~": ~v, "!": int(not v)}.get(node.op)
    if isinstance(node, c_ast.BinaryOp):
        a, b = const_value(node.left, env, unit), const_value(node.right, env, unit)
        if a is None or b is None or node.op not in _BINOPS:
            return None
        return _BINOPS[node.op](a, b)
    if isinstance(node, c_ast.TernaryOp):
        c = const_value(node.cond, env, unit)
        if c is None:
            return None
        return const_value(node.iftrue if c else node.iffalse, env, unit)
    return None


_BASE_BITS = {"char": 8, "short": 16, "int": 32, "float": 32, "double": 64, "_Bool": 8}


def type_bits(t, unit: Unit | None) -> int | None:
    """Bits of a pycparser type node (packed structs, 64-bit pointers), or None."""
    if isinstance(t, c_ast.TypeDecl):
        return type_bits(t.type, unit)
    if isinstance(t, c_ast.PtrDecl):
        return 64
    if isinstance(t, c_ast.ArrayDecl):
        n = const_value(t.dim, unit.consts if unit else {}, unit) if t.dim is not None else None
        e = type_bits(t.type, unit)
        return e * n if e is not None and n is not None else None
    if isinstance(t, c_ast.Enum):
        return 32
    if isinstance(t, (c_ast.Struct, c_ast.Union)):
        decls = t.decls
        if decls is None and unit is not None and t.name:
            decls = unit.structs.get(t.name)
        if decls is None:
            return None
        sizes = [type_bits(d.type, unit) for d in decls]
        if any(s is None for s in sizes):
            return None
        return sum(sizes) if isinstance(t, c_ast.Struct) else max(sizes, default=0)
    if isinstance(t, c_ast.IdentifierType):
        names = [n for n in t.names if n not in ("signed", "unsigned", "const", "volatile")]
        if names.count("long") >= 1 and "double" not in names:
            return 64
        if not names:
            return 32  # plain `unsigned`
        if len(names) == 1 and unit is not None and names[0] in unit.typedefs:
            return type_bits(unit.typedefs[names[0]].type, unit)
        for n in names:
            if n in _BASE_BITS:
                return _BASE_BITS[n]
        return None
    return None


def _array_shape(t, env: dict, unit: Unit) -> tuple[list[int | None], object]:
    """Dimensions of an ArrayDecl chain (None for non-constant) and the element type."""
    dims = []
    while isinstance(t, c_ast.ArrayDecl):
        dims.append(const_value(t.dim, env, unit) if t.dim is not None else None)
        t = t.type
    return dims, t


def _expr(node) -> str:
    text = c_generator.CGenerator().visit(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _line(node) -> int:
    return node.coord.line if node is not None and node.coord is not None else 0


def _file(node) -> str | None:
    return node.coord.file if node is not None and node.coord is not None else None


def _live_calls(body, env: dict, unit: Unit):
    """FuncCall nodes under ``body`` outside branches that are dead under ``env``."""
    stack = [body]
    while stack:
        n = stack.pop()
        if isinstance(n, (c_ast.If, c_ast.TernaryOp)):
            c = const_value(n.cond, env, unit)
            if c is not None:
                live = n.iftrue if c else n.iffalse
                if live is not None:
                    stack.append(live)
                continue
        if isinstance(n, c_ast.FuncCall):
            yield n
        stack.extend(c for _, c in n.children() if c is not None)


def _walk(node):
    """Every node under ``node`` (itself included), depth first."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(c for _, c in reversed(n.children()))


# ---------------------------------------------------------------------------
# The parsed sources
# ---------------------------------------------------------------------------
@dataclass
class Loop:
    """A loop and the HLS pragmas in its body (outside nested loops)."""

    node: object
    func: Func
    pragmas: list = field(default_factory=list)

    @property
    def pipelined(self) -> bool:
        return any(p.directive == "PIPELINE" and not p.flag("off") for p in self.pragmas)

    @property
    def fully_unrolled(self) -> bool:
        return any(p.directive == "UNROLL" and "factor" not in p.options and not p.flag("off")
                   for p in self.pragmas)


@dataclass
class Func:
    """A function definition, with its pragmas (scope: function or innermost loop)."""

    name: str
    node: c_ast.FuncDef
    unit: Unit
    static: bool
    pragmas: list = field(default_factory=list)       # (HlsPragma, Loop | None)
    loops: dict = field(default_factory=dict)         # id(loop node) -> Loop
    calls: list = field(default_factory=list)         # FuncCall nodes
    locals: dict = field(default_factory=dict)        # name -> Decl (body and parameters)
    params: dict = field(default_factory=dict)        # name -> Decl
    env: dict = field(default_factory=dict)           # constants visible in the body
    host_only: bool = False

    @property
    def file(self) -> str:
        return _file(self.node.decl)

    @property
    def line(self) -> int:
        return _line(self.node.decl)

    @property
    def key(self) -> tuple:
        return (self.file, self.line, self.name)

    @property
    def pipelined(self) -> bool:
        return any(p.directive == "PIPELINE" and not p.flag("off") and scope is None
                   for p, scope in self.pragmas)

    @property
    def is_top(self) -> bool:
        return any(p.directive == "INTERFACE" for p, _ in self.pragmas)


@dataclass
class Unit:
    """One preprocessed and parsed .c file."""

    path: Path
    ast: c_ast.FileAST
    macros: dict                      # name -> (params or None, body)
    funcs: dict = field(default_factory=dict)       # name -> Func (defined here)
    func_names: set = field(default_factory=set)    # every declared function
    typedefs: dict = field(default_factory=dict)    # name -> Typedef
    structs: dict = field(default_factory=dict)     # struct/union name -> decls
    globals: dict = field(default_factory=dict)     # file-scope object name -> Decl
    consts: dict = field(default_factory=dict)      # enum constants and const globals
    file_pragmas: list = field(default_factory=list)  # HlsPragma at file scope
    files: set = field(default_factory=set)          # every coord file seen


class SourceError(Exception):
    """A file that cannot be preprocessed or parsed (rule ``parse``)."""

    def __init__(self, file: str, line: int, message: str):
        super().__init__(message)
        self.violation = Violation(_display(file), line, "parse", message)


def _fake_libc_dir() -> Path:
    d = Path(tempfile.gettempdir()) / f"hls_rules_libc_{os.getuid() if hasattr(os, 'getuid') else 0}"
    d.mkdir(exist_ok=True)
    for name, text in _FAKE_LIBC.items():
        p = d / name
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
    return d


def _gcc(path: Path, include_dirs: list, defines: dict, extra: list) -> str:
    cmd = ["gcc", "-E", "-nostdinc", "-std=gnu99", "-D__SYNTHESIS__", "-I", str(_fake_libc_dir())]
    for d in include_dirs:
        cmd += ["-I", str(d)]
    for k, v in defines.items():
        cmd.append(f"-D{k}" if v is None else f"-D{k}={v}")
    cmd += extra + [str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SourceError(str(path), 0, "gcc not found: the checker preprocesses with gcc -E") \
            from exc
    if res.returncode:
        first = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip())
        m = re.match(r"(.*?):(\d+):(?:\d+:)?\s*(?:fatal )?error:\s*(.*)", first)
        if m:
            raise SourceError(m.group(1), int(m.group(2)), f"gcc -E: {m.group(3)}")
        raise SourceError(str(path), 0, f"gcc -E failed: {first[:200]}")
    return res.stdout


_DEFINE = re.compile(r"^#define\s+(\w+)(\(([^)]*)\))?\s*(.*)$")


def _macros(path: Path, include_dirs: list, defines: dict) -> dict:
    out = {}
    for line in _gcc(path, include_dirs, defines, ["-dM"]).splitlines():
        m = _DEFINE.match(line)
        if m:
            params = [p.strip() for p in m.group(3).split(",")] if m.group(2) else None
            out[m.group(1)] = (params, m.group(4).strip())
    return out


def parse_unit(path: Path, include_dirs: list, defines: dict) -> Unit:
    """Preprocess (as for synthesis) and parse one .c file."""
    text = _gcc(path, include_dirs, defines, [])
    try:
        ast = c_parser.CParser().parse(text, str(path))
    except c_parser.ParseError as exc:
        m = re.match(r"(.*?):(\d+):(?:\d+:)?\s*(.*)", str(exc))
        if m:
            raise SourceError(m.group(1), int(m.group(2)), f"pycparser: {m.group(3)}") from exc
        file, line = _locate_parse_error(text, str(exc), str(path))
        raise SourceError(file, line, f"pycparser: {str(exc).split(': ')[-1]} (an undeclared "
                                      f"type name? every type must be declared)") from exc
    unit = Unit(path, ast, _macros(path, include_dirs, defines))
    _index_unit(unit)
    return unit


_MARKER = re.compile(r'^#\s*(\d+)\s+"([^"]*)"')


def _locate_parse_error(text: str, message: str, default: str) -> tuple[str, int]:
    """Source file and line of a parse error pycparser reports without one: the
    shortest prefix of the preprocessed text that fails the same way."""
    lines = text.split("\n")

    def fails(n: int) -> bool:
        try:
            c_parser.CParser().parse("\n".join(lines[:n]), default)
        except c_parser.ParseError as exc:
            return str(exc) == message
        return False

    lo, hi = 0, len(lines)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fails(mid) else (mid, hi)
    file, line = default, 0
    for ln in lines[:hi]:
        m = _MARKER.match(ln)
        if m:
            file, line = m.group(2), int(m.group(1)) - 1
        else:
            line += 1
    return file, line


def _decl_is_const(decl) -> bool:
    return "const" in (decl.quals or []) or (
        isinstance(decl.type, c_ast.TypeDecl) and "const" in (decl.type.quals or []))


def _index_unit(unit: Unit) -> None:
    for node in _walk(unit.ast):
        if node.coord is not None and node.coord.file:
            unit.files.add(node.coord.file)
        if isinstance(node, c_ast.Enum) and node.values is not None:
            value = -1
            for e in node.values.enumerators:
                v = const_value(e.value, unit.consts, unit) if e.value is not None else value + 1
                value = v if v is not None else value + 1
                unit.consts[e.name] = value
        if isinstance(node, (c_ast.Struct, c_ast.Union)) and node.name and node.decls is not None:
            unit.structs[node.name] = node.decls
    for ext in unit.ast.ext:
        if isinstance(ext, c_ast.Typedef):
            unit.typedefs[ext.name] = ext
        elif isinstance(ext, c_ast.Decl):
            if isinstance(ext.type, c_ast.FuncDecl):
                unit.func_names.add(ext.name)
            elif ext.name:
                unit.globals[ext.name] = ext
                if _decl_is_const(ext) and ext.init is not None:
                    v = const_value(ext.init, unit.consts, unit)
                    if v is not None:
                        unit.consts[ext.name] = v
        elif isinstance(ext, c_ast.Pragma):
            p = parse_pragma(ext)
            if p:
                unit.file_pragmas.append(p)
        elif isinstance(ext, c_ast.FuncDef):
            unit.func_names.add(ext.decl.name)
            f = Func(ext.decl.name, ext, unit, "static" in (ext.decl.storage or []))
            _scan_function(f)
            unit.funcs[f.name] = f


def _scan_function(f: Func) -> None:
    ftype = f.node.decl.type
    if isinstance(ftype, c_ast.FuncDecl) and ftype.args is not None:
        for p in ftype.args.params:
            if isinstance(p, c_ast.Decl) and p.name:
                f.params[p.name] = p
                f.locals[p.name] = p
    f.env = dict(f.unit.consts)

    def scan(node, loop):
        if isinstance(node, c_ast.Pragma):
            p = parse_pragma(node)
            if p:
                f.pragmas.append((p, loop))
                if loop is not None:
                    loop.pragmas.append(p)
            return
        if isinstance(node, LOOPS):
            info = Loop(node, f)
            f.loops[id(node)] = info
            for name, child in node.children():
                scan(child, info if name == "stmt" else loop)
            return
        if isinstance(node, c_ast.FuncCall):
            f.calls.append(node)
        if isinstance(node, c_ast.Decl) and node.name and not isinstance(node.type, c_ast.FuncDecl):
            f.locals[node.name] = node
            if _decl_is_const(node) and node.init is not None:
                v = const_value(node.init, f.env, f.unit)
                if v is not None:
                    f.env[node.name] = v
        for _, child in node.children():
            scan(child, loop)

    scan(f.node.body, None)


def _host_only_lines(path: Path) -> list:
    """Line numbers of ``hls-rules: host-only`` comments in a file."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [i + 1 for i, ln in enumerate(lines) if HOST_ONLY_MARK in ln]


class Project:
    """The parsed .c files of one check, with a project-wide function index."""

    def __init__(self, files: list, include_dirs: list | None = None,
                 defines: dict | None = None):
        self.files = [Path(f).resolve() for f in files]
        self.roots = sorted({f.parent for f in self.files})
        inc = [Path(d).resolve() for d in (include_dirs or [])] + self.roots
        self.include_dirs = list(dict.fromkeys(inc))
        self.defines = dict(defines or {})
        self.units: list[Unit] = []
        self._scope_cache: dict = {}
        self.errors: list[Violation] = []
        for f in self.files:
            try:
                self.units.append(parse_unit(f, self.include_dirs, self.defines))
            except SourceError as exc:
                self.errors.append(exc.violation)
        self._by_key: dict = {}
        self._functions: list | None = None
        self._external: dict = {}
        for u in self.units:
            for f in u.funcs.values():
                self._by_key.setdefault(f.key, f)
                if not f.static:
                    self._external.setdefault(f.name, []).append(f)
        self._mark_host_only()

    # -- scope
    def in_scope(self, file: str | None) -> bool:
        """Whether a coord file lies in a checked directory (never the stand-in libc)."""
        if not file:
            return False
        hit = self._scope_cache.get(file)
        if hit is None:
            p = Path(file).resolve()
            hit = self._scope_cache[file] = any(r in p.parents for r in self.roots)
        return hit

    def functions(self) -> list:
        """Every function defined in the checked directories, once."""
        if self._functions is None:
            self._functions = [f for f in self._by_key.values() if self.in_scope(f.file)]
        return self._functions

    def canonical(self, f: Func) -> Func:
        return self._by_key.get(f.key, f)

    def resolve(self, call: c_ast.FuncCall, caller: Func) -> Func | None:
        """The definition a call reaches: same file first, else a unique external one."""
        if not isinstance(call.name, c_ast.ID):
            return None
        name = call.name.name
        if name in caller.locals:
            return None  # a variable (function pointer), not a function
        if name in caller.unit.funcs:
            return self.canonical(caller.unit.funcs[name])
        ext = {f.key: f for f in self._external.get(name, [])}
        return next(iter(ext.values())) if len(ext) == 1 else None

    def callees(self, f: Func) -> list:
        out = []
        for call in f.calls:
            g = self.resolve(call, f)
            if g is not None:
                out.append((call, g))
        return out

    def reachable(self, top: Func) -> list:
        """Functions a top calls, transitively.  Constant arguments are bound
        to the callee's parameters and ``if``/``?:`` branches that are dead
        under them are not followed (``bk_run(BITLET_KIND_VENDOR_FP, ...)``
        never reaches bitlet_pixel), as HLS folds them."""
        seen, order, stack = {(top.key, ())}, {top.key: top}, [(top, {})]
        while stack:
            f, bound = stack.pop()
            env = {**f.env, **bound}
            for call in _live_calls(f.node.body, env, f.unit):
                g = self.resolve(call, f)
                if g is None:
                    continue
                args = call.args.exprs if call.args is not None else []
                names = list(g.params)
                gb = {}
                for name, arg in zip(names, args):
                    v = const_value(arg, env, f.unit)
                    if v is not None:
                        gb[name] = v
                k = (g.key, tuple(sorted(gb.items())))
                if k not in seen:
                    seen.add(k)
                    order.setdefault(g.key, g)
                    stack.append((g, gb))
        return list(order.values())

    def tops(self) -> list:
        return [f for f in self.functions() if f.is_top]

    def loop_of(self, node) -> Loop | None:
        for u in self.units:
            for f in u.funcs.values():
                if id(node) in f.loops:
                    return f.loops[id(node)]
        return None

    def region(self, func: Func, roots: list):
        """(node, function, call chain) for every node under ``roots`` (nodes of
        ``func``) and in every function they call, transitively."""
        stack = [(r, func, ()) for r in roots if r is not None]
        entered = {func.key}
        while stack:
            node, f, chain = stack.pop()
            yield node, f, chain
            if isinstance(node, c_ast.FuncCall):
                g = self.resolve(node, f)
                if g is not None and g.key not in entered:
                    entered.add(g.key)
                    stack.append((g.node.body, g, chain + (g.name,)))
            stack.extend((c, f, chain) for _, c in node.children())

    def _mark_host_only(self) -> None:
        marks: dict = {}
        for f in self.functions():
            path = Path(f.file)
            if path not in marks:
                marks[path] = _host_only_lines(path)
        defs_of: dict = {}
        for g in self.functions():
            defs_of.setdefault(Path(g.file), []).append(g.line)
        for f in self.functions():
            lines = marks.get(Path(f.file), [])
            defs = sorted(defs_of[Path(f.file)])
            for mark in lines:
                nxt = next((ln for ln in defs if ln > mark), None)
                if nxt == f.line:
                    f.host_only = True
            if f.name in HOST_ONLY_FUNCTIONS:
                f.host_only = True


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------
def _pipeline_regions(project: Project):
    """(function, region roots, description) of every PIPELINE region."""
    for f in project.functions():
        if f.pipelined:
            yield f, [f.node.body], f"PIPELINE function {f.name} ({_display(f.file)}:{f.line})", None
        for loop in f.loops.values():
            if loop.pipelined:
                node = loop.node
                roots = [node.stmt] + ([node.next] if isinstance(node, c_ast.For) else [])
                yield f, roots, f"PIPELINE loop at {_display(f.file)}:{_line(node)}", node


def _via(chain: tuple) -> str:
    return f" (via {' -> '.join(chain)})" if chain else ""


def rule_div_in_pipeline(project: Project) -> list:
    """Non-constant ``/`` and ``%`` inside PIPELINE regions."""
    out = []
    for f, roots, where, _ in _pipeline_regions(project):
        for node, g, chain in project.region(f, roots):
            if isinstance(node, c_ast.BinaryOp) and node.op in ("/", "%"):
                op, divisor = node.op, node.right
            elif isinstance(node, c_ast.Assignment) and node.op in ("/=", "%="):
                op, divisor = node.op, node.rvalue
            else:
                continue
            if const_value(divisor, g.env, g.unit) is not None or not project.in_scope(_file(node)):
                continue
            out.append(Violation(_display(_file(node)), _line(node), "div-in-pipeline",
                                 f"runtime '{op}' by non-constant `{_expr(divisor)}` inside "
                                 f"{where}{_via(chain)}"))
    return out


def _for_is_counted(node: c_ast.For, env: dict, unit: Unit) -> str | None:
    """None if the for loop runs a constant number of times, else why not."""
    nxt = node.next
    var, step_ok = None, False
    if isinstance(nxt, c_ast.UnaryOp) and nxt.op in ("p++", "++", "p--", "--") \
            and isinstance(nxt.expr, c_ast.ID):
        var, step_ok = nxt.expr.name, True
    elif isinstance(nxt, c_ast.Assignment) and isinstance(nxt.lvalue, c_ast.ID) \
            and nxt.op in ("+=", "-=", "<<=", ">>="):
        var, step_ok = nxt.lvalue.name, const_value(nxt.rvalue, env, unit) is not None
    if var is None or not step_ok:
        return "no constant step of an induction variable"
    init = node.init
    init_value = None
    if isinstance(init, c_ast.DeclList):
        decl = next((d for d in init.decls if d.name == var), None)
        init_value = decl.init if decl is not None else None
    elif isinstance(init, c_ast.Assignment) and init.op == "=" and \
            isinstance(init.lvalue, c_ast.ID) and init.lvalue.name == var:
        init_value = init.rvalue
    if init_value is None or const_value(init_value, env, unit) is None:
        return f"`{var}` does not start from a constant"
    cond = node.cond
    if isinstance(cond, c_ast.BinaryOp) and cond.op in ("<", "<=", ">", ">=", "!="):
        sides = [(cond.left, cond.right), (cond.right, cond.left)]
        for mine, other in sides:
            if isinstance(mine, c_ast.ID) and mine.name == var \
                    and const_value(other, env, unit) is not None:
                return None
    cond_text = _expr(cond) if cond is not None else "no condition"
    return f"condition `{cond_text}` does not compare `{var}` with a constant"


def rule_loop_bound_in_pipeline(project: Project) -> list:
    """Loops with data-dependent trip counts inside PIPELINE regions."""
    out = []
    for f, roots, where, own in _pipeline_regions(project):
        for node, g, chain in project.region(f, roots):
            if not isinstance(node, LOOPS) or node is own or not project.in_scope(_file(node)):
                continue
            loop = g.loops.get(id(node))
            if isinstance(node, c_ast.For):
                if loop is not None and loop.fully_unrolled:
                    continue
                why = _for_is_counted(node, g.env, g.unit)
                if why is None:
                    continue
            else:
                kind = "while" if isinstance(node, c_ast.While) else "do-while"
                why = f"a {kind} loop (`{_expr(node.cond)}`) has a data-dependent trip count"
            out.append(Violation(_display(_file(node)), _line(node), "loop-bound-in-pipeline",
                                 f"data-dependent loop inside {where}{_via(chain)}: {why}"))
    return out


def _float_typedefs(unit: Unit) -> set:
    names: set = set()
    changed = True
    while changed:
        changed = False
        for name, td in unit.typedefs.items():
            if name not in names and _mentions_float(td.type, names):
                names.add(name)
                changed = True
    return names


def _mentions_float(t, float_typedefs: set) -> bool:
    for n in _walk(t):
        if isinstance(n, c_ast.IdentifierType) and (
                {"float", "double"} & set(n.names) or float_typedefs & set(n.names)):
            return True
    return False


def _opts_out(path: str) -> bool:
    p = Path(path)
    if p.name in FLOAT_OPT_OUT_FILES:
        return True
    try:
        return FLOAT_OPT_OUT_MARK in p.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def rule_float_type(project: Project) -> list:
    """float/double in the kernel's files and the headers they include."""
    out = []
    for unit in project.units:
        if _opts_out(str(unit.path)):
            continue
        scope = {f for f in unit.files if project.in_scope(f) and not _opts_out(f)}
        ftd = _float_typedefs(unit)
        for node in _walk(unit.ast):
            if _file(node) not in scope:
                continue
            what = None
            if isinstance(node, c_ast.IdentifierType):
                hit = ({"float", "double"} & set(node.names)) or (ftd & set(node.names))
                if hit:
                    what = f"type `{' '.join(node.names)}`"
            elif isinstance(node, c_ast.Constant) and node.type in ("float", "double"):
                what = f"floating-point literal `{node.value}`"
            if what:
                out.append(Violation(_display(_file(node)), _line(node), "float-type",
                                     f"{what} in the Bitlet kernel (integer datapath only)"))
    return out


def _is_pe_file(path: str | None) -> bool:
    return bool(path) and any(fnmatch.fnmatch(Path(path).name, pat) for pat in PE_FILE_PATTERNS)


def rule_pe_multiply(project: Project) -> list:
    """Multiplications of two non-constant operands in the PE."""
    out = []
    for f in project.functions():
        if f.host_only or not _is_pe_file(f.file):
            continue
        for node in _walk(f.node.body):
            if isinstance(node, c_ast.BinaryOp) and node.op == "*":
                a, b = node.left, node.right
            elif isinstance(node, c_ast.Assignment) and node.op == "*=":
                a, b = node.lvalue, node.rvalue
            else:
                continue
            if const_value(a, f.env, f.unit) is None and const_value(b, f.env, f.unit) is None:
                out.append(Violation(_display(_file(node)), _line(node), "pe-multiply",
                                     f"`{_expr(node)}` multiplies two non-constant operands "
                                     f"in the PE (function {f.name}): a data multiplier"))
    return out


def rule_host_only(project: Project) -> list:
    """Host-only functions must not be reachable from a top."""
    out = []
    for top in project.tops():
        for g in project.reachable(top):
            if g.host_only:
                out.append(Violation(_display(g.file), g.line, "host-only",
                                     f"host-only function {g.name} is reachable from top "
                                     f"{top.name}"))
    return out


def rule_recursion(project: Project) -> list:
    """Calls inside a cycle of the call graph (Tarjan's strongly connected components)."""
    funcs = project.functions()
    edges = {f.key: project.callees(f) for f in funcs}
    index, low, on_stack, stack, comp = {}, {}, set(), [], {}
    counter = [0]

    def connect(k):
        index[k] = low[k] = counter[0]
        counter[0] += 1
        stack.append(k)
        on_stack.add(k)
        for _, g in edges.get(k, []):
            if g.key not in index:
                connect(g.key)
                low[k] = min(low[k], low[g.key])
            elif g.key in on_stack:
                low[k] = min(low[k], index[g.key])
        if low[k] == index[k]:
            members = []
            while True:
                m = stack.pop()
                on_stack.discard(m)
                members.append(m)
                if m == k:
                    break
            for m in members:
                comp[m] = tuple(sorted(x[2] for x in members))

    for f in funcs:
        if f.key not in index:
            connect(f.key)
    out = []
    for f in funcs:
        for call, g in edges[f.key]:
            if comp.get(g.key) == comp.get(f.key) and (g.key == f.key or len(comp[f.key]) > 1):
                cycle = " -> ".join(comp[f.key]) if g.key != f.key else f"{f.name} -> {f.name}"
                out.append(Violation(_display(_file(call)), _line(call), "recursion",
                                     f"call to {g.name} in {f.name} is recursive ({cycle})"))
    return out


def rule_dynamic_memory(project: Project) -> list:
    """malloc & co. and variable-length arrays."""
    out = []
    for unit in project.units:
        for node in _walk(unit.ast):
            if not project.in_scope(_file(node)):
                continue
            if isinstance(node, c_ast.ID) and node.name in DYNAMIC_MEMORY:
                out.append(Violation(_display(_file(node)), _line(node), "dynamic-memory",
                                     f"{node.name}: no dynamic memory in hardware"))
        for f in unit.funcs.values():
            if not project.in_scope(f.file):
                continue
            for decl in f.locals.values():
                if decl.name in f.params:
                    continue
                t = decl.type
                while isinstance(t, c_ast.ArrayDecl):
                    if t.dim is not None and const_value(t.dim, f.env, unit) is None:
                        out.append(Violation(_display(_file(decl)), _line(decl), "dynamic-memory",
                                             f"variable-length array {decl.name}"
                                             f"[{_expr(t.dim)}] in {f.name}"))
                        break
                    t = t.type
    return out


def _function_typedefs(unit: Unit) -> set:
    return {name for name, td in unit.typedefs.items() if isinstance(td.type, c_ast.FuncDecl)
            or (isinstance(td.type, c_ast.PtrDecl) and isinstance(td.type.type, c_ast.FuncDecl))}


def rule_function_pointer(project: Project) -> list:
    """Pointer-to-function types, calls through pointers, functions used as values."""
    out = []

    def add(node, msg):
        out.append(Violation(_display(_file(node)), _line(node), "function-pointer", msg))

    for unit in project.units:
        fn_typedefs = _function_typedefs(unit)
        for node in _walk(unit.ast):
            if not project.in_scope(_file(node)):
                continue
            if isinstance(node, c_ast.PtrDecl):
                t = node.type
                if isinstance(t, c_ast.FuncDecl) or (
                        isinstance(t, c_ast.TypeDecl) and isinstance(t.type, c_ast.IdentifierType)
                        and fn_typedefs & set(t.type.names)):
                    add(node, "pointer-to-function type")
            elif isinstance(node, c_ast.ParamList):
                for p in node.params:
                    if isinstance(p, c_ast.Decl) and isinstance(p.type, c_ast.FuncDecl):
                        add(p, f"parameter {p.name} of function type (a function pointer)")
        for f in unit.funcs.values():
            if not project.in_scope(f.file):
                continue
            call_names, fields = set(), set()
            for node in _walk(f.node.body):
                if isinstance(node, c_ast.FuncCall):
                    call_names.add(id(node.name))
                    if not isinstance(node.name, c_ast.ID):
                        add(node, f"call through a pointer `{_expr(node.name)}`")
                    elif node.name.name in f.locals or (
                            node.name.name in unit.globals
                            and node.name.name not in unit.func_names):
                        add(node, f"call through the pointer variable {node.name.name}")
                elif isinstance(node, c_ast.StructRef):
                    fields.add(id(node.field))
                elif isinstance(node, c_ast.NamedInitializer):
                    fields.update(id(n) for n in node.name)
            for node in _walk(f.node.body):
                if isinstance(node, c_ast.ID) and id(node) not in call_names \
                        and id(node) not in fields and node.name in unit.func_names \
                        and node.name not in f.locals:
                    add(node, f"function {node.name} used as a value (a function pointer)")
    return out


def _is_array_decl(decl) -> bool:
    return isinstance(decl.type, c_ast.ArrayDecl)


def rule_array_partition_scope(project: Project) -> list:
    """ARRAY_PARTITION / ARRAY_RESHAPE must name an array the function can see as its own."""
    out = []

    def check(p: HlsPragma, f: Func | None, unit: Unit):
        if p.directive not in ("ARRAY_PARTITION", "ARRAY_RESHAPE"):
            return
        node = p.node
        if not project.in_scope(_file(node)):
            return
        var = p.options.get("variable")
        where = f"function {f.name}" if f else "file scope"
        if not isinstance(var, str):
            out.append(Violation(_display(_file(node)), _line(node), "array-partition-scope",
                                 f"{p.directive} without variable= in {where}"))
            return
        decl, kind = None, ""
        if f is not None and var in f.locals:
            decl = f.locals[var]
            kind = "parameter" if var in f.params else "local"
        elif var in unit.globals:
            decl, kind = unit.globals[var], "file-scope"
        if decl is None:
            msg = f"{p.directive} variable={var}: no array {var} defined in {where}"
            if f is not None and any(var in g.locals for g in project.functions() if g is not f):
                owners = sorted({g.name for g in project.functions() if var in g.locals})
                msg += f" (it is declared in {', '.join(owners)})"
            out.append(Violation(_display(_file(node)), _line(node), "array-partition-scope",
                                 msg))
        elif not _is_array_decl(decl):
            what = "a pointer" if isinstance(decl.type, c_ast.PtrDecl) else "not an array"
            out.append(Violation(_display(_file(node)), _line(node), "array-partition-scope",
                                 f"{p.directive} variable={var}: the {kind} {var} in {where} "
                                 f"is {what}"))

    for unit in project.units:
        for p in unit.file_pragmas:
            check(p, None, unit)
        for f in unit.funcs.values():
            for p, _ in f.pragmas:
                check(p, f, unit)
    return out


# -- on-chip arrays (shared with fit_table.py) ------------------------------
@dataclass
class OnChipArray:
    """An array the kernel keeps on chip, with the pragmas that shape its memories."""

    name: str
    file: str
    line: int
    func: str | None              # None: file scope
    storage: str                  # "file", "static" or "local"
    elem_bits: int | None
    dims: list                    # ints (None: unknown)
    budgets: tuple                # header budget keys its size refers to ("ACT", ...)
    pragmas: list = field(default_factory=list)   # ARRAY_PARTITION/RESHAPE/BIND_STORAGE
    macros: dict = field(default_factory=dict, repr=False)  # to evaluate pragma options
    path: str = ""                # absolute path of the declaring file

    @property
    def bits(self) -> int | None:
        if self.elem_bits is None or any(d is None for d in self.dims):
            return None
        n = self.elem_bits
        for d in self.dims:
            n *= d
        return n


_IDENT = re.compile(r"[A-Za-z_]\w*")


def _decl_size_text(path: str, line: int, col: int) -> str:
    """Source text of a declarator from its name up to the end of its dimensions."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    text = "\n".join(lines[line - 1: line + 20])
    text = text[max(col - 1, 0):] if lines[line - 1: line] else ""
    depth, end = 0, len(text)
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                end = i
                break
        elif ch in ";=," and depth == 0:
            end = i
            break
    return text[:end]


def _budget_keys(text: str, name: str, macros: dict) -> tuple:
    """Header budgets (``BITLET_<X>_BUF_WORDS``) a declarator's size refers to."""
    keys, seen = set(), set()
    todo = [t for t in _IDENT.findall(text) if t != name]
    while todo:
        tok = todo.pop()
        if tok in seen:
            continue
        seen.add(tok)
        m = _BUDGET_MACRO.match(tok)
        if m:
            keys.add(m.group(1))
        if tok in macros:
            todo.extend(_IDENT.findall(macros[tok][1]))
    return tuple(sorted(keys))


def header_budgets(project: Project) -> dict:
    """``{key: words}`` for every ``BITLET_<key>_BUF_WORDS`` macro of the sources."""
    out = {}
    for unit in project.units:
        for name, (params, body) in unit.macros.items():
            m = _BUDGET_MACRO.match(name)
            if m and params is None:
                v = _int_literal(body.strip("() ")) if body else None
                if v is None:
                    v = _macro_value(body, unit.macros)
                if v is not None:
                    out[m.group(1)] = v
    return out


def _macro_value(text: str, macros: dict, depth: int = 0) -> int | None:
    """Value of a macro expression (object-like macros expanded), or None."""
    if depth > 20:
        return None
    expanded = _IDENT.sub(lambda m: f"({macros[m.group(0)][1]})"
                          if m.group(0) in macros and macros[m.group(0)][0] is None
                          else m.group(0), text)
    if expanded != text:
        return _macro_value(expanded, macros, depth + 1)
    try:
        ast = c_parser.CParser().parse(f"int __v = {text};")
    except c_parser.ParseError:
        return None
    return const_value(ast.ext[0].init, {}, None)


def pragma_value(value, unit: Unit) -> int | None:
    """An integer pragma option (literal or macro expression)."""
    if value is True or value is None:
        return None
    return _macro_value(str(value), unit.macros)


def onchip_arrays(project: Project, top: Func | None) -> list:
    """On-chip arrays of the kernel of ``top`` (every function when top is None)."""
    funcs = project.reachable(top) if top is not None else project.functions()
    arrays: dict = {}
    used_globals: dict = {}
    for f in funcs:
        names = {n.name for n in _walk(f.node.body) if isinstance(n, c_ast.ID)}
        for name in names:
            if name in f.unit.globals and name not in f.locals:
                used_globals.setdefault(name, (f.unit, f.unit.globals[name]))
        for decl in f.locals.values():
            if decl.name in f.params or not _is_array_decl(decl):
                continue
            static = "static" in (decl.storage or [])
            arr = _make_array(decl, f.unit, f.env, f.name, "static" if static else "local")
            if not static and (arr.bits or 0) < LOCAL_ONCHIP_MIN_BITS:
                continue
            arrays[(arr.file, arr.line, arr.name)] = arr
            arr.pragmas = [p for p, _ in f.pragmas if p.options.get("variable") == decl.name]
    if top is None:
        for unit in project.units:
            for name, decl in unit.globals.items():
                used_globals.setdefault(name, (unit, decl))
    for name, (unit, decl) in used_globals.items():
        if not _is_array_decl(decl) or "extern" in (decl.storage or []) \
                or not project.in_scope(_file(decl)):
            continue
        arr = _make_array(decl, unit, unit.consts, None, "file")
        arr.pragmas = [p for p in unit.file_pragmas if p.options.get("variable") == name]
        for f in funcs:
            if f.unit is unit and name not in f.locals:
                arr.pragmas += [p for p, _ in f.pragmas if p.options.get("variable") == name]
        arrays.setdefault((arr.file, arr.line, arr.name), arr)
    return sorted(arrays.values(), key=lambda a: (a.file, a.line, a.name))


def _make_array(decl, unit: Unit, env: dict, func: str | None, storage: str) -> OnChipArray:
    dims, elem = _array_shape(decl.type, env, unit)
    if dims and dims[0] is None and isinstance(decl.init, c_ast.InitList):
        dims[0] = len(decl.init.exprs)
    text = _decl_size_text(_file(decl), _line(decl), decl.coord.column or 1)
    return OnChipArray(decl.name, _display(_file(decl)), _line(decl), func, storage,
                       type_bits(elem, unit), dims, _budget_keys(text, decl.name, unit.macros),
                       macros=unit.macros, path=str(Path(_file(decl)).resolve()))


def _kernels(project: Project) -> list:
    tops = project.tops()
    return [(t.name, t) for t in tops] if tops else [("<all functions>", None)]


def rule_on_chip_budget(project: Project) -> list:
    """On-chip arrays of each kernel within the header's budgets."""
    budgets = header_budgets(project)
    total_budget = int(sum(budgets.values()) * BUDGET_WORD_BITS * (1 + SCRATCH_FRACTION))
    out = []
    for kname, top in _kernels(project):
        arrays = onchip_arrays(project, top)
        for a in arrays:
            if a.bits is None:
                out.append(Violation(a.file, a.line, "on-chip-budget",
                                     f"cannot size on-chip array {a.name} "
                                     f"(element or dimension not constant)"))
        sized = [a for a in arrays if a.bits is not None]
        groups: dict = {}
        for a in sized:
            if a.budgets:
                groups.setdefault(a.budgets, []).append(a)
        for keys, members in groups.items():
            if not all(k in budgets for k in keys):
                continue
            limit = sum(budgets[k] for k in keys) * BUDGET_WORD_BITS
            used = sum(a.bits for a in members)
            if used > limit:
                big = max(members, key=lambda a: a.bits)
                macro = " + ".join(f"BITLET_{k}_BUF_WORDS" for k in keys)
                out.append(Violation(big.file, big.line, "on-chip-budget",
                                     f"arrays sized by {macro} ({', '.join(a.name for a in members)})"
                                     f" hold {used} bits > budget {limit} bits "
                                     f"({limit // BUDGET_WORD_BITS} words x {BUDGET_WORD_BITS}) "
                                     f"in kernel {kname}"))
        used = sum(a.bits for a in sized)
        if budgets and used > total_budget:
            # each header buffer is checked above: the excess is the working arrays'
            free = [a for a in sized if not a.budgets] or sized
            big = max(free, key=lambda a: a.bits)
            out.append(Violation(big.file, big.line, "on-chip-budget",
                                 f"on-chip arrays of kernel {kname} hold {used} bits > total "
                                 f"budget {total_budget} bits (header buffers + 1/16 scratch); "
                                 f"largest working array: {big.name} ({big.bits} bits)"))
    return out


RULE_FUNCTIONS = (
    rule_div_in_pipeline, rule_loop_bound_in_pipeline, rule_float_type, rule_pe_multiply,
    rule_host_only, rule_recursion, rule_dynamic_memory, rule_function_pointer,
    rule_array_partition_scope, rule_on_chip_budget,
)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def source_files(paths: list) -> list:
    """The .c files named by ``paths`` (directories: their *.c, sorted)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.c"))
        elif p.is_file() and p.suffix == ".c":
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: not a directory or a .c file")
    if not files:
        raise FileNotFoundError(f"no .c files in {', '.join(map(str, paths))}")
    return files


def check(paths: list, defines: dict | None = None, include_dirs: list | None = None) -> list:
    """Every violation in the sources named by ``paths``, sorted, one per
    (file, line, rule)."""
    project = Project(source_files(paths), include_dirs, defines)
    found = list(project.errors)
    for rule in RULE_FUNCTIONS:
        found += rule(project)
    unique: dict = {}
    for v in sorted(found):
        unique.setdefault((v.file, v.line, v.rule), v)
    return sorted(unique.values())


def _defines(items: list) -> dict:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not re.match(r"^[A-Za-z_]\w*$", name):
            raise ValueError(f"-D {item}: not NAME or NAME=VALUE")
        out[name] = value if _ else None
    return out


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hls_rules.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="directories (their *.c) or .c files")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                    help="preprocessor define (e.g. -D BITLET_N_PE=16)")
    ap.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    args = ap.parse_args(argv)
    if args.list_rules:
        for name, text in RULES.items():
            print(f"{name}: {text}")
        return 0
    if not args.paths:
        ap.print_usage(sys.stderr)
        print("hls_rules.py: error: give a directory or .c files", file=sys.stderr)
        return 2
    try:
        violations = check(args.paths, _defines(args.defines))
    except (FileNotFoundError, ValueError) as exc:
        print(f"hls_rules.py: {exc}", file=sys.stderr)
        return 2
    for v in violations:
        print(v)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
