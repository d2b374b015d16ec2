"""The one instruction builder (bitlet.program.instructions): the K-tile chain,
its flags and operand roles, output-channel and group tiles, and the K tiler."""
from __future__ import annotations

import pytest
from bitlet import hw
from bitlet.program.instructions import layer_instructions, partial_buffers
from bitlet.program.schedule import LayerGeometry, k_tiles


def test_k_tiler_fills_the_weight_buffer_and_covers_k():
    per = hw.WGT_BUF_WORDS // (hw.N_PE * hw.GROUP)
    tiles = k_tiles(2 * per + 1, hw.N_PE, hw.WGT_BUF_WORDS)
    assert tiles == [(0, per), (per, 2 * per), (2 * per, 2 * per + 1)]
    assert k_tiles(1, hw.N_PE, hw.WGT_BUF_WORDS) == [(0, 1)]
    assert k_tiles(5, 4, 4 * hw.GROUP - 1) == []          # not one group per PE


def test_the_k_chain_alternates_two_partial_buffers():
    geo = LayerGeometry("g", n=3, ih=1, iw=1, cin=64 * 3, cout=8, gemm=True)
    items = layer_instructions(geo, [(0, 1), (1, 2), (2, 3)], wfmt=hw.FMT_FP32, relu=True,
                               bias=True, prune=0xFFF000, layer=7)
    assert [i.out for i in items] == ["partial0", "partial1", "out"]
    assert [i.acc for i in items] == [None, "partial0", "partial1"]
    assert [i.bias for i in items] == [False, False, True]
    flags = [i.insn.flags for i in items]
    assert [bool(f & hw.FLAG_PARTIAL) for f in flags] == [True, True, False]
    assert [bool(f & hw.FLAG_ACCUM) for f in flags] == [False, True, True]
    assert [bool(f & hw.FLAG_RELU) for f in flags] == [False, False, True]
    assert [bool(f & hw.FLAG_BIAS) for f in flags] == [False, False, True]
    assert [i.insn.kg_range for i in items] == [(0, 1), (1, 2), (2, 3)]
    assert {i.insn.opcode for i in items} == {hw.OP_GEMM}
    assert {(i.insn.prune, i.insn.layer, i.insn.act, i.insn.out) for i in items} == \
        {(0xFFF000, 7, 0, 0)}
    assert partial_buffers(3) == ("partial0", "partial1") and partial_buffers(1) == ()


def test_output_and_group_tiles_address_their_channels():
    geo = LayerGeometry("c", n=1, ih=6, iw=5, cin=8, cout=12, kh=3, kw=3, pads=(1, 1, 1, 1),
                        groups=4)
    items = layer_instructions(geo, [(0, 1)], wfmt=hw.FMT_FP16, ofmt=hw.FMT_FP32,
                               tiles=[(0, 6, 0, 2), (6, 12, 2, 4)])
    assert [(i.co0, i.out, i.acc) for i in items] == [(0, "out", None), (6, "out", None)]
    for item, (g0, ng) in zip(items, [(0, 2), (2, 2)]):
        insn = item.insn
        assert (insn.cin, insn.cout, insn.groups) == (ng * 2, 6, ng)
        assert (insn.in_coff, insn.in_cstride) == (g0 * 2, 8)
        assert (insn.out_coff, insn.out_cstride) == (item.co0, 12)
        assert (insn.wfmt, insn.afmt, insn.ofmt) == (hw.FMT_FP16, hw.FMT_FP16, hw.FMT_FP32)
        assert insn.out_hw == geo.out_hw == (6, 5) and insn.pad == (1, 1, 1, 1)
    whole = layer_instructions(geo, [(0, 1)], wfmt=hw.FMT_FP32)
    assert len(whole) == 1 and whole[0].insn.groups == 4 and whole[0].insn.cin == 8


def test_a_geometry_the_kernel_cannot_run_is_refused():
    geo = LayerGeometry("c", n=1, ih=2, iw=2, cin=1, cout=1, kh=3, kw=3)
    with pytest.raises(ValueError, match="does not fit the padded input"):
        layer_instructions(geo, [(0, 1)], wfmt=hw.FMT_FP32)
