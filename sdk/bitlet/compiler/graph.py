"""The compiler's graph IR: plain dataclasses, no behaviour beyond bookkeeping.

Layout convention
-----------------
Every value keeps its ONNX meaning: a 4-D activation is *logically* NCHW, as
in the ONNX model and as onnxruntime returns it.  The device works in NHWC.
Instead of tracking a layout tag per value, the runtime hands the host ops
numpy *views*: a kernel layer's NHWC output is returned as
``out.transpose(0, 3, 1, 2)`` (no copy), numpy's element-wise ops keep the
memory order of their inputs, and the next kernel layer's
``ascontiguousarray(x.transpose(0, 2, 3, 1))`` is then free.  So the interior
of a network stays NHWC in memory wherever the host ops allow it, and the
conversion happens only at the graph boundaries or around host ops that
really reorder data (Reshape, Transpose, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Value:
    """A tensor flowing through the graph.

    Attributes
    ----------
    name : str
        Unique name (the ONNX value name).
    shape : tuple of int
        Concrete shape (the compiler resolves every dynamic dimension).
    dtype : str
        numpy dtype name, e.g. ``"float32"`` or ``"int64"``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass
class Node:
    """One operation.

    Attributes
    ----------
    name : str
        Node name (ONNX node name, or a generated one when the model has none).
    op : str
        ONNX op type (``"Conv"``, ``"Add"``, ...).
    inputs, outputs : list of str
        Value names; ``""`` marks an omitted optional input.
    attrs : dict
        Attributes as plain Python values (bytes decoded to str).
    """

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """A topologically sorted graph with concrete shapes.

    Attributes
    ----------
    nodes : list of Node
        In execution order.
    inputs, outputs : list of Value
        Graph inputs (not constants) and outputs.
    values : dict
        ``name -> Value`` for every non-constant value.
    constants : dict
        ``name -> numpy array`` for initializers and folded values.
    name : str
        Model name, for messages.
    """

    nodes: list[Node]
    inputs: list[Value]
    outputs: list[Value]
    values: dict[str, Value]
    constants: dict[str, np.ndarray]
    name: str = "model"

    def producers(self) -> dict[str, Node]:
        """Map each value name to the node producing it."""
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        """Map each value name to the nodes reading it (graph outputs not included)."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def output_names(self) -> set[str]:
        return {v.name for v in self.outputs}

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def const(self, name: str) -> np.ndarray | None:
        """The constant array named ``name``, or None when it is not constant/absent."""
        return self.constants.get(name) if name else None

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.constants:
            return tuple(self.constants[name].shape)
        return self.values[name].shape

    def prune_unused(self) -> None:
        """Drop nodes whose outputs nobody reads, and constants nobody uses."""
        needed = self.output_names()
        kept: list[Node] = []
        for node in reversed(self.nodes):
            if any(out in needed for out in node.outputs):
                kept.append(node)
                needed.update(i for i in node.inputs if i)
        self.nodes = kept[::-1]
        self.constants = {k: v for k, v in self.constants.items() if k in needed}
        self.values = {k: v for k, v in self.values.items() if k in needed}

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts
