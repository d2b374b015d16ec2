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
    comment ``/* hls-rules: allow float-type */`` on a line of its own or by
    ``FLOAT_OPT_OUT_FILES`` (``vendor_kernel.c``, the vendor-FP baseline).
pe-multiply
    ``a * b`` / ``a *= b`` with two non-constant operands in the PE (files
    named ``bitlet_pe*.c`` / ``bitlet_pe*.h``), except in host-only functions:
    those in ``HOST_ONLY_FUNCTIONS`` or marked by a comment starting
    ``/* hls-rules: host-only`` right before their definition (only comments
    and the return type in between).
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
    1024 bits (``onchip.LOCAL_ONCHIP_MIN_BITS``), in the functions reachable from a top
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
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from csource import (
    LOOPS,
    Func,
    HlsPragma,
    Project,
    Unit,
    c_ast,
    const_value,
    display,
    expr_text,
    file_of,
    is_array_decl,
    line_of,
    source_files,
    walk,
)
from onchip import BUDGET_WORD_BITS, header_budgets, onchip_arrays

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
#: The marks are comments of their own line (``/* ... */`` or ``// ...``), so that
#: prose that merely mentions them marks nothing.
FLOAT_OPT_OUT_MARK = re.compile(r"^\s*(/\*|//)\s*hls-rules: allow float-type\b", re.MULTILINE)
HOST_ONLY_MARK = re.compile(r"^\s*(/\*|//)\s*hls-rules: host-only\b")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
#: Working arrays tied to no header buffer may add this fraction of the header total.
SCRATCH_FRACTION = 1 / 16
DYNAMIC_MEMORY = frozenset({"malloc", "calloc", "realloc", "free", "aligned_alloc", "alloca",
                            "posix_memalign", "valloc", "__builtin_alloca", "__builtin_malloc",
                            "__builtin_free"})


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


def _host_only_lines(path: Path) -> tuple[list, list]:
    """Line numbers of ``hls-rules: host-only`` marks in a file, and its lines."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [], []
    return [i + 1 for i, ln in enumerate(lines) if HOST_ONLY_MARK.match(ln)], lines


def mark_host_only(project: Project) -> None:
    """Set ``host_only`` on the functions of HOST_ONLY_FUNCTIONS and on each
    function defined right after a ``hls-rules: host-only`` mark: between the
    mark and the definition's name only comments and the return type."""
    marks: dict = {}
    for f in project.functions():
        path = Path(f.file)
        if path not in marks:
            marks[path] = _host_only_lines(path)
        at, lines = marks[path]
        for mark in at:
            between = "\n".join(lines[mark - 1:f.line - 1])
            if 0 < f.line - mark <= 12 and not re.search(r"[;{}]", _COMMENT.sub("", between)):
                f.host_only = True
        if f.name in HOST_ONLY_FUNCTIONS:
            f.host_only = True


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------
def _pipeline_regions(project: Project):
    """(function, region roots, description, pipelined loop node or None) of every
    PIPELINE region: a pipelined loop's body and step, or a pipelined function's body."""
    for f in project.functions():
        if f.pipelined:
            yield f, [f.node.body], f"PIPELINE function {f.name} ({display(f.file)}:{f.line})", None
        for loop in f.loops.values():
            if loop.pipelined:
                node = loop.node
                roots = [node.stmt] + ([node.next] if isinstance(node, c_ast.For) else [])
                yield f, roots, f"PIPELINE loop at {display(f.file)}:{line_of(node)}", node


def _via(chain: tuple) -> str:
    return f" (via {' -> '.join(chain)})" if chain else ""


def rule_div_in_pipeline(project: Project) -> list:
    """Non-constant ``/`` and ``%`` inside PIPELINE regions."""
    out = []
    for f, roots, where, _ in _pipeline_regions(project):
        for node, g, env, chain in project.region(f, roots):
            if isinstance(node, c_ast.BinaryOp) and node.op in ("/", "%"):
                op, divisor = node.op, node.right
            elif isinstance(node, c_ast.Assignment) and node.op in ("/=", "%="):
                op, divisor = node.op, node.rvalue
            else:
                continue
            if const_value(divisor, env, g.unit) is not None or not project.in_scope(file_of(node)):
                continue
            out.append(Violation(display(file_of(node)), line_of(node), "div-in-pipeline",
                                 f"runtime '{op}' by non-constant `{expr_text(divisor)}` inside "
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
    elif isinstance(nxt, c_ast.Assignment) and isinstance(nxt.lvalue, c_ast.ID) \
            and nxt.op == "=" and isinstance(nxt.rvalue, c_ast.BinaryOp) \
            and nxt.rvalue.op in ("+", "-") and isinstance(nxt.rvalue.left, c_ast.ID) \
            and nxt.rvalue.left.name == nxt.lvalue.name:
        var = nxt.lvalue.name
        step_ok = const_value(nxt.rvalue.right, env, unit) is not None
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
    cond_text = expr_text(cond) if cond is not None else "no condition"
    return f"condition `{cond_text}` does not compare `{var}` with a constant"


def rule_loop_bound_in_pipeline(project: Project) -> list:
    """Loops with data-dependent trip counts inside PIPELINE regions."""
    out = []
    for f, roots, where, own in _pipeline_regions(project):
        for node, g, env, chain in project.region(f, roots):
            if not isinstance(node, LOOPS) or node is own or not project.in_scope(file_of(node)):
                continue
            loop = g.loops.get(id(node))
            if isinstance(node, c_ast.For):
                if loop is not None and loop.fully_unrolled:
                    continue
                why = _for_is_counted(node, env, g.unit)
                if why is None:
                    continue
            else:
                kind = "while" if isinstance(node, c_ast.While) else "do-while"
                why = f"a {kind} loop (`{expr_text(node.cond)}`) has a data-dependent trip count"
            out.append(Violation(display(file_of(node)), line_of(node), "loop-bound-in-pipeline",
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
    for n in walk(t):
        if isinstance(n, c_ast.IdentifierType) and (
                {"float", "double"} & set(n.names) or float_typedefs & set(n.names)):
            return True
    return False


def _opts_out(path: str) -> bool:
    p = Path(path)
    if p.name in FLOAT_OPT_OUT_FILES:
        return True
    try:
        return FLOAT_OPT_OUT_MARK.search(p.read_text(encoding="utf-8", errors="replace")) \
            is not None
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
        for node in walk(unit.ast):
            if file_of(node) not in scope:
                continue
            what = None
            if isinstance(node, c_ast.IdentifierType):
                hit = ({"float", "double"} & set(node.names)) or (ftd & set(node.names))
                if hit:
                    what = f"type `{' '.join(node.names)}`"
            elif isinstance(node, c_ast.Constant) and node.type in ("float", "double"):
                what = f"floating-point literal `{node.value}`"
            if what:
                out.append(Violation(display(file_of(node)), line_of(node), "float-type",
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
        for node in walk(f.node.body):
            if isinstance(node, c_ast.BinaryOp) and node.op == "*":
                a, b = node.left, node.right
            elif isinstance(node, c_ast.Assignment) and node.op == "*=":
                a, b = node.lvalue, node.rvalue
            else:
                continue
            if const_value(a, f.env, f.unit) is None and const_value(b, f.env, f.unit) is None:
                out.append(Violation(display(file_of(node)), line_of(node), "pe-multiply",
                                     f"`{expr_text(node)}` multiplies two non-constant operands "
                                     f"in the PE (function {f.name}): a data multiplier"))
    return out


def rule_host_only(project: Project) -> list:
    """Host-only functions must not be reachable from a top."""
    out = []
    for top in project.tops():
        for g in project.reachable(top):
            if g.host_only:
                out.append(Violation(display(g.file), g.line, "host-only",
                                     f"host-only function {g.name} is reachable from top "
                                     f"{top.name}"))
    return out


def rule_recursion(project: Project) -> list:
    """Calls inside a cycle of the call graph (Tarjan's strongly connected components)."""
    funcs = project.functions()
    edges = {f.key: project.callees(f) for f in funcs}
    # Tarjan's strongly connected components; tests/test_layers_imports.py has its own copy
    # (it checks the package and does not import hls/tools, which is not part of it)
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
                out.append(Violation(display(file_of(call)), line_of(call), "recursion",
                                     f"call to {g.name} in {f.name} is recursive ({cycle})"))
    return out


def rule_dynamic_memory(project: Project) -> list:
    """malloc & co. and variable-length arrays."""
    out = []
    for unit in project.units:
        for node in walk(unit.ast):
            if not project.in_scope(file_of(node)):
                continue
            if isinstance(node, c_ast.ID) and node.name in DYNAMIC_MEMORY:
                out.append(Violation(display(file_of(node)), line_of(node), "dynamic-memory",
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
                        out.append(Violation(display(file_of(decl)), line_of(decl), "dynamic-memory",
                                             f"variable-length array {decl.name}"
                                             f"[{expr_text(t.dim)}] in {f.name}"))
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
        out.append(Violation(display(file_of(node)), line_of(node), "function-pointer", msg))

    for unit in project.units:
        fn_typedefs = _function_typedefs(unit)
        for node in walk(unit.ast):
            if not project.in_scope(file_of(node)):
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
            for node in walk(f.node.body):
                if isinstance(node, c_ast.FuncCall):
                    call_names.add(id(node.name))
                    if not isinstance(node.name, c_ast.ID):
                        add(node, f"call through a pointer `{expr_text(node.name)}`")
                    elif node.name.name in f.locals or (
                            node.name.name in unit.globals
                            and node.name.name not in unit.func_names):
                        add(node, f"call through the pointer variable {node.name.name}")
                elif isinstance(node, c_ast.StructRef):
                    fields.add(id(node.field))
                elif isinstance(node, c_ast.NamedInitializer):
                    fields.update(id(n) for n in node.name)
            for node in walk(f.node.body):
                if isinstance(node, c_ast.ID) and id(node) not in call_names \
                        and id(node) not in fields and node.name in unit.func_names \
                        and node.name not in f.locals:
                    add(node, f"function {node.name} used as a value (a function pointer)")
    return out


def rule_array_partition_scope(project: Project) -> list:
    """ARRAY_PARTITION / ARRAY_RESHAPE must name an array the function can see as its own."""
    out = []

    def check(p: HlsPragma, f: Func | None, unit: Unit):
        if p.directive not in ("ARRAY_PARTITION", "ARRAY_RESHAPE"):
            return
        node = p.node
        if not project.in_scope(file_of(node)):
            return
        var = p.options.get("variable")
        where = f"function {f.name}" if f else "file scope"
        if not isinstance(var, str):
            out.append(Violation(display(file_of(node)), line_of(node), "array-partition-scope",
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
            out.append(Violation(display(file_of(node)), line_of(node), "array-partition-scope",
                                 msg))
        elif not is_array_decl(decl):
            what = "a pointer" if isinstance(decl.type, c_ast.PtrDecl) else "not an array"
            out.append(Violation(display(file_of(node)), line_of(node), "array-partition-scope",
                                 f"{p.directive} variable={var}: the {kind} {var} in {where} "
                                 f"is {what}"))

    for unit in project.units:
        for p in unit.file_pragmas:
            check(p, None, unit)
        for f in unit.funcs.values():
            for p, _ in f.pragmas:
                check(p, f, unit)
    return out


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
def check(paths: list, defines: dict | None = None, include_dirs: list | None = None) -> list:
    """Every violation in the sources named by ``paths``, sorted, one per
    (file, line, rule)."""
    project = Project(source_files(paths), include_dirs, defines)
    mark_host_only(project)
    found = [Violation(file, line, "parse", message) for file, line, message in project.errors]
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
