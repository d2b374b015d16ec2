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

Serialised as ONE ``.npz`` file (the metadata is a JSON string stored as a
uint8 array), read by one bounded reader (:func:`bitlet.npz.read_npz`: no
pickle, declared sizes checked before anything is inflated) and validated
(:meth:`Program.validate`) for a local file and a program received over a
wire alike, so neither can reach memory outside the program's own buffer.
:meth:`Program.digest` is a SHA-256 content hash for caching.

Buffer layout (``meta["buffers"]``, byte offsets in the one device buffer)::

    0                 instructions   n_insn * hw.INSN_BYTES
    profile_offset    profile area   n_insn * hw.PROF_BYTES  (the kernel writes it)
    blob_offset       weights, biases blob_bytes             (read only)
    image_bytes       end of the stored image
    pool_offset       activations    pool_bytes              (the kernel writes it)
    total_bytes       = pool_offset + pool_bytes

The kernel writes only the profile area and the pool (OUT, ACC operands);
it reads operands from the weights and the pool.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.errors import BitletTypeError, BitletValueError, ProgramError
from bitlet.isa import Insn, operand_bytes
from bitlet.npz import MAX_BYTES, read_npz
from bitlet.program.hostops import HOST_OPS
from bitlet.program.schedule import KernelConfig

FORMAT = "bitlet-program"
FORMAT_VERSION = 1
_META = "__meta__"
_IMAGE = "__image__"
_OMITTED = "weights_omitted"   # metadata key of a program written without its weights
#: (instruction word of the low half, bit in the relocation mask)
ADDRESS_FIELDS = ("ACT", "WGT", "BIAS", "OUT", "ACC")


_STEPS = ("host", "upload", "download", "kernel", "weights", "fixbias")
#: metadata keys and their JSON types
_META_KEYS = {"buffers": dict, "devices": dict, "steps": list, "layers": list, "inputs": list,
              "outputs": list, "kernel": dict, "precision": str, "model": str}
_BUFFER_KEYS = ("n_insn", "profile_offset", "blob_offset", "blob_bytes", "image_bytes",
                "pool_offset", "pool_bytes", "total_bytes")
#: alignment of the activation pool (and every region the compiler places)
POOL_ALIGN = 64
#: deepest nesting of lists and objects accepted in the metadata
MAX_META_DEPTH = 32
#: bytes per element of a device value's format
_FMT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fixed": 4}


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
        checked[spec["name"]] = _feed_dtype(spec["name"], x, np.dtype(spec["dtype"]))
    return checked


def _feed_dtype(name: str, x: np.ndarray, want: np.dtype) -> np.ndarray:
    """``x`` in the input's declared dtype: as is, or exactly widened (float16 into
    float32, int32 into int64, ...); anything else is refused, as onnxruntime
    refuses it, naming both dtypes (a silent cast could round or wrap)."""
    have = x.dtype
    if have == want:
        return x
    same_kind = (have.kind == "f" and want.kind == "f") or (have.kind in "iub" and want.kind in "iu")
    if same_kind and np.can_cast(have, want, casting="safe"):
        return x.astype(want)
    raise BitletTypeError(f"input {name!r} is {have}, but the model's input is {want}: convert it "
                          f"(x.astype(np.{want.name})); only exact widenings are done for you")


def _int(value: Any, where: str, lo: int = 0) -> int:
    """``value`` as an int >= ``lo`` (not a bool or a float), else ProgramError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ProgramError(f"program: {where} must be an int >= {lo}, got {value!r}")
    return value


def _field(d: Any, key: str, where: str, kind: type | tuple = object) -> Any:
    """``d[key]`` of JSON type ``kind``, else ProgramError naming ``where.key``."""
    if not isinstance(d, dict):
        raise ProgramError(f"program: {where} must be a JSON object, got {type(d).__name__}")
    if key not in d:
        raise ProgramError(f"program: {where}.{key} is missing")
    if kind is int:
        return _int(d[key], f"{where}.{key}")
    if not isinstance(d[key], kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProgramError(f"program: {where}.{key} must be a JSON {name}, got {d[key]!r:.60}")
    return d[key]


def _check_depth(value: Any) -> None:
    """Refuse metadata nested deeper than :data:`MAX_META_DEPTH` (iteratively)."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_META_DEPTH:
            raise ProgramError(f"program: the metadata is nested deeper than {MAX_META_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise ProgramError(f"program: {where} must be a list of at most 8 ints, got {value!r:.60}")
    return tuple(_int(n, where) for n in value)


def _validate_step(step: dict, program: Program, host_ops: dict) -> None:
    devices, arrays = program.meta["devices"], program.arrays
    op = _field(step, "op", "step", str)
    where = f"step {op!r}"
    if op not in _STEPS:
        raise ProgramError(f"program: unknown step {op!r}")
    if op == "host" and step.get("type") not in host_ops:
        raise ProgramError(f"program: unknown host op {step.get('type')!r}")
    if op == "kernel":
        first, count = _field(step, "first", where, int), _field(step, "count", where, int)
        if first + count > program.n_insn:
            raise ProgramError(f"program: a kernel step runs instructions [{first}, "
                               f"{first + count}), the program has {program.n_insn}")
    for key in ("dev", "input"):
        if key in step and (not isinstance(step[key], str) or step[key] not in devices):
            raise ProgramError(f"program: {where} names an unknown device value {step[key]!r}")
    names = [step.get("scale"), step.get("bias")] if op == "fixbias" else []
    if isinstance(step.get("dequant"), dict):
        names.append(step["dequant"].get("scale"))
    names += [v["__array__"] for v in (step.get("attrs") or {}).values()
              if isinstance(v, dict) and "__array__" in v]
    for name in names:
        if not isinstance(name, str) or name not in arrays:
            raise ProgramError(f"program: {where} reads array {name!r}, which the program lacks")
    if op in ("upload", "download"):
        info = devices[_field(step, "dev", where, str)]
        fmt = _field(step, "fmt", where, str) if op == "upload" else info["fmt"]
        size = math.prod(_shape(_field(step, "shape", where), f"{where}.shape"))
        if fmt not in _FMT_BYTES or size * _FMT_BYTES[fmt] > info["nbytes"]:
            raise ProgramError(f"program: {where}.shape {step['shape']} ({fmt!r}) does not fit "
                               f"device value {step['dev']!r} of {info['nbytes']} bytes")
        if op == "download" and size != math.prod(info["shape"]):
            raise ProgramError(f"program: {where}.shape {step['shape']} disagrees with device "
                               f"value {step['dev']!r} of shape {info['shape']}")


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
        """Size of the device buffer the program needs (image + activation pool),
        rounded up to whole m_axi beats: the kernel's memory window is this
        buffer, and the kernel addresses memory in beats of ``hw.AXI_BYTES``."""
        total = int(self.meta["buffers"]["total_bytes"])
        return -(-total // hw.AXI_BYTES) * hw.AXI_BYTES

    def insn_words(self) -> np.ndarray:
        """Instructions as uint32 ``[n_insn, hw.INSN_WORDS]`` (addresses as offsets)."""
        nbytes = self.n_insn * hw.INSN_BYTES
        return self.image[:nbytes].view("<u4").reshape(self.n_insn, hw.INSN_WORDS)

    def relocated_image(self, base: int, *, blob_base: int | None = None,
                        pool_base: int | None = None) -> np.ndarray:
        """The image with every used address field moved to device addresses.

        Parameters
        ----------
        base : int
            Device address of the image's offset 0 (instructions, profile).
        blob_base, pool_base : int, optional
            Device addresses of the weights region (``blob_offset``) and of the
            activation pool (``pool_offset``) when they live elsewhere (the
            shared buffer of a dynamic model); default: where the one-buffer
            layout puts them (``base + offset``).  Every operand lies inside one
            region (:meth:`validate` checks it), so each is moved with its region.

        Returns
        -------
        ndarray, uint8 [image_bytes]
        """
        image = self.image.copy()
        words = image[: self.n_insn * hw.INSN_BYTES].view("<u4").reshape(self.n_insn, hw.INSN_WORDS)
        reloc = self.arrays["__reloc__"]
        b = self.meta["buffers"]
        blob_lo, blob_hi = b["blob_offset"], b["blob_offset"] + b["blob_bytes"]
        wrap = 1 << 64   # shifts as unsigned 64-bit numbers (a region may move down)
        shift_blob = np.uint64(((base + blob_lo if blob_base is None else blob_base) - blob_lo) % wrap)
        shift_pool = np.uint64(((base + b["pool_offset"] if pool_base is None else pool_base)
                                - b["pool_offset"]) % wrap)
        for bit, name in enumerate(ADDRESS_FIELDS):
            lo = getattr(hw, f"W_{name}_LO")
            rows = (reloc >> bit) & 1 == 1
            addr = words[rows, lo].astype(np.uint64) | (words[rows, lo + 1].astype(np.uint64) << 32)
            shift = np.where(addr >= np.uint64(b["pool_offset"]), shift_pool,
                             np.where((addr >= np.uint64(blob_lo)) & (addr < np.uint64(blob_hi)),
                                      shift_blob, np.uint64(base)))
            addr = addr + shift        # modulo 2^64, as the kernel's 64-bit address fields
            words[rows, lo] = (addr & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            words[rows, lo + 1] = (addr >> np.uint64(32)).astype(np.uint32)
        return image

    # -- validation -----------------------------------------------------
    def validate(self) -> None:
        """Check a (possibly received) program before it touches a device.

        The metadata must have every key of the right JSON type; the buffer
        plan's regions (instructions, profile area, weights, activation pool;
        see the module docstring) must lie in order inside the program's own
        buffer without overlapping; every instruction operand (its address
        offset plus the extent the kernel will read or write) must lie inside
        the region it may touch (writes: the pool; reads: weights or pool);
        every step must be a known kind naming known values, arrays and host
        ops, with shapes that fit them.

        Raises
        ------
        bitlet.ProgramError
            Naming the first field that is wrong (a ``BitletValueError``).
        """
        meta = self.meta
        if not isinstance(meta, dict):
            raise ProgramError(f"program: the metadata must be a JSON object, got "
                               f"{type(meta).__name__}")
        _check_depth(meta)
        for key, kind in _META_KEYS.items():
            _field(meta, key, "meta", kind)
        try:
            self._validate_layout()
            self._validate_insns()
            self._validate_values(HOST_OPS)
        except ProgramError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise ProgramError(f"program: malformed metadata ({type(exc).__name__}: {exc})") from None

    def _validate_layout(self) -> None:
        """The buffer plan: regions in order, inside the buffer, the arrays that match it."""
        b = self.meta["buffers"]
        n, prof, blob, blob_bytes, image_bytes, pool, pool_bytes, total = (
            _field(b, key, "buffers", int) for key in _BUFFER_KEYS)
        if b.get("insn_offset", 0) != 0:
            raise ProgramError(f"program: buffers.insn_offset must be 0, got {b['insn_offset']!r}")
        if n * hw.INSN_BYTES > prof or prof % hw.AXI_BYTES:
            # the kernel writes the records through its m_axi port: beat aligned
            raise ProgramError(f"program: buffers.profile_offset {prof} must be a multiple of "
                               f"{hw.AXI_BYTES} at or after the {n} instructions "
                               f"({n * hw.INSN_BYTES} bytes)")
        if prof + n * hw.PROF_BYTES > blob:
            raise ProgramError(f"program: buffers.profile_offset {prof}: the profile area "
                               f"[{prof}, {prof + n * hw.PROF_BYTES}) overlaps the weights at "
                               f"blob_offset {blob}")
        if blob + blob_bytes > image_bytes:
            raise ProgramError(f"program: buffers.blob_bytes: the weights [{blob}, "
                               f"{blob + blob_bytes}) end past the image ({image_bytes} bytes)")
        if pool < image_bytes or pool % POOL_ALIGN:
            raise ProgramError(f"program: buffers.pool_offset {pool} must be a multiple of "
                               f"{POOL_ALIGN} at or after the end of the image (instructions, "
                               f"profile, weights: {image_bytes} bytes)")
        if pool + pool_bytes != total:
            raise ProgramError(f"program: buffers.total_bytes {total} is not pool_offset + "
                               f"pool_bytes = {pool + pool_bytes}")
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 1 \
                or image.size != image_bytes:
            raise ProgramError(f"program: the image must be {image_bytes} uint8 bytes "
                               f"(buffers.image_bytes), got {getattr(image, 'dtype', '?')} "
                               f"{getattr(image, 'shape', '?')}")
        reloc = self.arrays.get("__reloc__")
        if not isinstance(reloc, np.ndarray) or reloc.dtype != np.uint8 or reloc.shape != (n,):
            raise ProgramError(f"program: the relocation table __reloc__ must be {n} uint8 "
                               f"(one per instruction), got {getattr(reloc, 'dtype', None)} "
                               f"{getattr(reloc, 'shape', None)}")

    def _validate_insns(self) -> None:
        """Every operand inside the region it may touch, and relocated."""
        b = self.meta["buffers"]
        regions = {"write": (b["pool_offset"], b["total_bytes"], "the activation pool"),
                   "read": (b["blob_offset"], b["total_bytes"], "the weights and the pool")}
        reloc = self.arrays["__reloc__"]
        for i, words in enumerate(self.insn_words()):
            insn = Insn.decode(words)
            for name, size in operand_bytes(insn).items():
                bit = ADDRESS_FIELDS.index(name.upper())
                start = getattr(insn, name)
                lo, hi, what = regions["write" if name in ("out", "acc") else "read"]
                if not (reloc[i] >> bit) & 1:
                    raise ProgramError(f"program: instruction {i} operand {name} is not in the "
                                       "relocation table (an absolute address)")
                if not lo <= start <= start + size <= hi:
                    raise ProgramError(f"program: instruction {i} operand {name} [{start}, "
                                       f"{start + size}) is outside {what} [{lo}, {hi}) of the "
                                       f"program's {b['total_bytes']}-byte buffer")

    def _validate_values(self, host_ops: dict) -> None:
        """Inputs, outputs, device values, layers and steps."""
        meta = self.meta
        for kind in ("inputs", "outputs"):
            for spec in meta[kind]:
                _field(spec, "name", kind, str)
                _shape(_field(spec, "shape", kind), f"{kind}.shape")
                try:
                    dtype = np.dtype(_field(spec, "dtype", kind, str))
                except TypeError as exc:
                    raise ProgramError(f"program: {kind}.dtype {spec['dtype']!r}: {exc}") from None
                if dtype.hasobject:
                    raise ProgramError(f"program: {kind}.dtype {spec['dtype']!r} is not plain data")
        pool_bytes = meta["buffers"]["pool_bytes"]
        for name, d in meta["devices"].items():
            where = f"devices[{name!r}]"
            offset, nbytes = _field(d, "offset", where, int), _field(d, "nbytes", where, int)
            if offset + nbytes > pool_bytes:
                raise ProgramError(f"program: device value {name!r} [{offset}, {offset + nbytes}) "
                                   f"is outside the pool ({pool_bytes} bytes)")
            _shape(_field(d, "shape", where), f"{where}.shape")
            _field(d, "fmt", where, str)
        for layer in meta["layers"]:
            first = _field(layer, "insn_first", "layers", int)
            if first + _field(layer, "insn_count", "layers", int) > self.n_insn:
                raise ProgramError(f"program: layer {layer.get('name')!r} runs instructions "
                                   f"the program lacks")
            _field(layer, "macs", "layers", int)
        for step in meta["steps"]:
            _validate_step(step, self, host_ops)
        try:
            KernelConfig.from_dict(meta["kernel"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ProgramError(f"program: meta.kernel is not a kernel configuration: {exc}") from None

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

    def weights(self) -> np.ndarray:
        """The weights region of the image (weights and biases in device layout),
        uint8 ``[blob_bytes]`` (a view)."""
        b = self.meta["buffers"]
        return self.image[b["blob_offset"]: b["blob_offset"] + b["blob_bytes"]]

    def weights_digest(self) -> str:
        """SHA-256 of :meth:`weights` (hex): its key where weight images are shared."""
        return hashlib.sha256(self.weights().tobytes()).hexdigest()

    def to_bytes(self, *, weights: bool = True) -> bytes:
        """The program as the bytes of one ``.npz`` file.

        ``weights=False`` leaves the weights region out of the image (the
        metadata records its SHA-256): :meth:`from_bytes` then needs those
        weights to rebuild the program (``bitlet agent`` receives each weight
        image once and the programs of a model's shapes without it).
        """
        buf = io.BytesIO()
        if weights:
            self._write(buf)
        else:
            b = self.meta["buffers"]
            image = np.concatenate([self.image[: b["blob_offset"]],
                                    self.image[b["blob_offset"] + b["blob_bytes"]:]])
            Program(dict(self.meta, **{_OMITTED: self.weights_digest()}), image,
                    self.arrays)._write(buf)
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
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_BYTES,
                   weights: bytes | None = None) -> Program:
        """Read and validate a program from the bytes of an ``.npz`` file.

        ``max_bytes`` bounds what its members may unpack to (see :mod:`bitlet.npz`).
        ``weights``: the weights region of a program written with
        ``to_bytes(weights=False)`` (its SHA-256 and size must be the ones the
        file records); refused for a complete program.
        """
        return cls._read(data, max_bytes, "program", weights)

    @classmethod
    def load(cls, path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Program:
        """Read a program written by :meth:`save` (never unpickles anything) and validate it.

        Raises :class:`bitlet.ProgramError` (a ``BitletValueError``) naming
        what is wrong: not a program, members that unpack beyond ``max_bytes``
        (1 GiB by default), malformed metadata, regions or operands outside
        the program's own buffer.
        """
        name = os.fspath(path)
        if not os.path.exists(name):
            raise BitletValueError(f"path: no such program file {name!r}")
        try:
            with open(name, "rb") as f:
                return cls._read(f, max_bytes, name)
        except OSError as exc:
            raise ProgramError(f"{name}: cannot read the program file: {exc.strerror or exc}") from None

    @classmethod
    def _read(cls, source, max_bytes: int, what: str, weights: bytes | None = None) -> Program:
        arrays = read_npz(source, max_bytes=max_bytes, what=what)
        if _META not in arrays or _IMAGE not in arrays:
            raise ProgramError(f"{what}: not a Bitlet program file (no metadata/image member)")
        raw = arrays.pop(_META)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ProgramError(f"{what}: the metadata member must be 1-D uint8 (JSON text), got "
                               f"{raw.dtype} {raw.shape}")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProgramError(f"{what}: the metadata is not UTF-8 text ({exc})") from None
        except RecursionError:
            raise ProgramError(f"{what}: the metadata is nested too deeply") from None
        except ValueError as exc:
            raise ProgramError(f"{what}: the metadata is not JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ProgramError(f"{what}: the metadata must be a JSON object, got a JSON "
                               f"{type(meta).__name__}")
        fmt, version = meta.pop("format", None), meta.pop("format_version", None)
        if fmt != FORMAT or version != FORMAT_VERSION:
            raise ProgramError(f"{what}: unsupported program format {fmt!r} version {version!r} "
                               f"(this SDK reads {FORMAT!r} version {FORMAT_VERSION})")
        image = cls._with_weights(meta, arrays.pop(_IMAGE), meta.pop(_OMITTED, None), weights, what)
        program = cls(meta, image, arrays)
        program.validate()
        return program

    @staticmethod
    def _with_weights(meta: dict, image: np.ndarray, omitted: Any, weights: bytes | None,
                      what: str) -> np.ndarray:
        """The image, with ``weights`` put back where a program sent without them
        had them (their hash and size checked against what the file records)."""
        if omitted is None:
            if weights is not None:
                raise ProgramError(f"{what}: weights were given for a program that has its own")
            return image
        if weights is None:
            raise ProgramError(f"{what}: the program was written without its weights "
                               f"(sha256 {str(omitted)[:16]}...): give them")
        b = meta.get("buffers")
        blob = b.get("blob_offset") if isinstance(b, dict) else None
        size = b.get("blob_bytes") if isinstance(b, dict) else None
        if not isinstance(blob, int) or not isinstance(size, int) or not 0 <= blob <= image.size \
                or image.dtype != np.uint8 or image.ndim != 1:
            raise ProgramError(f"{what}: malformed buffers.blob_offset/blob_bytes or image")
        if len(weights) != size or hashlib.sha256(weights).hexdigest() != omitted:
            raise ProgramError(f"{what}: the weights given ({len(weights)} bytes, sha256 "
                               f"{hashlib.sha256(weights).hexdigest()[:16]}...) are not the "
                               f"program's ({size} bytes, sha256 {str(omitted)[:16]}...)")
        return np.concatenate([image[:blob], np.frombuffer(weights, np.uint8), image[blob:]])
