"""Column strips for convolutions wider than the kernel's line or output-row buffer.

The kernel buffers ``(KH-1)*dil_h + 1`` input rows of ``IW * CIN`` words and
one output row of ``OW * N_PE`` values (two words each in fixed mode); an
instruction has no row-pitch field, so a too-wide layer cannot be cut into
column tiles on the device.  (YOLOv8's DFL head, for example, is a 1x1
convolution over a 4 x 2100 "image" at 320 x 320: its 2100-pixel output row
does not fit the default 8192-word output buffer with 4 PEs.)  The host
does it instead: the input is sliced
into overlapping column strips (each with the halo its output columns
need), each strip is convolved by its own ``BitletConv`` (left padding only
on the first strip, right padding only on the last), and the strips'
outputs are concatenated along W.  Every output pixel sees exactly the taps
(and padding zeros) it sees in the whole layer, in the same K order, so the
result is bit-identical; the cost is a round trip through the host.
"""
from __future__ import annotations

import copy

import numpy as np

from bitlet.compiler.graph import Graph, Node, Value
from bitlet.program.schedule import KernelConfig


def split_wide_convs(graph: Graph, cfg: KernelConfig, fixed: bool = False) -> Graph:
    """A copy of ``graph`` where every too-wide ``BitletConv`` runs as column strips.

    ``fixed``: the layers run in fixed mode (two output-buffer words per value).
    """
    out = copy.copy(graph)
    out.constants = dict(graph.constants)
    out.values = dict(graph.values)
    out.nodes = []
    for node in graph.nodes:
        if node.op == "BitletConv" and _too_wide(graph, node, cfg, fixed):
            out.nodes += _strips(out, node, cfg, fixed)
        else:
            out.nodes.append(node)
    return out


def _line_words(graph: Graph, node: Node, width: int) -> int:
    """Words of the kernel's activation line buffer for an input ``width`` pixels wide."""
    kh = int(graph.constants[node.inputs[1]].shape[2])
    cin = graph.shape(node.inputs[0])[1]
    rows = (kh - 1) * node.attrs["dilations"][0] + 1
    return rows * width * (cin // node.attrs["group"])


def _max_out_columns(cfg: KernelConfig, fixed: bool) -> int:
    """Output pixels of one row that fit the kernel's output buffer."""
    return cfg.out_buf_words // (cfg.n_pe * (2 if fixed else 1))


def _too_wide(graph: Graph, node: Node, cfg: KernelConfig, fixed: bool) -> bool:
    out_w = graph.values[node.outputs[0]].shape[3]
    return (_line_words(graph, node, graph.shape(node.inputs[0])[3]) > cfg.act_buf_words
            or out_w > _max_out_columns(cfg, fixed))


def _strips(graph: Graph, node: Node, cfg: KernelConfig, fixed: bool) -> list[Node]:
    n, cin, h, width = graph.shape(node.inputs[0])
    kw = int(graph.constants[node.inputs[1]].shape[3])
    top, left, bottom, _ = node.attrs["pads"]  # the right pad is implied by `end - hi`
    s, d = node.attrs["strides"][1], node.attrs["dilations"][1]
    eff = (kw - 1) * d + 1
    out_shape = graph.values[node.outputs[0]].shape
    max_in = cfg.act_buf_words // _line_words(graph, node, 1)
    per_strip = max(1, min((max_in - eff) // s + 1, _max_out_columns(cfg, fixed)))
    nodes, parts = [], []
    for i, o0 in enumerate(range(0, out_shape[3], per_strip)):
        o1 = min(o0 + per_strip, out_shape[3])
        start, end = o0 * s - left, (o1 - 1) * s - left + eff
        lo, hi = max(start, 0), min(end, width)
        name = f"{node.name}.strip{i}"
        cut, part = name + ".in", name + ".out"
        graph.values[cut] = Value(cut, (n, cin, h, hi - lo))
        graph.values[part] = Value(part, out_shape[:3] + (o1 - o0,))
        consts = [_const(graph, f"{name}.{k}", np.array(v, np.int64))
                  for k, v in (("starts", [lo]), ("ends", [hi]), ("axes", [3]))]
        nodes.append(Node(name + ".slice", "Slice", [node.inputs[0], *consts], [cut], {}))
        attrs = dict(node.attrs, pads=[top, lo - start, bottom, end - hi], origin=node.name)
        nodes.append(Node(name, "BitletConv", [cut, *node.inputs[1:]], [part], attrs))
        parts.append(part)
    nodes.append(Node(node.name + ".concat", "Concat", parts, list(node.outputs), {"axis": 3}))
    return nodes


def _const(graph: Graph, name: str, value: np.ndarray) -> str:
    graph.constants[name] = value
    return name
