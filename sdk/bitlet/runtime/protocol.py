"""What every loaded model offers: :class:`Model`, the one contract of
:class:`~bitlet.runtime.model.CompiledModel` (a program on a local device)
and :class:`~bitlet.runtime.remote.RemoteModel` (a program on a board behind
``bitlet agent``).

``bitlet.compile`` and ``bitlet.load`` return one or the other depending on
the device; code written against :class:`Model` runs on both.
``tests/test_runtime_protocol.py`` checks that both classes have every member
below with the same parameters.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bitlet.program import Program
from bitlet.runtime.model import Profile

__all__ = ["Model"]


@runtime_checkable
class Model(Protocol):
    """A compiled program loaded on a device, called like an onnxruntime session.

    Attributes
    ----------
    program : bitlet.program.Program
        The compiled program (instructions, weights, metadata).
    device : bitlet.drivers.device.Device
        Where it is loaded.
    meta : dict
        ``program.meta``: ``inputs``, ``outputs``, ``layers``, ``steps``, ...
    base : int
        Device byte address of the program's buffer.
    last_timings : dict
        Timings of the last run, seconds: ``host`` (list of ``(node, op,
        seconds)``), ``upload``, ``download``, ``kernel``, ``kernel_runs``
        (list of ``(first insn, count, seconds)``); a remote model adds
        ``wall`` (link included).
    source_model : ONNX model or None
        What ``bitlet.compile`` was given (for :func:`bitlet.compare`).
    """

    program: Program
    device: Any
    meta: dict
    base: int
    last_timings: dict[str, Any]
    source_model: Any

    @property
    def input_names(self) -> list[str]:
        """Names of the model's inputs, in order."""
        ...

    @property
    def output_names(self) -> list[str]:
        """Names of the model's outputs, in order."""
        ...

    @property
    def peak_device_bytes(self) -> int:
        """Device memory the program uses (bytes)."""
        ...

    def __call__(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on the single input ``x`` (NCHW as in the ONNX model); the output(s)."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
        """Run once: ``{input name: array}`` -> ``{output name: array}`` (plus
        every intermediate value with ``keep``, for :func:`bitlet.compare`)."""
        ...

    def profile(self, x: np.ndarray | Mapping[str, np.ndarray]) -> Profile:
        """Run once and return the per-layer profile (print it for a table)."""
        ...

    def read_profile_records(self) -> np.ndarray:
        """Profile records of the last run, shape [n_insn], dtype
        :func:`bitlet.isa.profile_dtype`."""
        ...

    def save(self, path: str | os.PathLike) -> None:
        """Save the program to one ``.npz`` file (``bitlet.load`` reads it)."""
        ...

    def close(self) -> None:
        """Free the program's device memory (idempotent)."""
        ...
