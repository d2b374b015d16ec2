"""Board data: where each board's overlay files are (:func:`find_overlay`),
which board this is (:func:`detect_board`), and whether a kernel matches its
overlay's metadata (:func:`identity_mismatches`).

Nothing here imports pynq: board detection reads the environment and the
device tree only.  The package :mod:`bitlet.drivers.overlays` describes the
file layout and re-exports these names.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitlet.errors import BitletValueError, DeviceError

#: Kernel kinds an overlay can carry.
KINDS = ("bitlet", "vendor_fp")
#: Metadata format this SDK understands (``metadata_format`` in the .json).
METADATA_FORMAT = 1
#: Environment variables: a directory of ``<board>/<kind>.*`` overriding the
#: packaged one, and an explicit board name overriding detection.
ENV_OVERLAY_DIR = "BITLET_OVERLAY_DIR"
ENV_BOARD = "BITLET_BOARD"
#: Files of the device tree that name the board on a PYNQ image.
DEVICE_TREE_FILES = ("/proc/device-tree/model", "/proc/device-tree/compatible")

#: The motivating study's figures (MICRO'21 paper), NOT measured here:
#: one 64-MAC Bitlet IP, and the vendor floating-point multiplier IP
#: configurations it is compared with.
PAPER_FIGURES = {
    "bitlet": {"lut": 2558, "ff": 2040, "clock_mhz": 300, "macs": 64},
    "vendor_fp": {"lut_min": 33000, "lut_max": 36000, "macs": 64},
}

_HERE = Path(__file__).resolve().parent


class OverlayNotFound(DeviceError, FileNotFoundError):
    """An overlay file (bitstream, .hwh or metadata) is missing, or no board was found."""


@dataclass(frozen=True)
class OverlayFiles:
    """Where one overlay's files are, and its parsed metadata.

    Attributes
    ----------
    board, kind : str
        Board name (``"pynqz2"``, ``"zcu104"``, ``"kv260"``) and kernel kind.
    hwh, json : pathlib.Path
        The hardware handoff and the metadata file (both exist).
    bit : pathlib.Path or None
        The bitstream, or None when it has not been built.
    metadata : dict
        The parsed ``.json``: ``isa_version``, ``n_pe``, ``clock_mhz`` (MHz),
        ``act_buf_words``/``wgt_buf_words``/``out_buf_words`` (32-bit words),
        ``id_config`` (the expected ID_CONFIG register), ``vlnv``,
        ``ip_instance``, ``ctrl_base`` (byte address), ``interrupt``, ...
    """

    board: str
    kind: str
    hwh: Path
    json: Path
    bit: Path | None
    metadata: dict = field(repr=False)


def overlay_dir() -> Path:
    """Directory holding ``<board>/<kind>.*`` (``$BITLET_OVERLAY_DIR`` or the package)."""
    override = os.environ.get(ENV_OVERLAY_DIR)
    return Path(override) if override else _HERE


def available_boards(root: Path | None = None) -> list[str]:
    """Boards with overlay metadata in ``root`` (default :func:`overlay_dir`), sorted."""
    root = Path(root) if root is not None else overlay_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and any(p.glob("*.json")))


def _board_aliases(root: Path) -> dict[str, str]:
    """``{lowercase alias: board}`` from the ``detect`` list of each board's metadata."""
    aliases = {}
    for board in available_boards(root):
        for path in sorted((root / board).glob("*.json")):
            meta = _load_json(path)
            for alias in meta.get("detect", []) + [board]:
                aliases[alias.lower()] = board
    return aliases


def detect_board(root: Path | None = None) -> str | None:
    """Name of the PYNQ board this code runs on, or None (a laptop, CI).

    Looks, in order, at ``$BITLET_BOARD``, ``$BOARD`` (set by PYNQ images,
    e.g. ``Pynq-Z2``) and the device-tree model/compatible strings.  Never
    imports pynq.
    """
    root = Path(root) if root is not None else overlay_dir()
    aliases = _board_aliases(root)
    for var in (ENV_BOARD, "BOARD"):
        value = os.environ.get(var, "").strip().lower()
        if value in aliases:
            return aliases[value]
    for path in DEVICE_TREE_FILES:
        try:
            text = Path(path).read_bytes().replace(b"\0", b" ").decode("ascii", "replace").lower()
        except OSError:
            continue
        for alias in sorted(aliases, key=len, reverse=True):
            if alias in text:
                return aliases[alias]
    return None


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OverlayNotFound(f"cannot read overlay metadata {path}: {exc}") from exc


def _check_metadata(meta: dict, path: Path, board: str, kind: str) -> None:
    if meta.get("metadata_format") != METADATA_FORMAT:
        raise OverlayNotFound(
            f"{path} has metadata_format {meta.get('metadata_format')!r}; this SDK reads "
            f"format {METADATA_FORMAT}: regenerate it with `python overlay/make_metadata.py`")
    if meta.get("board") != board or meta.get("kind") != kind:
        raise OverlayNotFound(f"{path} describes {meta.get('board')}/{meta.get('kind')}, "
                              f"not {board}/{kind}")


def find_overlay(board: str | None = None, kind: str = "bitlet", *,
                 require_bitstream: bool = True, root: str | os.PathLike | None = None
                 ) -> OverlayFiles:
    """Locate an overlay's bitstream, .hwh and metadata, and parse the metadata.

    Parameters
    ----------
    board : str, optional
        ``"pynqz2"``, ``"zcu104"`` or ``"kv260"``; default: :func:`detect_board`.
    kind : {"bitlet", "vendor_fp"}
        The kernel the overlay carries.
    require_bitstream : bool
        Raise :class:`OverlayNotFound` when the ``.bit`` has not been built
        (default).  With False, ``bit`` is None in that case (enough to parse
        the ``.hwh``, e.g. on a simulated board).
    root : path, optional
        Directory of ``<board>/<kind>.*`` files; default ``$BITLET_OVERLAY_DIR``
        or the packaged ``bitlet/overlays``.

    Returns
    -------
    OverlayFiles

    Raises
    ------
    BitletValueError
        Unknown ``board`` or ``kind``.
    OverlayNotFound
        No board given and none detected, or a required file is missing.
    """
    if kind not in KINDS:
        raise BitletValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    root = Path(root) if root is not None else overlay_dir()
    boards = available_boards(root)
    if board is None:
        board = detect_board(root)
        if board is None:
            raise OverlayNotFound(
                f"no PYNQ board detected (set {ENV_BOARD} or pass board=, one of "
                f"{', '.join(boards) or 'none installed'})")
    if board not in boards:
        raise BitletValueError(f"board {board!r} is unknown; known boards in {root}: "
                               f"{', '.join(boards) or 'none'}")
    files = {ext: root / board / f"{kind}.{ext}" for ext in ("json", "hwh", "bit")}
    for ext in ("json", "hwh"):
        if not files[ext].is_file():
            raise OverlayNotFound(f"{files[ext]} is missing: regenerate it with "
                                  f"`python overlay/make_metadata.py --board {board}`")
    meta = _load_json(files["json"])
    _check_metadata(meta, files["json"], board, kind)
    bit = files["bit"] if files["bit"].is_file() else None
    if bit is None and require_bitstream:
        raise OverlayNotFound(
            f"the {kind} bitstream for {board} has not been built ({files['bit']} is missing): "
            f"run `make -C overlay BOARD={board} KIND={kind}` on a machine with Vivado, "
            f"or copy {kind}.bit and {kind}.hwh into {root / board}")
    return OverlayFiles(board=board, kind=kind, hwh=files["hwh"], json=files["json"],
                        bit=bit, metadata=meta)


#: ID registers of the kernel (``KernelIdentity`` attribute) -> metadata key.
_ID_FIELDS = {"magic": "magic", "version": "isa_version", "config": "id_config",
              "act_buf_words": "act_buf_words", "wgt_buf_words": "wgt_buf_words",
              "out_buf_words": "out_buf_words"}


def identity_mismatches(metadata: dict, identity: Any) -> list[str]:
    """How the ID registers a kernel answered differ from an overlay's metadata.

    Parameters
    ----------
    metadata : dict
        :attr:`OverlayFiles.metadata` (the ``.json`` of the overlay loaded).
    identity : bitlet.drivers.kernel.KernelIdentity
        What the kernel reported (``KernelDriver.probe()``): attributes
        ``magic``, ``version``, ``config`` (ID_CONFIG), ``act_buf_words``,
        ``wgt_buf_words``, ``out_buf_words`` (ints).

    Returns
    -------
    list of str
        One message per differing register, e.g. ``"id_config: metadata
        0x320F0104, kernel 0x320F0110"``; empty when they agree (a bitstream
        built from this metadata's Makefile run).
    """
    problems = []
    for attr, key in _ID_FIELDS.items():
        want, found = metadata.get(key), getattr(identity, attr)
        if want != found:
            shown = (f"0x{want:08X}, kernel 0x{found:08X}" if isinstance(want, int)
                     else f"{want!r}, kernel {found!r}")
            problems.append(f"{key}: metadata {shown}")
    return problems
