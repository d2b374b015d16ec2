"""Checks of an ONNX model's structure before the frontend walks it.

* **Versions.**  The frontend implements the default-domain ops as defined up
  to :data:`MAX_OPSET`.  A model whose opset resolves an op to a newer
  version of it is refused node by node (the op's semantics may have
  changed); an opset or IR version newer than the installed ``onnx`` package
  knows is refused for the whole model.
* **Order.**  ONNX requires the nodes in topological order, but onnxruntime
  sorts them itself, so the frontend does too (stable: a sorted model keeps
  its order).  A cycle, a node reading its own output, a value defined twice
  and an input that nothing defines are :class:`bitlet.CompileError` naming
  the nodes, as onnxruntime refuses them.
"""
from __future__ import annotations

import heapq

from bitlet.errors import CompileError

#: newest default-domain opset whose op versions the frontend implements (ONNX 1.17,
#: IR version 10): from opset 13 on, the later versions of the supported ops up to 22
#: add data types (bfloat16, 4- and 8-bit types), inputs and attributes the host ops
#: implement (Split num_outputs, Pad and Reduce* axes inputs, AveragePool dilations)
#: or ones the frontend refuses (Resize antialias, half_pixel_symmetric, ...)
MAX_OPSET = 22


def check_versions(proto, opset: int) -> None:
    """Refuse a model whose IR version or default-domain opset the onnx package does not know."""
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read

    known_opset, known_ir = onnx.defs.onnx_opset_version(), onnx.IR_VERSION
    if proto.ir_version > known_ir or opset > known_opset:
        raise CompileError(
            f"the model has IR version {proto.ir_version} and opset {opset}, newer than this "
            f"frontend knows: IR versions up to {known_ir} (onnx {onnx.__version__}) and opsets up "
            f"to {known_opset}, of which the ops' versions up to opset {MAX_OPSET} are implemented")


def newer_op_version(op: str, opset: int) -> str:
    """Why opset ``opset``'s version of ``op`` is not implemented, or ``""``."""
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read

    try:
        theirs = onnx.defs.get_schema(op, opset).since_version
        mine = onnx.defs.get_schema(op, MAX_OPSET).since_version
    except onnx.defs.SchemaError:
        return ""  # not an ONNX op (or too old to have a schema): the op check reports it
    if theirs <= mine:
        return ""
    return (f"opset {opset} selects {op} version {theirs}; the frontend implements {op} as of "
            f"opset {MAX_OPSET} (version {mine}): export the model with opset <= {MAX_OPSET}")


def _label(index: int, node) -> str:
    return f"{node.name or f'{node.op_type}_{index}'!r} ({node.op_type})"


def topological_order(nodes, defined: set[str]) -> list[int]:
    """Indices of ``nodes`` (ONNX NodeProtos) in an order where each input is defined first.

    Parameters
    ----------
    nodes : sequence of onnx.NodeProto
    defined : set of str
        Names defined before any node runs (graph inputs and initializers).

    Returns
    -------
    list of int
        A topological order; among the nodes ready at each step the one that
        comes first in ``nodes`` (a sorted model keeps its order).
    """
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            if not name:
                continue
            if name in defined:
                raise CompileError(f"node {_label(i, node)} writes {name!r}, which is already a "
                                   "graph input or initializer")
            if name in producer:
                j = producer[name]
                raise CompileError(f"value {name!r} is written by two nodes, {_label(j, nodes[j])} "
                                   f"and {_label(i, node)}")
            producer[name] = i
    waiting_for: list[set[int]] = []
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        deps = set()
        for name in node.input:
            if not name or name in defined:
                continue
            if name not in producer:
                raise CompileError(f"node {_label(i, node)} reads {name!r}, which is no graph input, "
                                   "initializer or node output")
            deps.add(producer[name])
        waiting_for.append(deps)
        for d in deps:
            readers.setdefault(d, []).append(i)
    ready = [i for i, deps in enumerate(waiting_for) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers.get(i, []):
            waiting_for[r].discard(i)
            if not waiting_for[r]:
                heapq.heappush(ready, r)
    if len(order) < len(nodes):
        stuck = [_label(i, nodes[i]) for i, deps in enumerate(waiting_for) if deps]
        raise CompileError(f"the graph has a cycle (or a node reading its own output): node(s) "
                           f"{', '.join(stuck[:8])}{' ...' if len(stuck) > 8 else ''} never get "
                           "all their inputs")
    return order
