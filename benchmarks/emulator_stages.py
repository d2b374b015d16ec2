"""Where the fast emulator's C time goes, from a perf profile (x86, GCC).

Groups the samples of ``bitlet._fast`` by source line into the stages of
the engine: operand alignment (emax, shifts), products (+ sign, exact int64
sums), the truncating pack and the binary32 group sums, the S scan (bit
columns, bounds, scanner walks), the cycle model, unpacking and gathering.
Inlined intrinsics are attributed by which intrinsic they are, so the
split is approximate (a few percent).  Usage (the engine built with -g)::

    CFLAGS=-g pip install --no-deps -e .
    perf record -o perf.data python -c "import numpy as np; from bitlet import numerics; \
        w = np.random.default_rng(1).standard_normal((1024, 1024), np.float32); \
        [numerics.matmul(w, np.abs(w), engine='fast', cycles=True, threads=1) for _ in range(2)]"
    python benchmarks/emulator_stages.py perf.data

Needs ``perf`` and the compiler's intrinsics headers (to name the inlined
intrinsics); the engine's sources are read from emu/ beside this script.
"""
import collections
import glob
import os
import re
import subprocess
import sys

if len(sys.argv) != 2:
    sys.exit("usage: python benchmarks/emulator_stages.py PERF_DATA")
data = sys.argv[1]
out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort", "sym,srcline",
                      "--percent-limit", "0.01", "--dsos", "_fast.abi3.so"], capture_output=True, text=True,
                     check=True).stdout
hdr = {}
for h in glob.glob("/usr/lib/gcc/x86_64-linux-gnu/*/include/*intrin.h"):
    with open(h) as f:
        lines = f.read().split("\n")
    name = h.split("/")[-1]
    cur = None
    for i, l in enumerate(lines, 1):
        m = re.match(r"^(_mm\w+)\s*\(", l)
        if m: cur = m.group(1)
        hdr[(name, i)] = cur
src = {}
def fn_at(path, line):
    if path not in src:
        try:
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emu", path)) as f:
                src[path] = f.read().split("\n")
        except OSError:
            src[path] = []
    lines = src[path]
    for i in range(min(line, len(lines)) - 1, -1, -1):
        m = re.match(r"^(?:static |FK_INLINE |uint32_t |int64_t |int |void )+.*?(\w+)\)?\(", lines[i])
        if m and not lines[i].startswith(" "):
            return lines[i][:90]
    return "?"
agg = collections.Counter()
for l in out.split("\n"):
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(\S+)\s+(\S+)", l)
    if not m: continue
    pct, kind, sym, sl = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    cat = None
    mm = re.match(r"(\w+\.h|\w+\.c|\w+\.inc):(\d+)", sl)
    if kind == "k": cat = "kernel (page faults, scheduling)"
    elif sym.startswith(("fk_", "block_", "prep_", "gather", "fs_", "table_", "write_", "start_", "run_layer", "bitlet_", "fl_", "pool_", "ws_")) or (mm and mm.group(1).startswith(("fast_", "avx", "emm", "smm", "imm"))):
        if any(k in sym for k in ("scan16", "scan8", "rbatch", "pbatch")):
            cat = "S: scanner automaton (row transposes, 16 groups at once)"
        elif "walk" in sym or "scan_lanes" in sym: cat = "S: scanner walks"
        elif "flush" in sym: cat = "S: bounds + batching"
        elif sym.startswith(("block_cycles", "fs_", "table_")): cat = "cycle model (units, waves)"
        elif sym.startswith(("prep_",)): cat = "unpack weights/activations"
        elif sym.startswith("block_task") or "gather" in sym: cat = "gather (im2col), start values, outputs"
        elif mm and mm.group(1) in ("fast_internal.h",): cat = "pack (truncating) + group sums"
        elif mm and mm.group(1).endswith("intrin.h"):
            name = hdr.get((mm.group(1), int(mm.group(2))), "?") or "?"
            if any(k in name for k in ("srlv", "max", "add_epi32", "sub_epi32", "shuffle_epi32", "extract", "cvtsi")): cat = "alignment (emax, shifts)"
            elif any(k in name for k in ("mul", "srli_epi64", "add_epi64", "xor", "unpackhi_epi64")): cat = "products + sign + int64 sums"
            elif any(k in name for k in ("movemask", "packus", "permute", "slli_epi16", "and_si256", "srli_epi32")): cat = "S: bit columns (transpose)"
            elif any(k in name for k in ("popcnt", "shuffle_epi8", "sad", "slli_epi64", "or_si256", "sub_epi64")): cat = "S: bounds + batching"
            elif "load" in name or "store" in name: cat = "loads/stores (operands)"
            else: cat = "other SIMD (" + name + ")"
        elif mm and mm.group(1) == "fast_kern_x86.c":
            f = fn_at("fast_kern_x86.c", int(mm.group(2)))
            if "columns" in f: cat = "S: bit columns (transpose)"
            elif "bound" in f or "popcnt" in f: cat = "S: bounds + batching"
            else: cat = "alignment (emax, shifts)"
        elif mm and mm.group(1) == "fast_kern.inc":
            f = fn_at("fast_kern.inc", int(mm.group(2)))
            if "scan_lanes" in f: cat = "S: bounds + batching"
            else: cat = "tile loops, NaN flags, group sums"
        else: cat = "engine other (" + sym + ")"
    elif "python" in sym.lower() or sym.startswith(("_Py", "Py")) : cat = "Python"
    else: cat = "Python, numpy, libc"
    agg[cat] += pct
tot = sum(agg.values())
for k, v in agg.most_common():
    print(f"{v / tot * 100:5.1f}%  {k}")
