"""Models with dynamic input dimensions, as onnxruntime runs them.

``bitlet.compile(model)`` of a model whose inputs have symbolic dimensions
(batch ``N``, image ``H``, ``W``) and no ``input_shapes`` returns a
:class:`DynamicModel`: the first call with a new input shape compiles that
shape (a progress bar appears when it takes more than a second), later calls
with the same shape reuse it.  The compiled shapes are kept in a bounded
cache (least recently used first out).

On a local device (simulator, board) every shape of one model lives in ONE
device buffer (:class:`~bitlet.runtime.arena.Arena`): each distinct weight image is uploaded once
and shared by every shape whose program has the same weight bytes (the
tiling of most models does not depend on the image size), one activation
pool serves all of them (the largest any shape needs; runs are sequential),
and each shape adds only its instructions and profile area.  The kernel's
memory window is that buffer.  When a new shape does not fit, the buffer is
reallocated (at least twice as large) and every live shape placed again:
weights are written once per buffer layout (:attr:`DynamicModel.uploads`),
never once per shape.

On a board behind ``bitlet agent`` each shape is a
:class:`~bitlet.runtime.remote.RemoteModel` loaded in the model's weights
group: the agent keeps the same kind of arena for it, so there too each
distinct weight image crosses the link once (the programs of later shapes go
without it and name it by its SHA-256) and is written to device memory once
per buffer layout.  An agent from before this feature (no ``shared_weights``
in its handshake) gets each shape whole, weights included, and a
RuntimeWarning says so once.

``save`` writes the ONNX model, the compile options and every program
compiled so far into one file; ``bitlet.load`` of it gives a DynamicModel
that compiles new shapes on demand.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bitlet.compiler import build_program, import_model
from bitlet.compiler.frontend import declared_inputs, load_model
from bitlet.drivers.remote import RemoteDevice
from bitlet.errors import BitletTypeError, BitletValueError, ProgramError
from bitlet.npz import MAX_BYTES, read_npz
from bitlet.program import Program
from bitlet.program.schedule import KernelConfig
from bitlet.runtime.arena import Arena, Placement
from bitlet.runtime.model import CompiledModel, driver_of
from bitlet.runtime.remote import RemoteModel

__all__ = ["FORMAT", "Arena", "DynamicModel", "Placement", "is_dynamic_path", "load_dynamic"]

FORMAT = "bitlet-dynamic"
FORMAT_VERSION = 1
DEFAULT_CACHE = 8
_META = "__dynamic__"
_ONNX = "__onnx__"
_COMPILE_OPTIONS = ("precision", "prune", "calibration", "bits")


# --------------------------------------------------------------------------- the model
def _shape_key(shapes: Mapping[str, tuple]) -> tuple:
    return tuple(sorted((name, tuple(int(d) for d in shape)) for name, shape in shapes.items()))


def _shape_text(key: tuple) -> str:
    return ", ".join(f"{name}=({', '.join(map(str, shape))})" for name, shape in key)


class DynamicModel:
    """An ONNX model compiled per input shape on first use (a bounded cache).

    Parameters
    ----------
    model : onnx.ModelProto or bytes
        The ONNX model (parsed once here; every shape compiles from it).
    device : Device
        Where it runs.
    options : dict
        ``bitlet.compile`` options (precision, prune, calibration, bits).
    cache_size : int
        How many compiled shapes stay loaded on the device (default 8).
    """

    def __init__(self, model: Any, device: Any, options: Mapping[str, Any], *,
                 cache_size: int = DEFAULT_CACHE, programs: Mapping[tuple, Program] | None = None,
                 source_model: Any = None) -> None:
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 1:
            raise BitletValueError(f"cache_size must be an int >= 1, got {cache_size!r}")
        self._proto = proto = load_model(model)
        self.device = device
        self.options = {k: options.get(k) for k in _COMPILE_OPTIONS}
        self.cache_size = cache_size
        self.name = proto.graph.name or "model"
        self.declared = declared_inputs(proto)
        self._outputs = [o.name for o in proto.graph.output]
        self._programs: dict[tuple, Program] = dict(programs or {})
        self._loaded: OrderedDict[tuple, Any] = OrderedDict()
        remote = isinstance(device, RemoteDevice)
        self._arena = None if remote else Arena(device)
        self._group = os.urandom(8).hex() if remote else None  # its arena on the agent
        self._sent = 0  # weight images sent over the link (remote)
        self._config = None
        self.source_model = source_model if source_model is not None else proto
        self.last_timings: dict[str, Any] = {}
        self._current = None

    # -- what the model is ------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.declared]

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def shapes(self) -> list[dict[str, tuple]]:
        """The input shapes compiled so far (``[{input: shape}]``)."""
        return [dict(key) for key in self._programs]

    @property
    def uploads(self) -> int:
        """Weight images written to the device so far (a local device) or sent over
        the link (a board behind ``bitlet agent``; its ``describe()`` has the
        writes to the board's memory, ``agent_stats["weight_writes"]``)."""
        return self._arena.uploads if self._arena is not None else self._sent

    @property
    def meta(self) -> dict:
        """The metadata of the shape run last (or compiled first)."""
        model = self._current or (next(iter(self._loaded.values()), None))
        if model is None:
            raise BitletValueError("this dynamic model has not run yet: its metadata depends on "
                                   f"the input shapes ({self._declared_text()})")
        return model.meta

    @property
    def peak_device_bytes(self) -> int:
        if self._arena is not None:
            return int(self._arena.size)
        grouped = [m.device_bytes for m in self._loaded.values() if m.weights_group is not None]
        return max(grouped, default=0) + sum(m.peak_device_bytes for m in self._loaded.values()
                                             if m.weights_group is None)

    def _declared_text(self) -> str:
        return ", ".join(f"{s['name']} ({', '.join(map(str, s['shape']))})" for s in self.declared)

    # -- specialisation ----------------------------------------------------------
    def _check(self, feeds: Mapping[str, np.ndarray]) -> tuple:
        if not isinstance(feeds, Mapping):
            raise BitletTypeError(f"feeds must be a dict {{name: array}}, got {type(feeds).__name__}")
        names = self.input_names
        unknown, missing = sorted(set(feeds) - set(names)), sorted(set(names) - set(feeds))
        if unknown or missing:
            raise BitletValueError(f"feeds: inputs {names} expected; missing {missing}, "
                                   f"unknown {unknown}")
        shapes = {}
        for spec in self.declared:
            shape = tuple(np.shape(feeds[spec["name"]]))
            dims = spec["shape"]
            if len(shape) != len(dims):
                raise BitletValueError(f"input {spec['name']!r} has shape {shape}; the model's input "
                                       f"is ({', '.join(map(str, dims))}): {len(dims)} dimensions")
            for i, (d, g) in enumerate(zip(dims, shape)):
                if isinstance(d, int) and d != g:
                    raise BitletValueError(f"input {spec['name']!r} has shape {shape}; the model's "
                                           f"input is ({', '.join(map(str, dims))}): dimension {i} "
                                           f"must be {d}")
                if g <= 0:
                    raise BitletValueError(f"input {spec['name']!r} has shape {shape}: dimension "
                                           f"{i} ({d}) must be positive")
            shapes[spec["name"]] = shape
        return _shape_key(shapes)

    def specialize(self, shapes: Mapping[str, tuple]) -> Any:
        """The model compiled (and loaded) for these input shapes: compiled on
        first use, then taken from the cache."""
        key = _shape_key(shapes)
        model = self._loaded.get(key)
        if model is not None:
            self._loaded.move_to_end(key)
            return model
        program = self._programs.get(key)
        bar = tqdm(total=2, desc=f"bitlet: compiling {self.name} for {_shape_text(key)}",
                   delay=1.0, leave=False, file=sys.stderr, disable=None)
        try:
            if program is None:
                if self._config is None:
                    self._config = KernelConfig.from_driver(driver_of(self.device))
                graph = import_model(self._proto, dict(key))
                program = build_program(graph, self._config, **self.options)
                self._programs[key] = program
            bar.update(1)
            model = self._load(program)
            bar.update(1)
        finally:
            bar.close()
        self._loaded[key] = model
        while len(self._loaded) > self.cache_size:
            _, old = self._loaded.popitem(last=False)
            self._unload(old)
        return model

    def _load(self, program: Program) -> Any:
        if self._arena is None:
            model = RemoteModel(program, self.device, weights_group=self._group)
            self._sent += model.weight_bytes_sent > 0
            return model
        placement = self._arena.place(program)
        return CompiledModel(program, self.device, placement=placement)

    def _unload(self, model: Any) -> None:
        placement = getattr(model, "placement", None)
        if placement is not None:
            self._arena.release(placement)
        model.close()

    # -- running -------------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on the single input ``x``."""
        if len(self.input_names) != 1:
            raise BitletValueError(f"this model has inputs {self.input_names}: use .run({{name: array}})")
        out = self.run({self.input_names[0]: x})
        values = [out[n] for n in self.output_names]
        return values[0] if len(values) == 1 else tuple(values)

    def run(self, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
        """Run at the feeds' shapes (compiling them on first use)."""
        model = self.specialize(dict(self._check(feeds)))
        self._current = model
        out = model.run(feeds, keep=keep)
        self.last_timings = model.last_timings
        return out

    def profile(self, x: np.ndarray | Mapping[str, np.ndarray], *,
                trace: str | os.PathLike | None = None):
        """Run once and return the per-layer profile of that shape (``trace``: as
        :meth:`CompiledModel.profile <bitlet.runtime.model.CompiledModel.profile>`)."""
        feeds = x if isinstance(x, Mapping) else {self.input_names[0]: x}
        model = self.specialize(dict(self._check(feeds)))
        self._current = model
        return model.profile(feeds) if trace is None else model.profile(feeds, trace=trace)

    def stream(self, frames: Any, *, slots: int = 2, trace: str | os.PathLike | None = None):
        """:meth:`CompiledModel.stream <bitlet.runtime.model.CompiledModel.stream>` at
        the shape of the first frame (every frame of a stream has one shape)."""
        items = iter(frames)
        try:
            first = next(items)
        except StopIteration:
            return iter(())
        feeds = first if isinstance(first, Mapping) else {self.input_names[0]: first}
        model = self.specialize(dict(self._check(feeds)))
        if not hasattr(model, "stream"):
            raise BitletValueError("streaming needs a local device (not a board behind "
                                   "`bitlet agent`)")
        self._current = model
        return model.stream(itertools.chain([first], items), slots=slots, trace=trace)

    def read_profile_records(self) -> np.ndarray:
        if self._current is None:
            raise BitletValueError("no run yet: nothing to read")
        return self._current.read_profile_records()

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the ONNX model, the options and every shape compiled so far to one
        ``.npz`` file (``bitlet.load`` gives a DynamicModel that compiles new
        shapes on demand)."""
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "options": self.options,
                "cache_size": self.cache_size,
                "shapes": [[list(pair) for pair in key] for key in self._programs]}
        members = {_META: np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8),
                   _ONNX: np.frombuffer(self._proto.SerializeToString(), np.uint8)}
        for i, program in enumerate(self._programs.values()):
            members[f"program_{i}"] = np.frombuffer(program.to_bytes(), np.uint8)
        path = os.fspath(path)
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **members)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def close(self) -> None:
        """Free every loaded shape and the device buffer (idempotent)."""
        while self._loaded:
            _, model = self._loaded.popitem()
            self._unload(model)
        if self._arena is not None:
            self._arena.close()
        self._current = None

    def __repr__(self) -> str:
        return (f"<DynamicModel {self.name!r} inputs {self._declared_text()}, "
                f"{len(self._programs)} shape(s) compiled, {len(self._loaded)} loaded>")


def is_dynamic_file(members: Mapping[str, np.ndarray]) -> bool:
    return _META in members and _ONNX in members


def is_dynamic_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file written by :meth:`DynamicModel.save` (its zip
    directory names the dynamic model's metadata member)."""
    try:
        with zipfile.ZipFile(os.fspath(path)) as archive:
            return f"{_META}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_dynamic(source: str | os.PathLike | bytes, device: Any, *,
                 max_bytes: int = MAX_BYTES) -> DynamicModel:
    """Read a file written by :meth:`DynamicModel.save` (bounded, no pickle) onto ``device``."""
    what = "dynamic model" if isinstance(source, bytes) else os.fspath(source)
    data = io.BytesIO(source) if isinstance(source, bytes) else open(os.fspath(source), "rb")  # noqa: SIM115 - closed by the with below
    with data:
        members = read_npz(data, max_bytes=max_bytes, what=what)
    if not is_dynamic_file(members):
        raise ProgramError(f"{what}: not a saved dynamic Bitlet model")
    try:
        meta = json.loads(members[_META].tobytes().decode("utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format {meta.get('format')!r} version {meta.get('format_version')!r}")
        shapes = [_shape_key({name: tuple(shape) for name, shape in key}) for key in meta["shapes"]]
        options = {k: meta["options"].get(k) for k in _COMPILE_OPTIONS}
        cache_size = int(meta["cache_size"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProgramError(f"{what}: malformed dynamic-model metadata ({exc})") from None
    programs = {}
    for i, key in enumerate(shapes):
        member = members.get(f"program_{i}")
        if member is None:
            raise ProgramError(f"{what}: program_{i} is missing")
        programs[key] = Program.from_bytes(member.tobytes(), max_bytes=max_bytes)
    return DynamicModel(members[_ONNX].tobytes(), device, options, cache_size=cache_size,
                        programs=programs)
