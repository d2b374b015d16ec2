"""Output shapes of the kernel ops, by formula, after checking ONNX's operand rules.

The frontend computes the shape of every ``Conv``, ``ConvTranspose``,
``Gemm`` and ``MatMul`` here instead of running it: no tensor is built, and
an operand that ONNX (and onnxruntime) refuses, e.g. a weight with 5 input
channels on a 3-channel input, is a :class:`bitlet.CompileError` naming the
node rather than a model that compiles and computes garbage.

Every function takes the node's name and op type (for the message), the
operand shapes (tuples of int; ``None`` for an omitted optional operand) and
the node's attributes, and returns the output shape.
"""
from __future__ import annotations

from collections.abc import Sequence

from bitlet.program.hostops import pool_geometry
from bitlet.errors import CompileError

Shape = tuple[int, ...]
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _fail(name: str, op: str, why: str) -> CompileError:
    return CompileError(f"node {name!r} ({op}): {why}")


def _ints(name: str, op: str, attrs: dict, key: str, length: int, least: int) -> list[int]:
    """Attribute ``key`` (absent: ``least``) as ``length`` ints, each >= ``least``."""
    value = attrs.get(key)
    if value is None:
        return [least] * length
    value = list(value)
    if len(value) != length or any(not isinstance(v, int) or v < least for v in value):
        raise _fail(name, op, f"{key}={value}: expected {length} integers >= {least}")
    return value


def check_window_attrs(name: str, op: str, attrs: dict, n: int) -> None:
    """Check the window attributes of an ``n``-D convolution or pool (strides, dilations,
    pads, auto_pad, kernel_shape if present): no zero stride reaches a division."""
    _ints(name, op, attrs, "strides", n, 1)
    _ints(name, op, attrs, "dilations", n, 1)
    _ints(name, op, attrs, "pads", 2 * n, 0)
    if attrs.get("kernel_shape") is not None:
        _ints(name, op, attrs, "kernel_shape", n, 1)
    if attrs.get("auto_pad", "NOTSET") not in _AUTO_PADS:
        raise _fail(name, op, f"auto_pad={attrs['auto_pad']!r}: expected one of {_AUTO_PADS}")


def check_pool_attrs(name: str, op: str, x: Shape, attrs: dict) -> None:
    """Check a MaxPool/AveragePool's attributes against its input ``x`` (N, C, *spatial)."""
    if len(x) < 3:
        raise _fail(name, op, f"input {x}: expected (N, C, spatial...)")
    if attrs.get("kernel_shape") is None:
        raise _fail(name, op, "the kernel_shape attribute is required")
    check_window_attrs(name, op, attrs, len(x) - 2)


def check_conv_attrs(name: str, op: str, attrs: dict, w: Shape) -> int:
    """Check the attributes of a 2-D Conv/ConvTranspose with weight shape ``w``; return group."""
    group = attrs.get("group", 1)
    if not isinstance(group, int) or group < 1:
        raise _fail(name, op, f"group={group}: expected an integer >= 1")
    check_window_attrs(name, op, attrs, 2)
    kernel = attrs.get("kernel_shape")
    if kernel is not None and list(kernel) != list(w[2:]):
        raise _fail(name, op, f"kernel_shape={list(kernel)} but the weight's kernel is {list(w[2:])}")
    return group


def _check_rank4(name: str, op: str, x: Shape, w: Shape) -> None:
    if len(x) != 4 or len(w) != 4:
        raise _fail(name, op, f"only 2-D convolutions (4-D input and weight) are supported, "
                              f"got {x} and {w}")


def _check_bias(name: str, op: str, b: Shape | None, channels: int) -> None:
    if b is not None and tuple(b) != (channels,):
        raise _fail(name, op, f"bias of shape {tuple(b)}: expected ({channels},), one per output channel")


def _check_sizes(name: str, op: str, x: Shape, out: Sequence[int]) -> None:
    if min(out) < 1:
        raise _fail(name, op, f"input {x} gives output spatial size {list(out)}: the kernel, "
                              f"padding and stride leave no output pixel")


def conv_shape(name: str, x: Shape, w: Shape, b: Shape | None, attrs: dict) -> Shape:
    """Output shape of a Conv: x (N, C, H, W), w (M, C/group, KH, KW), b (M,)."""
    _check_rank4(name, "Conv", x, w)
    group = check_conv_attrs(name, "Conv", attrs, w)
    if x[1] != w[1] * group:
        raise _fail(name, "Conv", f"the input has {x[1]} channels but the weight {w} with "
                                  f"group={group} expects {w[1] * group}")
    if w[0] % group:
        raise _fail(name, "Conv", f"{w[0]} output channels are not divisible by group={group}")
    _check_bias(name, "Conv", b, w[0])
    out, _, _ = pool_geometry(x[2:], dict(attrs, kernel_shape=list(w[2:])))
    _check_sizes(name, "Conv", x, out)
    return (x[0], w[0], *out)


def conv_transpose_shape(name: str, x: Shape, w: Shape, b: Shape | None, attrs: dict,
                         geometry) -> Shape:
    """Output shape of a ConvTranspose: x (N, C, H, W), w (C, M/group, KH, KW), b (M,).

    ``geometry`` is :func:`bitlet.compiler.frontend.conv_transpose_geometry`.
    """
    op = "ConvTranspose"
    _check_rank4(name, op, x, w)
    group = check_conv_attrs(name, op, attrs, w)
    _ints(name, op, attrs, "output_padding", 2, 0)
    if x[1] != w[0]:
        raise _fail(name, op, f"the input has {x[1]} channels but the weight {w} expects {w[0]}")
    if w[0] % group:
        raise _fail(name, op, f"{w[0]} input channels are not divisible by group={group}")
    wanted = attrs.get("output_shape")
    if wanted is not None and (len(wanted) not in (2, 4) or min(wanted) < 1):
        raise _fail(name, op, f"output_shape={list(wanted)}: expected 2 positive sizes")
    _check_bias(name, op, b, w[1] * group)
    out = geometry(x[2:], dict(attrs, kernel_shape=list(w[2:])))[0]
    _check_sizes(name, op, x, out)
    return (x[0], w[1] * group, *out)


def gemm_shape(name: str, a: Shape, b: Shape, c: Shape | None, attrs: dict) -> Shape:
    """Output shape (M, N) of a Gemm: op(a) (M, K) @ op(b) (K, N) + c (broadcast to (M, N))."""
    if len(a) != 2 or len(b) != 2:
        raise _fail(name, "Gemm", f"A {a} and B {b} must both be 2-D")
    m, k = a[::-1] if attrs.get("transA", 0) else a
    kb, n = b[::-1] if attrs.get("transB", 0) else b
    if k != kb:
        raise _fail(name, "Gemm", f"A {a} (transA={attrs.get('transA', 0)}) and B {b} "
                                  f"(transB={attrs.get('transB', 0)}) give K = {k} and {kb}")
    if c is not None and (len(c) > 2 or any(d not in (1, t) for d, t in zip(c[::-1], (n, m)))):
        raise _fail(name, "Gemm", f"C {c} does not broadcast to the output ({m}, {n})")
    return (m, n)


def matmul_shape(name: str, a: Shape, b: Shape) -> Shape:
    """Output shape of a MatMul (numpy rules: 1-D operands, broadcast batch dimensions)."""
    if not a or not b:
        raise _fail(name, "MatMul", f"operands {a} and {b}: scalars are not allowed")
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise _fail(name, "MatMul", f"A {a} and B {b}: inner dimensions {a2[-1]} and {b2[-2]} differ")
    batch_a, batch_b = a2[:-2], b2[:-2]
    width = max(len(batch_a), len(batch_b))
    batch = []
    for da, db in zip((1,) * (width - len(batch_a)) + batch_a, (1,) * (width - len(batch_b)) + batch_b):
        if da != db and 1 not in (da, db):
            raise _fail(name, "MatMul", f"A {a} and B {b}: batch dimensions do not broadcast")
        batch.append(db if da == 1 else da)
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out
