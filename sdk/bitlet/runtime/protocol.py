"""What every loaded model offers: :class:`Model`, the one contract of
:class:`~bitlet.runtime.model.CompiledModel` (a program on a local device)
and :class:`~bitlet.runtime.remote.RemoteModel` (a program on a board behind
``bitlet agent``).

``bitlet.compile`` and ``bitlet.load`` return one or the other depending on
the device; code written against :class:`Model` runs on both.  Both classes
subclass it and so share its implemented members (``input_names``,
``output_names``, ``peak_device_bytes``, ``__call__``, ``save``: they only
read ``meta`` and ``program``); each implements the others.
``tests/test_runtime_protocol.py`` checks that both classes have every member
below with the same parameters.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bitlet.errors import BitletValueError
from bitlet.program import Program
from bitlet.runtime.profile import Profile

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
    last_timings: dict[str, Any]
    source_model: Any

    @property
    def input_names(self) -> list[str]:
        """Names of the model's inputs, in order."""
        return [i["name"] for i in self.meta["inputs"]]

    @property
    def output_names(self) -> list[str]:
        """Names of the model's outputs, in order."""
        return [o["name"] for o in self.meta["outputs"]]

    @property
    def base(self) -> int:
        """Device byte address of the program's instructions (its image offset 0)."""
        ...

    @property
    def peak_device_bytes(self) -> int:
        """Device memory the program uses (bytes): instructions, profile, weights and
        the activation pool."""
        return int(self.program.device_bytes)

    def __call__(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on the single input ``x`` (NCHW as in the ONNX model); the output(s)."""
        if len(self.input_names) != 1:
            raise BitletValueError(f"this model has inputs {self.input_names}: "
                                   "use .run({name: array})")
        out = self.run({self.input_names[0]: x})
        values = [out[n] for n in self.output_names]
        return values[0] if len(values) == 1 else tuple(values)

    def run(self, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
        """Run once: ``{input name: array}`` -> ``{output name: array}`` (plus
        every intermediate value with ``keep``, for :func:`bitlet.compare`)."""
        ...

    def profile(self, x: np.ndarray | Mapping[str, np.ndarray], *,
                trace: str | os.PathLike | None = None) -> Profile:
        """Run once and return the per-layer profile (print it for a table);
        ``trace``: also write the run's timeline there (Chrome trace / Perfetto
        JSON; a local device only)."""
        ...

    def read_profile_records(self) -> np.ndarray:
        """Profile records of the last run, shape [n_insn], dtype
        :func:`bitlet.isa.profile_dtype`."""
        ...

    def save(self, path: str | os.PathLike) -> None:
        """Save the program (weights, instructions, metadata) to one ``.npz`` file
        (``bitlet.load`` reads it)."""
        self.program.save(path)

    def close(self) -> None:
        """Free the program's device memory (idempotent)."""
        ...
