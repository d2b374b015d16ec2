"""Messages: a JSON header plus raw numpy payloads (dtype from
:data:`WIRE_DTYPES`, shape, bytes).  Nothing executable or pickled ever
crosses the link."""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from bitlet.drivers.link.errors import LinkProtocolError
from bitlet.drivers.link.settings import DEFAULT_LIMITS, Limits
from bitlet.errors import BitletValueError

#: the JSON header's length prefix
_U32 = struct.Struct("<I")
#: attributes of an exception raised on the agent that travel with its error reply
#: (a KernelTimeout's diagnosis: register dump, last instruction, likely causes)
ERROR_DETAILS = ("registers", "insn_done", "n_insn", "causes", "timeout")

#: numpy dtypes allowed on the wire (little-endian byte strings)
WIRE_DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8",
                         "<f2", "<f4", "<f8"})
_MAX_NDIM = 8


def wire_dtype(dtype: Any) -> np.dtype:
    """The little-endian wire form of ``dtype``; raises if it is not allowed."""
    dt = np.dtype(dtype)
    if dt.kind in "biuf" and dt.itemsize > 1:
        dt = dt.newbyteorder("<")
    if dt.str not in WIRE_DTYPES:
        raise BitletValueError(
            f"dtype {dt} cannot cross the link; allowed: {sorted(WIRE_DTYPES)}")
    return dt


def pack_message(header: dict, arrays: tuple | list = ()) -> bytes:
    """Serialise a message.

    Parameters
    ----------
    header : dict
        JSON-serialisable values only (no key ``"arrays"``).
    arrays : sequence of numpy.ndarray
        Any shape; dtypes from :data:`WIRE_DTYPES` (sent little-endian).

    Returns
    -------
    bytes
        ``uint32 json_length | JSON | array bytes...``.
    """
    metas, blobs = [], []
    for index, array in enumerate(arrays):
        array = np.asarray(array)
        try:
            dt = wire_dtype(array.dtype)
        except BitletValueError as exc:
            raise BitletValueError(f"array {index}: {exc}") from None
        array = np.ascontiguousarray(array, dtype=dt)
        metas.append({"dtype": dt.str, "shape": list(array.shape)})
        blobs.append(array.reshape(-1).view(np.uint8).data)
    text = json.dumps(dict(header, arrays=metas), separators=(",", ":"), allow_nan=False)
    head = text.encode("utf-8")
    return b"".join([_U32.pack(len(head)), head, *blobs])


def unpack_message(data: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> tuple[dict, list]:
    """Parse a message built by :func:`pack_message`, checking every bound.

    Returns
    -------
    header : dict
    arrays : list of numpy.ndarray
        Writable arrays (views of ``data`` when it is a bytearray).

    Raises
    ------
    LinkProtocolError
        Malformed header, dtype outside the allow-list, sizes that do not add up.
    """
    view = memoryview(data)
    if len(view) < _U32.size:
        raise LinkProtocolError("message shorter than its length prefix")
    (json_len,) = _U32.unpack_from(view)
    if json_len > limits.max_json or _U32.size + json_len > len(view):
        raise LinkProtocolError(f"message JSON header length {json_len} out of bounds")
    try:
        header = json.loads(bytes(view[_U32.size:_U32.size + json_len]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LinkProtocolError(f"message header is not valid JSON: {exc}") from exc
    metas = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(metas, list) or len(metas) > limits.max_arrays:
        raise LinkProtocolError("message header lacks a bounded 'arrays' list")
    offset = _U32.size + json_len
    arrays = []
    for meta in metas:
        dt, shape = _check_array_meta(meta)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if offset + nbytes > len(view):
            raise LinkProtocolError(f"array of {nbytes} bytes overruns the message")
        arrays.append(np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize,
                                    offset=offset).reshape(shape))
        offset += nbytes
    if offset != len(view):
        raise LinkProtocolError(f"{len(view) - offset} stray bytes after the arrays of a message")
    return header, arrays


def _check_array_meta(meta: Any) -> tuple[np.dtype, tuple]:
    if not isinstance(meta, dict) or meta.get("dtype") not in WIRE_DTYPES:
        raise LinkProtocolError(f"array descriptor {meta!r}: dtype not in the allow-list")
    shape = meta.get("shape")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 40
                       for n in shape)):
        raise LinkProtocolError(f"array descriptor {meta!r}: bad shape")
    return np.dtype(meta["dtype"]), tuple(shape)
