"""``bitlet.compare``: a compiled model against onnxruntime (the fp32 reference).

The compiled model runs with every kernel layer's output downloaded
(:meth:`~bitlet.runtime.model.CompiledModel.run` with ``keep=True``); onnxruntime
runs a copy of the ONNX model with the same intermediate values added as
graph outputs.  The compiler keeps ONNX value names meaningful (a fused
Conv+BN+ReLU output carries the ReLU's output name), so the values are
compared name by name, in execution order.

Metrics per value: max abs error, relative L2 error ``||y - r|| / ||r||``;
for the final outputs also PSNR (dB, peak = range of the reference) for
image-like (4-D) outputs and top-1 / top-5 agreement for classifier-like
(2-D ``[N, classes]``) outputs.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bitlet.compiler.frontend import load_model
from bitlet.errors import BitletValueError


def error_metrics(y: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """max abs, relative L2 (and PSNR for 4-D values, top-k for 2-D [N, C]) of ``y`` vs ``ref``."""
    y64, r64 = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    diff = y64 - r64
    norm = np.linalg.norm(r64)
    out = {"max_abs": float(np.abs(diff).max()) if diff.size else 0.0,
           "rel_l2": float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.linalg.norm(diff))}
    if r64.ndim == 4:
        peak = float(r64.max() - r64.min())
        mse = float(np.mean(diff ** 2))
        out["psnr_db"] = float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse)) if peak else 0.0
    if r64.ndim == 2 and r64.shape[1] >= 2:
        out.update(topk_agreement(y64, r64))
    return out


def topk_agreement(y: np.ndarray, ref: np.ndarray, ks=(1, 5)) -> dict[str, float]:
    """Fraction of rows whose top-1 class agrees, and mean overlap of the top-k sets."""
    out = {}
    for k in ks:
        k = min(k, ref.shape[1])
        top_y = np.argsort(-y, axis=1)[:, :k]
        top_r = np.argsort(-ref, axis=1)[:, :k]
        if k == 1:
            out["top1_agree"] = float(np.mean(top_y[:, 0] == top_r[:, 0]))
        else:
            out[f"top{k}_overlap"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_y, top_r)]))
    return out


@dataclass
class CompareReport:
    """Per-layer and final errors (plain data: :meth:`as_dict`; print for a table)."""

    layers: list[dict[str, Any]]
    outputs: dict[str, dict[str, float]]
    precision: str

    def as_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "outputs": self.outputs, "precision": self.precision}

    @property
    def worst_rel_l2(self) -> float:
        return max(v["rel_l2"] for v in self.outputs.values())

    def __str__(self) -> str:
        lines = [f"{'value':<40} {'kind':<8} {'shape':<20} {'max abs':>10} {'rel L2':>10}",
                 "-" * 92]
        for row in self.layers:
            lines.append(f"{row['value'][:40]:<40} {row['kind']:<8} {str(tuple(row['shape']))[:20]:<20} "
                         f"{row['max_abs']:>10.3e} {row['rel_l2']:>10.3e}")
        lines.append("-" * 92)
        for name, m in self.outputs.items():
            extra = "  ".join(f"{k}={v:.4g}" for k, v in m.items() if k not in ("max_abs", "rel_l2"))
            lines.append(f"output {name}: max abs {m['max_abs']:.3e}, rel L2 {m['rel_l2']:.3e}  {extra}")
        return "\n".join(lines)


def compare(compiled: Any, inputs: Any, model: Any = None) -> CompareReport:
    """Compare ``compiled`` with onnxruntime on ``inputs``.

    Parameters
    ----------
    compiled : bitlet.runtime.model.CompiledModel
    inputs : numpy array (single-input models, NCHW) or dict ``{name: array}``
    model : str, os.PathLike or onnx.ModelProto, optional
        The ONNX model; defaults to the one ``bitlet.compile`` was given
        (needed for a model loaded with ``bitlet.load``).

    Returns
    -------
    CompareReport
    """

    source = model if model is not None else getattr(compiled, "source_model", None)
    if source is None:
        raise BitletValueError("model: this compiled model does not remember its ONNX model "
                               "(loaded from a file?): pass model=path_or_proto")
    proto = load_model(source)
    feeds = inputs if isinstance(inputs, Mapping) else {compiled.input_names[0]: inputs}
    env = compiled.run(feeds, keep=True)
    names = _comparable(proto, env, compiled)
    ref = _run_reference(proto, feeds, names)
    layers = []
    kernel_values = {layer["output"]["value"] for layer in compiled.meta["layers"]}
    for name in names:
        if name in compiled.output_names:
            continue
        m = error_metrics(env[name], ref[name])
        layers.append({"value": name, "kind": "kernel" if name in kernel_values else "host",
                       "shape": list(np.shape(ref[name])), "max_abs": m["max_abs"], "rel_l2": m["rel_l2"]})
    outputs = {name: error_metrics(env[name], ref[name]) for name in compiled.output_names}
    return CompareReport(layers, outputs, compiled.meta["precision"])


def _comparable(proto, env: dict, compiled) -> list[str]:
    """Float values both sides know, in execution order (graph outputs last)."""
    produced = [o for node in proto.graph.node for o in node.output]
    known = set(produced)
    order = []
    for step in compiled.meta["steps"]:
        for name in step.get("outputs", []) + [step.get("value", "")]:
            if name in known and name in env and name not in order:
                order.append(name)
    for layer in compiled.meta["layers"]:
        name = layer["output"]["value"]
        if name in known and name in env and name not in order:
            order.append(name)
    order = [n for n in order if np.asarray(env[n]).dtype.kind == "f"]
    order.sort(key=produced.index)
    return order + [n for n in compiled.output_names if n not in order]


#: public name of the value selection (used by bitlet.tools.evaluate for per-layer statistics)
comparable_values = _comparable


def reference_session(proto, names: list[str], threads: int | None = None):
    """An onnxruntime session of ``proto`` that also outputs ``names``; returns ``(session, wanted)``.

    ``threads``: onnxruntime's intra-op threads (1 makes results independent
    of the machine's core count; None: onnxruntime's default).
    """
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read
    import onnxruntime as ort  # onnxruntime: heavy import, loaded only for reference runs

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    present = {o.name for o in copy.graph.output}
    for name in names:
        if name not in present:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
    sess = ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess, [o.name for o in copy.graph.output]


def _run_reference(proto, feeds: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    sess, wanted = reference_session(proto, names)
    values = sess.run(wanted, {k: np.asarray(v) for k, v in feeds.items()})
    return dict(zip(wanted, values))
