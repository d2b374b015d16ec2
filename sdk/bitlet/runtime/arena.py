"""One device buffer shared by the programs of one model: :class:`Arena`.

The shapes of a :class:`~bitlet.runtime.dynamic.DynamicModel` live in one
arena on a local device, and so do they on a board behind ``bitlet agent``
(the agent keeps one arena per dynamic model of its client, see
:mod:`bitlet.runtime.agent`): each distinct weight image is written once and
shared by every program with the same weight bytes, one activation pool
serves all of them (runs are sequential), each program adds only its
instructions and profile area.  The kernel's memory window is the arena's
buffer, so a program placed there reaches nothing outside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bitlet.errors import BitletValueError
from bitlet.program import Program

__all__ = ["Arena", "Placement", "check_group"]

_ALIGN = 4096                    # byte alignment of every region in the arena (a page: more than
                                 # any alignment the kernel or the buffer plan asks for)


def check_group(group: Any, what: str = "group") -> str | None:
    """``group`` (the name of an arena shared by a model's programs on ``bitlet
    agent``): None, or 1..64 ASCII letters and digits."""
    if group is not None and (not isinstance(group, str) or not 0 < len(group) <= 64
                              or not group.isascii() or not group.isalnum()):
        raise BitletValueError(f"{what} must be 1..64 ASCII letters and digits, got {group!r:.80}")
    return group


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


@dataclass
class Placement:
    """Where one program lives in an :class:`Arena` (offsets in its buffer).

    ``insn_offset``: the program's instructions and profile area (its image
    bytes ``[0, blob_offset)``); ``blob_offset``: its weights (shared by every
    program with the same weight bytes); ``pool_offset``: the activation pool.
    """

    arena: Arena
    insn_offset: int
    blob_key: str

    @property
    def buffer(self):
        return self.arena.buffer

    @property
    def base(self) -> int:
        """Device address of the arena's buffer."""
        return int(self.arena.buffer.device_address)

    @property
    def blob_offset(self) -> int:
        return self.arena.blob_offsets[self.blob_key]

    @property
    def pool_offset(self) -> int:
        return self.arena.pool_offset

    @property
    def window(self) -> tuple[int, int]:
        """The kernel's memory window: the whole arena buffer."""
        return self.base, int(self.arena.size)


class Arena:
    """One device buffer holding every shape of a :class:`DynamicModel`.

    Layout: weight images (one per distinct content) and each program's
    instructions and profile area from the start of the buffer, in the order
    placed; then free space; then the activation pool (shared: runs are
    sequential) with free space after it for a larger one.  New shapes are
    placed in the free space when they fit.  All regions are page aligned.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.buffer = None
        self.size = 0
        self.end = 0                             # end of the weights + instructions in use
        self.pool_offset = 0
        self.blob_offsets: dict[str, int] = {}
        self.uploads = 0                         # weight images written so far
        self.layouts = 0                         # buffers allocated (first + growths)
        self._placed: dict[int, tuple[Program, Placement]] = {}

    @staticmethod
    def _key(program: Program) -> str:
        return program.weights_digest()

    def __len__(self) -> int:
        """Programs placed and not released."""
        return len(self._placed)

    def place(self, program: Program) -> Placement:
        """Place ``program``: its weights are written only if no placed program has
        the same weight bytes; the buffer grows (everything placed again) when
        the program does not fit the free space."""
        b = program.meta["buffers"]
        placement = Placement(self, 0, self._key(program))
        if self.buffer is not None:
            end, blob_at = self.end, None
            if placement.blob_key not in self.blob_offsets:
                blob_at, end = end, _align(end + b["blob_bytes"])
            insn_at, end = end, _align(end + b["blob_offset"])
            if end <= self.pool_offset and b["pool_bytes"] <= self.size - self.pool_offset:
                if blob_at is not None:
                    self.blob_offsets[placement.blob_key] = blob_at
                    self._write_blob(program, blob_at)
                placement.insn_offset, self.end = insn_at, end
                self._write_insns(program, placement)
                self._placed[id(placement)] = (program, placement)
                return placement
        self._relayout(program, placement)
        return placement

    def _relayout(self, program: Program, new: Placement) -> None:
        items = [*self._placed.values(), (program, new)]
        blobs, offset = {}, 0
        for p, pl in items:
            if pl.blob_key not in blobs:
                blobs[pl.blob_key] = offset
                offset = _align(offset + p.meta["buffers"]["blob_bytes"])
        for p, pl in items:
            pl.insn_offset = offset
            offset = _align(offset + p.meta["buffers"]["blob_offset"])
        pool = max(p.meta["buffers"]["pool_bytes"] for p, _ in items)
        # twice what is needed: room for larger shapes without a new layout
        size = _align(max(2 * (offset + pool), 2 * self.size, _ALIGN))
        self.layouts += 1
        old, self.buffer, self.size = self.buffer, self.device.allocate(size, np.uint8), size
        if old is not None:
            self.device.free(old)
        # the free space is split: half for more instructions and weights, half
        # for a larger pool, so that new shapes usually fit in place
        self.pool_offset = min(_align(offset + (size - offset - pool) // 2),
                               (size - pool) // _ALIGN * _ALIGN)
        self.end, self.blob_offsets = offset, {}
        for p, pl in items:
            if pl.blob_key not in self.blob_offsets:
                self.blob_offsets[pl.blob_key] = blobs[pl.blob_key]
                self._write_blob(p, blobs[pl.blob_key])
            self._write_insns(p, pl)
        self._placed[id(new)] = (program, new)

    def _write_blob(self, program: Program, offset: int) -> None:
        blob = program.weights()
        view = self.buffer[offset: offset + blob.size]
        view[:] = blob
        view.sync_to_device()
        self.uploads += 1

    def _write_insns(self, program: Program, placement: Placement) -> None:
        base = placement.base
        image = program.relocated_image(base + placement.insn_offset,
                                        blob_base=base + placement.blob_offset,
                                        pool_base=base + placement.pool_offset)
        head = image[: program.meta["buffers"]["blob_offset"]]
        view = self.buffer[placement.insn_offset: placement.insn_offset + head.size]
        view[:] = head
        view.sync_to_device()

    def release(self, placement: Placement) -> None:
        """Forget a placement (its space is reclaimed when the arena is next laid out)."""
        self._placed.pop(id(placement), None)

    def close(self) -> None:
        if self.buffer is not None:
            self.device.free(self.buffer)
        self.buffer, self.size, self.end = None, 0, 0
        self._placed.clear()
        self.blob_offsets.clear()


