"""Predicted board frames/s of `bitlet enhance` (the README table), and the
streaming runtime against frame-by-frame on the simulator.

Part 1, the table: for each board's overlay configuration (N_PE, clock from
its metadata) and precision, ``bitlet.tools.enhance.predict`` runs the demo
model over the bundled photographs tiled to the input size of the requested
output resolution, on a simulator compiled at that N_PE.  Kernel cycles and
the kernel-only frames/s are *modelled* (the kernel's counted cycles at the
clock); the host work per frame is *measured* on this machine (not on the
board's ARM cores), beside the emulator.  Each cell is the same as::

    bitlet enhance --predict --board BOARD --resolution WxH --precision P

Part 2, the stream (``--stream``): the same frames through the whole
Enhancer pipeline with two device buffers (``slots=2``, overlapped) and one
(``slots=1``: each frame waits for the previous one), repeated, medians;
the emulator's wall time is what a simulator's kernel takes, so the gain is
the host work hidden behind it on this machine.

Usage::

    python benchmarks/enhance_fps.py [--boards pynqz2,kv260,zcu104] [--precisions fp32,bf16,fixed8]
                                     [--resolutions 640x360,1280x720] [--json out.json]
    python benchmarks/enhance_fps.py --stream [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from fractions import Fraction

import numpy as np
from bitlet.demo import load_frames
from bitlet.tools.bench_board import _tiled
from bitlet.tools.enhance import Enhancer, predict
from bitlet.tools.video import FrameSource


def table(boards, precisions, resolutions) -> list[dict]:
    rows = []
    for resolution in resolutions:
        for board in boards:
            for precision in precisions:
                t0 = time.perf_counter()
                p = predict(board=board, resolution=resolution, precision=precision)
                rows.append(p)
                print(f"{resolution:>9} {board:<7} N_PE={p['n_pe']:<3} {precision:<6} "
                      f"kernel {p['kernel_cycles_per_frame']:>12,} cycles  "
                      f"{p['board_kernel_fps']:7.2f} frames/s (modelled)  host "
                      f"{p['host_ms_per_frame']:6.1f} ms (measured here) -> "
                      f"{p['board_fps']:6.2f} frames/s   [{time.perf_counter() - t0:.0f} s]",
                      flush=True)
    return rows


def stream_gain(repeats: int, frames: int = 4, size=(48, 64)) -> dict:
    photos = load_frames()["hr"]
    rgb = [np.ascontiguousarray(_tiled(np.roll(photos, k, axis=0), *size)) for k in range(frames)]
    times = {1: [], 2: []}
    outputs = {}
    with Enhancer(device="sim", tile=32) as enhancer:
        for _ in range(repeats):
            for slots in (1, 2):
                enhancer.slots = slots
                source = FrameSource("photos", Fraction(25), frames, iter(rgb))
                t0 = time.perf_counter()
                outputs[slots] = [sr for sr, _ in enhancer.enhance_frames(source)]
                times[slots].append(time.perf_counter() - t0)
    assert all(np.array_equal(a, b) for a, b in zip(outputs[1], outputs[2])), "not bit-identical"
    return {"one_slot_s": statistics.median(times[1]), "two_slots_s": statistics.median(times[2]),
            "speedup": statistics.median(times[1]) / statistics.median(times[2]),
            "frames": frames, "size": f"{size[1]}x{size[0]}", "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default="pynqz2,kv260,zcu104")
    ap.add_argument("--precisions", default="fp32,bf16,fixed8")
    ap.add_argument("--resolutions", default="640x360")
    ap.add_argument("--json", default=None)
    ap.add_argument("--stream", action="store_true", help="part 2: two slots against one")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.stream:
        r = stream_gain(args.repeats)
        print(f"{r['frames']} frames of {r['size']} (tiles 32x32, halo 4), median of {r['repeats']}: "
              f"one slot {r['one_slot_s']:.2f} s, two slots {r['two_slots_s']:.2f} s "
              f"(x{r['speedup']:.2f}; outputs bit-identical; simulator, this machine)")
        return
    rows = table(args.boards.split(","), args.precisions.split(","), args.resolutions.split(","))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
