"""Graph rewrites: canonical kernel ops, BatchNormalization/bias folding, fusion.

After :func:`optimize` the graph holds three kernel op types (everything else
is a host op of :mod:`bitlet.program.hostops`):

``BitletConv``
    inputs ``[x (N, C, H, W), w (M, C/group, KH, KW), b (M,)]``; attributes
    ``strides`` (2), ``pads`` (4: top, left, bottom, right), ``dilations``
    (2), ``group``, ``relu`` (bool).
``BitletDense``
    inputs ``[x (..., K), w (M, K), b (M,)]``: ``y = x @ w.T + b``; ``relu``.
``BitletMatMul``
    inputs ``[a (..., N, K), b (..., K, M)]``, both computed at run time
    (attention): ``y = a @ b``; ``relu``.

Rewrites, in order: Identity/Dropout removal; Conv/Gemm/MatMul
canonicalisation (Gemm's ``alpha`` and ``transB`` go into ``w``, ``beta*C``
into ``b``, ``transA`` becomes a host Transpose before the kernel layer); folding of a per-channel constant ``Add``/``Sub`` and of
``BatchNormalization`` into the preceding kernel layer; ConvTranspose
lowering; fusion of ``Relu`` and ``Clip(0, x)`` into the preceding kernel
layer (the kernel applies ReLU; ``Clip(0, 6)`` becomes kernel ReLU followed by
a host ``Min(y, 6)``, as the kernel has no upper clamp).

ConvTranspose runs on the kernel.  With ``kernel == stride``, no padding and
dilation 1 (the U-Net/DB-head upsampler of PP-OCR) it is a 1x1 ``BitletConv``
producing ``M*s*s`` channels followed by a host ``DepthToSpace`` (CRD) pixel
shuffle: the same products, no wasted MACs.  Otherwise the host zero-stuffs
the input (op ``BitletZeroStuff``: insert ``s-1`` zeros between pixels, pad or
crop the borders) and the kernel runs a stride-1 convolution with the flipped
kernel.  Both are exact Bitlet convolutions: the inserted zeros are real +0
activations (NUMERICS.md s.6).
"""
from __future__ import annotations

import numpy as np

from bitlet.compiler.frontend import conv_transpose_geometry
from bitlet.compiler.graph import Graph, Node, Value
from bitlet.program.hostops import pool_geometry
from bitlet.errors import CompileError

KERNEL_TYPES = ("BitletConv", "BitletDense", "BitletMatMul")


def optimize(graph: Graph) -> Graph:
    """Apply every rewrite of this module in place; returns ``graph``."""
    remove_identities(graph)
    canonicalize(graph)
    while fold_channel_affine(graph):
        pass
    lower_conv_transpose(graph)
    fuse_activations(graph)
    graph.prune_unused()
    return graph


# ---------------------------------------------------------------- helpers
def _new_const(graph: Graph, hint: str, value: np.ndarray) -> str:
    name = hint
    while name in graph.constants or name in graph.values:
        name += "_"
    graph.constants[name] = value
    return name


def _rename_uses(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if i == old else i for i in node.inputs]


def _sole_consumer(graph: Graph, value: str) -> Node | None:
    """The node reading ``value`` when it is the only reader and ``value`` is no graph output."""
    users = graph.consumers().get(value, [])
    if len(users) != 1 or value in graph.output_names():
        return None
    return users[0]


def _bypass(graph: Graph, node: Node, replacement: str) -> None:
    """Remove ``node`` (one output) whose work its producer now does.

    The producer's output takes the removed node's output name, so every IR
    value keeps the meaning of the ONNX value of the same name (what
    :func:`bitlet.compare` checks layer by layer).  ``replacement`` must be
    read by ``node`` only (or ``node`` is an Identity).
    """
    out = node.outputs[0]
    graph.nodes.remove(node)
    producer = graph.producers()[replacement]
    producer.outputs = [out if o == replacement else o for o in producer.outputs]
    old = graph.values.pop(replacement)
    graph.values[out] = Value(out, old.shape, old.dtype)


# ---------------------------------------------------------------- passes
def remove_identities(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op in ("Identity", "Dropout") and node.inputs[0] in graph.values:
            if len(node.outputs) > 1 and node.outputs[1]:
                continue  # Dropout's mask is read: keep the host op
            if node.inputs[0] in graph.producers() and _sole_consumer(graph, node.inputs[0]) is node:
                _bypass(graph, node, node.inputs[0])  # else: a (cheap) host Identity


def canonicalize(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op == "Conv":
            _canonical_conv(graph, node)
        elif node.op == "Gemm":
            _canonical_gemm(graph, node)
        elif node.op == "MatMul":
            _canonical_matmul(graph, node)


def _conv_bias(graph: Graph, node: Node, channels: int) -> np.ndarray:
    bias = graph.const(node.inputs[2]) if len(node.inputs) > 2 else None
    return np.zeros(channels, np.float32) if bias is None else bias.astype(np.float32)


def _canonical_conv(graph: Graph, node: Node) -> None:
    w = graph.constants[node.inputs[1]].astype(np.float32)
    x_shape = graph.shape(node.inputs[0])
    attrs = dict(node.attrs, kernel_shape=list(w.shape[2:]))
    _, begin, end = pool_geometry(x_shape[2:], attrs)
    bias = _new_const(graph, node.name + ".bias", _conv_bias(graph, node, w.shape[0]))
    node.op = "BitletConv"
    node.inputs = [node.inputs[0], node.inputs[1], bias]
    node.attrs = {
        "strides": list(attrs.get("strides") or [1, 1]),
        "pads": [begin[0], begin[1], end[0], end[1]],
        "dilations": list(attrs.get("dilations") or [1, 1]),
        "group": int(attrs.get("group", 1)),
        "relu": False,
    }


def _canonical_gemm(graph: Graph, node: Node) -> None:
    a = node.attrs
    w = graph.const(node.inputs[1])
    if w is None or node.inputs[0] in graph.constants:
        return  # dynamic B (or constant A): stays a host Gemm
    w = w.astype(np.float32)
    w = w if a.get("transB", 0) else w.T  # -> (M, K)
    alpha = float(a.get("alpha", 1.0))
    if alpha != 1.0:
        w = (w.astype(np.float64) * alpha).astype(np.float32)
    m = w.shape[0]
    bias = np.zeros(m, np.float32)
    c = graph.const(node.inputs[2]) if len(node.inputs) > 2 else None
    if len(node.inputs) > 2 and node.inputs[2] and c is None:
        return  # dynamic C: keep the host op
    if c is not None:
        if c.size not in (1, m) or (c.ndim == 2 and c.shape[0] != 1):
            return  # a full (N, M) C: keep the host op
        bias = (np.broadcast_to(c.reshape(-1), (m,)) * np.float32(a.get("beta", 1.0))).astype(np.float32)
    if a.get("transA", 0):
        _transpose_input(graph, node)
    _make_dense(graph, node, w, bias)


def _transpose_input(graph: Graph, node: Node) -> None:
    """Feed ``node`` the transpose of its 2-D first input (a host Transpose before it)."""
    x = node.inputs[0]
    k, n = graph.shape(x)
    t = x + ".T"
    while t in graph.values or t in graph.constants:
        t += "_"
    graph.values[t] = Value(t, (n, k), graph.values[x].dtype)
    i = graph.nodes.index(node)
    graph.nodes.insert(i, Node(node.name + ".transA", "Transpose", [x], [t], {"perm": [1, 0]}))
    node.inputs = [t] + node.inputs[1:]


def _canonical_matmul(graph: Graph, node: Node) -> None:
    b = graph.const(node.inputs[1])
    if node.inputs[0] in graph.constants:
        return  # constant A, dynamic B: rare; a host MatMul
    if b is None:
        if len(graph.shape(node.inputs[0])) >= 2 and len(graph.shape(node.inputs[1])) >= 2:
            node.op, node.attrs = "BitletMatMul", {"relu": False}  # else: a host MatMul
    elif b.ndim == 2:
        _make_dense(graph, node, b.astype(np.float32).T.copy(), np.zeros(b.shape[1], np.float32))


def _make_dense(graph: Graph, node: Node, w: np.ndarray, bias: np.ndarray) -> None:
    wname = _new_const(graph, node.name + ".weight", np.ascontiguousarray(w))
    bname = _new_const(graph, node.name + ".bias", bias)
    node.op = "BitletDense"
    node.inputs = [node.inputs[0], wname, bname]
    node.attrs = {"relu": False}


def _channel_vector(c: np.ndarray, channels: int, out_rank: int, axis: int) -> np.ndarray | None:
    """A constant that broadcasts along one channel axis only, as a (channels,) vector."""
    if c.ndim > out_rank:
        return None
    full = [1] * (out_rank - c.ndim) + list(c.shape)
    if any(d != 1 for i, d in enumerate(full) if i != axis) or full[axis] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float32)


def _channel_axis(graph: Graph, node: Node) -> tuple[int, int] | None:
    """(output channel axis, channels) of a foldable producer, or None."""
    shape = graph.values[node.outputs[0]].shape
    if node.op in ("BitletConv", "ConvTranspose"):
        return 1, shape[1]
    if node.op == "BitletDense":
        return len(shape) - 1, shape[-1]
    return None


def fold_channel_affine(graph: Graph) -> bool:
    """Fold one per-channel Add/Sub/BatchNormalization into its producer; True if one was."""
    producers = graph.producers()
    for node in graph.nodes:
        if node.op not in ("Add", "Sub", "BatchNormalization") or node.inputs[0] not in producers:
            continue
        src = producers[node.inputs[0]]
        where = _channel_axis(graph, src)
        if where is None or _sole_consumer(graph, node.inputs[0]) is not node:
            continue
        if _fold_into(graph, src, node, *where):
            _bypass(graph, node, src.outputs[0])
            return True
    return False


def _fold_into(graph: Graph, src: Node, node: Node, axis: int, channels: int) -> bool:
    rank = len(graph.values[src.outputs[0]].shape)
    if node.op in ("Add", "Sub"):
        c = graph.const(node.inputs[1])
        vec = None if c is None else _channel_vector(c, channels, rank, axis)
        if vec is None or np.broadcast_shapes(c.shape, graph.values[src.outputs[0]].shape) != \
                graph.values[src.outputs[0]].shape:
            return False
        _set_affine(graph, src, np.ones(channels), vec if node.op == "Add" else -vec)
        return True
    if axis != 1 or any(graph.const(i) is None for i in node.inputs[1:5]):
        return False
    gamma, beta, mean, var = (graph.const(i).astype(np.float64) for i in node.inputs[1:5])
    scale = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    _set_affine(graph, src, scale, beta - mean * scale)
    return True


def _set_affine(graph: Graph, src: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """Make ``src`` compute ``scale * y + shift`` per output channel."""
    w = graph.constants[src.inputs[1]].astype(np.float64)
    if src.op == "ConvTranspose":
        g = int(src.attrs.get("group", 1))
        cin, cout_g = w.shape[:2]
        w = (w.reshape(g, cin // g, cout_g, -1) * scale.reshape(g, 1, cout_g, 1)).reshape(w.shape)
        bias = _conv_bias(graph, src, cout_g * g).astype(np.float64)
    else:
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        bias = graph.constants[src.inputs[2]].astype(np.float64)
    new_w = _new_const(graph, src.inputs[1] + ".folded", w.astype(np.float32))
    new_b = _new_const(graph, src.name + ".bias.folded", (bias * scale + shift).astype(np.float32))
    src.inputs = [src.inputs[0], new_w, new_b]


def lower_conv_transpose(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op == "ConvTranspose":
            _lower_conv_transpose(graph, node)


def _lower_conv_transpose(graph: Graph, node: Node) -> None:
    w = graph.constants[node.inputs[1]].astype(np.float32)  # (Cin, Cout/g, KH, KW)
    x_shape = graph.shape(node.inputs[0])
    attrs = dict(node.attrs, kernel_shape=list(w.shape[2:]))
    out, begin, end = conv_transpose_geometry(x_shape[2:], attrs)
    g = int(attrs.get("group", 1))
    s = list(attrs.get("strides") or [1, 1])
    d = list(attrs.get("dilations") or [1, 1])
    k = list(w.shape[2:])
    bias = _conv_bias(graph, node, w.shape[1] * g)
    if g == 1 and k == s and s[0] == s[1] and d == [1, 1] and begin == [0, 0] and end == [0, 0]:
        _conv_transpose_as_shuffle(graph, node, w, bias, s[0])
    else:
        _conv_transpose_as_stuffed_conv(graph, node, w, bias, out, begin, s, d, g, x_shape)


def _conv_transpose_as_shuffle(graph, node, w, bias, s) -> None:
    cin, cout = w.shape[:2]
    w1 = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(cout * s * s, cin, 1, 1))
    x = node.inputs[0]
    n, _, h, wd = graph.shape(x)
    mid = node.outputs[0] + ".phases"
    graph.values[mid] = Value(mid, (n, cout * s * s, h, wd), "float32")
    conv = Node(node.name, "BitletConv",
                [x, _new_const(graph, node.name + ".weight", w1),
                 _new_const(graph, node.name + ".bias", np.repeat(bias, s * s))],
                [mid], {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                        "group": 1, "relu": False})
    shuffle = Node(node.name + ".shuffle", "DepthToSpace", [mid], list(node.outputs),
                   {"blocksize": s, "mode": "CRD"})
    i = graph.nodes.index(node)
    graph.nodes[i:i + 1] = [conv, shuffle]


def _conv_transpose_as_stuffed_conv(graph, node, w, bias, out, begin, s, d, g, x_shape) -> None:
    cin, cout_g, kh, kw = w.shape
    flipped = w[:, :, ::-1, ::-1].reshape(g, cin // g, cout_g, kh, kw)
    wc = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4).reshape(g * cout_g, cin // g, kh, kw))
    pads = []
    for i, (kk, size) in enumerate(zip((kh, kw), x_shape[2:])):
        before = (kk - 1) * d[i] - begin[i]
        after = out[i] + (kk - 1) * d[i] - before - ((size - 1) * s[i] + 1)
        pads.append((before, after))
    x = node.inputs[0]
    stuffed = node.outputs[0] + ".stuffed"
    shape = (x_shape[0], x_shape[1],
             *[(size - 1) * s[i] + 1 + sum(pads[i]) for i, size in enumerate(x_shape[2:])])
    if min(shape) <= 0:
        raise CompileError(f"node {node.name!r} (ConvTranspose): padding leaves an empty input")
    graph.values[stuffed] = Value(stuffed, shape, "float32")
    stuff = Node(node.name + ".stuff", "BitletZeroStuff", [x], [stuffed],
                 {"strides": s, "pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]})
    conv = Node(node.name, "BitletConv",
                [stuffed, _new_const(graph, node.name + ".weight", wc),
                 _new_const(graph, node.name + ".bias", bias)],
                list(node.outputs), {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": d,
                                     "group": g, "relu": False})
    i = graph.nodes.index(node)
    graph.nodes[i:i + 1] = [stuff, conv]


def _rename_output(graph: Graph, old: str, new: str) -> None:
    producer = graph.producers()[old]
    producer.outputs = [new if o == old else o for o in producer.outputs]
    value = graph.values.pop(old)
    graph.values[new] = Value(new, value.shape, value.dtype)
    _rename_uses(graph, old, new)


def fuse_activations(graph: Graph) -> None:
    producers = graph.producers()
    for node in list(graph.nodes):
        if node.op not in ("Relu", "Clip") or node.inputs[0] not in producers:
            continue
        src = producers[node.inputs[0]]
        if _sole_consumer(graph, node.inputs[0]) is not node:
            continue
        if src.op == "DepthToSpace" and src.inputs[0] in producers:
            # ReLU commutes with the pixel shuffle of a lowered ConvTranspose
            if _sole_consumer(graph, src.inputs[0]) is not src:
                continue
            src = producers[src.inputs[0]]
        if src.op not in KERNEL_TYPES or src.attrs["relu"]:
            continue
        if node.op == "Relu":
            src.attrs["relu"] = True
            _bypass(graph, node, node.inputs[0])
        else:
            _fuse_clip(graph, src, node)


def _fuse_clip(graph: Graph, src: Node, node: Node) -> None:
    lo, hi = _clip_bounds(graph, node)
    if lo is None or float(lo) != 0.0:
        return
    src.attrs["relu"] = True
    if hi is None or np.isposinf(hi):
        _bypass(graph, node, node.inputs[0])
        return
    _rename_output(graph, node.inputs[0], node.inputs[0] + ".relu")  # no longer the ONNX value
    node.op = "Min"
    node.inputs = [node.inputs[0], _new_const(graph, node.name + ".max", np.asarray(hi, np.float32))]
    node.attrs = {}


def _clip_bounds(graph: Graph, node: Node):
    a = node.attrs
    if "min" in a or "max" in a or len(node.inputs) == 1:
        return a.get("min", -np.inf), a.get("max")
    lo = graph.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else np.float32(-np.inf)
    hi = graph.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if len(node.inputs) > 2 and node.inputs[2] and hi is None:
        return None, None  # dynamic max
    return lo, hi
