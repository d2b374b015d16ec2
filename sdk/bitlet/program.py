"""A compiled model: device image, instruction stream, host steps, metadata.

A :class:`Program` is plain data and device independent:

``image`` (uint8)
    The initial contents of the program's one device buffer: instructions
    (``hw.INSN_BYTES`` each) at offset 0, then the profile area, the weights
    and biases in device layout; the activation pool after it is not stored
    (only its size).  Every address field of the instructions holds an
    *offset* into this buffer; :meth:`Program.relocated_image` adds the
    buffer's device address when the runtime loads it.
``meta`` (JSON)
    Format version, ISA version, kernel configuration, SDK version, inputs
    and outputs (names, shapes, dtypes), the steps (host ops, uploads,
    kernel runs, downloads), the device values (offset, layout, format), the
    layers (for the profile), the buffer plan and its peak size.
``arrays``
    Host constants read by host steps (and attribute tensors).

Serialised as ONE ``.npz`` file read with ``allow_pickle=False`` (the
metadata is a JSON string stored as a uint8 array), so a program received
over a wire can be loaded safely.  :meth:`Program.digest` is a SHA-256
content hash for caching.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.errors import BitletTypeError, BitletValueError

FORMAT = "bitlet-program"
FORMAT_VERSION = 1
_META = "__meta__"
_IMAGE = "__image__"
#: (instruction word of the low half, bit in the relocation mask)
ADDRESS_FIELDS = ("ACT", "WGT", "BIAS", "OUT", "ACC")


_STEPS = ("host", "upload", "download", "kernel", "weights", "fixbias")


def check_feeds(meta: dict, feeds: Any) -> dict[str, np.ndarray]:
    """Check a run's inputs against a program's metadata and cast them.

    Parameters
    ----------
    meta : dict
        ``Program.meta`` (its ``"inputs"``: name, shape, dtype).
    feeds : Mapping
        ``{input name: array}``.

    Returns
    -------
    dict
        ``{input name: array}`` in ``meta["inputs"]`` order, cast to the
        compiled dtypes (no copy when already right).
    """
    names = [spec["name"] for spec in meta["inputs"]]
    if not isinstance(feeds, Mapping):
        raise BitletTypeError(f"feeds must be a dict {{name: array}}, got {type(feeds).__name__}")
    unknown = sorted(set(feeds) - set(names))
    missing = sorted(set(names) - set(feeds))
    if unknown or missing:
        raise BitletValueError(f"feeds: inputs {names} expected; missing {missing}, "
                               f"unknown {unknown}")
    checked = {}
    for spec in meta["inputs"]:
        x = np.asarray(feeds[spec["name"]])
        if tuple(x.shape) != tuple(spec["shape"]):
            raise BitletValueError(f"input {spec['name']!r}: shape {tuple(x.shape)}, but the "
                                   f"model was compiled for {tuple(spec['shape'])}")
        try:
            checked[spec["name"]] = x.astype(spec["dtype"], copy=False)
        except (TypeError, ValueError) as exc:
            raise BitletTypeError(f"input {spec['name']!r}: cannot convert {x.dtype} to "
                                  f"{spec['dtype']}: {exc}") from None
    return checked


def _validate_step(step: dict, devices: dict, host_ops: dict, n_insn: int) -> None:
    op = step.get("op")
    if op not in _STEPS:
        raise BitletValueError(f"program: unknown step {op!r}")
    if op == "host" and step.get("type") not in host_ops:
        raise BitletValueError(f"program: unknown host op {step.get('type')!r}")
    if op == "kernel" and not 0 <= step["first"] <= step["first"] + step["count"] <= n_insn:
        raise BitletValueError("program: a kernel step runs instructions the program lacks")
    for key in ("dev", "input"):
        if key in step and step[key] not in devices:
            raise BitletValueError(f"program: step {op!r} names an unknown device value {step[key]!r}")


@dataclass
class Program:
    """See the module docstring."""

    meta: dict[str, Any]
    image: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    # -- geometry -------------------------------------------------------
    @property
    def n_insn(self) -> int:
        return int(self.meta["buffers"]["n_insn"])

    @property
    def device_bytes(self) -> int:
        """Size of the device buffer the program needs (image + activation pool)."""
        return int(self.meta["buffers"]["total_bytes"])

    def insn_words(self) -> np.ndarray:
        """Instructions as uint32 ``[n_insn, hw.INSN_WORDS]`` (addresses as offsets)."""
        nbytes = self.n_insn * hw.INSN_BYTES
        return self.image[:nbytes].view("<u4").reshape(self.n_insn, hw.INSN_WORDS)

    def relocated_image(self, base: int) -> np.ndarray:
        """The image with every used address field moved to device address ``base``."""
        image = self.image.copy()
        words = image[: self.n_insn * hw.INSN_BYTES].view("<u4").reshape(self.n_insn, hw.INSN_WORDS)
        reloc = self.arrays["__reloc__"]
        for bit, name in enumerate(ADDRESS_FIELDS):
            lo = getattr(hw, f"W_{name}_LO")
            rows = (reloc >> bit) & 1 == 1
            addr = words[rows, lo].astype(np.uint64) | (words[rows, lo + 1].astype(np.uint64) << 32)
            addr += np.uint64(base)
            words[rows, lo] = (addr & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            words[rows, lo + 1] = (addr >> np.uint64(32)).astype(np.uint32)
        return image

    # -- validation -----------------------------------------------------
    def validate(self) -> None:
        """Check a (possibly received) program before it touches a device.

        Every instruction operand (its address offset plus the extent the
        kernel will read or write) must lie inside the program's own buffer,
        every step must be a known kind naming known values and host ops.
        Raises :class:`bitlet.BitletValueError` describing the first problem.
        """
        from bitlet.compiler.hostops import HOST_OPS
        from bitlet.isa import Insn, operand_bytes

        b, total = self.meta["buffers"], self.device_bytes
        if len(self.image) != b["image_bytes"] or b["pool_offset"] + b["pool_bytes"] != total:
            raise BitletValueError("program: image and buffer plan sizes disagree")
        reloc = self.arrays.get("__reloc__", np.zeros(0, np.uint8))
        if len(reloc) != self.n_insn or self.n_insn * hw.INSN_BYTES > b["profile_offset"]:
            raise BitletValueError("program: instruction count and relocation table disagree")
        for i, words in enumerate(self.insn_words()):
            insn = Insn.decode(words)
            for field_name, size in operand_bytes(insn).items():
                bit = ADDRESS_FIELDS.index(field_name.upper())
                start = getattr(insn, field_name)
                if not (reloc[i] >> bit) & 1 or start + size > total:
                    raise BitletValueError(f"program: instruction {i} operand {field_name} "
                                           f"[{start}, {start + size}) is outside the program's "
                                           f"{total}-byte buffer")
        devices = self.meta["devices"]
        for name, d in devices.items():
            if d["offset"] < 0 or d["offset"] + d["nbytes"] > b["pool_bytes"]:
                raise BitletValueError(f"program: device value {name!r} is outside the pool")
        for step in self.meta["steps"]:
            _validate_step(step, devices, HOST_OPS, self.n_insn)

    # -- serialisation --------------------------------------------------
    def digest(self) -> str:
        """SHA-256 of the metadata, the image and every array (hex)."""
        h = hashlib.sha256(json.dumps(self.meta, sort_keys=True).encode())
        h.update(self.image.tobytes())
        for key in sorted(self.arrays):
            arr = np.ascontiguousarray(self.arrays[key])
            h.update(key.encode() + str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def to_bytes(self) -> bytes:
        """The program as the bytes of one ``.npz`` file."""
        buf = io.BytesIO()
        self._write(buf)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> None:
        """Write the program to ``path`` (an ``.npz`` file), atomically."""
        path = os.fspath(path)
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                self._write(f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _write(self, f) -> None:
        meta = dict(self.meta, format=FORMAT, format_version=FORMAT_VERSION)
        blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        np.savez(f, **{_META: blob, _IMAGE: self.image}, **self.arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Program:
        return cls._read(io.BytesIO(data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Program:
        """Read a program written by :meth:`save` (never unpickles anything)."""
        if not os.path.exists(path):
            raise BitletValueError(f"path: no such program file {os.fspath(path)!r}")
        with open(path, "rb") as f:
            return cls._read(io.BytesIO(f.read()))

    @classmethod
    def _read(cls, f) -> Program:
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise BitletValueError(f"not a Bitlet program file: {exc}") from exc
        if _META not in arrays or _IMAGE not in arrays:
            raise BitletValueError("not a Bitlet program file (no metadata/image member)")
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
        fmt, version = meta.pop("format", None), meta.pop("format_version", None)
        if fmt != FORMAT or version != FORMAT_VERSION:
            raise BitletValueError(f"unsupported program format {fmt!r} version {version!r} "
                                   f"(this SDK reads {FORMAT!r} version {FORMAT_VERSION})")
        return cls(meta, arrays.pop(_IMAGE), arrays)
