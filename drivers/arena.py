"""Device memory placement: the one allocator of the package.

:class:`Arena` carves aligned blocks out of a byte range, first fit.  It
serves the simulated board's DDR (:class:`bitlet.drivers.sim.SimDevice`)
and the host "DDR" images in which :mod:`bitlet.numerics` runs the
kernel's C source (:class:`MemoryImage`): one allocator, one set of rules.

Example
-------
>>> from bitlet.drivers.arena import MemoryImage
>>> image = MemoryImage(base=0x4000_0000)
>>> hex(image.add([1, 2, 3])), hex(image.reserve(8))
('0x40000000', '0x40000040')
>>> image.build()[:3].tolist()
[1, 2, 3]
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
from bitlet.errors import OutOfDeviceMemory


@dataclasses.dataclass
class Block:
    """One allocation in the arena.

    Attributes
    ----------
    offset : int
        Byte offset of the block in the arena.
    size : int
        Bytes reserved (the request rounded up to the alignment).
    nbytes : int
        Bytes requested.
    freed : bool
        True once the block went back to the arena.
    """

    offset: int
    size: int
    nbytes: int
    freed: bool = False


class Arena:
    """First-fit allocator of aligned blocks in ``[0, size)`` (byte offsets).

    Parameters
    ----------
    size : int
        Bytes managed.
    align : int
        Alignment and granule of every block, a power of two >= 64 (bytes).
    """

    def __init__(self, size: int, align: int) -> None:
        self.size = size
        self.align = align
        self._free: list[tuple[int, int]] = [(0, size)] if size else []  # (offset, size)
        self._lock = threading.Lock()
        self.n_blocks = 0

    def free_bytes(self) -> tuple[int, int]:
        """Return ``(total free bytes, largest free block)``."""
        with self._lock:
            sizes = [s for _, s in self._free]
        return sum(sizes), max(sizes, default=0)

    def alloc(self, nbytes: int) -> Block:
        """Reserve ``nbytes`` (at least one granule); raise OutOfDeviceMemory."""
        size = max(self.align, -(-nbytes // self.align) * self.align)
        with self._lock:
            for i, (off, free) in enumerate(self._free):
                if free >= size:
                    if free == size:
                        del self._free[i]
                    else:
                        self._free[i] = (off + size, free - size)
                    self.n_blocks += 1
                    return Block(off, size, nbytes)
        total, largest = self.free_bytes()
        raise OutOfDeviceMemory(
            f"device memory exhausted: requested {nbytes} bytes ({size} with alignment), "
            f"free {total} bytes in total, largest free block {largest} bytes, "
            f"arena {self.size} bytes; free buffers you no longer need (freebuffer()) "
            f"or open the device with a larger memory"
        )

    def release(self, block: Block) -> None:
        """Return a block, coalescing with its free neighbours."""
        with self._lock:
            start, end = block.offset, block.offset + block.size
            merged = []
            for off, size in self._free:
                if off + size == start:
                    start = off
                elif off == end:
                    end = off + size
                else:
                    merged.append((off, size))
            merged.append((start, end - start))
            merged.sort()
            self._free = merged
            self.n_blocks -= 1


class MemoryImage:
    """A host copy of device memory, its operands placed by an :class:`Arena`.

    Operands are added in turn (each block starts on an ``align`` boundary
    after the previous one: a fresh arena's first fit); :meth:`build`
    returns the image as one uint32 array whose word 0 is device address
    ``base``, for a kernel top's ``mem`` port.

    Parameters
    ----------
    base : int
        Device address of the first byte (a nonzero base exercises the
        kernel's address translation).
    align : int
        Alignment of every operand in bytes (default 64, the kernel's m_axi
        burst granule).
    size : int
        Bytes the image may grow to (default 4 GiB).
    """

    def __init__(self, base: int, *, align: int = 64, size: int = 1 << 32) -> None:
        self.base = base
        self.arena = Arena(size, align)
        self._chunks: list[tuple[int, np.ndarray]] = []
        #: bytes from ``base`` to the end of the last block
        self.size = 0

    def add(self, words, *, nbytes: int | None = None) -> int:
        """Place uint32 ``words`` (or ``nbytes`` zero bytes); return the device address.

        Parameters
        ----------
        words : array-like of uint32 (any shape, flattened) or None
        nbytes : int, optional
            With ``words=None``: bytes of zeros to reserve.
        """
        data = np.zeros(-(-nbytes // 4), np.uint32) if words is None \
            else np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
        block = self.arena.alloc(data.size * 4)
        self._chunks.append((block.offset // 4, data))
        self.size = max(self.size, block.offset + block.size)
        return self.base + block.offset

    def reserve(self, nbytes: int) -> int:
        """A zero-filled region of ``nbytes`` (at least 4); returns its device address."""
        return self.add(None, nbytes=max(int(nbytes), 4))

    def build(self) -> np.ndarray:
        """The image: uint32 ``[size / 4]`` (at least one word), operands in place."""
        mem = np.zeros(max(self.size // 4, 1), dtype=np.uint32)
        for start, data in self._chunks:
            mem[start:start + data.size] = data
        return mem
