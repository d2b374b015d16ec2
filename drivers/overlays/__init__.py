"""Overlays of the Bitlet kernel: per-board metadata, bitstreams and build reports.

Layout (one directory per board, one file set per kernel kind)::

    bitlet/overlays/<board>/<kind>.json   metadata the SDK reads (always shipped)
    bitlet/overlays/<board>/<kind>.hwh    hardware handoff (always shipped)
    bitlet/overlays/<board>/<kind>.bit    bitstream (after `make -C overlay`)
    bitlet/overlays/<board>/<kind>.*.rpt  Vivado reports (after a build)

``kind`` is ``"bitlet"`` (the Bitlet PE array) or ``"vendor_fp"`` (the vendor
floating-point baseline).  The shipped ``.hwh`` is written by
``overlay/make_metadata.py`` from the block design until a Vivado build
replaces it; ``metadata["hwh_source"]`` says which.

Modules: :mod:`~bitlet.drivers.overlays.boards` (find, detect, check the
files of a board) and :mod:`~bitlet.drivers.overlays.reports` (the Vivado
reports of a build); their public names are gathered here.  Nothing here
imports pynq.

Example
-------
>>> from bitlet.drivers.overlays import find_overlay
>>> ov = find_overlay("pynqz2", require_bitstream=False)
>>> ov.hwh.name, ov.metadata["vlnv"]
('bitlet.hwh', 'bitlet.org:hls:bitlet_top:1.0')
"""
from __future__ import annotations

from bitlet.drivers.overlays.boards import (
    KINDS,
    PAPER_FIGURES,
    OverlayFiles,
    OverlayNotFound,
    available_boards,
    detect_board,
    find_overlay,
    identity_mismatches,
    overlay_dir,
)
from bitlet.drivers.overlays.reports import read_reports

__all__ = [
    "KINDS",
    "PAPER_FIGURES",
    "OverlayFiles",
    "OverlayNotFound",
    "available_boards",
    "detect_board",
    "find_overlay",
    "identity_mismatches",
    "overlay_dir",
    "read_reports",
]
