"""C sources as HLS sees them: preprocess, parse, index (for hls_rules.py and
fit_table.py).

Each .c file is preprocessed as Vitis HLS synthesises it (``gcc -E
-D__SYNTHESIS__``, the file's directory and the given ones on the include
path, a minimal stand-in for the C library so that pycparser can read it) and
parsed with pycparser; ``#pragma HLS`` lines survive ``gcc -E`` and pycparser
keeps them as ``Pragma`` nodes in place.  A ``Project`` indexes the functions
of all files (pragmas scoped to their function or innermost loop, loops,
calls, locals, constants) and resolves calls across files; it follows calls
with constant arguments bound, skipping branches that are dead under them.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pycparser import c_ast, c_generator, c_parser

LOOPS = (c_ast.For, c_ast.While, c_ast.DoWhile)
IDENT = re.compile(r"[A-Za-z_]\w*")


def display(path: str | Path) -> str:
    """A path as reported: relative to the working directory when absolute."""
    p = Path(path)
    try:
        return os.path.relpath(p, Path.cwd()) if p.is_absolute() else str(p)
    except ValueError:  # another drive (Windows)
        return str(p)


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


def int_literal(text: str) -> int | None:
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
        return int_literal(node.value) if node.type not in ("float", "double", "string") else None
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


def array_shape(t, env: dict, unit: Unit) -> tuple[list[int | None], object]:
    """Dimensions of an ArrayDecl chain (None for non-constant) and the element type."""
    dims = []
    while isinstance(t, c_ast.ArrayDecl):
        dims.append(const_value(t.dim, env, unit) if t.dim is not None else None)
        t = t.type
    return dims, t


def expr_text(node) -> str:
    text = c_generator.CGenerator().visit(node)
    return text if len(text) <= 60 else text[:57] + "..."


def line_of(node) -> int:
    return node.coord.line if node is not None and node.coord is not None else 0


def file_of(node) -> str | None:
    return node.coord.file if node is not None and node.coord is not None else None


def _bind_args(call: c_ast.FuncCall, callee: Func, env: dict, unit: Unit) -> dict:
    """Parameters of ``callee`` that ``call`` passes a constant, with their values."""
    args = call.args.exprs if call.args is not None else []
    bound = {}
    for name, arg in zip(callee.params, args):
        v = const_value(arg, env, unit)
        if v is not None:
            bound[name] = v
    return bound


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


def walk(node):
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
        return file_of(self.node.decl)

    @property
    def line(self) -> int:
        return line_of(self.node.decl)

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
        self.where = (display(file), line, message)


def _fake_libc_dir() -> Path:
    """A directory with the stand-in headers (written atomically, shared by runs)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    d = Path(tempfile.gettempdir()) / f"hls_rules_libc_{uid}"
    d.mkdir(exist_ok=True)
    for name, text in _FAKE_LIBC.items():
        p = d / name
        if not p.exists() or p.read_text() != text:
            tmp = d / f".{name}.{os.getpid()}"
            tmp.write_text(text)
            os.replace(tmp, p)
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
    for node in walk(unit.ast):
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
        self.errors: list = []            # (file, line, message) of unreadable files
        for f in self.files:
            try:
                self.units.append(parse_unit(f, self.include_dirs, self.defines))
            except SourceError as exc:
                self.errors.append(exc.where)
        self._by_key: dict = {}
        self._functions: list | None = None
        self._external: dict = {}
        for u in self.units:
            for f in u.funcs.values():
                self._by_key.setdefault(f.key, f)
                if not f.static:
                    self._external.setdefault(f.name, []).append(f)

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
                gb = _bind_args(call, g, env, f.unit)
                k = (g.key, tuple(sorted(gb.items())))
                if k not in seen:
                    seen.add(k)
                    order.setdefault(g.key, g)
                    stack.append((g, gb))
        return list(order.values())

    def tops(self) -> list:
        return [f for f in self.functions() if f.is_top]


    def region(self, func: Func, roots: list):
        """(node, function, constants, call chain) for every node under ``roots``
        (nodes of ``func``) and in every function they call, transitively.
        Constant arguments are bound to the callee's parameters and branches
        dead under the constants are skipped, as HLS folds them when it inlines."""
        stack = [(r, func, func.env, ()) for r in roots if r is not None]
        entered = {(func.key, ())}
        while stack:
            node, f, env, chain = stack.pop()
            if isinstance(node, (c_ast.If, c_ast.TernaryOp)):
                c = const_value(node.cond, env, f.unit)
                if c is not None:
                    live = node.iftrue if c else node.iffalse
                    if live is not None:
                        stack.append((live, f, env, chain))
                    continue
            yield node, f, env, chain
            if isinstance(node, c_ast.FuncCall):
                g = self.resolve(node, f)
                if g is not None:
                    bound = _bind_args(node, g, env, f.unit)
                    key = (g.key, tuple(sorted(bound.items())))
                    if key not in entered:
                        entered.add(key)
                        stack.append((g.node.body, g, {**g.env, **bound}, chain + (g.name,)))
            stack.extend((c, f, env, chain) for _, c in node.children())

def is_array_decl(decl) -> bool:
    return isinstance(decl.type, c_ast.ArrayDecl)


def macro_value(text: str, macros: dict, depth: int = 0) -> int | None:
    """Value of a macro expression (object-like macros expanded), or None."""
    if depth > 20:
        return None
    expanded = IDENT.sub(lambda m: f"({macros[m.group(0)][1]})"
                          if m.group(0) in macros and macros[m.group(0)][0] is None
                          else m.group(0), text)
    if expanded != text:
        return macro_value(expanded, macros, depth + 1)
    try:
        ast = c_parser.CParser().parse(f"int __v = {text};")
    except c_parser.ParseError:
        return None
    return const_value(ast.ext[0].init, {}, None)


def pragma_value(value, macros: dict) -> int | None:
    """An integer pragma option (literal or macro expression), or None."""
    if value is True or value is None:
        return None
    return macro_value(str(value), macros)


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
