"""On-chip arrays of a kernel and the header's buffer budgets (for the
on-chip-budget rule of hls_rules.py and for fit_table.py).

On-chip arrays: file-scope and static arrays, and local arrays of at least
``LOCAL_ONCHIP_MIN_BITS`` bits, in the functions a top reaches (every function
when no top is given), each with the ARRAY_PARTITION / ARRAY_RESHAPE /
BIND_STORAGE pragmas that name it.  An array belongs to the budget
``BITLET_<X>_BUF_WORDS`` when its declared size refers to that macro, also
through other macros.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from csource import (
    IDENT,
    Func,
    Project,
    Unit,
    array_shape,
    c_ast,
    display,
    file_of,
    int_literal,
    is_array_decl,
    line_of,
    macro_value,
    type_bits,
    walk,
)

#: A non-static local array of at least this many bits counts as on-chip memory.
LOCAL_ONCHIP_MIN_BITS = 1024
BUDGET_WORD_BITS = 32
BUDGET_MACRO = re.compile(r"^BITLET_(\w+)_BUF_WORDS$")


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
    todo = [t for t in IDENT.findall(text) if t != name]
    while todo:
        tok = todo.pop()
        if tok in seen:
            continue
        seen.add(tok)
        m = BUDGET_MACRO.match(tok)
        if m:
            keys.add(m.group(1))
        if tok in macros:
            todo.extend(IDENT.findall(macros[tok][1]))
    return tuple(sorted(keys))


def header_budgets(project: Project) -> dict:
    """``{key: words}`` for every ``BITLET_<key>_BUF_WORDS`` macro of the sources."""
    out = {}
    for unit in project.units:
        for name, (params, body) in unit.macros.items():
            m = BUDGET_MACRO.match(name)
            if m and params is None:
                v = int_literal(body.strip("() ")) if body else None
                if v is None:
                    v = macro_value(body, unit.macros)
                if v is not None:
                    out[m.group(1)] = v
    return out


def onchip_arrays(project: Project, top: Func | None) -> list:
    """On-chip arrays of the kernel of ``top`` (every function when top is None)."""
    funcs = project.reachable(top) if top is not None else project.functions()
    arrays: dict = {}
    used_globals: dict = {}
    for f in funcs:
        names = {n.name for n in walk(f.node.body) if isinstance(n, c_ast.ID)}
        for name in names:
            if name in f.unit.globals and name not in f.locals:
                used_globals.setdefault(name, (f.unit, f.unit.globals[name]))
        for decl in f.locals.values():
            if decl.name in f.params or not is_array_decl(decl):
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
        if not is_array_decl(decl) or "extern" in (decl.storage or []) \
                or not project.in_scope(file_of(decl)):
            continue
        arr = _make_array(decl, unit, unit.consts, None, "file")
        arr.pragmas = [p for p in unit.file_pragmas if p.options.get("variable") == name]
        for f in funcs:
            if f.unit is unit and name not in f.locals:
                arr.pragmas += [p for p, _ in f.pragmas if p.options.get("variable") == name]
        arrays.setdefault((arr.file, arr.line, arr.name), arr)
    return sorted(arrays.values(), key=lambda a: (a.file, a.line, a.name))


def _make_array(decl, unit: Unit, env: dict, func: str | None, storage: str) -> OnChipArray:
    dims, elem = array_shape(decl.type, env, unit)
    if dims and dims[0] is None and isinstance(decl.init, c_ast.InitList):
        dims[0] = len(decl.init.exprs)
    text = _decl_size_text(file_of(decl), line_of(decl), decl.coord.column or 1)
    return OnChipArray(decl.name, display(file_of(decl)), line_of(decl), func, storage,
                       type_bits(elem, unit), dims, _budget_keys(text, decl.name, unit.macros),
                       macros=unit.macros, path=str(Path(file_of(decl)).resolve()))
