"""Convert the golden records (tests/data/golden/*.npz) into simple binary
files the C testbench tb_pe_golden.c can read without a numpy parser.

Layout of each ``<name>.bin`` (all little-endian):

    char[8]   magic "BLTGOLD2"
    uint32    n, the number of records
    then, one array after the other, each complete for all n records:
    uint8     w_sig[n][64]
    uint8     w_exp[n][64]
    uint32    w_abs[n][64]
    uint32    a_word[n][64]
    uint8     isfix[n]
    uint32    prune[n]
    uint8     quant[n]
    uint32    spec_res[n]
    int32     spec_total_cycles[n]
    int32     spec_scan_cycles[n]
    uint8     spec_col_steps[n][24]
    uint8     spec_acc_known[n]     1 for the fixed-mode records
    int64     spec_acc[n]           their exact accumulator acc (NUMERICS.md
                                    s.3) from the oracle tests/pyref.py; 0
                                    where spec_acc_known is 0

The golden records carry the published RTL's accumulator (``aacc``), which
differs from the contract's on F5/F6 records, so ``spec_acc`` comes from
the pure-Python oracle.  Fixed-mode records only: the oracle takes 5-12 ms
a fixed group and about 20 ms an fp32 one (the whole export takes some
15 s with the 2,049 fixed records; all 20,217 would take several minutes).

Usage: python export_golden.py GOLDEN_DIR OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# the oracle lives with the tests (a plain module, not part of the package)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import pyref

MAGIC = b"BLTGOLD2"
FIELDS = (
    ("w_sig", "<u1"), ("w_exp", "<u1"), ("w_abs", "<u4"), ("a_word", "<u4"),
    ("isfix", "<u1"), ("prune", "<u4"), ("quant", "<u1"),
    ("spec_res", "<u4"), ("spec_total_cycles", "<i4"), ("spec_scan_cycles", "<i4"),
    ("spec_col_steps", "<u1"),
)


def spec_acc(data) -> tuple[np.ndarray, np.ndarray]:
    """(known, acc) per record: the oracle's acc of each fixed-mode record.

    Returns uint8 [n] (1 = fixed record) and int64 [n] (|acc| < 2^55).
    """
    isfix = data["isfix"]
    known = (isfix != 0).astype(np.uint8)
    acc = np.zeros(len(isfix), dtype=np.int64)
    for i in np.flatnonzero(known):
        acc[i] = pyref.group(data["w_sig"][i], data["w_exp"][i], data["w_abs"][i],
                             data["a_word"][i], True, int(data["prune"][i]),
                             int(data["quant"][i])).acc
    return known, acc


def export(npz: Path, out_dir: Path) -> Path:
    """Write ``out_dir/<npz stem>.bin`` and return its path."""
    with np.load(npz) as data:
        n = len(data["isfix"])
        chunks = [MAGIC, np.uint32(n).astype("<u4").tobytes()]
        for name, dtype in FIELDS:
            chunks.append(np.ascontiguousarray(data[name], dtype=dtype).tobytes())
        known, acc = spec_acc(data)
        chunks += [known.astype("<u1").tobytes(), acc.astype("<i8").tobytes()]
    target = out_dir / (npz.stem + ".bin")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(b"".join(chunks))
    tmp.replace(target)          # never leave a half-written file behind
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    golden, out_dir = Path(argv[1]), Path(argv[2])
    files = sorted(golden.glob("*.npz"))
    if not files:
        print(f"export_golden: no .npz files in {golden}", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for npz in files:
        print(f"export_golden: {export(npz, out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
