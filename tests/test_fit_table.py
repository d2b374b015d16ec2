"""On-chip memory fit per board (hls/tools/fit_table.py, overlay/fit_table.md):
the committed table is what the generator writes today, every board's kernels
fit its device, and the mapping rule gives the hand-computed blocks on a
planted kernel."""
from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hls" / "tools"))
import fit_table


@pytest.fixture(scope="module")
def rows():
    return fit_table.fit()


def test_committed_table_equals_a_fresh_generation(rows):
    committed = fit_table.TABLE.read_text(encoding="utf-8")
    assert committed == fit_table.render(rows), \
        f"overlay/fit_table.md is stale: regenerate with `{fit_table.COMMAND}`"


def test_every_board_kernel_fits_its_device(rows):
    _, kinds, boards = fit_table._load_make_metadata().read_boards(fit_table.BOARDS_TCL)
    assert {(r.board, r.kind) for r in rows} == {(b, k) for b in boards for k in kinds}
    for r in rows:
        assert r.defines["BITLET_N_PE"] == boards[r.board]["n_pe"][r.kind]
        assert r.bram36 <= r.bram_cap and r.uram <= r.uram_cap, \
            f"{r.board} {r.kind}: {r.bram36} BRAM36, {r.uram} URAM"
    assert fit_table.misfits(rows) == []


@pytest.mark.parametrize("width, depth, sdp, blocks", [
    (32, 1024, True, 1),      # 1K x 36
    (32, 2048, True, 2),      # 2 x (1K x 36), or 2K x 18 twice
    (16, 2048, True, 1),      # 2K x 18
    (64, 512, True, 1),       # 512 x 72, simple dual port
    (64, 512, False, 2),      # true dual port: 2 x (512 x 36) RAMB18 = 1 + 1
    (32, 64, True, 0.5),      # one RAMB18 (512 x 36)
    (8, 4096, True, 1),       # 4K x 9
    (32, 65536, True, 64),
    (32, 1536, True, 1.5),    # 3 x RAMB18 (512 x 36)
])
def test_bram_mapping_rule(width, depth, sdp, blocks):
    assert fit_table.bram36_blocks(width, depth, sdp) == blocks


def test_uram_mapping_rule():
    assert fit_table.uram_blocks(72, 4096) == 1
    assert fit_table.uram_blocks(32, 65536) == 16
    assert fit_table.uram_blocks(128, 4097) == 4


HEADER = """\
#include <stdint.h>
#ifndef BITLET_N_PE
#define BITLET_N_PE 4
#endif
#define BITLET_ACT_BUF_WORDS 1024
#define BITLET_WGT_BUF_WORDS 16384
#define BITLET_OUT_BUF_WORDS 2048
"""

KERNEL = """\
#include "hw.h"
#define BANKS 4
static uint32_t act[BANKS][BITLET_ACT_BUF_WORDS / BANKS];
static uint64_t wgt[BITLET_WGT_BUF_WORDS / 2];
static uint32_t out_buf[BITLET_OUT_BUF_WORDS];
static uint32_t lut[16];
static uint32_t unused[4096];
static void pe(uint32_t *mem, uint32_t p) {
    uint32_t acc[BITLET_N_PE][64];
#pragma HLS ARRAY_PARTITION variable=acc type=complete dim=1
    acc[p][0] = mem[p];
    mem[p] = acc[p][0] + act[0][p];
}
void top(uint32_t *mem) {
#pragma HLS INTERFACE mode=m_axi port=mem max_read_burst_length=32 num_read_outstanding=4
#pragma HLS ARRAY_PARTITION variable=act type=cyclic factor=BANKS dim=1
#pragma HLS BIND_STORAGE variable=wgt type=ram_2p impl=uram
#pragma HLS ARRAY_RESHAPE variable=out_buf type=cyclic factor=2
#pragma HLS BIND_STORAGE variable=lut type=ram_1p impl=lutram
    uint32_t buf[4096];
#pragma HLS BIND_STORAGE variable=buf type=ram_t2p impl=bram
    uint32_t p;
    for (p = 0; p < BITLET_N_PE; p++)
        pe(mem, p);
    buf[0] = (uint32_t)wgt[0] + out_buf[1] + lut[2];
    mem[0] = buf[0];
}
"""


@pytest.mark.parametrize("n_pe, acc_bram", [(4, 2.0), (8, 4.0)])
def test_planted_kernel_blocks(tmp_path, n_pe, acc_bram):
    (tmp_path / "hw.h").write_text(HEADER)
    (tmp_path / "k.c").write_text(textwrap.dedent(KERNEL))
    mems = {m.name: m for m in fit_table.kernel_memories([tmp_path / "k.c"], "top",
                                                          {"BITLET_N_PE": n_pe})}
    assert "unused" not in mems                 # not referenced by the top
    expect = {
        # name: (impl, memories, depth, width, BRAM36, URAM)
        "act": ("BRAM", 4, 256, 32, 2.0, 0),    # cyclic 4 on dim 1: 4 x RAMB18 512x36
        "wgt": ("URAM", 1, 8192, 64, 0, 2),     # 4K x 72 URAMs, two deep
        "out_buf": ("BRAM", 1, 1024, 64, 2.0, 0),   # reshaped to 64 bits: 2 x 512x72
        "lut": ("LUTRAM", 1, 16, 32, 0, 0),
        "buf": ("BRAM", 1, 4096, 32, 4.0, 0),   # true dual port: 4 x 1K x 36
        "acc": ("BRAM", n_pe, 64, 32, acc_bram, 0),  # one RAMB18 per partition
        "m_axi mem read buffer": ("BRAM", 1, 128, 32, 0.5, 0),    # 4 x 32 words
        "m_axi mem write buffer": ("BRAM", 1, 256, 32, 0.5, 0),   # defaults 16 x 16
    }
    got = {name: (m.impl, m.memories, m.depth, m.width, m.bram36, m.uram)
           for name, m in mems.items()}
    assert got == expect


def test_generator_refuses_what_it_cannot_size(tmp_path):
    (tmp_path / "hw.h").write_text(HEADER)
    (tmp_path / "k.c").write_text(textwrap.dedent("""\
        #include "hw.h"
        static uint32_t a[64];
        void top(uint32_t *mem) {
        #pragma HLS ARRAY_PARTITION variable=a type=cyclic
            a[0] = mem[0];
        }
        """))
    with pytest.raises(ValueError, match="needs factor="):
        fit_table.kernel_memories([tmp_path / "k.c"], "top", {})


def test_misfit_is_reported(rows):
    over = [dataclasses.replace(rows[0], bram36=rows[0].bram_cap + 0.5)]
    assert fit_table.misfits(over) and "**NO**" in fit_table.render(over)
    assert fit_table.misfits([dataclasses.replace(rows[0], bram36=rows[0].bram_cap)]) == []


def test_board_defines_follow_the_header(tmp_path):
    board = {"n_pe": {"bitlet": 8}, "hp_data_width": "128"}
    header = tmp_path / "bitlet_hw.h"
    header.write_text("#define BITLET_AXI_BYTES 8\n")
    assert fit_table.board_defines(board, "bitlet", header) == {"BITLET_N_PE": 8}
    header.write_text("#ifndef BITLET_AXI_BYTES\n#define BITLET_AXI_BYTES 8\n#endif\n")
    assert fit_table.board_defines(board, "bitlet", header) == {"BITLET_N_PE": 8,
                                                                "BITLET_AXI_BYTES": 16}


def test_check_mode(tmp_path, capsys):
    out = tmp_path / "fit.md"
    out.write_text("stale\n")
    assert fit_table.main(["--check", "--out", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert fit_table.main(["--out", str(out)]) == 0
    assert fit_table.main(["--check", "--out", str(out)]) == 0
    assert out.read_text() == fit_table.TABLE.read_text()


def test_onchip_arrays_follow_constant_arguments(tmp_path):
    """A top is not charged for a branch that its constant arguments make dead
    (bk_run(kind, ...) shared by the two tops, as HLS folds it)."""
    (tmp_path / "hw.h").write_text(HEADER)
    (tmp_path / "k.c").write_text(textwrap.dedent("""\
        #include "hw.h"
        static void fp_path(uint32_t *m) { static uint32_t fp_buf[4096]; fp_buf[0] = m[0]; }
        static void int_path(uint32_t *m) { static uint32_t int_buf[2048]; int_buf[0] = m[0]; }
        static void run(int kind, uint32_t *m) {
            if (kind == 2)
                fp_path(m);
            else
                int_path(m);
        }
        void int_top(uint32_t *m) {
        #pragma HLS INTERFACE mode=m_axi port=m
            run(1, m);
        }
        void fp_top(uint32_t *m) {
        #pragma HLS INTERFACE mode=m_axi port=m
            run(2, m);
        }
        """))
    for top, buf in (("int_top", "int_buf"), ("fp_top", "fp_buf")):
        names = {m.name for m in fit_table.kernel_memories([tmp_path / "k.c"], top, {})}
        assert names == {buf, "m_axi m read buffer", "m_axi m write buffer"}
