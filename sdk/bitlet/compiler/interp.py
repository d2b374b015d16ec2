"""Evaluate a graph IR on the host: float reference of the kernel ops + host ops.

Used to test the frontend's rewrites against onnxruntime without a device,
and as the fp32 oracle when a kernel layer is checked in isolation.  The
kernel ops are computed in float64 numpy (no Bitlet truncation).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from bitlet.compiler.graph import Graph, Node
from bitlet.program.hostops import run_host_op


def conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, attrs: dict) -> np.ndarray:
    """Float64 reference of ``BitletConv``: x (N, C, H, W), w (M, C/g, KH, KW) -> (N, M, OH, OW)."""
    top, left, bottom, right = attrs["pads"]
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    g = attrs["group"]
    m, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (top, bottom), (left, right)])
    n, c, hp, wp = xp.shape
    oh = (hp - (kh - 1) * dh - 1) // sh + 1
    ow = (wp - (kw - 1) * dw - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                                  j * dw: j * dw + (ow - 1) * sw + 1: sw]
    cols = cols.reshape(n, g, cg * kh * kw, oh * ow)
    wg = w.astype(np.float64).reshape(g, m // g, cg * kh * kw)
    y = np.einsum("gmk,ngkp->ngmp", wg, cols).reshape(n, m, oh, ow)
    return _finish(y + b.reshape(1, -1, 1, 1), attrs)


def dense_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, attrs: dict) -> np.ndarray:
    """Float64 reference of ``BitletDense``: x (..., K), w (M, K) -> (..., M)."""
    return _finish(x.astype(np.float64) @ w.astype(np.float64).T + b, attrs)


def matmul_reference(a: np.ndarray, b: np.ndarray, attrs: dict) -> np.ndarray:
    """Float64 reference of ``BitletMatMul``."""
    return _finish(np.matmul(a.astype(np.float64), b.astype(np.float64)), attrs)


def _finish(y: np.ndarray, attrs: dict) -> np.ndarray:
    if attrs.get("relu"):
        y = np.maximum(y, 0)
    return y.astype(np.float32)


def reference_kernel(node: Node, ins: list) -> tuple[np.ndarray, ...]:
    """Float reference of one kernel node (``ins``: its input arrays)."""
    if node.op == "BitletConv":
        return (conv_reference(*ins, node.attrs),)
    if node.op == "BitletDense":
        return (dense_reference(*ins, node.attrs),)
    if node.op == "BitletMatMul":
        return (matmul_reference(*ins, node.attrs),)
    raise KeyError(node.op)


KernelFn = Callable[[Node, list], tuple]


def execute(graph: Graph, feeds: Mapping[str, np.ndarray], kernel: KernelFn = reference_kernel,
            keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds``; returns the graph outputs (or every value with ``keep_all``)."""
    env: dict[str, np.ndarray] = dict(graph.constants)
    for value in graph.inputs:
        env[value.name] = np.asarray(feeds[value.name], dtype=value.dtype)
    for node in graph.nodes:
        ins = [env[i] if i else None for i in node.inputs]
        if node.op.startswith("Bitlet") and node.op != "BitletZeroStuff":
            outs = kernel(node, ins)
        else:
            outs = run_host_op(node.op, ins, node.attrs)
        env.update((name, out) for name, out in zip(node.outputs, outs) if name)
    if keep_all:
        return env
    return {v.name: env[v.name] for v in graph.outputs}
