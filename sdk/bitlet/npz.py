"""A bounded, pickle-free reader of ``.npz`` archives (programs from a file or a wire).

``numpy.load`` trusts an archive: a 2 MB ``.npz`` whose member inflates to
2 GiB takes 2 GiB, and a member's ``.npy`` header may declare any shape,
which numpy allocates before it notices the data is missing.  :func:`read_npz`
checks every declared size first -- the zip directory's uncompressed sizes
against ``max_bytes``, each ``.npy`` header's shape and dtype against its
member -- and only then reads, into arrays of the checked sizes.  Object
(pickled) arrays are refused.  ``zipfile`` never returns more than a member's
declared size, so the memory spent is bounded by ``max_bytes``.

Every problem raises :class:`bitlet.errors.ProgramError` (the message says
what is wrong; ``what`` names the source, e.g. the file).
"""
from __future__ import annotations

import io
import math
import zipfile
from typing import BinaryIO

import numpy as np

from bitlet.errors import ProgramError

#: Default bound on the bytes an archive's members unpack to (all members).
MAX_BYTES = 1 << 30
#: Bound on the number of members.
MAX_MEMBERS = 4096

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(source: bytes | BinaryIO, *, max_bytes: int = MAX_BYTES,
             what: str = "program") -> dict[str, np.ndarray]:
    """Read every member of an ``.npz`` archive, within ``max_bytes``.

    Parameters
    ----------
    source : bytes or binary file
        The archive.
    max_bytes : int
        Most bytes all members may unpack to together.
    what : str
        Names the source in error messages.

    Returns
    -------
    dict
        ``{member name without .npy: array}`` (writable arrays).

    Raises
    ------
    bitlet.errors.ProgramError
        Not a zip archive, too many members, members unpacking beyond
        ``max_bytes``, a member that is not a plain ``.npy`` array, or one
        whose header disagrees with its size.
    """
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ProgramError(f"{what}: not a Bitlet program file (not an .npz archive: "
                           f"{exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ProgramError(f"{what}: {len(infos)} members, more than {MAX_MEMBERS}")
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise ProgramError(f"{what}: its members unpack to {total:,} bytes, beyond the "
                               f"limit of {max_bytes:,} bytes (a compressed archive that "
                               "expands, or a program too large for this reader)")
        arrays = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if not name or name in arrays:
                raise ProgramError(f"{what}: member {info.filename!r} is not a distinct .npy array")
            try:
                with archive.open(info) as member:
                    arrays[name] = _read_member(member, info.file_size)
            except ProgramError as exc:
                raise ProgramError(f"{what}: member {info.filename!r}: {exc}") from None
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
                    NotImplementedError) as exc:  # bad CRC, encrypted, unknown compression
                raise ProgramError(f"{what}: member {info.filename!r} cannot be read: "
                                   f"{exc}") from None
    return arrays


def _read_member(member: BinaryIO, size: int) -> np.ndarray:
    """One ``.npy`` member of ``size`` declared bytes, its header checked first."""
    try:
        version = np.lib.format.read_magic(member)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise ProgramError(f"unsupported .npy version {version}")
        shape, fortran, dtype = reader(member)
    except ProgramError:
        raise
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ProgramError(f"not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise ProgramError(f"dtype {dtype} is not plain data (object arrays are refused)")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    header = member.tell()
    if header + nbytes != size:
        raise ProgramError(f"its header declares shape {shape} of {dtype} ({nbytes:,} bytes) "
                           f"but the member holds {size - header:,} bytes")
    out = np.empty(shape[::-1] if fortran else shape, dtype)
    view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
    got = member.readinto(view) if out.size else 0
    if got != nbytes:
        raise ProgramError(f"truncated: {got:,} of {nbytes:,} bytes")
    return out.T if fortran else out
