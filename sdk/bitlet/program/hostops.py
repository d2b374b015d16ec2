"""Host operations: the ONNX ops that run on the CPU, in numpy.

Each op is one small function ``fn(inputs, attrs) -> array or tuple of arrays``
registered in :data:`HOST_OPS` under its ONNX op type.  ``inputs`` is the
list of input arrays (``None`` for an omitted optional input); ``attrs`` the
node's attributes as plain Python values, normalised by the frontend
(``_n_outputs`` = number of outputs, ``_opset`` = the model's opset, tensors
as numpy arrays, ``Cast.to`` as a numpy dtype name).  Shapes and dtypes
follow ONNX (activations are logically NCHW, see :mod:`bitlet.compiler.graph`).

The same functions fold constants at compile time and run the host segments
of a compiled model, so a folded value and a run-time value cannot disagree.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

HostFn = Callable[[list, dict], Any]
#: ONNX op type -> numpy implementation
HOST_OPS: dict[str, HostFn] = {}


def host_op(*names: str) -> Callable[[HostFn], HostFn]:
    """Register a function as the implementation of the ONNX ops ``names``."""

    def register(fn: HostFn) -> HostFn:
        for name in names:
            HOST_OPS[name] = fn
        return fn

    return register


def run_host_op(op: str, inputs: list, attrs: dict) -> tuple[np.ndarray, ...]:
    """Run one host op; always returns a tuple of arrays."""
    result = HOST_OPS[op](inputs, attrs)
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _f(x: float, like: np.ndarray) -> np.generic:
    """A scalar in the dtype of ``like`` (keeps float32 math in float32)."""
    return np.asarray(x, dtype=like.dtype)[()]


def _axes(value: Any) -> list[int] | None:
    if value is None:
        return None
    return [int(a) for a in np.asarray(value).reshape(-1)]


# ---------------------------------------------------------------- element-wise
@host_op("Add")
def add(ins, attrs):
    return ins[0] + ins[1]


@host_op("Sub")
def sub(ins, attrs):
    return ins[0] - ins[1]


@host_op("Mul")
def mul(ins, attrs):
    return ins[0] * ins[1]


@host_op("Div")
def div(ins, attrs):
    a, b = ins
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates
    return a / b


@host_op("Pow")
def power(ins, attrs):
    return np.power(ins[0], ins[1].astype(ins[0].dtype))


@host_op("Min")
def minimum(ins, attrs):
    return _reduce_variadic(np.minimum, ins)


@host_op("Max")
def maximum(ins, attrs):
    return _reduce_variadic(np.maximum, ins)


@host_op("Sum")
def sum_(ins, attrs):
    return _reduce_variadic(np.add, ins)


def _reduce_variadic(fn, ins):
    out = ins[0]
    for x in ins[1:]:
        out = fn(out, x)
    return out


@host_op("Equal")
def equal(ins, attrs):
    return np.equal(ins[0], ins[1])


@host_op("Less")
def less(ins, attrs):
    return np.less(ins[0], ins[1])


@host_op("Greater")
def greater(ins, attrs):
    return np.greater(ins[0], ins[1])


@host_op("Not")
def logical_not(ins, attrs):
    return np.logical_not(ins[0])


@host_op("Where")
def where(ins, attrs):
    return np.where(ins[0], ins[1], ins[2])


@host_op("Relu")
def relu(ins, attrs):
    x = ins[0]
    return np.maximum(x, _f(0, x))


@host_op("LeakyRelu")
def leaky_relu(ins, attrs):
    x = ins[0]
    return np.where(x < 0, x * _f(attrs.get("alpha", 0.01), x), x)


@host_op("PRelu")
def prelu(ins, attrs):
    x, slope = ins
    return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)


@host_op("Clip")
def clip(ins, attrs):
    x = ins[0]
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else attrs.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else attrs.get("max")
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, dtype=x.dtype))
    return x


@host_op("Sigmoid")
def sigmoid(ins, attrs):
    x = ins[0]
    with np.errstate(over="ignore"):
        return _f(1, x) / (_f(1, x) + np.exp(-x))


@host_op("HardSigmoid")
def hard_sigmoid(ins, attrs):
    x = ins[0]
    y = x * _f(attrs.get("alpha", 0.2), x) + _f(attrs.get("beta", 0.5), x)
    return np.clip(y, _f(0, x), _f(1, x))


@host_op("HardSwish")
def hard_swish(ins, attrs):
    x = ins[0]
    return x * hard_sigmoid([x], {"alpha": 1.0 / 6.0, "beta": 0.5})


@host_op("Tanh")
def tanh(ins, attrs):
    return np.tanh(ins[0])


@host_op("Erf")
def erf(ins, attrs):
    x = ins[0]
    try:
        from scipy.special import erf as _erf  # optional, much faster
    except Exception:  # noqa: BLE001 - absent, or built for another numpy (it warns or raises)
        _erf = np.vectorize(math.erf, otypes=[np.float64])
    return _erf(x.astype(np.float64)).astype(x.dtype)


# Element-wise ops: one ONNX op -> one numpy function each (alike in shape only,
# as `duplicates` reports; each is the registry entry of its op).
@host_op("Sqrt")
def sqrt(ins, attrs):
    return np.sqrt(ins[0])


@host_op("Exp")
def exp(ins, attrs):
    return np.exp(ins[0])


@host_op("Log")
def log(ins, attrs):
    return np.log(ins[0])


@host_op("Neg")
def neg(ins, attrs):
    return -ins[0]


@host_op("Abs")
def absolute(ins, attrs):
    return np.abs(ins[0])


@host_op("Reciprocal")
def reciprocal(ins, attrs):
    return _f(1, ins[0]) / ins[0]


@host_op("Floor")
def floor(ins, attrs):
    return np.floor(ins[0])


@host_op("Ceil")
def ceil(ins, attrs):
    return np.ceil(ins[0])


@host_op("Identity")
def identity(ins, attrs):
    return ins[0]


@host_op("Dropout")
def dropout(ins, attrs):
    """Inference: the input unchanged, and (when asked for) an all-true mask."""
    x = ins[0]
    if attrs.get("_n_outputs", 1) > 1:
        return x, np.ones(x.shape, dtype=bool)
    return x


@host_op("Cast")
def cast(ins, attrs):
    return ins[0].astype(attrs["to"])


# ---------------------------------------------------------------- normalisation
def _softmax_axes(x, attrs):
    axis = attrs.get("axis", -1 if attrs.get("_opset", 13) >= 13 else 1)
    axis = axis % x.ndim
    if attrs.get("_opset", 13) < 13:  # old semantics: flatten from `axis` on
        return tuple(range(axis, x.ndim))
    return (axis,)


@host_op("Softmax")
def softmax(ins, attrs):
    x = ins[0]
    axes = _softmax_axes(x, attrs)
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


@host_op("LogSoftmax")
def log_softmax(ins, attrs):
    x = ins[0]
    axes = _softmax_axes(x, attrs)
    shifted = x - x.max(axis=axes, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axes, keepdims=True))


@host_op("LayerNormalization")
def layer_norm(ins, attrs):
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    axis = attrs.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + attrs.get("epsilon", 1e-5)) * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


@host_op("BatchNormalization")
def batch_norm(ins, attrs):
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + attrs.get("epsilon", 1e-5))
    shift = bias - mean * inv
    return (x * inv.astype(x.dtype).reshape(shape) + shift.astype(x.dtype).reshape(shape))


# ---------------------------------------------------------------- reductions
def _reduce_axes(x, ins, attrs):
    axes = _axes(ins[1]) if len(ins) > 1 and ins[1] is not None else _axes(attrs.get("axes"))
    if not axes:
        return None if not attrs.get("noop_with_empty_axes", 0) else ()
    return tuple(a % x.ndim for a in axes)


def _reduction(fn):
    def run(ins, attrs):
        x = ins[0]
        axes = _reduce_axes(x, ins, attrs)
        if axes == ():
            return x
        return fn(x, axis=axes, keepdims=bool(attrs.get("keepdims", 1))).astype(x.dtype)

    return run


HOST_OPS["ReduceMean"] = _reduction(np.mean)
HOST_OPS["ReduceSum"] = _reduction(np.sum)
HOST_OPS["ReduceMax"] = _reduction(np.max)
HOST_OPS["ReduceMin"] = _reduction(np.min)


@host_op("GlobalAveragePool")
def global_average_pool(ins, attrs):
    x = ins[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)


@host_op("GlobalMaxPool")
def global_max_pool(ins, attrs):
    x = ins[0]
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ---------------------------------------------------------------- pooling
def pool_geometry(in_sizes, attrs) -> tuple[list[int], list[int], list[int]]:
    """Output sizes, begin pads and end pads (incl. ceil-mode overhang) of a pool/conv.

    Parameters
    ----------
    in_sizes : sequence of int
        Spatial input sizes.
    attrs : dict
        ``kernel_shape``, ``strides``, ``pads``, ``dilations``, ``auto_pad``,
        ``ceil_mode`` as in ONNX.

    Returns
    -------
    out, pad_begin, pad_end : list of int
        ``pad_end`` includes the extra cells a ceil-mode window reads past the
        explicit padding.
    """
    n = len(in_sizes)
    k = list(attrs["kernel_shape"])
    s = list(attrs.get("strides") or [1] * n)
    d = list(attrs.get("dilations") or [1] * n)
    pads = list(attrs.get("pads") or [0] * (2 * n))
    auto = attrs.get("auto_pad", "NOTSET")
    out, begin, end = [], [], []
    for i in range(n):
        eff = (k[i] - 1) * d[i] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sizes[i] // s[i])
            total = max((o - 1) * s[i] + eff - in_sizes[i], 0)
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pb, pe = b, total - b
        else:
            pb, pe = (0, 0) if auto == "VALID" else (pads[i], pads[i + n])
            span = in_sizes[i] + pb + pe - eff
            o = (-(-span // s[i]) if attrs.get("ceil_mode", 0) else span // s[i]) + 1
            if attrs.get("ceil_mode", 0) and (o - 1) * s[i] >= in_sizes[i] + pb:
                o -= 1
        out.append(int(o))
        begin.append(int(pb))
        end.append(int(max(pe, (o - 1) * s[i] + eff - in_sizes[i] - pb)))
    return out, begin, end


def _windows(x, attrs, out, begin, end, fill):
    n = len(out)
    k = list(attrs["kernel_shape"])
    s = list(attrs.get("strides") or [1] * n)
    d = list(attrs.get("dilations") or [1] * n)
    width = [(0, 0)] * (x.ndim - n) + list(zip(begin, end))
    xp = np.pad(x, width, constant_values=fill)
    eff = [(k[i] - 1) * d[i] + 1 for i in range(n)]
    axes = tuple(range(x.ndim - n, x.ndim))
    win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=axes)
    index = [slice(None)] * (x.ndim - n)
    index += [slice(0, (out[i] - 1) * s[i] + 1, s[i]) for i in range(n)]
    index += [slice(None, None, d[i]) for i in range(n)]
    return win[tuple(index)]


@host_op("MaxPool")
def max_pool(ins, attrs):
    x = ins[0]
    n = x.ndim - 2
    out, begin, end = pool_geometry(x.shape[2:], attrs)
    win = _windows(x, attrs, out, begin, end, -np.inf)
    return win.max(axis=tuple(range(-n, 0)))


@host_op("AveragePool")
def average_pool(ins, attrs):
    x = ins[0]
    n = x.ndim - 2
    out, begin, end = pool_geometry(x.shape[2:], attrs)
    sums = _windows(x, attrs, out, begin, end, 0).sum(axis=tuple(range(-n, 0)))
    counts = _pool_counts(x.shape[2:], attrs, out, begin, end)
    return (sums / counts).astype(x.dtype)


def _pool_counts(sizes, attrs, out, begin, end):
    """Number of cells each average-pool window divides by (ONNX semantics)."""
    n = len(sizes)
    pads = list(attrs.get("pads") or [0] * (2 * n))
    mask = np.ones(tuple(sizes), dtype=np.float32)
    if attrs.get("count_include_pad", 0) and attrs.get("auto_pad", "NOTSET") == "NOTSET":
        mask = np.pad(mask, list(zip(pads[:n], pads[n:])), constant_values=1)
        begin = [b - p for b, p in zip(begin, pads[:n])]
        end = [e - p for e, p in zip(end, pads[n:])]
    return _windows(mask, attrs, out, begin, end, 0).sum(axis=tuple(range(-n, 0)))


# ---------------------------------------------------------------- shape ops
@host_op("Concat")
def concat(ins, attrs):
    return np.concatenate([x for x in ins if x is not None], axis=attrs["axis"])


@host_op("Split")
def split(ins, attrs):
    x = ins[0]
    axis = attrs.get("axis", 0) % x.ndim
    sizes = _axes(ins[1]) if len(ins) > 1 and ins[1] is not None else _axes(attrs.get("split"))
    if not sizes:
        parts = attrs.get("num_outputs") or attrs["_n_outputs"]
        step = -(-x.shape[axis] // parts)
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    cuts = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, cuts, axis=axis))


@host_op("Slice")
def slice_(ins, attrs):
    x = ins[0]
    if len(ins) > 1:
        starts, ends = _axes(ins[1]), _axes(ins[2])
        axes = _axes(ins[3]) if len(ins) > 3 and ins[3] is not None else None
        steps = _axes(ins[4]) if len(ins) > 4 and ins[4] is not None else None
    else:  # opset < 10: attributes
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for a, b, e, st in zip(axes, starts, ends, steps):
        index[a % x.ndim] = slice(b, e, st)
    return x[tuple(index)]


@host_op("Reshape")
def reshape(ins, attrs):
    x, shape = ins[0], [int(v) for v in ins[1]]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


@host_op("Flatten")
def flatten(ins, attrs):
    x = ins[0]
    axis = attrs.get("axis", 1) % (x.ndim + 1) if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@host_op("Transpose")
def transpose(ins, attrs):
    x = ins[0]
    return np.transpose(x, attrs.get("perm") or list(range(x.ndim))[::-1])


@host_op("Squeeze")
def squeeze(ins, attrs):
    x = ins[0]
    axes = _axes(ins[1]) if len(ins) > 1 and ins[1] is not None else _axes(attrs.get("axes"))
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))


@host_op("Unsqueeze")
def unsqueeze(ins, attrs):
    x = ins[0]
    axes = _axes(ins[1]) if len(ins) > 1 and ins[1] is not None else _axes(attrs["axes"])
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return x


@host_op("Gather")
def gather(ins, attrs):
    return np.take(ins[0], ins[1].astype(np.int64), axis=attrs.get("axis", 0))


@host_op("DepthToSpace")
def depth_to_space(ins, attrs):
    x = ins[0]
    b, c, h, w = x.shape
    bs = attrs["blocksize"]
    if attrs.get("mode", "DCR") == "DCR":
        y = x.reshape(b, bs, bs, c // bs**2, h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(b, c // bs**2, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(b, c // bs**2, h * bs, w * bs)


@host_op("SpaceToDepth")
def space_to_depth(ins, attrs):
    x = ins[0]
    b, c, h, w = x.shape
    bs = attrs["blocksize"]
    y = x.reshape(b, c, h // bs, bs, w // bs, bs).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(b, c * bs * bs, h // bs, w // bs)


@host_op("Shape")
def shape(ins, attrs):
    dims = ins[0].shape[attrs.get("start", 0): attrs.get("end", None)]
    return np.array(dims, dtype=np.int64)


@host_op("Size")
def size(ins, attrs):
    return np.array(ins[0].size, dtype=np.int64)


@host_op("ConstantOfShape")
def constant_of_shape(ins, attrs):
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full([int(v) for v in ins[0]], value[0], dtype=value.dtype)


@host_op("Range")
def range_(ins, attrs):
    start, limit, delta = (np.asarray(v).reshape(()) for v in ins)
    return np.arange(start, limit, delta, dtype=start.dtype)


@host_op("Expand")
def expand(ins, attrs):
    x = ins[0]
    target = np.broadcast_shapes(x.shape, tuple(int(v) for v in ins[1]))
    return np.broadcast_to(x, target).copy()


@host_op("Tile")
def tile(ins, attrs):
    return np.tile(ins[0], [int(v) for v in ins[1]])


@host_op("Pad")
def pad(ins, attrs):
    x = ins[0]
    pads = _axes(ins[1]) if len(ins) > 1 and ins[1] is not None else list(attrs["pads"])
    value = ins[2] if len(ins) > 2 and ins[2] is not None and ins[2].size else attrs.get("value", 0)
    axes = _axes(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(x.ndim))
    n = len(axes)
    width = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        width[a % x.ndim] = (pads[i], pads[i + n])
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(width))
    x = x[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in width]
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return np.pad(x, width, constant_values=np.asarray(value, x.dtype).reshape(()))
    return np.pad(x, width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


# ---------------------------------------------------------------- resize
def _resize_coords(out_size, in_size, scale, mode):
    """Source coordinate of every output index along one axis (ONNX Resize)."""
    x = np.arange(out_size, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    raise ValueError(f"Resize: coordinate_transformation_mode {mode!r} is not supported")


def _nearest_index(coord, in_size, mode):
    if mode == "floor":
        idx = np.floor(coord)
    elif mode == "ceil":
        idx = np.ceil(coord)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coord + 0.5)
    else:  # round_prefer_floor
        idx = np.ceil(coord - 0.5)
    return np.clip(idx, 0, in_size - 1).astype(np.int64)


def resize_plan(in_shape, ins, attrs) -> tuple[list[int], list[float]]:
    """Output shape and per-axis scales of a Resize/Upsample node."""
    sizes = ins[3] if len(ins) > 3 and ins[3] is not None and ins[3].size else None
    if sizes is not None:
        out = [int(v) for v in sizes]
        return out, [o / i for o, i in zip(out, in_shape)]
    scales = ins[2] if len(ins) > 2 else (ins[1] if len(ins) == 2 else attrs.get("scales"))
    scales = [float(s) for s in np.asarray(scales, dtype=np.float32).reshape(-1)]
    return [math.floor(i * s) for i, s in zip(in_shape, scales)], scales


@host_op("Resize", "Upsample")
def resize(ins, attrs):
    x = ins[0]
    out_shape, scales = resize_plan(x.shape, ins, attrs)
    mode = attrs.get("mode", "nearest")
    coord_mode = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest_mode = attrs.get("nearest_mode", "round_prefer_floor")
    legacy = len(ins) <= 2  # Upsample (opset 7-9) and Resize-10: (X, scales)
    if legacy:  # asymmetric coordinates; nearest truncates (ceil when shrinking), as onnxruntime
        coord_mode = "asymmetric"
    for axis, (o, i, s) in enumerate(zip(out_shape, x.shape, scales)):
        if o == i and s == 1.0:
            continue
        coord = _resize_coords(o, i, s, coord_mode)
        if mode == "nearest":
            if legacy:
                nearest_mode = "ceil" if s < 1 else "floor"
            x = np.take(x, _nearest_index(coord, i, nearest_mode), axis)
        else:
            x = _linear_axis(x, coord, i, axis)
    return x


def _linear_axis(x, coord, in_size, axis):
    coord = np.clip(coord, 0, in_size - 1)
    lo = np.floor(coord).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = (coord - lo).astype(x.dtype).reshape(shape)
    a, b = np.take(x, lo, axis), np.take(x, hi, axis)
    return a + (b - a) * w


# ---------------------------------------------------------------- matmul (folding and fallback)
@host_op("MatMul")
def matmul(ins, attrs):
    return np.matmul(ins[0], ins[1])


@host_op("Gemm")
def gemm(ins, attrs):
    a = ins[0].T if attrs.get("transA", 0) else ins[0]
    b = ins[1].T if attrs.get("transB", 0) else ins[1]
    y = _f(attrs.get("alpha", 1.0), a) * (a @ b)
    if len(ins) > 2 and ins[2] is not None:
        y = y + _f(attrs.get("beta", 1.0), a) * ins[2]
    return y


# ---------------------------------------------------------------- compiler-generated
@host_op("BitletZeroStuff")
def zero_stuff(ins, attrs):
    """Insert ``stride - 1`` zeros between pixels, then pad (or crop, if negative) H and W.

    ``attrs``: ``strides`` (2), ``pads`` (top, left, bottom, right).  Used to run a
    general ConvTranspose as a stride-1 kernel convolution.
    """
    x = ins[0]
    sh, sw = attrs["strides"]
    n, c, h, w = x.shape
    out = np.zeros((n, c, (h - 1) * sh + 1, (w - 1) * sw + 1), dtype=x.dtype)
    out[:, :, ::sh, ::sw] = x
    top, left, bottom, right = attrs["pads"]
    return pad([out, np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)], {})
