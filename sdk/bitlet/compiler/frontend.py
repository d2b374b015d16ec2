"""ONNX -> graph IR: concrete shapes, constant folding, support check.

:func:`import_onnx` checks the model's versions and structure
(:mod:`bitlet.compiler.validate`: cycles, undefined inputs; unsorted nodes are
sorted, as onnxruntime does) and walks it once in topological order.  For
every node it either folds it (all inputs constant, or a ``Shape`` of a value
whose shape is known) with the very numpy functions the runtime uses
(:mod:`bitlet.program.hostops`), or records the shapes and dtypes of its
outputs without building tensors of their size: by formula for the kernel ops
(:mod:`bitlet.compiler.shapes`, operands checked against ONNX's rules), by
broadcasting for element-wise host ops, by running other host ops on
stride-0 zeros, or, when those are large, from onnx's symbolic shape
inference.  onnx's inference also cross-checks every shape.  A value larger
than any device can address is refused with its size.  Every unsupported node
is collected and reported in one :class:`bitlet.CompileError` before anything
runs.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from bitlet.compiler import shapes, validate
from bitlet.compiler.graph import Graph, Node, Value
from bitlet.errors import CompileError
from bitlet.program.hostops import HOST_OPS, run_host_op

#: ops lowered to the Bitlet kernel (when their weights are constant)
KERNEL_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: host ops whose every output has the broadcast shape of all their inputs
ELEMENTWISE_OPS = frozenset((
    "Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Sum", "Equal", "Less", "Greater", "Not",
    "Where", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Identity", "Cast",
    "Softmax", "LogSoftmax", "Dropout"))
#: the largest value (bytes) of any device: its memory window is set by one 32-bit
#: register (hls/bitlet_hw.h, REG_MEM_SIZE), so no tensor beyond 4 GiB can be on it
MAX_VALUE_BYTES = (1 << 32) - 1
#: host ops whose inputs and outputs together are larger than this get their output
#: shapes from onnx's shape inference instead of a probe run (which builds the outputs)
SHAPE_PROBE_BYTES = 64 << 20
_RESIZE_MODES = ("nearest", "linear")
#: Resize coordinate modes checked against onnxruntime (it refuses tf_half_pixel_for_nearest,
#: and so does onnx's reference evaluator: nothing to check that one against)
_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def supported_ops() -> list[str]:
    """Every ONNX op type the compiler accepts (kernel and host)."""
    return sorted(set(HOST_OPS) | set(KERNEL_OPS) | {"Constant"})


def check_op_types(model: Any) -> None:
    """Refuse a model with op types the compiler has no rule for, listing every
    such node (before its shapes are known; :func:`import_onnx` checks the
    rest, attribute by attribute, once they are)."""
    proto = load_model(model)
    known = set(supported_ops())
    bad = [(n.name or f"#{i}", n.op_type) for i, n in enumerate(proto.graph.node)
           if n.domain in ("", "ai.onnx") and n.op_type not in known]
    if bad:
        lines = [f"  - {name} ({op}): no rule for this op" for name, op in bad]
        raise CompileError(f"{len(bad)} unsupported node(s):\n" + "\n".join(lines)
                           + f"\nsupported ops: {', '.join(supported_ops())}")


def load_model(model: Any):
    """Return an ``onnx.ModelProto`` from a path, a ModelProto or the model's
    serialised bytes (as onnxruntime's InferenceSession takes them)."""
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as exc:  # noqa: BLE001 - protobuf's decode errors vary by version
            raise CompileError(f"model: the bytes are not a serialised ONNX model ({exc})") from None
    if isinstance(model, (str, os.PathLike)):
        return _read_model_file(os.fspath(model))
    raise CompileError(f"model: expected a path, an onnx.ModelProto or its bytes, got "
                       f"{type(model).__name__}")


def _read_model_file(path: str):
    """Parse an ONNX file; anything that is not one is a one-line CompileError naming it."""
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read

    if not os.path.exists(path):
        raise CompileError(f"model: no such file {path!r}")
    if os.path.isdir(path):
        raise CompileError(f"model {path!r} is a directory, not an ONNX model file")
    if os.path.getsize(path) == 0:
        raise CompileError(f"model {path!r} is an empty file, not an ONNX model")
    try:
        proto = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, onnx's and OS errors vary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompileError(f"model {path!r} is not an ONNX model (cannot parse it: {first})") from None
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise CompileError(f"model {path!r} is not an ONNX model (no IR version or no graph)")
    return proto


def import_onnx(model: Any, input_shapes: Mapping[str, tuple] | None = None) -> Graph:
    """Convert an ONNX model into a :class:`Graph` with concrete shapes.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        The model.
    input_shapes : dict, optional
        ``{input name: shape}`` for inputs with dynamic dimensions (every
        dynamic dimension, the batch too, must be given: ``bitlet.compile``
        without them compiles each shape the model is called with).

    Returns
    -------
    Graph
        Topologically ordered, constants folded, shapes concrete.

    Raises
    ------
    bitlet.CompileError
        Unsupported ops (all listed at once), unresolved dynamic dimensions,
        unknown input names, inconsistent shapes.
    """
    proto = load_model(model)
    if not proto.graph.output:
        raise CompileError(f"model {proto.graph.name or 'model'!r} has no graph outputs: nothing "
                           "to compute")
    opset = _default_opset(proto)
    validate.check_versions(proto, opset)
    constants = _initializers(proto)
    inputs = _graph_inputs(proto, constants, dict(input_shapes or {}))
    for value in inputs:
        _check_size(value.name, value.shape, value.dtype, "graph input")
    order = validate.topological_order(
        proto.graph.node, {i.name for i in proto.graph.input} | set(constants))
    inferred = _onnx_shapes(proto, inputs)
    importer = _Importer(constants, {v.name: v for v in inputs}, opset, inferred)
    importer.walk([(i, proto.graph.node[i]) for i in order])
    importer.raise_unsupported()
    outputs = [importer.output_value(o.name) for o in proto.graph.output]
    graph = Graph(importer.nodes, inputs, outputs, importer.values, importer.constants,
                  name=proto.graph.name or "model")
    graph.prune_unused()
    _cross_check(inferred, graph)
    return graph


def _default_opset(proto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _initializers(proto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper  # onnx: heavy import (~1 s), loaded only when a model is read

    return {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}


def declared_inputs(model: Any) -> list[dict[str, Any]]:
    """The model's real inputs (initializers excluded) as it declares them.

    Returns
    -------
    list of dict
        ``{"name": str, "shape": [int | str, ...], "dtype": str}`` per input; a
        dynamic dimension is the model's own name for it (``"H"``), or ``"?"``
        when it has none.
    """
    from onnx import helper  # onnx: heavy import (~1 s), loaded only when a model is read

    proto = load_model(model)
    constants = {init.name for init in proto.graph.initializer}
    specs = []
    for inp in proto.graph.input:
        if inp.name in constants:
            continue
        ttype = inp.type.tensor_type
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
        except (KeyError, TypeError, ValueError):
            raise CompileError(f"input {inp.name!r} has ONNX element type {ttype.elem_type}, "
                               "which has no numpy equivalent") from None
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                for d in ttype.shape.dim]
        specs.append({"name": inp.name, "shape": dims, "dtype": dtype})
    return specs


def dynamic_inputs(model: Any, input_shapes: Mapping[str, tuple] | None = None) -> dict[str, list]:
    """``{input name: declared shape}`` of the inputs that still have a dynamic
    dimension once ``input_shapes`` are applied (empty: the shapes are static)."""
    given = dict(input_shapes or {})
    return {s["name"]: s["shape"] for s in declared_inputs(model)
            if s["name"] not in given and any(not isinstance(d, int) for d in s["shape"])}


def _dims_text(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _graph_inputs(proto, constants, given: dict) -> list[Value]:
    specs = declared_inputs(proto)
    names = [s["name"] for s in specs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise CompileError(f"input_shapes: unknown input(s) {unknown}; the model's inputs are {names}")
    return [Value(s["name"], _resolve_dims(s["name"], s["shape"], given.get(s["name"])), s["dtype"])
            for s in specs]


def _resolve_dims(name: str, dims: list, given) -> tuple[int, ...]:
    if given is not None:
        given = tuple(int(d) for d in given)
        bad = [i for i, (d, g) in enumerate(zip(dims, given)) if isinstance(d, int) and d != g]
        if len(given) != len(dims) or bad or any(g <= 0 for g in given):
            raise CompileError(f"input_shapes[{name!r}] = {given} does not match the model's "
                               f"shape {_dims_text(dims)}")
        return given
    if any(not isinstance(d, int) for d in dims):
        dynamic = [str(d) for d in dims if not isinstance(d, int)]
        raise CompileError(
            f"input {name!r} has dynamic dimensions {', '.join(dynamic)} (shape {_dims_text(dims)}): "
            f"pass input_shapes={{{name!r}: (...)}} to compile them ahead of time")
    return tuple(dims)


def _attrs(node, opset: int) -> dict[str, Any]:
    from onnx import helper, numpy_helper  # onnx: heavy import (~1 s), loaded only when a model is read

    attrs: dict[str, Any] = {"_opset": opset, "_n_outputs": len(node.output)}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif hasattr(value, "dims") and hasattr(value, "data_type"):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list):
            value = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
        attrs[attr.name] = value
    if node.op_type == "Cast":
        attrs["to"] = np.dtype(helper.tensor_dtype_to_np_dtype(attrs["to"])).name
    return attrs


def _constant_value(attrs: dict) -> np.ndarray:
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise CompileError(f"Constant node with attributes {sorted(attrs)}: only tensor/float/int values")


def _check_size(name: str, shape: tuple[int, ...], dtype: str, what: str) -> None:
    """Refuse a value larger than any device's memory window (before anything builds it)."""
    nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    if nbytes > MAX_VALUE_BYTES:
        raise CompileError(f"{what} {name!r} of shape {tuple(shape)} {dtype} takes {nbytes} bytes, "
                           f"more than a Bitlet device can address ({MAX_VALUE_BYTES} bytes)")


def _zeros(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A read-only all-zero array of ``shape`` that takes no memory (stride 0)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


class _Importer:
    """One topological walk over the ONNX nodes."""

    def __init__(self, constants, values, opset, inferred):
        self.constants: dict[str, np.ndarray] = constants
        self.values: dict[str, Value] = values
        self.opset = opset
        self.inferred: dict[str, tuple[tuple[int, ...], str]] = inferred
        self.nodes: list[Node] = []
        self.unsupported: list[tuple[str, str, str]] = []
        self.unknown: set[str] = set()

    def walk(self, onnx_nodes) -> None:
        """Visit ``[(index in the model, NodeProto)]`` (in topological order)."""
        for index, proto in onnx_nodes:
            node = Node(proto.name or f"{proto.op_type}_{index}", proto.op_type,
                        list(proto.input), list(proto.output), _attrs(proto, self.opset))
            self.visit(node, proto.domain)

    def visit(self, node: Node, domain: str) -> None:
        if node.op == "Constant":
            self.constants[node.outputs[0]] = _constant_value(node.attrs)
            return
        reason = _unsupported_reason(node, domain, self.constants) or (
            validate.newer_op_version(node.op, self.opset) if domain in ("", "ai.onnx") else "")
        if reason or any(i in self.unknown for i in node.inputs if i):
            if reason:
                self.unsupported.append((node.name, node.op, reason))
            self.unknown.update(node.outputs)
            return
        if self.fold(node):
            return
        for name, (shape, dtype) in zip(node.outputs, self.output_types(node)):
            if name:
                _check_size(name, shape, dtype, f"output of node {node.name!r} ({node.op}),")
                self.values[name] = Value(name, shape, dtype)
        self.nodes.append(node)

    def fold(self, node: Node) -> bool:
        ins = [self.constants.get(i) if i else None for i in node.inputs]
        if node.op == "Shape" and node.inputs[0] in self.values or node.op in ("Size",) and node.inputs[0] in self.values:
            ins = [_zeros(self.values[node.inputs[0]].shape, "float32")]
        elif not all(x is not None for x, i in zip(ins, node.inputs) if i):
            return False
        if node.op not in HOST_OPS:
            return False
        try:
            with np.errstate(all="ignore"):
                outs = run_host_op(node.op, ins, node.attrs)
        except Exception as exc:  # a folding failure is a model error: say which node
            raise CompileError(f"node {node.name!r} ({node.op}): cannot evaluate its constant "
                               f"inputs: {exc}") from exc
        for name, value in zip(node.outputs, outs):
            if name:
                self.constants[name] = np.asarray(value)
        return True

    def output_types(self, node: Node) -> list[tuple[tuple[int, ...], str]]:
        """Shapes and dtypes of a node's outputs, without building a tensor of their size.

        Kernel ops: by formula (:mod:`.shapes`).  Element-wise host ops: the
        broadcast of the input shapes, the dtype from running the op on
        one-element inputs.  Other host ops: run on stride-0 zeros (no memory
        for the inputs) when their outputs are known to be small, else onnx's
        shape inference.
        """
        if node.op in KERNEL_OPS:
            return [(self.kernel_shape(node), self.dtype(node.inputs[0]))]
        in_shapes = [self.shape(i) for i in node.inputs]
        if node.op in ("MaxPool", "AveragePool"):
            shapes.check_pool_attrs(node.name, node.op, in_shapes[0], node.attrs)
        if node.op in ELEMENTWISE_OPS:
            try:
                shape = np.broadcast_shapes(*[s for s in in_shapes if s is not None])
            except ValueError:
                raise CompileError(f"node {node.name!r} ({node.op}): inputs of shapes "
                                   f"{in_shapes} do not broadcast") from None
            ins = [self.example(i, tiny=True) for i in node.inputs]
            return [(tuple(shape), np.asarray(o).dtype.name) for o in self.run(node, ins)]
        known = [self.inferred.get(o) for o in node.outputs if o]
        probed = known + [(self.values[i].shape, self.values[i].dtype)
                          for i in node.inputs if i in self.values]
        if all(k is not None for k in known) and SHAPE_PROBE_BYTES < sum(
                int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in probed):
            return list(known)  # too large to probe: onnx's (exact, symbolic) inference
        return [(tuple(int(d) for d in np.shape(o)), np.asarray(o).dtype.name)
                for o in self.run(node, [self.example(i) for i in node.inputs])]

    def run(self, node: Node, ins: list) -> tuple:
        try:
            with np.errstate(all="ignore"):
                return run_host_op(node.op, ins, node.attrs)
        except Exception as exc:
            raise CompileError(f"node {node.name!r} ({node.op}): inputs of shapes "
                               f"{[self.shape(i) for i in node.inputs]} are "
                               f"inconsistent: {exc}") from exc

    def shape(self, name: str) -> tuple[int, ...] | None:
        if not name:
            return None
        if name in self.constants:
            return tuple(self.constants[name].shape)
        return self.values[name].shape

    def dtype(self, name: str) -> str:
        return self.constants[name].dtype.name if name in self.constants else self.values[name].dtype

    def example(self, name: str, tiny: bool = False):
        """Input ``name`` for a probe run: the constant, or zeros of its shape (stride 0,
        no memory) or, ``tiny``, of shape (1, ..., 1)."""
        if not name:
            return None
        if name in self.constants:
            return self.constants[name]
        value = self.values[name]
        return _zeros((1,) * len(value.shape) if tiny else value.shape, value.dtype)

    def kernel_shape(self, node: Node) -> tuple[int, ...]:
        """Output shape of a kernel op by formula, its operands checked (:mod:`.shapes`)."""
        ins = [self.shape(i) for i in node.inputs] + [None] * 3
        if node.op == "Conv":
            return shapes.conv_shape(node.name, ins[0], ins[1], ins[2], node.attrs)
        if node.op == "ConvTranspose":
            return shapes.conv_transpose_shape(node.name, ins[0], ins[1], ins[2], node.attrs,
                                               conv_transpose_geometry)
        if node.op == "Gemm":
            return shapes.gemm_shape(node.name, ins[0], ins[1], ins[2], node.attrs)
        return shapes.matmul_shape(node.name, ins[0], ins[1])

    def output_value(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            const = self.constants[name]
            return Value(name, tuple(const.shape), const.dtype.name)
        raise CompileError(f"graph output {name!r} is produced by no node")

    def raise_unsupported(self) -> None:
        if not self.unsupported:
            return
        lines = [f"  - {name} ({op}): {reason}" for name, op, reason in self.unsupported]
        raise CompileError(f"{len(self.unsupported)} unsupported node(s):\n" + "\n".join(lines)
                           + f"\nsupported ops: {', '.join(supported_ops())}")


def conv_transpose_geometry(in_sizes, attrs) -> tuple[list[int], list[int], list[int]]:
    """Output sizes and the begin/end pads (trimmed from the full output) of a ConvTranspose.

    Returns
    -------
    out, pad_begin, pad_end : list of int
        Output spatial sizes and how much of the "full" transposed output,
        ``stride*(in-1) + (k-1)*dil + 1 + output_padding``, is cut at each end.
    """
    n = len(in_sizes)
    k = list(attrs["kernel_shape"])
    s = list(attrs.get("strides") or [1] * n)
    d = list(attrs.get("dilations") or [1] * n)
    op = list(attrs.get("output_padding") or [0] * n)
    pads = list(attrs.get("pads") or [0] * (2 * n))
    auto = attrs.get("auto_pad", "NOTSET")
    wanted = attrs.get("output_shape")
    out, begin, end = [], [], []
    for i in range(n):
        full = s[i] * (in_sizes[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1
        if wanted is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            target = int(wanted[-n + i]) if wanted is not None else in_sizes[i] * s[i]
            total = full - target
            pb = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pe = total - pb
        else:
            pb, pe = pads[i], pads[i + n]
        out.append(full - pb - pe)
        begin.append(pb)
        end.append(pe)
    return out, begin, end


def _unsupported_reason(node: Node, domain: str, constants) -> str:
    """Why a node cannot be compiled, or ``""``."""
    if domain not in ("", "ai.onnx"):
        return f"custom domain {domain!r}"
    if node.op not in HOST_OPS and node.op not in KERNEL_OPS:
        return "no implementation (neither kernel nor host op)"
    a = node.attrs
    if node.op in ("Conv", "ConvTranspose"):
        if node.inputs[1] not in constants:
            return "weights are not constant"
        if constants[node.inputs[1]].ndim != 4:
            return f"only 2-D convolutions (4-D weights), got {constants[node.inputs[1]].ndim}-D weights"
        if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] not in constants:
            return "bias is not constant"
    if node.op in ("Resize", "Upsample"):
        if a.get("mode", "nearest") not in _RESIZE_MODES:
            return f"mode {a.get('mode')!r} (supported: nearest, linear)"
        if a.get("coordinate_transformation_mode", "half_pixel") not in _COORD_MODES:
            return f"coordinate_transformation_mode {a['coordinate_transformation_mode']!r}"
        if a.get("antialias", 0):
            return "antialias=1"
        if a.get("axes") is not None:
            return "the axes attribute"
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            return f"keep_aspect_ratio_policy {a['keep_aspect_ratio_policy']!r}"
        if a.get("exclude_outside", 0):
            return "exclude_outside=1"
    if node.op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        return "the Indices output"
    if node.op in ("LayerNormalization", "BatchNormalization") and any(node.outputs[1:]):
        return "outputs beyond the first (training statistics)"
    if node.op == "Pad" and a.get("mode", "constant") not in ("constant", "reflect", "edge", "wrap"):
        return f"mode {a.get('mode')!r}"
    return ""


def _onnx_shapes(proto, inputs: list[Value]) -> dict[str, tuple[tuple[int, ...], str]]:
    """onnx's shape inference (symbolic: no tensors) with the resolved input shapes.

    Returns ``{value name: (shape, numpy dtype name)}`` for the values it gives
    a fully static shape; empty when onnx's inference fails.
    """
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read
    from onnx import helper  # onnx: heavy import (~1 s), loaded only when a model is read

    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    by_name = {v.name: v for v in inputs}
    for inp in fixed.graph.input:
        if inp.name in by_name:
            dims = inp.type.tensor_type.shape.dim
            for dim, size in zip(dims, by_name[inp.name].shape):
                dim.Clear()
                dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # noqa: BLE001 - onnx's inference is only a cross-check and a fallback
        return {}
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        ttype = info.type.tensor_type
        dims = ttype.shape.dim
        if not ttype.HasField("shape") or not all(d.HasField("dim_value") for d in dims):
            continue
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
        except (KeyError, TypeError, ValueError):
            continue
        shapes[info.name] = (tuple(int(d.dim_value) for d in dims), dtype)
    return shapes


def _cross_check(inferred: dict, graph: Graph) -> None:
    """Compare our shapes with onnx's shape inference (same fixed input shapes)."""
    for name, (theirs, _) in inferred.items():
        mine = graph.values.get(name)
        if mine is None:
            continue
        if any(d > 0 and d != m for d, m in zip(theirs, mine.shape)) or len(theirs) != len(mine.shape):
            raise CompileError(f"value {name!r}: the compiler computed shape {mine.shape}, "
                               f"onnx shape inference {theirs}")
