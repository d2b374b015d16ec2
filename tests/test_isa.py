"""Instruction encoding (bitlet.isa) and the kernel's instruction-level
behaviour: IDs, status codes for bad fields, bus errors without partial
writes, buffer limits, stop at the first failing instruction, profile records."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bitlet import hw, isa
from bitlet.drivers import kernel as kernel_driver
from bitlet.drivers.arena import MemoryImage
from bitlet.engines import reference
from bitlet.errors import BitletTypeError, BitletValueError, BusError, DeviceError
from bitlet.numerics import layers as _layers
from bitlet.program import preprocess

pytestmark = pytest.mark.numerics

# ----------------------------------------------------------------------
# encode / decode
# ----------------------------------------------------------------------
WORD_FIELDS = ("n", "ih", "iw", "cin", "cout", "kh", "kw", "groups", "out_cstride", "out_coff",
               "in_cstride", "in_coff", "kg_begin", "kg_end")


def random_insn(rng) -> isa.Insn:
    return isa.Insn(
        opcode=int(rng.integers(0, 256)), wfmt=int(rng.integers(0, 16)),
        afmt=int(rng.integers(0, 16)), ofmt=int(rng.integers(0, 16)),
        flags=int(rng.integers(0, 256)), prune=int(rng.integers(0, 1 << 24)),
        quant=int(rng.integers(0, 256)),
        **{name: int(rng.integers(0, 1 << 63)) for name in ("act", "wgt", "bias", "out", "acc")},
        **{name: int(rng.integers(0, 1 << 32)) for name in WORD_FIELDS},
        stride=tuple(int(v) for v in rng.integers(0, 1 << 16, 2)),
        pad=tuple(int(v) for v in rng.integers(0, 1 << 16, 4)),
        dilation=tuple(int(v) for v in rng.integers(0, 1 << 16, 2)),
        out_hw=tuple(int(v) for v in rng.integers(0, 1 << 16, 2)),
        fixbits=int(rng.integers(0, 256)), layer=int(rng.integers(0, 1 << 24)))


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        insn = random_insn(rng)
        words = insn.encode()
        assert words.dtype == np.uint32 and words.shape == (hw.INSN_WORDS,)
        assert isa.Insn.decode(words) == insn


def only_word(insn: isa.Insn) -> tuple[int, int]:
    words = insn.encode()
    (index,) = np.flatnonzero(words)
    return int(index), int(words[index])


def test_every_field_lands_where_the_header_says():
    base = isa.Insn(n=0, ih=0, iw=0, cin=0, cout=0, kh=0, kw=0, groups=0, out_cstride=0,
                    in_cstride=0, prune=0, stride=(0, 0), dilation=(0, 0), out_hw=(0, 0))
    assert not base.encode().any()
    cases = {
        "opcode": (5, hw.W_OP, 5), "wfmt": (3, hw.W_OP, 3 << hw.WFMT_SHIFT),
        "afmt": (2, hw.W_OP, 2 << hw.AFMT_SHIFT), "ofmt": (1, hw.W_OP, 1 << hw.OFMT_SHIFT),
        "flags": (hw.FLAG_ACCUM, hw.W_OP, hw.FLAG_ACCUM << hw.FLAGS_SHIFT),
        "prune": (0xABCDEF, hw.W_PRUNE, 0xABCDEF),
        "quant": (17, hw.W_PRUNE, 17 << hw.QUANT_SHIFT),
        "fixbits": (12, hw.W_MISC, 12), "layer": (77, hw.W_MISC, 77 << hw.LAYER_SHIFT),
    }
    for name in WORD_FIELDS:
        cases[name] = (123456, getattr(hw, f"W_{name.upper()}"), 123456)
    for name, (value, word, expect) in cases.items():
        assert only_word(base.replace(**{name: value})) == (word, expect), name
    for name in ("act", "wgt", "bias", "out", "acc"):
        lo = getattr(hw, f"W_{name.upper()}_LO")
        words = base.replace(**{name: 0x1234_5678_9ABC_DEF0}).encode()
        assert (words[lo], words[lo + 1]) == (0x9ABC_DEF0, 0x1234_5678), name
        assert getattr(hw, f"W_{name.upper()}_HI") == lo + 1
    pairs = {"stride": [hw.W_STRIDE], "dilation": [hw.W_DIL], "out_hw": [hw.W_OHW],
             "pad": [hw.W_PAD_TL, hw.W_PAD_BR]}
    for name, words_at in pairs.items():
        n = 2 * len(words_at)
        words = base.replace(**{name: tuple(range(11, 11 + n))}).encode()
        for i, at in enumerate(words_at):
            assert words[at] == (11 + 2 * i) | (12 + 2 * i) << hw.HALF_SHIFT, name


def test_field_out_of_range_is_named():
    with pytest.raises(BitletValueError, match="prune"):
        isa.Insn(prune=1 << 24).encode()
    with pytest.raises(BitletValueError, match="stride"):
        isa.Insn(stride=(1 << 16, 1)).encode()
    with pytest.raises(BitletTypeError, match="cin"):
        isa.Insn(cin=2.5).encode()
    with pytest.raises(BitletValueError, match="words"):
        isa.Insn.decode(np.zeros(3, np.uint32))


def test_program_bytes_is_little_endian_concatenation():
    a, b = isa.nop(layer=1), isa.nop(layer=2)
    blob = isa.program_bytes([a, b])
    assert len(blob) == 2 * hw.INSN_BYTES
    words = np.frombuffer(blob, dtype="<u4")
    assert words[hw.INSN_WORDS + hw.W_MISC] == 2 << hw.LAYER_SHIFT


def test_builders_compute_output_size_and_validate():
    insn = isa.conv2d(n=1, ih=7, iw=9, cin=4, cout=8, kh=3, kw=2, act=0, wgt=0, out=0,
                      stride=(2, 3), padding=(1, 0, 2, 1), dilation=(2, 1), groups=2)
    assert insn.out_hw == ((7 + 3 - 2 * 2 - 1) // 2 + 1, (9 + 1 - 1 - 1) // 3 + 1)
    assert insn.k == 3 * 2 * 2 and insn.n_kgroups == 1 and insn.in_cstride == 4
    g = isa.gemm(m=3, k=130, n=5, act=0, wgt=0, out=0, relu=True)
    assert g.opcode == hw.OP_GEMM and g.n_kgroups == 3 and g.flags == hw.FLAG_RELU
    with pytest.raises(BitletValueError, match="groups"):
        isa.conv2d(n=1, ih=3, iw=3, cin=3, cout=4, kh=1, kw=1, act=0, wgt=0, out=0, groups=2)
    with pytest.raises(BitletValueError, match="does not fit"):
        isa.conv2d(n=1, ih=2, iw=2, cin=1, cout=1, kh=3, kw=3, act=0, wgt=0, out=0)
    with pytest.raises(BitletValueError, match="dilation"):
        isa.conv2d(n=1, ih=2, iw=2, cin=1, cout=1, kh=1, kw=1, act=0, wgt=0, out=0, dilation=0)


def test_decode_profile_fields():
    words = np.zeros((2, hw.PROF_WORDS), np.uint32)
    words[1, hw.P_STATUS] = hw.STATUS_BUS_ERROR
    words[1, hw.P_LAYER] = 9
    words[1, hw.P_PE_CYCLES_LO], words[1, hw.P_PE_CYCLES_HI] = 5, 1
    words[1, hw.P_DDR_BYTES_HI] = 2
    rec = isa.decode_profile(words.reshape(-1))
    assert rec.shape == (2,)
    assert rec["pe_cycles"][1] == (1 << 32) + 5 and rec["ddr_bytes"][1] == 2 << 32
    assert rec["layer"][1] == 9 and isa.status_name(int(rec["status"][1])) == "BUS_ERROR"
    with pytest.raises(BitletValueError):
        isa.decode_profile(np.zeros(5, np.uint32))


def test_status_names_are_the_headers_and_the_driver_uses_the_same_table():
    statuses = {v: k for k, v in hw.constants().items() if k.startswith("STATUS_")}
    assert len(statuses) >= 5
    for value, name in statuses.items():
        assert isa.status_name(value) == name[len("STATUS_"):]
    assert isa.status_name(max(statuses) + 1) == f"UNKNOWN({max(statuses) + 1})"
    assert kernel_driver.status_name is isa.status_name


# ----------------------------------------------------------------------
# the kernel: a small valid instruction and its mutations
# ----------------------------------------------------------------------
@dataclasses.dataclass
class Setup:
    arena: MemoryImage
    insn: isa.Insn
    out: int


def setup(precision="fp32", relu=False) -> Setup:
    rng = np.random.default_rng(1)
    fixed = precision == "fixed"
    x = rng.integers(-50, 50, (1, 4, 4, 4)) if fixed else rng.random((1, 4, 4, 4), np.float32)
    w = rng.integers(-50, 50, (4, 3, 3, 2)) if fixed else rng.random((4, 3, 3, 2), np.float32)
    arena = _layers.memory_image()
    code = isa.fmt_code(precision)
    act = arena.add(preprocess.to_words(preprocess.pack_activations(x, code)))
    wgt = arena.add(preprocess.to_words(preprocess.to_device_weights(w, code)))
    bias = arena.add(preprocess.to_words(preprocess.pack_bias(np.zeros(4, np.int64 if fixed
                                                                       else np.float32), fixed)))
    insn = isa.conv2d(n=1, ih=4, iw=4, cin=4, cout=4, kh=3, kw=3, groups=2, padding=1, act=act,
                      wgt=wgt, out=0, bias=bias, precision=precision, relu=relu, quant=0)
    out = arena.reserve(isa.operand_bytes(insn)["out"])
    return Setup(arena, insn.replace(out=out), out)


# The arena's last block, the profile area of one record (allocations are
# rounded to the arena's 64-byte alignment).
PROF_AREA_WORDS = -(-hw.PROF_BYTES // 64) * 64 // 4


def run(s: Setup, insns, *, kernel="bitlet", n_insn=None, prof=True, prog=None):
    prog_addr = s.arena.add(isa.program_words(insns))
    prof_addr = s.arena.reserve(len(insns) * hw.PROF_BYTES) if prof else 0
    mem = s.arena.build()
    fill = np.uint32(0xDEADBEEF)
    o = (s.out - s.arena.base) // 4
    mem[o:o + 64] = fill
    before = mem.copy()
    res = reference.run_kernel(mem, prog_addr=prog_addr if prog is None else prog,
                               n_insn=len(insns) if n_insn is None else n_insn,
                               prof_addr=prof_addr, mem_base=s.arena.base, kernel=kernel)
    records = None
    if prof:
        p = (prof_addr - s.arena.base) // 4
        records = isa.decode_profile(mem[p:p + len(insns) * hw.PROF_WORDS])
    return res, mem, before, records


def test_ids_are_written_even_with_no_instruction():
    s = setup()
    for kernel, kind, formats in (("bitlet", hw.KIND_BITLET, hw.FORMATS_BITLET),
                                  ("vendor_fp", hw.KIND_VENDOR_FP, hw.FORMATS_VENDOR)):
        res, mem, before, _ = run(s, [], kernel=kernel, prof=False)
        assert res["status"] == hw.STATUS_OK and res["insn_done"] == 0
        assert res["id_magic"] == hw.MAGIC and res["id_version"] == hw.ISA_VERSION
        cfg = res["id_config"]
        assert (cfg >> hw.CFG_NPE_SHIFT) & hw.CFG_NPE_MASK == hw.N_PE
        assert (cfg >> hw.CFG_KIND_SHIFT) & hw.CFG_KIND_MASK == kind
        assert (cfg >> hw.CFG_FMT_SHIFT) & hw.CFG_FMT_MASK == formats
        assert (cfg >> hw.CFG_CLK_SHIFT) & hw.CFG_CLK_MASK == hw.CLOCK_MHZ // 4
        assert (res["id_act_buf"], res["id_wgt_buf"], res["id_out_buf"]) == (
            hw.ACT_BUF_WORDS, hw.WGT_BUF_WORDS, hw.OUT_BUF_WORDS)
        assert np.array_equal(mem, before)


def test_valid_instruction_runs_and_writes_a_profile_record():
    s = setup()
    res, mem, before, rec = run(s, [s.insn.replace(layer=42), isa.nop(layer=7)])
    assert res["status"] == hw.STATUS_OK and res["insn_done"] == 2
    assert rec["status"].tolist() == [hw.STATUS_OK] * 2
    assert rec["layer"].tolist() == [42, 7]
    assert rec["groups"][0] == 4 * 4 * 4 * 1 and rec["pe_cycles"][0] > 0
    assert rec["ref_cycles"][0] > rec["pe_cycles"][0]
    assert rec["ddr_bytes"][1] == hw.INSN_BYTES and rec["pe_cycles"][1] == 0
    # a NOP: the control overhead and one burst of the instruction's beats
    assert rec["kernel_cycles"][1] == (hw.INSN_OVERHEAD_CYCLES + hw.DDR_LATENCY
                                       + hw.INSN_BYTES // hw.AXI_BYTES)
    # the stamps: the run's modelled clock, instruction after instruction
    assert rec["start"][0] == 0 and rec["end"][0] == rec["kernel_cycles"][0]
    assert rec["start"][1] == rec["end"][0]
    assert rec["end"][1] == rec["end"][0] + rec["kernel_cycles"][1] == res["clock"]
    o = (s.out - s.arena.base) // 4
    assert not np.array_equal(mem[o:o + 64], before[o:o + 64])


def bad_fields(insn: isa.Insn):
    fx = {"wfmt": hw.FMT_FIXED, "afmt": hw.FMT_FIXED, "ofmt": hw.FMT_FIXED}
    return {
        "format code": insn.replace(wfmt=hw.N_FMT),
        "fixed weights, float activations": insn.replace(wfmt=hw.FMT_FIXED),
        "float weights, fixed output": insn.replace(ofmt=hw.FMT_FIXED),
        "quant in float mode": insn.replace(quant=3),
        "quant > 24": insn.replace(quant=hw.QUANT_MAX + 1, flags=0, **fx),
        "fixbits > 24": insn.replace(fixbits=hw.FIXED_MAX_BITS + 1, flags=0, **fx),
        "unknown flag": insn.replace(flags=0x80),
        "partial with relu": insn.replace(flags=hw.FLAG_PARTIAL | hw.FLAG_RELU),
        "stride 0": insn.replace(stride=(0, 1)),
        "dilation 0": insn.replace(dilation=(1, 0)),
        "groups 0": insn.replace(groups=0),
        "groups not dividing": insn.replace(groups=3),
        "wrong out height": insn.replace(out_hw=(insn.out_hw[0] + 1, insn.out_hw[1])),
        "N = 0": insn.replace(n=0),
        "CIN too big": insn.replace(cin=hw.MAX_DIM + 1),
        "in pitch too small": insn.replace(in_cstride=3),
        "out pitch too small": insn.replace(out_coff=1),
        "empty K range": insn.replace(kg_begin=1, kg_end=1),
        "K range past the end": insn.replace(kg_end=2),
        "GEMM with a kernel": insn.replace(opcode=hw.OP_GEMM),
        "fixed K > 32768": insn.replace(cin=2 * 3642, in_cstride=2 * 3642, flags=0, **fx),
    }


@pytest.mark.parametrize("case", list(bad_fields(isa.Insn())))
def test_bad_fields_stop_with_bad_field_and_write_nothing(case):
    s = setup()
    bad = bad_fields(s.insn)[case]
    res, mem, before, rec = run(s, [bad])
    assert res["status"] == hw.STATUS_BAD_FIELD and res["insn_done"] == 0
    assert rec["status"][0] == hw.STATUS_BAD_FIELD
    assert rec["pe_cycles"][0] == 0 and rec["groups"][0] == 0
    assert rec["start"][0] == rec["end"][0] == 0 == res["clock"]   # no cycles, no clock
    p = len(mem) - PROF_AREA_WORDS                  # everything but the profile record
    assert np.array_equal(mem[:p], before[:p])


def test_bad_opcode_and_vendor_fixed():
    s = setup()
    res, *_ = run(s, [s.insn.replace(opcode=0x7F)])
    assert res["status"] == hw.STATUS_BAD_OPCODE
    f = setup("fixed")
    res, *_ = run(f, [f.insn], kernel="vendor_fp")
    assert res["status"] == hw.STATUS_BAD_FIELD
    res, *_ = run(f, [f.insn], kernel="bitlet")
    assert res["status"] == hw.STATUS_OK


def test_fixed_bias_limit_is_checked_before_any_write():
    s = setup("fixed")
    bias = s.arena.add(preprocess.to_words(np.array([0, 0, 1 << 61, 0], np.int64)))
    res, mem, before, _ = run(s, [s.insn.replace(bias=bias, flags=hw.FLAG_BIAS)])
    assert res["status"] == hw.STATUS_BAD_FIELD
    p = len(mem) - PROF_AREA_WORDS
    assert np.array_equal(mem[:p], before[:p])


def test_bus_errors_write_nothing():
    s = setup()
    end = s.arena.base + s.arena.size + 4 * 1024       # past the whole arena
    cases = {
        "act": s.insn.replace(act=end),
        "act below base": s.insn.replace(act=s.arena.base - 64),
        "wgt": s.insn.replace(wgt=end),
        "bias": s.insn.replace(bias=end, flags=hw.FLAG_BIAS),
        "acc": s.insn.replace(acc=end, flags=hw.FLAG_ACCUM),
        "misaligned act": s.insn.replace(act=s.insn.act + 2),
        "address wraps": s.insn.replace(out=(1 << 64) - 8),
    }
    for name, insn in cases.items():
        res, mem, before, _ = run(s, [insn])
        assert res["status"] == hw.STATUS_BUS_ERROR, name
        p = len(mem) - PROF_AREA_WORDS
        assert np.array_equal(mem[:p], before[:p]), name


def test_output_past_the_end_is_a_bus_error_without_partial_write():
    s = setup()
    sizes = isa.operand_bytes(s.insn)
    prog = s.arena.add(isa.program_words([s.insn]))
    mem = s.arena.build()
    end = s.arena.base + mem.size * 4
    out = end - sizes["out"] + 4                     # last word falls outside
    words = s.insn.replace(out=out).encode()
    p = (prog - s.arena.base) // 4
    mem[p:p + hw.INSN_WORDS] = words
    before = mem.copy()
    res = reference.run_kernel(mem, prog_addr=prog, n_insn=1, mem_base=s.arena.base)
    assert res["status"] == hw.STATUS_BUS_ERROR
    assert np.array_equal(mem, before)
    mem[p:p + hw.INSN_WORDS] = s.insn.replace(out=out - 4).encode()   # exactly fits
    res = reference.run_kernel(mem, prog_addr=prog, n_insn=1, mem_base=s.arena.base)
    assert res["status"] == hw.STATUS_OK


def test_program_and_profile_addresses_are_checked():
    s = setup()
    res, *_ = run(s, [s.insn], prog=s.arena.base + (1 << 30))
    assert res["status"] == hw.STATUS_BUS_ERROR and res["insn_done"] == 0
    res, *_ = run(s, [s.insn], n_insn=50)            # instruction 1 is past the arena
    assert res["status"] == hw.STATUS_BUS_ERROR and res["insn_done"] == 1
    prog = s.arena.add(isa.program_words([s.insn]))
    mem = s.arena.build()
    res = reference.run_kernel(mem, prog_addr=prog, n_insn=1,
                               prof_addr=s.arena.base + mem.size * 4, mem_base=s.arena.base)
    assert res["status"] == hw.STATUS_BUS_ERROR


def test_buffer_limits():
    s = setup()
    k_tile = hw.WGT_BUF_WORDS // (hw.N_PE * hw.GROUP) + 1          # groups in one tile
    cases = {
        "weights": isa.gemm(m=4, k=k_tile * hw.GROUP, n=1, act=s.insn.act, wgt=s.insn.act,
                            out=s.out),
        "act rows": isa.conv2d(n=1, ih=2, iw=300, cin=128, cout=1, kh=2, kw=1, act=s.insn.act,
                               wgt=s.insn.act, out=s.out),
        "out row": isa.conv2d(n=1, ih=1, iw=hw.OUT_BUF_WORDS // hw.N_PE + 1, cin=1, cout=1,
                              kh=1, kw=1, act=s.insn.act, wgt=s.insn.act, out=s.out),
        "bias": isa.gemm(m=hw.BIAS_BUF_WORDS + 1, k=1, n=1, act=s.insn.act, wgt=s.insn.act,
                         out=s.out, bias=s.insn.act),
    }
    for name, insn in cases.items():
        arena = _layers.memory_image()
        big = arena.reserve(sum(isa.operand_bytes(insn).values()))
        insn = insn.replace(act=big, wgt=big, out=big, bias=big if insn.bias else 0)
        prog = arena.add(isa.program_words([insn]))
        mem = arena.build()
        before = mem.copy()
        res = reference.run_kernel(mem, prog_addr=prog, n_insn=1, mem_base=arena.base)
        assert res["status"] == hw.STATUS_BUF_OVERFLOW, name
        assert np.array_equal(mem, before), name


def test_run_stops_at_the_first_failing_instruction():
    s = setup()
    good = s.insn
    second_out = s.arena.reserve(isa.operand_bytes(good)["out"])
    res, mem, _, rec = run(s, [good, good.replace(stride=(0, 0)),
                               good.replace(out=second_out)])
    assert res["status"] == hw.STATUS_BAD_FIELD and res["insn_done"] == 1
    assert rec["status"].tolist()[:2] == [hw.STATUS_OK, hw.STATUS_BAD_FIELD]
    assert rec["pe_cycles"][2] == 0 and rec["layer"][2] == 0       # never written
    o = (second_out - s.arena.base) // 4
    assert not mem[o:o + 64].any()


def test_run_program_raises_named_errors():
    s = setup()
    with pytest.raises(BusError, match="instruction 0"):
        _layers.run_program(s.arena, [s.insn.replace(act=1 << 40)])
    s = setup()
    with pytest.raises(DeviceError, match="BAD_FIELD"):
        _layers.run_program(s.arena, [s.insn.replace(groups=3)])


def test_kernel_csim_testbench_passes():
    """hls/csim/tb_kernel.c (Vitis csim style) replays every golden record
    through bitlet_top() (and the fp32 ones through vendor_fp_top()) as GEMM
    instructions, plus a K-tiled grouped conv, for both tops; and once more
    with the clock stamps on their synthesis path, where every START, END
    and the clock output must be its own read of the timestamp port; and the
    RTL PE build of bitlet_top (-DBITLET_RTL_PE: one call of the RTL blackbox
    bitlet_pe_bb(), here its C model, per PE and group step)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    csim = Path(__file__).resolve().parents[1] / "hls" / "csim"
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("the C testbench needs make and gcc on PATH")
    if not (csim / "tb_kernel.c").exists():
        pytest.skip("hls/csim not present (installed without a source tree)")
    proc = subprocess.run(["make", "-s", "-C", str(csim), "test-kernel", f"PYTHON={sys.executable}"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "bitlet_top: 20217 records as GEMM instructions, 0 skipped" in proc.stdout, \
        proc.stdout[-3000:]
    assert "golden replay through vendor_fp_top" in proc.stdout
    assert "bk_f32_add: " in proc.stdout and " 0 mismatches; bk_fp16_to_fp32" in proc.stdout
    # the RTL PE build (-DBITLET_RTL_PE): the PE array calls the RTL blackbox
    # bitlet_pe_bb() (its C model), every record (fixed mode: its acc output)
    assert "bitlet_top (RTL PE build): 20217 records as GEMM instructions, 0 skipped" \
        in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count("\nPASS\n") + proc.stdout.startswith("PASS") == 6
    assert proc.stdout.count("clock stamps: one read of the timestamp port each") == 1
    assert "FAIL" not in proc.stdout


_TCL_STUBS = r"""
set log {}
foreach cmd {open_project set_top add_files open_solution set_part create_clock
             config_interface csim_design csynth_design cosim_design export_design} {
    proc $cmd {args} "lappend ::log \[list $cmd {*}\$args\]"
}
proc exit {args} { lappend ::log [list exit] }
set argv $::env(RUN_HLS_ARGV)
set argc [llength $argv]
source $::env(RUN_HLS_SCRIPT)
foreach entry $log { puts $entry }
"""


def _run_hls_tcl(tmp_path, argv: str, bins: list[str]):
    import os
    import shutil
    import subprocess
    from pathlib import Path

    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.skip("tclsh not on PATH")
    script = Path(__file__).resolve().parents[1] / "hls" / "run_hls.tcl"
    if not script.exists():
        pytest.skip("hls/ not present (installed without a source tree)")
    bin_dir = tmp_path / "bins"
    bin_dir.mkdir(exist_ok=True)
    for name in bins:
        (bin_dir / name).write_bytes(b"")
    (tmp_path / "stubs.tcl").write_text(_TCL_STUBS)
    env = dict(os.environ, RUN_HLS_ARGV=argv, RUN_HLS_SCRIPT=str(script),
               BITLET_HLS_WORK=str(tmp_path / "work"), BITLET_GOLDEN_BIN_DIR=str(bin_dir))
    env.pop("BITLET_PART", None)
    env.pop("BITLET_N_PE", None)
    proc = subprocess.run([tclsh, str(tmp_path / "stubs.tcl")], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    return proc, [line.split() for line in proc.stdout.splitlines()]


def test_hls_script_parses_and_drives_the_documented_flow(tmp_path):
    proc, calls = _run_hls_tcl(tmp_path, "", ["f32_edge.bin", "f32_random_full.bin"])
    assert proc.returncode == 0, proc.stderr
    verbs = [c[0] for c in calls]
    assert verbs == ["open_project", "set_top"] + ["add_files"] * 8 + [
        "open_solution", "set_part", "create_clock", "config_interface", "csim_design",
        "csynth_design", "cosim_design", "export_design", "exit"]
    assert calls[1] == ["set_top", "bitlet_top"]
    assert ["set_part", "xc7z020clg400-1"] in calls
    period = float(calls[verbs.index("create_clock")][2])
    assert period == pytest.approx(1000.0 / hw.CLOCK_MHZ)
    tb = calls[verbs.index("add_files") + 7]
    # the m_axi width: 64 bits on the Zynq-7000 part (AXI_BYTES), widened bursts
    assert f"-DBITLET_AXI_BYTES={hw.AXI_BYTES}" in " ".join(calls[verbs.index("add_files")])
    assert calls[verbs.index("config_interface")][1:] == [
        "-m_axi_max_widen_bitwidth", str(8 * hw.AXI_BYTES), "-m_axi_alignment_byte_size",
        str(hw.AXI_BYTES)]
    assert tb[1] == "-tb" and tb[2].endswith("csim/tb_kernel.c")
    bins = tmp_path / "bins"
    csim = " ".join(calls[verbs.index("csim_design")])
    assert f"{bins / 'f32_edge.bin'} {bins / 'f32_random_full.bin'}" in csim
    cosim = " ".join(calls[verbs.index("cosim_design")])
    assert str(bins / "f32_edge.bin") in cosim and "f32_random_full" not in cosim
    export = " ".join(calls[verbs.index("export_design")])
    for flag, value in (("-vendor", hw.IP_VENDOR), ("-library", hw.IP_LIBRARY),
                        ("-version", hw.IP_VERSION), ("-ipname", hw.IP_NAME),
                        ("-format", "ip_catalog")):
        assert f"{flag} {value}" in export


def test_hls_script_selects_the_vendor_top_and_part(tmp_path):
    proc, calls = _run_hls_tcl(tmp_path, "vendor xczu7ev-ffvc1156-2-e csynth,export", [])
    assert proc.returncode == 0, proc.stderr
    assert ["set_top", "vendor_fp_top"] in calls
    assert ["set_part", "xczu7ev-ffvc1156-2-e"] in calls
    # Zynq UltraScale+ HP ports: 128-bit m_axi
    assert "-DBITLET_AXI_BYTES=16" in " ".join(next(c for c in calls if c[0] == "add_files"))
    assert not any(c[0] in ("csim_design", "cosim_design") for c in calls)
    export = " ".join(next(c for c in calls if c[0] == "export_design"))
    assert f"-ipname {hw.VENDOR_IP_NAME}" in export
    proc, _ = _run_hls_tcl(tmp_path, "bitlet xc7z020clg400-1 csim", [])
    assert proc.returncode != 0 and "golden" in proc.stderr
    proc, _ = _run_hls_tcl(tmp_path, "nosuchtop", [])
    assert proc.returncode != 0 and "TOP must be" in proc.stderr


# ----------------------------------------------------------------------
# HLS style of the kernel sources (they cannot be synthesised here)
# ----------------------------------------------------------------------
_HLS_SOURCES = ("bitlet_pe.c", "bitlet_kernel.c", "vendor_kernel.c")
_TOP_ARGS = ("mem", "mem_base", "mem_size", "prog_addr", "n_insn", "prof_addr", "status",
             "insn_done", "id_magic", "id_version", "id_config", "id_act_buf", "id_wgt_buf",
             "id_out_buf", "clock")
# the pragma forms of the Vitis HLS user guide (UG1399, 2022.1 and later)
_PRAGMA_FORMS = (
    (r"INTERFACE mode=m_axi port=mem offset=slave bundle=gmem depth=BITLET_MAXI_DEPTH"
     r"( max_(read|write)_burst_length=\d+)*( num_(read|write)_outstanding=\d+)*"),
    r"INTERFACE mode=s_axilite port=\w+ bundle=control",
    r"INTERFACE mode=ap_none port=timestamp",
    r"BIND_STORAGE variable=\w+ type=ram_(1p|2p|t2p|s2p) impl=(bram|uram|lutram)",
    r"DEPENDENCE variable=\w+ type=inter direction=RAW distance=\d+ dependent=true",
    r"INTERFACE mode=ap_ctrl_hs port=return",
    r"ARRAY_PARTITION variable=\w+ type=(complete|cyclic|block)( factor=\d+)?( dim=\d+)?",
    r"LOOP_TRIPCOUNT min=\d+ max=\d+",
    r"PIPELINE II=1", r"UNROLL", r"INLINE",
)


def _hls_text(name: str) -> str:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "hls" / name
    if not path.exists():
        pytest.skip("hls/ not present (installed without a source tree)")
    return path.read_text()


@pytest.mark.parametrize("name", _HLS_SOURCES)
def test_hls_pragmas_use_the_documented_forms(name):
    import re

    pragmas = re.findall(r"^\s*#pragma HLS (.*?)\s*$", _hls_text(name), re.MULTILINE)
    assert pragmas
    for pragma in pragmas:
        assert any(re.fullmatch(form, pragma) for form in _PRAGMA_FORMS), pragma


@pytest.mark.parametrize("name, top", [("bitlet_kernel.c", "bitlet_top"),
                                       ("bitlet_kernel.c", "vendor_fp_top")])
def test_each_top_argument_has_its_interface(name, top):
    """mem is the m_axi port with its offset register in `control`; timestamp
    an ap_none input wire (no register); every other argument and the return
    (ap_ctrl_hs, and so the interrupt) is s_axilite in `control`, in the
    argument order bitlet_hw.h's register map follows."""
    import re

    text = _hls_text(name)
    body = text[text.index(f"void {top}("):]
    body = body[:body.index("\n}\n")]
    ports = re.findall(r"#pragma HLS INTERFACE mode=(\w+) port=(\w+)", body)
    assert ports[0] == ("m_axi", "mem")
    axilite = [port for mode, port in ports if mode == "s_axilite"]
    assert axilite == list(_TOP_ARGS[1:]) + ["return"]
    assert ("ap_ctrl_hs", "return") in ports
    assert ("ap_none", "timestamp") in ports


@pytest.mark.parametrize("name", _HLS_SOURCES)
def test_hls_sources_are_synthesizable_style(name):
    """No dynamic memory, no recursion, no I/O, no floating-point library calls."""
    import re

    text = re.sub(r"/\*.*?\*/", "", _hls_text(name), flags=re.DOTALL)
    for banned in ("malloc", "calloc", "realloc", "free", "printf", "fopen", "exit", "sqrt",
                   "fma", "long double", "double"):
        assert not re.search(rf"\b{banned}\b", text), (name, banned)
    # recursion: no function calls itself
    for m in re.finditer(r"^[\w ]+?\b(\w+)\(([^;{]*?)\)\s*\{(.*?)^\}", text,
                         re.DOTALL | re.MULTILINE):
        fname, _, fbody = m.groups()
        assert not re.search(rf"\b{fname}\s*\(", fbody), (name, fname)


@pytest.mark.parametrize("name", _HLS_SOURCES)
def test_hls_loops_have_static_bounds_or_a_tripcount(name):
    """Every loop of the kernel is bounded by a constant of the header (or a
    literal), or annotated with LOOP_TRIPCOUNT; the host-only batch helpers of
    the cffi reference are exempt (no top calls them)."""
    import re

    text = _hls_text(name)
    for helper in ("bitlet_weight_port_batch", "bitlet_pe_group_batch"):
        start = text.find(f"\nvoid {helper}(") + 1 or text.find(f"\nint {helper}(") + 1
        if start:
            text = text[:start] + text[text.index("\n}", start) + 2:]
    lines = text.splitlines()
    loops = 0
    for i, line in enumerate(lines):
        m = re.search(r"\b(for|while)\s*\((.*)", line)
        if not m or line.strip().startswith(("/*", "*", "#define")) or "while (0)" in line:
            continue
        loops += 1
        static = re.search(r"<\s*(BITLET_\w+|PE_\w+|BK_\w+|\d+u?)( / (\d+u?|BITLET_\w+))?\s*;",
                           m.group(2))
        tripcount = any("LOOP_TRIPCOUNT" in nxt for nxt in lines[i + 1:i + 3])
        assert static or tripcount, (name, i + 1, line.strip())
    assert loops
