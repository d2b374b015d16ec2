"""``bitlet.compile`` and ``bitlet.load``: put a program on a device.

``compile`` is the thin wrapper around the pure compiler
(:func:`bitlet.compiler.build_program`): open the device, read its kernel
configuration, compile, check the memory, load.  ``load`` reads a saved
program and loads it.  Both load through :func:`load_program`: locally as a
:class:`~bitlet.runtime.model.CompiledModel`, or on a board behind ``bitlet
agent`` as a :class:`~bitlet.runtime.remote.RemoteModel` (the program is
uploaded once and run there); both are a :class:`~bitlet.runtime.protocol.Model`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bitlet.compiler import build_program, import_model
from bitlet.compiler.frontend import check_op_types, dynamic_inputs, load_model
from bitlet.drivers.remote import RemoteDevice
from bitlet.errors import CompileError
from bitlet.program import Program
from bitlet.program.schedule import KernelConfig
from bitlet.runtime.dynamic import DynamicModel, is_dynamic_path, load_dynamic
from bitlet.runtime.model import CompiledModel, driver_of, open_default_device
from bitlet.runtime.protocol import Model
from bitlet.runtime.remote import RemoteModel

__all__ = ["compile", "load", "load_program"]


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
        :mod:`bitlet.program.weights`); attention products (both operands
        computed at run time) stay fp32.
    prune : int or dict, optional
        24-bit column prune mask: one for every layer, or
        ``{layer name: mask}`` (``"*"`` = default).
    calibration : dict or CalibrationResult, optional
        Per-layer ``{"prune": mask, "bits": k}`` as chosen by
        :func:`bitlet.tools.calibrate.calibrate` (its ``.plan``).
    bits : int or dict, optional
        Per-layer bit budget (at most ``k`` ones per weight significand).
    input_shapes : dict, optional
        ``{input: shape}`` to compile a model with dynamic dimensions ahead of
        time, for these shapes.  Without them, such a model is a
        :class:`~bitlet.runtime.dynamic.DynamicModel`: each new input shape
        compiles on first use (later calls with that shape reuse it).

    Returns
    -------
    bitlet.runtime.protocol.Model
        A :class:`~bitlet.runtime.model.CompiledModel`, or a
        :class:`~bitlet.runtime.remote.RemoteModel` when ``device`` is a board
        behind ``bitlet agent``.

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
    * on the host (numpy, :mod:`bitlet.program.hostops`): every other op
      of :func:`bitlet.compiler.frontend.supported_ops`.

    ``compiled.meta["layers"]`` lists the kernel layers and
    ``compiled.meta["steps"]`` the kernel segments, host ops and transfers.
    """
    proto = load_model(model)  # read and parsed once: every step below takes the ModelProto
    if dynamic_inputs(proto, input_shapes):
        # symbolic dimensions left: compile each shape on first use, like onnxruntime
        check_op_types(proto)  # unsupported op types fail before a device is touched
        return DynamicModel(proto, open_default_device(device),
                            {"precision": precision, "prune": prune, "calibration": calibration,
                             "bits": bits}, source_model=model)
    graph = import_model(proto, input_shapes)  # unsupported ops fail before a device is touched
    dev = open_default_device(device)
    program = build_program(graph, KernelConfig.from_driver(driver_of(dev)), precision=precision,
                            prune=prune, calibration=calibration, bits=bits)
    _check_memory(program, dev)
    compiled = load_program(program, dev)
    compiled.source_model = model  # for bitlet.compare (not saved with the program)
    return compiled


def _check_memory(program, device) -> None:
    memory = (device.describe() if hasattr(device, "describe") else {}).get("memory", {})
    free = memory.get("largest_free", memory.get("free")) if isinstance(memory, dict) else None
    need = program.device_bytes
    if isinstance(free, int) and need > free:
        b = program.meta["buffers"]
        raise CompileError(f"the model needs {need} bytes of device memory (instructions + profile "
                           f"{b['blob_offset']}, weights {b['blob_bytes']}, activations "
                           f"{b['pool_bytes']}) but the device has {free} bytes free")


def load_program(program: Program, device: Any = None) -> Model:
    """Load a compiled program on ``device`` (None: ``bitlet.open()``).

    Returns
    -------
    bitlet.runtime.protocol.Model
        A :class:`~bitlet.runtime.remote.RemoteModel` on a board behind
        ``bitlet agent`` (a :class:`~bitlet.drivers.remote.RemoteDevice`: the
        program is uploaded once and runs there), else a
        :class:`~bitlet.runtime.model.CompiledModel` run from this host.

    Raises
    ------
    bitlet.OverlayMismatch
        The device's kernel configuration or ISA differs from the program's.
    """
    dev = open_default_device(device)
    if isinstance(dev, RemoteDevice):
        return RemoteModel(program, dev)
    return CompiledModel(program, dev)


def load(path: str | os.PathLike, device: Any = None) -> Model:
    """Load a program saved by ``model.save(path)`` onto ``device`` (None: ``bitlet.open()``).

    Raises :class:`bitlet.OverlayMismatch` when the device's kernel
    configuration or ISA differs from the one the program was compiled for.
    A :class:`~bitlet.runtime.dynamic.DynamicModel`'s file loads as one: the
    shapes it holds are ready, new ones compile on demand.
    """
    if is_dynamic_path(path):
        return load_dynamic(path, open_default_device(device))
    return load_program(Program.load(path), device)
