#!/usr/bin/env python3
"""Size the overlays from the resource model: the ``n_pe`` lines of boards.tcl.

Each board's ``n_pe {bitlet N vendor_fp M}`` in ``overlay/boards.tcl`` is
what :func:`bitlet.tools.resources.overlay_n_pe` gives: each kernel kind
at the largest N_PE that fits the board within the model's utilisation
limit (``resources.json``: 70 % of LUT, FF and DSP, block RAM up to 100 %),
with the Bitlet PE's area from the yosys report ``hls/rtl/area_report.json``,
and at least 1 (a kind whose single PE exceeds the limit is built all the
same and flagged here).  The two kinds of a board get different N_PE: a
program is compiled for the overlay it runs on (the runtime refuses a
program compiled for another kind or N_PE).

Usage
-----
``python overlay/size_boards.py``            print the sizing and what boards.tcl says
``python overlay/size_boards.py --check``    exit 1 when boards.tcl disagrees
``python overlay/size_boards.py --write``    rewrite the n_pe lines of boards.tcl, then
                                             the overlay metadata (make_metadata.py) and
                                             the fit table (hls/tools/fit_table.py)

After ``hls/rtl/area_report.json`` changes (a new RTL PE), ``--write``
regenerates everything that depends on a board's N_PE; commit boards.tcl,
``drivers/overlays/*/*`` and ``overlay/fit_table.md`` together.
``$BITLET_AREA_REPORT`` names another report (as for the resource model).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOARDS_TCL = ROOT / "overlay" / "boards.tcl"
KINDS = ("bitlet", "vendor_fp")
_BLOCK = re.compile(r"^    (\w+) \{\s*$")
_N_PE = re.compile(r"^(\s+n_pe\s+)\{([^}]*)\}\s*$")


def read_n_pe(text: str) -> dict[str, dict[str, int]]:
    """``{board: {kind: n_pe}}`` of the BITLET_BOARDS table in boards.tcl's text."""
    out: dict[str, dict[str, int]] = {}
    board = None
    for line in text.splitlines():
        m = _BLOCK.match(line)
        if m:
            board = m.group(1)
        m = _N_PE.match(line)
        if m and board is not None:
            words = m.group(2).split()
            out[board] = {k: int(v) for k, v in zip(words[::2], words[1::2])}
    return out


def write_n_pe(text: str, wanted: dict[str, dict[str, int]]) -> str:
    """boards.tcl's text with the n_pe line of each board in ``wanted`` replaced."""
    lines, board = [], None
    for line in text.splitlines(keepends=True):
        m = _BLOCK.match(line)
        if m:
            board = m.group(1)
        m = _N_PE.match(line.rstrip("\n"))
        if m and board in wanted:
            pairs = " ".join(f"{k} {wanted[board][k]}" for k in KINDS)
            line = f"{m.group(1)}{{{pairs}}}\n"
        lines.append(line)
    return "".join(lines)


def sizing(boards: list[str]) -> dict[str, dict]:
    """:func:`overlay_n_pe` of each board (the synthesized area report)."""
    from bitlet.tools.resources import overlay_n_pe

    return {b: overlay_n_pe(b) for b in boards}


def _table(sized: dict, have: dict) -> str:
    rows = [f"{'board':<7} {'kind':<9} {'n_pe':>4} {'model':>5} {'boards.tcl':>10}  "
            "whole design at that n_pe (resource model)"]
    for board, kinds in sized.items():
        for kind, s in kinds.items():
            util = ", ".join(f"{r.upper()} {v:.1f}%" for r, v in s["utilisation_pct"].items())
            flag = "  OVER THE LIMIT (one PE does not fit; built at 1)" if s["over_limit"] else ""
            variant = f" ({s['variant']} operators)" if s["variant"] else ""
            rows.append(f"{board:<7} {kind:<9} {s['n_pe']:>4} {s['model_n_pe']:>5} "
                        f"{have.get(board, {}).get(kind, '-'):>10}  {util}{variant}{flag}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when boards.tcl disagrees")
    mode.add_argument("--write", action="store_true",
                      help="rewrite boards.tcl's n_pe, the overlay metadata and the fit table")
    ap.add_argument("--boards-tcl", type=Path, default=BOARDS_TCL, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        text = args.boards_tcl.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"size_boards.py: cannot read {args.boards_tcl}: {exc}", file=sys.stderr)
        return 1
    have = read_n_pe(text)
    if not have:
        print(f"size_boards.py: {args.boards_tcl} has no board with an n_pe line", file=sys.stderr)
        return 1
    try:
        sized = sizing(sorted(have))
    except Exception as exc:  # noqa: BLE001 - a missing report or model input: one line
        print(f"size_boards.py: {exc}", file=sys.stderr)
        return 1
    wanted = {b: {k: s["n_pe"] for k, s in kinds.items()} for b, kinds in sized.items()}
    print(_table(sized, have))
    stale = {b: (have[b], wanted[b]) for b in wanted if have[b] != wanted[b]}
    if args.check:
        for board, (old, new) in stale.items():
            print(f"size_boards.py: {args.boards_tcl.name}: {board} n_pe {old}, the resource model "
                  f"gives {new} (run `python overlay/size_boards.py --write`)", file=sys.stderr)
        return 1 if stale else 0
    if args.write:
        if stale:
            args.boards_tcl.write_text(write_n_pe(text, wanted), encoding="utf-8")
            print(f"wrote {args.boards_tcl}: " + "; ".join(
                f"{b} {new}" for b, (_, new) in stale.items()))
        else:
            print(f"{args.boards_tcl} already agrees")
        if args.boards_tcl == BOARDS_TCL:  # what follows from the board table
            for script in (ROOT / "overlay" / "make_metadata.py",
                           ROOT / "hls" / "tools" / "fit_table.py"):
                done = subprocess.run([sys.executable, str(script)], cwd=ROOT, check=False)
                if done.returncode:
                    print(f"size_boards.py: {script.name} failed ({done.returncode})",
                          file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
