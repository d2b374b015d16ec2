"""ONNX frontend, graph IR, host ops and scheduler (``bitlet.compiler``).

Pipeline: :mod:`~bitlet.compiler.frontend` (ONNX -> IR, shapes, constant
folding, one error listing every unsupported node) -> :mod:`~bitlet.compiler.fold`
(BatchNormalization/bias folding, ReLU fusion, ConvTranspose lowering) ->
:mod:`~bitlet.compiler.lower` (tiling by :mod:`~bitlet.compiler.schedule`,
weights by :mod:`~bitlet.compiler.weights`, instruction stream, buffer
plan) -> :class:`bitlet.program.Program`, run by :mod:`bitlet.runtime`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def compile(model: Any, *, device: Any = None, precision: str = "fp32", prune: Any = None,
            calibration: Any = None, bits: Any = None,
            input_shapes: Mapping[str, tuple] | None = None):
    """Compile an ONNX model for a Bitlet device and load it there.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        The ONNX model.
    device : bitlet.drivers.device.Device, optional
        Where it will run (its kernel's ID registers give N_PE and the buffer
        sizes the scheduler tiles for).  None: ``bitlet.open()``.
    precision : {"fp32", "fp16", "bf16", "fixed<n>"}
        Weight and activation format on the kernel.  ``"fixed8"`` (or
        ``"fixed"``): n-bit weights with per-channel scales, 16-bit
        activations with a per-tensor scale chosen by the host each run,
        integer bias, exact integer accumulation (see
        :mod:`bitlet.compiler.weights`); attention products (both operands
        computed at run time) stay fp32.
    prune : int or dict, optional
        24-bit column prune mask: one for every layer, or
        ``{layer name: mask}`` (``"*"`` = default).
    calibration : dict or CalibrationResult, optional
        Per-layer ``{"prune": mask, "bits": k}`` as chosen by
        :func:`bitlet.compiler.calibrate.calibrate` (its ``.plan``).
    bits : int or dict, optional
        Per-layer bit budget (at most ``k`` ones per weight significand).
    input_shapes : dict, optional
        ``{input: shape}`` for models with dynamic dimensions.

    Returns
    -------
    bitlet.runtime.CompiledModel

    Raises
    ------
    bitlet.CompileError
        Unsupported ops (listed together), NaN/Inf weights (layer named),
        a layer or model that does not fit the device (sizes given).

    Notes
    -----
    Where each op runs:

    * on the kernel: ``Conv`` (groups, depthwise, dilation, asymmetric
      pads), ``Gemm`` and ``MatMul`` with constant weights, ``MatMul`` with
      both operands computed at run time (attention; fp32 even in fixed
      mode), and ``ConvTranspose``: with ``kernel == stride``, no padding,
      dilation 1 and one group as a 1x1 kernel convolution followed by a
      host ``DepthToSpace`` (pixel shuffle); otherwise the host inserts the
      stride's zeros (``BitletZeroStuff``) and the kernel runs a stride-1
      convolution with the flipped weights.  ``BatchNormalization`` and
      per-channel ``Add``/``Sub`` after a kernel layer are folded into its
      weights and bias, ``Relu`` and ``Clip(0, x)`` into its activation.
      A convolution wider than the kernel's line or output-row buffer runs
      as column strips (host ``Slice``/``Concat`` around kernel layers).
    * on the host (numpy, :mod:`bitlet.compiler.hostops`): every other op
      of :func:`bitlet.compiler.frontend.supported_ops`.

    ``compiled.meta["layers"]`` lists the kernel layers and
    ``compiled.meta["steps"]`` the kernel segments, host ops and transfers.
    """
    from bitlet.compiler.fold import optimize
    from bitlet.compiler.frontend import import_onnx
    from bitlet.compiler.lower import lower
    from bitlet.compiler.schedule import KernelConfig
    from bitlet.runtime import CompiledModel, _driver_of, open_default_device

    graph = optimize(import_onnx(model, input_shapes))
    dev = open_default_device(device)
    cfg = KernelConfig.from_driver(_driver_of(dev))
    options = layer_options(graph, prune, bits, calibration)
    program = lower(graph, cfg, precision, options, model_name=graph.name)
    _check_memory(program, dev)
    if hasattr(dev, "load_program"):  # a board behind `bitlet agent`: upload once, run there
        compiled = dev.load_program(program)
    else:
        compiled = CompiledModel(program, dev)
    compiled.source_model = model  # for bitlet.compare (not saved with the program)
    return compiled


def layer_options(graph, prune=None, bits=None, calibration=None) -> dict:
    """Merge ``prune``, ``bits`` and a calibration plan into ``{layer: LayerOptions}``."""
    from bitlet import hw
    from bitlet.compiler.fold import KERNEL_TYPES
    from bitlet.compiler.lower import LayerOptions
    from bitlet.errors import CompileError

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
    import numpy as np

    from bitlet.errors import CompileError

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CompileError(f"{what} of layer {layer!r} must be an integer, got {value!r}")
    return int(value)


def _check_memory(program, device) -> None:
    from bitlet.errors import CompileError

    memory = (device.describe() if hasattr(device, "describe") else {}).get("memory", {})
    free = memory.get("largest_free", memory.get("free")) if isinstance(memory, dict) else None
    need = program.device_bytes
    if isinstance(free, int) and need > free:
        b = program.meta["buffers"]
        raise CompileError(f"the model needs {need} bytes of device memory (instructions + profile "
                           f"{b['blob_offset']}, weights {b['blob_bytes']}, activations "
                           f"{b['pool_bytes']}) but the device has {free} bytes free")
