"""ONNX frontend, graph IR, host ops and scheduler (``bitlet.compiler``).

Pipeline: :mod:`~bitlet.compiler.frontend` (ONNX -> IR, shapes, constant
folding, one error listing every unsupported node) -> :mod:`~bitlet.compiler.fold`
(BatchNormalization/bias folding, ReLU fusion, ConvTranspose lowering) ->
:mod:`~bitlet.compiler.lower` (tiling by :mod:`~bitlet.program.schedule`,
weights by :mod:`~bitlet.program.weights`, instruction stream, buffer
plan) -> :class:`bitlet.program.Program`, run by :mod:`bitlet.runtime.model`.

The compiler is pure: a model and a kernel configuration in, a Program out
(:func:`build_program`); ``bitlet.compile`` (:func:`bitlet.runtime.compile`)
opens the device, asks it for its configuration and loads the result.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.compiler.fold import KERNEL_TYPES, optimize
from bitlet.compiler.frontend import import_onnx
from bitlet.compiler.graph import Graph
from bitlet.compiler.lower import LayerOptions, lower
from bitlet.errors import CompileError
from bitlet.program import Program
from bitlet.program.schedule import KernelConfig

__all__ = ["build_program", "import_model", "layer_options"]


def build_program(model: Any, config: KernelConfig, *, precision: str = "fp32",
                  prune: Any = None, calibration: Any = None, bits: Any = None,
                  input_shapes: Mapping[str, tuple] | None = None) -> Program:
    """Compile an ONNX model into a :class:`~bitlet.program.Program` for a kernel
    configuration (no device involved: ``bitlet.compile`` is the wrapper that
    opens one, reads its configuration and loads the program).

    Parameters
    ----------
    model : str, os.PathLike, onnx.ModelProto or Graph
        The ONNX model, or the graph :func:`import_model` made of it.
    config : bitlet.program.schedule.KernelConfig
        The kernel's N_PE, buffer sizes and formats (``KernelConfig.from_driver``
        reads them from a device's ID registers).
    precision, prune, calibration, bits, input_shapes
        As :func:`bitlet.runtime.compile`.

    Returns
    -------
    bitlet.program.Program
    """
    graph = model if isinstance(model, Graph) else import_model(model, input_shapes)
    options = layer_options(graph, prune, bits, calibration)
    return lower(graph, config, precision, options, model_name=graph.name)


def import_model(model: Any, input_shapes: Mapping[str, tuple] | None = None) -> Graph:
    """The optimized graph of an ONNX model (import, shapes, folding), device-independent.

    Raises :class:`bitlet.CompileError` listing every unsupported node: what
    ``bitlet.compile`` checks before it touches a device.
    """
    return optimize(import_onnx(model, input_shapes))


def layer_options(graph, prune=None, bits=None, calibration=None) -> dict:
    """Merge ``prune``, ``bits`` and a calibration plan into ``{layer: LayerOptions}``."""
    names = [n.name for n in graph.nodes if n.op in KERNEL_TYPES]
    plan = getattr(calibration, "plan", calibration) or {}
    if not isinstance(plan, Mapping):
        raise CompileError(f"calibration must be a CalibrationResult or a dict {{layer: {{'prune': "
                           f"mask, 'bits': k}}}}, got {type(calibration).__name__}")
    options = {}
    for name in names:
        opts = LayerOptions()
        for value, key in ((prune, "prune"), (bits, "bits")):
            chosen = value.get(name, value.get("*")) if isinstance(value, Mapping) else value
            if chosen is not None:
                setattr(opts, key, _option_int(key, name, chosen))
        for key, value in plan.get(name, {}).items():
            if key not in ("prune", "bits"):
                raise CompileError(f"calibration: unknown option {key!r} for layer {name!r} "
                                   "(expected 'prune' and/or 'bits')")
            setattr(opts, key, _option_int(f"calibration {key}", name, value))
        if not 0 <= opts.prune <= hw.PRUNE_MASK:
            raise CompileError(f"prune mask of layer {name!r} must be a {hw.SIG_BITS}-bit mask, "
                               f"got {opts.prune:#x}")
        if opts.bits is not None and not 1 <= opts.bits <= hw.SIG_BITS:
            raise CompileError(f"bits of layer {name!r} must be a bit budget in 1..{hw.SIG_BITS} ones "
                               f"per significand, got {opts.bits}")
        options[name] = opts
    for source in (prune, bits, plan):
        if isinstance(source, Mapping):
            unknown = sorted(set(source) - set(names) - {"*"})
            if unknown:
                raise CompileError(f"per-layer options name unknown layers {unknown}; kernel layers "
                                   f"are {names}")
    return options


def _option_int(what: str, layer: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CompileError(f"{what} of layer {layer!r} must be an integer, got {value!r}")
    return int(value)
