"""The fast emulator (bitlet.engines.fast, emu/) equals the kernel reference bit for bit.

* every golden record through the fast group path (result, S, latency,
  col_steps), on every instruction set the CPU offers;
* the scanner's table-driven steps equal the reference's on random columns;
* instruction streams on a DDR arena: the whole memory image after the run
  (outputs, untouched bytes, profile records with every cycle figure),
  status and instructions done equal the reference ``bitlet_top`` for
  convolutions (stride, padding, dilation, groups, depthwise), GEMM, float
  formats (mixed fp32/fp16/bf16), fixed mode, bias, ReLU, prune masks, K
  tiles chained through ACC/PARTIAL, channel slices, Inf/NaN, and bad
  instructions;
* the layer functions equal :mod:`bitlet.numerics.layers` (results and profile);
* thread counts and instruction sets never change a result.
"""
from __future__ import annotations

import copy
import itertools
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from bitlet.engines import fast
from bitlet import hw, isa, numerics
from bitlet.errors import BitletTypeError
from scripts import load_script

pytestmark = pytest.mark.numerics

GOLDEN = Path(__file__).parent / "data" / "golden"
FILES = sorted(p.name for p in GOLDEN.glob("*.npz"))
PORT_FIELDS = ("w_sig", "w_exp", "w_abs", "a_word", "isfix", "prune", "quant")
BASE = 0x2000_0000
OUTS = ("status", "insn_done", "id_magic", "id_version", "id_config", "id_act_buf",
        "id_wgt_buf", "id_out_buf")


def available_isas() -> list[str]:
    eng = fast.engine()
    found = []
    for name in ("scalar", "avx2", "avx512", "avx512v"):
        if eng.lib.bitlet_fast_set_isa(name.encode()) == 0:
            found.append(name)
    eng.set_isa("auto")
    return found


ISAS = available_isas()


@pytest.fixture(params=ISAS)
def isa_name(request):
    fast.engine().set_isa(request.param)
    yield request.param
    fast.engine().set_isa("auto")


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name) as data:
        return {key: data[key] for key in data.files}


# ---------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_golden_records(name, isa_name):
    d = load(name)
    out = fast.engine().group_engine(*(d[f] for f in PORT_FIELDS), threads=2)
    assert np.array_equal(out["res"], d["spec_res"]), name
    assert np.array_equal(out["latency"], d["spec_total_cycles"].astype(np.int32)), name
    assert np.array_equal(out["scan"], d["spec_scan_cycles"].astype(np.int32)), name
    assert np.array_equal(out["col_steps"], d["spec_col_steps"]), name
    ref = numerics.get_engine("reference")(*(d[f] for f in PORT_FIELDS))
    for field in ("acc", "emax", "nan"):
        assert np.array_equal(out[field], ref[field]), (name, field)


def test_results_without_cycles_are_the_same():
    d = load("f32_random_pruned.npz")
    with_c = fast.engine().group_engine(*(d[f] for f in PORT_FIELDS), cycles=True)
    without = fast.engine().group_engine(*(d[f] for f in PORT_FIELDS), cycles=False)
    assert np.array_equal(with_c["res"], without["res"])
    assert not without["latency"].any() and not without["col_steps"].any()


def test_result_struct_has_the_reference_layout():
    from bitlet.engines._fast import ffi as fffi
    from bitlet.engines.reference import ffi as rffi

    assert fffi.sizeof("bitlet_fast_result_t") == rffi.sizeof("bitlet_pe_result_t")
    for field in numerics.result_dtype().names:
        assert fffi.offsetof("bitlet_fast_result_t", field) == \
            rffi.offsetof("bitlet_pe_result_t", field)


def test_scanner_table_equals_reference(isa_name):
    from bitlet.engines.reference import lib as rlib

    rng = np.random.default_rng(5)
    cols = [0, 1, 2**64 - 1, 0x8000000000000000, 0xC000000000000000, 0x0101010101010101,
            0x0303030303030303, 0x8080808080808080]
    for density in (0.05, 0.2, 0.5, 0.9):
        bits = rng.random((300, 64)) < density
        cols += [sum(1 << int(i) for i in np.nonzero(b)[0]) for b in bits]
    lib = fast.engine().lib
    for col in cols:
        assert lib.bitlet_fast_scan_steps(col) == rlib.bitlet_scan_steps(col), hex(col)


def test_group_dot_matches_numerics():
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((3, 50, 64)) * 0.05).astype(np.float32)
    a = np.abs(rng.standard_normal((50, 64))).astype(np.float32)
    prune = np.array([0xFFFFFF, 0xFFF000, 0])[:, None]
    got = numerics.group_dot(w, a, prune=prune, engine="fast")
    want = numerics.group_dot(w, a, prune=prune, engine="reference")
    assert np.array_equal(got[0].view(np.uint32), want[0].view(np.uint32))
    assert np.array_equal(got[1], want[1])


def test_registered_as_numerics_engine():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((30, 64)) * 0.1).astype(np.float32)
    a = rng.standard_normal((30, 64)).astype(np.float32)
    assert numerics.get_engine("fast") is fast.group_engine
    got = numerics.group_detail(w, a, prune=0xFFFFF0, engine="fast")
    want = numerics.group_detail(w, a, prune=0xFFFFF0, engine="reference")
    for field in got._fields:
        assert np.array_equal(getattr(got, field), getattr(want, field)), field


def test_group_dot_fixed_matches_numerics():
    rng = np.random.default_rng(2)
    w = rng.integers(-2**23, 2**23, (40, 64))
    a = rng.integers(-2**24, 2**24, (40, 64))
    quant = rng.integers(0, 25, 40)
    got = numerics.group_dot_fixed(w, a, quant=quant, prune=0xFFFF00, engine="fast")
    want = numerics.group_dot_fixed(w, a, quant=quant, prune=0xFFFF00, engine="reference")
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("call, message", [
    (lambda: numerics.group_dot(np.zeros(64, np.float64), np.zeros(64, np.float32),
                                engine="fast"), "w: dtype"),
    (lambda: numerics.group_dot(np.zeros(63, np.float32), np.zeros(63, np.float32),
                                engine="fast"), "w: shape"),
    (lambda: numerics.group_dot(np.zeros(64, np.float32), np.zeros(64, np.float32),
                                prune=1 << 24, engine="fast"), "prune"),
    (lambda: numerics.group_dot_fixed(np.zeros(64, int), np.zeros(64, int), quant=25,
                                      engine="fast"), "quant"),
    (lambda: numerics.group_dot_fixed(np.zeros(64, int), np.zeros(64, int), quant=None,
                                      engine="fast"), "quant"),
    (lambda: numerics.matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                             engine="fast", threads=0), "threads"),
    (lambda: numerics.matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                             engine="fast", return_profile=True, cycles=False), "cycles"),
    (lambda: numerics.conv2d(np.zeros((1, 3, 600, 40), np.float32),
                             np.zeros((4, 3, 3, 40), np.float32), engine="fast"),
     "activation buffer"),
    (lambda: numerics.conv2d(np.zeros((1, 3, 3, 4), np.float32),
                             np.zeros((4, 3, 3, 4), np.float32), groups=3, engine="fast"),
     "groups"),
    (lambda: numerics.matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                             kernel="vendor", engine="fast"), "kernel must be one of"),
    (lambda: numerics.matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                             kernel="vendor_fp", engine="fast"), "bitlet kernel only"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_bad_thread_environment_is_named(monkeypatch):
    monkeypatch.setenv("BITLET_THREADS", "two")
    with pytest.raises(ValueError, match="BITLET_THREADS"):
        numerics.group_dot(np.zeros(64, np.float32), np.zeros(64, np.float32), engine="fast")
    monkeypatch.setenv("BITLET_THREADS", "1")
    assert fast.default_threads() == 1


# ---------------------------------------------------------------------------
# instruction streams on a DDR arena: fast_top vs the reference bitlet_top
# ---------------------------------------------------------------------------
class Mem:
    """A DDR image with a bump allocator (device addresses from BASE)."""

    def __init__(self, rng, words=1 << 16):
        self.rng = rng
        self.words = rng.integers(0, 2**32, words, dtype=np.uint64).astype(np.uint32)
        self.top = 0

    def put(self, data: np.ndarray) -> int:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        n = -(-raw.size // 64) * 64
        addr = BASE + self.top
        self.words.view(np.uint8)[self.top:self.top + raw.size] = raw
        self.top += n
        assert self.top <= self.words.size * 4
        return addr

    def reserve(self, nbytes: int) -> int:
        addr = BASE + self.top
        self.top += -(-nbytes // 64) * 64
        assert self.top <= self.words.size * 4
        return addr


def floats(rng, shape, fmt, specials=0.0):
    x = (rng.standard_normal(shape) * np.exp2(rng.integers(-6, 4, shape))).astype(np.float32)
    x[rng.random(shape) < 0.3] = 0.0
    if specials:
        pick = rng.random(shape) < specials
        x[pick] = rng.choice(np.array([np.inf, -np.inf, np.nan], np.float32), pick.sum())
    if fmt == hw.FMT_FP16:
        return x.astype(np.float16)
    if fmt == hw.FMT_BF16:
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    return x


def weights_device(w_rows: np.ndarray, k: int, kg: tuple[int, int], rng) -> np.ndarray:
    """Rows [Cout, K] -> device rows of the K tile, pads filled with garbage
    (the kernel must treat them as +0)."""
    cout = w_rows.shape[0]
    n_kg = -(-k // 64)
    full = np.zeros((cout, n_kg * 64), w_rows.dtype)
    full[:, :k] = w_rows
    bits = full.view(np.uint16 if full.itemsize == 2 else np.uint32)
    bits[:, k:] = rng.integers(0, 2**16, bits[:, k:].shape)
    return np.ascontiguousarray(full[:, kg[0] * 64:kg[1] * 64])


def layer_program(rng, mem: Mem, *, op="conv", n=1, ih=5, iw=6, cin=8, cout=8, k=3, stride=1,
                  padding=1, dilation=1, groups=1, wfmt=0, afmt=0, ofmt=0, fixed=False,
                  relu=False, bias=False, prune=0xFFFFFF, quant=0, specials=0.0,
                  in_extra=0, out_extra=0, ktiles=1, layer=7):
    """Instructions of one layer (maybe split in K tiles) with their operands."""
    fmt_w, fmt_a, fmt_o = (hw.FMT_FIXED,) * 3 if fixed else (wfmt, afmt, ofmt)
    if op == "gemm":
        ih = iw = k = 1
        stride = dilation = groups = 1
        padding = 0
    kh = kw = k
    cin_g = cin // groups
    in_cs = cin + in_extra
    if fixed:
        x = rng.integers(-2**20, 2**20, (n, ih, iw, in_cs)).astype(np.int32)
        x.flat[::17] = rng.integers(-2**31, 2**31, x.flat[::17].size)   # clamped by the kernel
        w = rng.integers(-2**12, 2**12, (cout, kh * kw * cin_g))
        w_dev = (np.where(w < 0, 1 << 31, 0) | np.abs(w)).astype(np.uint32)
        w_dev |= (rng.integers(0, 128, w.shape) << 24).astype(np.uint32)  # ignored bits
    else:
        x = floats(rng, (n, ih, iw, in_cs), fmt_a, specials)
        w_dev = floats(rng, (cout, kh * kw * cin_g), fmt_w, specials / 4)
    act = mem.put(x)
    kdim = kh * kw * cin_g
    n_kg = -(-kdim // 64)
    cuts = np.linspace(0, n_kg, ktiles + 1).astype(int)
    tiles = [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]
    if bias:
        bvals = (rng.integers(-2**40, 2**40, cout) if fixed
                 else rng.standard_normal(cout).astype(np.float32))
        bias_addr = mem.put(np.asarray(bvals, np.int64 if fixed else np.float32))
    oh = isa.conv_out_size(ih, kh, stride, dilation, *(isa.as_padding(padding)[::2]))
    ow = isa.conv_out_size(iw, kw, stride, dilation, *(isa.as_padding(padding)[1::2]))
    out_cs = cout + out_extra
    out_px = n * oh * ow
    part = mem.reserve(out_px * out_cs * (8 if fixed else 4))
    out = mem.reserve(out_px * out_cs * (4 if fmt_o in (0, 3) else 2))
    insns = []
    for i, kg in enumerate(tiles):
        last = i == len(tiles) - 1
        wgt = mem.put(weights_device(w_dev, kdim, kg, rng))
        common = {"act": act, "wgt": wgt, "out": out if last else part, "acc": part if i else 0,
                      "bias": bias_addr if (bias and last) else 0, "wfmt": fmt_w, "afmt": fmt_a,
                      "ofmt": fmt_o, "relu": relu and last, "use_bias": bias and last, "accum": i > 0,
                      "partial": not last, "prune": prune, "quant": quant, "layer": layer + i,
                      "in_cstride": in_cs, "in_coff": in_extra, "out_cstride": out_cs,
                      "out_coff": out_extra, "kg_begin": kg[0], "kg_end": 0 if last and kg[0] == 0
                      else kg[1]}
        if op == "gemm":
            insns.append(isa.gemm(m=cout, k=cin, n=n, **common))
        else:
            insns.append(isa.conv2d(n=n, ih=ih, iw=iw, cin=cin, cout=cout, kh=kh, kw=kw,
                                    stride=stride, padding=padding, dilation=dilation,
                                    groups=groups, **common))
    return insns


def run_both(mem: Mem, insns, *, extra_words=None, threads=2, prof=True, expect=hw.STATUS_OK,
             done=None, timestamp=12345):
    """Run the same image through the reference and the fast top; compare
    every output (clock included), the profile records and the whole image.

    ``expect`` is the status both must end with (a run where both engines
    reject an instruction alike is not a pass of a test that meant to run it),
    ``done`` the number of instructions completed (default: all when OK).
    """
    from bitlet.engines.reference import ffi, lib

    words = isa.program_words(insns) if extra_words is None else extra_words
    prog = mem.put(words)
    n_insn = words.size // hw.INSN_WORDS
    prof_addr = mem.reserve(n_insn * hw.PROF_BYTES) if prof else 0
    results = []
    # without a profile area the fast top runs the cycle model only when asked
    for top in (lib.bitlet_top, fast.make_top(threads=threads, cycles=True)):
        image = mem.words.copy()
        outs = [ffi.new("uint32_t *") for _ in OUTS]
        clock = ffi.new("uint64_t *")
        top(ffi.from_buffer("uint64_t[]", image.view(np.uint64)), BASE, image.size * 4, prog,
            n_insn, prof_addr, ffi.new("uint64_t *", timestamp), *outs, clock)
        got = {k: int(p[0]) for k, p in zip(OUTS, outs)}
        got["clock"] = int(clock[0])
        results.append((image, got))
    (ref_img, ref_out), (fast_img, fast_out) = results
    assert fast_out == ref_out
    assert ref_out["status"] == expect, (isa.status_name(ref_out["status"]), isa.status_name(expect))
    if done is None and expect == hw.STATUS_OK:
        done = n_insn
    if done is not None:
        assert ref_out["insn_done"] == done, (ref_out["insn_done"], done)
    if prof:
        off = (prof_addr - BASE) // 4
        rec = slice(off, off + n_insn * hw.PROF_WORDS)
        want = isa.decode_profile(ref_img[rec])
        got = isa.decode_profile(fast_img[rec])
        for name in isa.PROFILE_FIELDS:
            assert np.array_equal(got[name], want[name]), (name, got[name], want[name])
    diff = np.nonzero(ref_img != fast_img)[0]
    assert diff.size == 0, f"{diff.size} words differ, first at word {diff[:5]}"
    return ref_out, ref_img


CONV_CASES = {
    "3x3 pad": {},
    "stride2 asym pad dil2": {"ih": 9, "iw": 8, "stride": 2, "padding": (1, 0, 2, 1), "dilation": 2},
    "groups": {"cin": 12, "cout": 8, "groups": 4, "ih": 6, "iw": 5},
    "depthwise": {"cin": 16, "cout": 16, "groups": 16, "ih": 7, "iw": 7},
    "depthwise x2": {"cin": 8, "cout": 16, "groups": 8, "ih": 5, "iw": 6, "stride": 2},
    "cout < N_PE": {"cin": 6, "cout": 3, "groups": 3},
    "1x1 long K": {"k": 1, "cin": 200, "cout": 6, "padding": 0, "ih": 3, "iw": 4},
    "batch + slices": {"n": 2, "in_extra": 3, "out_extra": 2, "ih": 4, "iw": 4},
    "5x5 K tiles": {"k": 5, "cin": 12, "cout": 5, "padding": 2, "ktiles": 3},
}


def stable_seed(*parts: str) -> int:
    """A seed from test parameters, the same in every process (``hash()`` of a str is
    salted per process: failures would not reproduce)."""
    return zlib.crc32("/".join(parts).encode())


def test_seeds_are_the_same_in_every_process():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_fast; "
            "print(test_fast.stable_seed('3x3 pad', 'fixed'))")
    seeds = {subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                            env={**os.environ, "PYTHONHASHSEED": str(salt)}, capture_output=True,
                            text=True, check=True, timeout=120).stdout for salt in (1, 2)}
    assert len(seeds) == 1, seeds


def test_run_both_fails_when_both_engines_reject_alike():
    """run_both used to pass when both engines stopped with the same error."""
    rng = np.random.default_rng(17)
    mem = Mem(rng)
    good = layer_program(rng, mem, ih=3, iw=3)
    with pytest.raises(AssertionError, match="BAD_OPCODE"):
        run_both(mem, [good[0].replace(opcode=9)])
    run_both(mem, [good[0].replace(opcode=9)], expect=hw.STATUS_BAD_OPCODE, done=0)


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("mode", ["fp32 relu bias", "fp16/bf16 mixed", "pruned", "fixed"])
def test_conv_programs(case, mode):
    rng = np.random.default_rng(stable_seed(case, mode))
    kw = dict(CONV_CASES[case])
    if mode == "fp32 relu bias":
        kw.update(relu=True, bias=True)
    elif mode == "fp16/bf16 mixed":
        kw.update(wfmt=hw.FMT_FP16, afmt=hw.FMT_BF16, ofmt=hw.FMT_FP16, bias=True)
    elif mode == "pruned":
        kw.update(prune=0xFFF0F0, ofmt=hw.FMT_BF16, relu=True)
    else:
        kw.update(fixed=True, quant=int(rng.integers(0, 25)), bias=True, relu=bool(rng.integers(2)),
                  prune=0xFFFFF0)
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, **kw))


@pytest.mark.parametrize("kw", [
    {}, {"n": 5, "cin": 300, "cout": 9, "bias": True, "relu": True}, {"ktiles": 2, "cin": 260, "n": 3},
    {"fixed": True, "quant": 12, "n": 4, "cin": 150, "cout": 7, "ktiles": 2, "bias": True},
    {"wfmt": hw.FMT_BF16, "afmt": hw.FMT_FP16, "ofmt": hw.FMT_FP32, "n": 3, "cin": 70},
], ids=["plain", "bias relu", "K tiles", "fixed K tiles", "formats"])
def test_gemm_programs(kw):
    rng = np.random.default_rng(stable_seed(str(kw)))
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, op="gemm", **kw))


@pytest.mark.parametrize("prune", [0, 0x800000, 0x000001])
def test_extreme_prune_masks(prune):
    rng = np.random.default_rng(prune)
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, prune=prune, bias=True))
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, prune=prune, fixed=True, quant=3))


def test_inf_nan_operands():
    rng = np.random.default_rng(11)
    for fmt in (hw.FMT_FP32, hw.FMT_FP16, hw.FMT_BF16):
        mem = Mem(rng)
        run_both(mem, layer_program(rng, mem, wfmt=fmt, afmt=fmt, ofmt=fmt, specials=0.02,
                                    relu=True, bias=True))


def test_random_bits_everywhere():
    """Operands straight from random memory (subnormals, Inf, NaN, huge)."""
    rng = np.random.default_rng(12)
    for fmt in (hw.FMT_FP32, hw.FMT_FP16):
        mem = Mem(rng)
        insn = isa.conv2d(n=1, ih=4, iw=4, cin=5, cout=6, kh=2, kw=2, act=BASE, wgt=BASE + 4096,
                          out=BASE + 8192, wfmt=fmt, afmt=fmt, ofmt=fmt, padding=1)
        mem.top = 3 * 4096
        run_both(mem, [insn])


def test_bad_instructions_stop_like_the_reference():
    rng = np.random.default_rng(13)
    mem = Mem(rng)
    good = layer_program(rng, mem, ih=3, iw=3)
    bad, field = hw.STATUS_BAD_FIELD, good[0]
    cases = [
        (field.replace(opcode=9), hw.STATUS_BAD_OPCODE),                  # bad opcode
        (field.replace(quant=3), bad),                                    # quant in float mode
        (field.replace(groups=3), bad),                                   # groups do not divide
        (field.replace(out_hw=(9, 9)), bad),                              # wrong output size
        (field.replace(act=BASE + (1 << 20)), hw.STATUS_BUS_ERROR),       # bus error
        (field.replace(kg_begin=field.n_kgroups), bad),                   # empty K range
        (field.replace(flags=hw.FLAG_PARTIAL | hw.FLAG_RELU), bad),       # bad flags
    ]
    for insn, status in cases:
        run_both(mem, [isa.nop(3), good[0], insn, good[0]], expect=status, done=2)
    big = isa.conv2d(n=1, ih=3, iw=600, cin=40, cout=4, kh=3, kw=3, act=BASE, wgt=BASE,
                     out=BASE, padding=1)                           # act buffer overflow
    run_both(Mem(rng, words=1 << 19), [big], expect=hw.STATUS_BUF_OVERFLOW, done=0)
    mem2 = Mem(rng)
    fixed = layer_program(rng, mem2, fixed=True, bias=True, ih=3, iw=3)
    bias_addr = fixed[0].bias
    off = (bias_addr - BASE) // 4
    mem2.words[off:off + 2] = [0, 1 << 30]                          # |bias| >= 2^61
    run_both(mem2, fixed, expect=hw.STATUS_BAD_FIELD, done=0)


def test_no_profile_area_and_probe_run():
    rng = np.random.default_rng(14)
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem), prof=False)
    run_both(mem, [], extra_words=np.zeros(0, np.uint32))           # n_insn = 0: ID probe


def test_thread_counts_agree():
    rng = np.random.default_rng(15)
    mem = Mem(rng)
    insns = layer_program(rng, mem, ih=12, iw=12, cin=16, cout=12, groups=2, bias=True)
    images = []
    for threads in (1, 2, 3):
        twin = copy.deepcopy(mem)            # the same image and allocator state
        images.append(run_both(twin, insns, threads=threads)[1])
    img1, img2, img3 = images
    assert np.array_equal(img1, img2) and np.array_equal(img1, img3)


@pytest.mark.parametrize("prune", [0xFFFFFF, 0xFFFF00])
def test_every_isa_gives_the_same_layer(isa_name, prune):
    rng = np.random.default_rng(16)
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, cin=24, cout=6, groups=3, relu=True, prune=prune))
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, cin=40, cout=5, relu=True, prune=prune,
                                specials=0.002))                       # K = 360: full groups
    mem = Mem(rng)
    run_both(mem, layer_program(rng, mem, op="gemm", n=3, cin=256, cout=7, prune=prune))


# Shapes that reach every branch of the kernel's schedule (hls/README.md
# "Cycle model"): resident or per-unit weights, overlapped or serial units,
# one run per row or one per pixel (out/ACC), 2-, 4- and 8-byte outputs at
# every alignment (edge beats), windows that skip rows or lie in the
# padding, the ring across images, batches of whole channel groups with a
# partial last one.
SCHEDULE_CASES = {
    "weights per unit": {"cin": 64, "cout": 32, "ih": 4, "iw": 5},          # ceil(32/4)*576 > lane
    "serial units": {"k": 1, "padding": 0, "ih": 2, "iw": 300, "cin": 120, "cout": 3},
    "serial, out buffer": {"k": 1, "padding": 0, "ih": 1, "iw": 400, "cin": 70, "cout": 2,
                           "fixed": True, "quant": 4, "ktiles": 2},
    "one run per row": {"cout": 4, "cin": 4, "ih": 5, "iw": 7, "ktiles": 1},
    "one ACC run per row": {"cout": 4, "cin": 40, "ih": 4, "iw": 6, "ktiles": 3},
    "fp16 out, odd channels": {"cout": 7, "cin": 5, "ih": 4, "iw": 5, "wfmt": hw.FMT_FP16,
                               "afmt": hw.FMT_FP16, "ofmt": hw.FMT_FP16, "out_extra": 1},
    "bf16 in, odd pitch": {"cout": 3, "cin": 3, "ih": 5, "iw": 5, "afmt": hw.FMT_BF16,
                           "in_extra": 1, "out_extra": 3, "ofmt": hw.FMT_BF16},
    "fixed partial slices": {"fixed": True, "quant": 0, "cout": 5, "cin": 30, "ktiles": 2,
                             "out_extra": 1, "n": 2},
    "stride 3 > window": {"k": 2, "stride": 3, "padding": 0, "ih": 11, "iw": 10},
    "padding rows only": {"ih": 3, "iw": 4, "padding": (0, 1, 4, 1)},
    "images n = 3": {"n": 3, "ih": 4, "iw": 4, "stride": 2},
    "partial last batch": {"cin": 6, "cout": 6, "groups": 6, "ih": 5, "iw": 9},
    "two channel groups": {"cin": 10, "cout": 6, "groups": 2, "ih": 4, "iw": 4, "dilation": 2,
                           "padding": 2},
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_schedule_branches(case, isa_name):
    rng = np.random.default_rng(sum(map(ord, case)))
    mem = Mem(rng, words=1 << 19)
    out, _ = run_both(mem, layer_program(rng, mem, bias=True, relu=True,
                                         **SCHEDULE_CASES[case]))
    assert out["status"] == hw.STATUS_OK


def _shift_operands(insn, mem: Mem, delta: int):
    """The same instruction with its operands moved by ``delta`` bytes (the
    data copied): other alignments to the bus beats."""
    moved = {}
    for name in ("act", "wgt", "bias", "out", "acc"):
        addr = getattr(insn, name)
        if addr:
            moved[name] = addr + delta
    return insn.replace(**moved)


@pytest.mark.parametrize("delta", [2, 4, 6])
def test_unaligned_operands(delta):
    """Operands off the 8-byte beat grid: every run has edge beats."""
    rng = np.random.default_rng(delta)
    mem = Mem(rng, words=1 << 17)
    fmt = hw.FMT_FP16 if delta % 4 else hw.FMT_FP32
    insns = layer_program(rng, mem, cout=5, cin=6, ih=5, iw=6, wfmt=fmt, afmt=fmt, ofmt=fmt,
                          bias=delta % 4 == 0, ktiles=1)
    mem.words = np.roll(mem.words.view(np.uint8), delta).view(np.uint32).copy()
    run_both(mem, [_shift_operands(i, mem, delta) for i in insns])


def test_window_and_timestamp_rules():
    """A base or size off the beat grid stops every run before the first
    fetch (n_insn = 0 only probes); the fetch and the profile slot must be
    beat aligned; the clock starts from the timestamp input."""
    rng = np.random.default_rng(17)
    mem = Mem(rng)
    insns = layer_program(rng, mem, ih=3, iw=3)
    out, _ = run_both(mem, insns, timestamp=2**40 + 3)
    assert out["clock"] > 2**40 + 3
    words = isa.program_words([isa.nop(1)] + insns)
    from bitlet.engines.reference import ffi, lib

    prog = mem.put(words)
    for base, size, prog_addr, prof_addr in ((BASE + 4, 4096, prog, 0),
                                             (BASE, mem.words.size * 4 - 4, prog, 0),
                                             (BASE, mem.words.size * 4, prog + 4, 0),
                                             (BASE, mem.words.size * 4, prog, prog + 4)):
        for n_insn in (0, 2):
            results = []
            for top in (lib.bitlet_top, fast.make_top(cycles=True)):
                image = mem.words.copy()
                outs = [ffi.new("uint32_t *") for _ in OUTS]
                clock = ffi.new("uint64_t *")
                top(ffi.from_buffer("uint64_t[]", image.view(np.uint64)), base, size, prog_addr,
                    n_insn, prof_addr, ffi.new("uint64_t *", 99), *outs, clock)
                results.append(([int(p[0]) for p in outs], int(clock[0]), image))
            assert results[0][:2] == results[1][:2]
            assert np.array_equal(results[0][2], results[1][2])
    assert results[0][0][0] == hw.STATUS_BUS_ERROR


def test_top_refuses_a_timestamp_that_is_not_a_pointer():
    """`timestamp` is the counter's port, a uint64_t * as in bitlet_top: an
    int (the pass-by-value convention of before) is refused with a one-line
    error, not dereferenced."""
    from bitlet.engines.reference import ffi

    outs = [ffi.new("uint32_t *") for _ in OUTS]
    for bad in (5, None, ffi.NULL):
        with pytest.raises(BitletTypeError, match="timestamp must be a cffi uint64_t"):
            fast.make_top()(np.zeros(8, np.uint64), BASE, 64, BASE, 0, 0, bad, *outs,
                            ffi.new("uint64_t *"))


def test_results_only_top_keeps_the_clock():
    """Without the cycle model the fast top writes the same memory and
    statuses, profile records with zero counters, and leaves the clock at
    the timestamp (documented in emu/bitlet_fast.h)."""
    from bitlet.engines.reference import ffi

    rng = np.random.default_rng(18)
    mem = Mem(rng)
    insns = layer_program(rng, mem, ih=4, iw=4, bias=True)
    _, ref_img = run_both(copy.deepcopy(mem), insns, timestamp=777)   # the same addresses
    prog = mem.put(isa.program_words(insns))
    prof_addr = mem.reserve(len(insns) * hw.PROF_BYTES)
    image = mem.words.copy()
    outs = [ffi.new("uint32_t *") for _ in OUTS]
    clock = ffi.new("uint64_t *")
    fast.make_top(cycles=False)(ffi.from_buffer("uint64_t[]", image.view(np.uint64)), BASE,
                                image.size * 4, prog, len(insns), prof_addr,
                                ffi.new("uint64_t *", 777), *outs, clock)
    assert int(clock[0]) == 777 and int(outs[0][0]) == hw.STATUS_OK
    off = (prof_addr - BASE) // 4
    recs = slice(off, off + len(insns) * hw.PROF_WORDS)
    rec = isa.decode_profile(image[recs])
    assert (rec["status"] == 0).all() and (rec["start"] == 777).all() and (rec["end"] == 777).all()
    for name in ("pe_cycles", "ref_cycles", "kernel_cycles", "groups", "scan", "ddr_bytes"):
        assert not rec[name].any(), name
    image[recs] = ref_img[recs]
    assert np.array_equal(image, ref_img)


def test_float_group_sums_are_the_kernels_adder(isa_name):
    """Float group sums: the fast engine adds with the host's binary32
    addition, the kernel with its integer adder (bk_f32_add).  Equal bits on
    sums that are subnormal, cancel exactly (+0 / -0), overflow to Inf, meet
    Inf - Inf, and start from ACC values that are subnormal, -0, Inf or NaNs
    with payloads; raw sums (FLAG_PARTIAL) and final outputs with a
    subnormal bias."""
    rng = np.random.default_rng(19)
    k, m, n = 256, 9, 40
    # products near 2^-140 (subnormal), 2^0, 2^128 (overflow) and Inf/NaN
    pat = [0, 0x7FFFFF, 0x400000, 1, 0x12345]
    W = np.concatenate([_crafted_bits(rng, (3, k), pat, e)
                        for e in ([50, 57], [57, 60, 64], [127, 190])])
    A = np.concatenate([_crafted_bits(rng, (k, 20), pat, [50, 57, 60]),
                        _crafted_bits(rng, (k, 20), pat, [57, 127, 190])], axis=1)
    W[0, 64:128] = -W[0, 0:64]                      # group 1 cancels group 0 exactly
    W[0, 128:] = 0.0
    A[64:128] = A[0:64]
    W[1, 5] = np.inf
    W[2, 70] = -np.inf
    A[3, :4] = np.nan
    mem = Mem(rng, words=1 << 17)
    act = mem.put(np.ascontiguousarray(A.T))
    wgt = mem.put(W)
    acc_vals = np.array([0x00000001, 0x80000000, 0x007FFFFF, 0x7F800000, 0xFF800000, 0x7FC00001,
                         0xFFFFFFFF, 0x7F7FFFFF, 0x00800000, 0x80000003], np.uint32)
    acc = mem.put(rng.choice(acc_vals, n * m).astype(np.uint32))
    part = mem.reserve(n * m * 4)
    out = mem.reserve(n * m * 4)
    bias = mem.put(rng.choice(acc_vals[[0, 1, 2, 8, 9]], m).astype(np.uint32))
    insns = [isa.gemm(m=m, k=k, n=n, act=act, wgt=wgt, out=part, acc=acc, accum=True,
                      partial=True, layer=1),
             isa.gemm(m=m, k=k, n=n, act=act, wgt=wgt, out=out, acc=acc, accum=True,
                      bias=bias, use_bias=True, relu=False, layer=2),
             isa.gemm(m=m, k=k, n=n, act=act, wgt=wgt, out=out, bias=bias, use_bias=True,
                      relu=True, ofmt=hw.FMT_FP16, layer=3)]
    for insn in insns:
        run_both(copy.deepcopy(mem), [insn])


def test_fixed_sums_saturate_like_the_kernel():
    """Fixed mode: ACC partials at the int64 limits; the kernel adds each
    group's accumulator saturating (bk_sat_add64), then the bias (also
    saturating); raw sums (PARTIAL) and quantised outputs equal."""
    rng = np.random.default_rng(20)
    k, m, n = 200, 6, 12
    w = rng.integers(-2**23, 2**23, (m, k))
    w_dev = (np.where(w < 0, 1 << 31, 0) | np.abs(w)).astype(np.uint32)
    x = rng.integers(-2**24, 2**24, (n, k)).astype(np.int32)
    mem = Mem(rng, words=1 << 16)
    act = mem.put(x)
    wgt = mem.put(np.pad(w_dev, ((0, 0), (0, 256 - k))))
    big = np.iinfo(np.int64)
    acc_vals = np.array([big.max, big.max - 2**50, big.min, big.min + 2**50, 2**62, -2**62, 0],
                        np.int64)
    acc = mem.put(rng.choice(acc_vals, n * m))
    part = mem.reserve(n * m * 8)
    out = mem.reserve(n * m * 4)
    bias = mem.put(rng.choice(np.array([2**60, -2**60, 5], np.int64), m))
    common = {"m": m, "k": k, "n": n, "act": act, "wgt": wgt, "precision": "fixed",
              "acc": acc, "accum": True}
    run_both(copy.deepcopy(mem), [isa.gemm(out=part, partial=True, **common)])
    run_both(copy.deepcopy(mem), [isa.gemm(out=out, bias=bias, use_bias=True, quant=24,
                                           **common)])


def _crafted_bits(rng, shape, patterns, exps):
    """float32 with mantissas drawn from ``patterns`` (23-bit ints), biased
    exponents from ``exps``, random signs."""
    man = np.asarray(patterns, np.uint32)[rng.integers(0, len(patterns), shape)]
    exp = np.asarray(exps, np.uint32)[rng.integers(0, len(exps), shape)]
    sign = rng.integers(0, 2, shape).astype(np.uint32) << 31
    return (sign | exp << 23 | man).view(np.float32)


def test_scan_of_crafted_columns_equals_reference(isa_name):
    """S of every group (its sum and the schedules' maxima in the profile)
    on weights whose aligned bit columns range from empty to all ones:
    dense runs, 1s exactly 7 and 8 apart, powers of two, many equal
    columns (ties of the S kernels' bounds), fp32 and fixed."""
    rng = np.random.default_rng(44)
    every7 = sum(1 << b for b in range(0, 23, 7))
    every8 = sum(1 << b for b in range(0, 23, 8))
    patterns = [0, 0x7FFFFF, every7, every8, 0x555555, 0x0F0F0F, 0x7F0000, 0x000003]
    patterns += [int(v) for v in rng.integers(0, 1 << 23, 8)]
    W = _crafted_bits(rng, (12, 64 * 6), patterns, [126, 127, 128])
    for exps in ([127], [125, 126, 127, 128, 129]):              # equal / spread shifts
        A = _crafted_bits(rng, (64 * 6, 37), patterns, exps)
        A[rng.random(A.shape) < 0.3] = 0.0
        got, gp = numerics.matmul(W, A, return_profile=True, engine="fast", threads=2)
        want, wp = numerics.matmul(W, A, return_profile=True, engine="reference")
        assert gp == wp and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    Wi = rng.choice(np.array([0, 1, 3, (1 << 23) - 1, every7, every8, 0x555555, 257]), (9, 200))
    Wi = (Wi * rng.choice([-1, 1], Wi.shape)).astype(np.float32)
    Ai = rng.integers(-2**16, 2**16, (200, 5)).astype(np.float32)
    got, gp = numerics.matmul(Wi, Ai, precision="fixed", quant=20, return_profile=True,
                              engine="fast")
    want, wp = numerics.matmul(Wi, Ai, precision="fixed", quant=20, return_profile=True,
                              engine="reference")
    assert gp == wp and np.array_equal(got, want)


# ---------------------------------------------------------------------------
# the layer functions
# ---------------------------------------------------------------------------
def test_conv2d_and_matmul_equal_layers_reference():
    rng = np.random.default_rng(20)
    x = np.abs(rng.standard_normal((1, 7, 6, 8))).astype(np.float32)
    w = (rng.standard_normal((8, 3, 3, 4)) * 0.1).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    for precision in ("fp32", "bf16"):
        kw = {"stride": 2, "padding": 1, "groups": 2, "bias": b, "relu": True, "precision": precision,
                  "prune": 0xFFFF00, "return_profile": True}
        got, gp = numerics.conv2d(x, w, **kw, engine="fast", threads=2)
        want, wp = numerics.conv2d(x, w, **kw, engine="reference")
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)) and gp == wp
    only = numerics.conv2d(x, w, padding=1, groups=2, engine="fast", cycles=False)
    assert np.array_equal(only, numerics.conv2d(x, w, padding=1, groups=2, engine="reference"))
    W = rng.standard_normal((5, 4200)).astype(np.float32)          # K tiles
    A = rng.standard_normal((4200, 2)).astype(np.float32)
    got, gp = numerics.matmul(W, A, engine="fast", cycles=True)
    want, wp = numerics.matmul(W, A, return_profile=True, engine="reference")
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)) and gp == wp
    Wi = rng.integers(-2**10, 2**10, (4, 100)).astype(np.float32)
    Ai = rng.integers(-2**16, 2**16, (100, 3)).astype(np.float32)
    got = numerics.matmul(Wi, Ai, precision="fixed", quant=5, engine="fast", threads=1)
    assert np.array_equal(got, numerics.matmul(Wi, Ai, precision="fixed", quant=5,
                                              engine="reference"))


def test_results_only_layers_equal_reference(isa_name):
    """Results without the cycle model (the kernels' own results-only paths,
    e.g. two activation rows per weight load) on every ISA: odd row counts,
    a partial last group, K tiles, Inf/NaN/subnormal operands, ReLU and bias."""
    rng = np.random.default_rng(46)
    x = np.abs(rng.standard_normal((1, 5, 7, 72))).astype(np.float32)   # K = 9 * 72: 10.1 groups
    x[rng.random(x.shape) < 0.4] = 0.0
    x[0, 1, 2, 3], x[0, 3, 0, 5], x[0, 4, 6, 7] = np.inf, np.nan, 1e-42
    w = (rng.standard_normal((5, 3, 3, 72)) * 0.05).astype(np.float32)
    w[2, 0, 0, 1] = -np.inf
    b = rng.standard_normal(5).astype(np.float32)
    kw = {"padding": 1, "bias": b, "relu": True}
    got = numerics.conv2d(x, w, cycles=False, threads=2, **kw, engine="fast")
    want = numerics.conv2d(x, w, engine="reference", **kw)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    W = (rng.standard_normal((7, 4200)) * 0.05).astype(np.float32)        # K tiles, odd N
    A = rng.standard_normal((4200, 9)).astype(np.float32)
    A[5, 3] = np.nan
    got = numerics.matmul(W, A, cycles=False, threads=1, engine="fast")
    want = numerics.matmul(W, A, engine="reference")
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_concurrent_calls_keep_their_own_working_memory():
    """Layers of different sizes from several Python threads at once (the
    engine keeps one working-memory block between calls and hands it to
    one call at a time): every result and profile equals the sequential one."""
    import threading

    rng = np.random.default_rng(47)
    jobs = []
    for m, k, n in [(8, 640, 33), (40, 200, 7), (3, 1100, 64), (16, 64, 120)]:
        W = (rng.standard_normal((m, k)) * 0.1).astype(np.float32)
        A = rng.standard_normal((k, n)).astype(np.float32)
        jobs.append((W, A))
    want = [numerics.matmul(W, A, return_profile=True, engine="fast") for W, A in jobs]
    errors = []

    def worker(i):
        for rep in range(6):
            W, A = jobs[(i + rep) % len(jobs)]
            got, prof = numerics.matmul(W, A, return_profile=True, threads=2, engine="fast")
            ref, ref_prof = want[(i + rep) % len(jobs)]
            if not (np.array_equal(got.view(np.uint32), ref.view(np.uint32)) and prof == ref_prof):
                errors.append((i, rep))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------------------
# the portable build (no SIMD kernels) equals the default build
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def portable_engine(tmp_path_factory):
    import importlib.util
    import sys

    # the build script of the source tree (the installed copy has no emu/ beside it)
    build_py = Path(__file__).resolve().parents[1] / "sdk" / "bitlet" / "engines" / "_fast_build.py"
    if not (build_py.parents[3] / "emu" / "fast_core.c").exists():
        pytest.skip("emu/ sources not present (tests run without the source tree)")
    spec = importlib.util.spec_from_file_location("_bitlet_fast_build_src", build_py)
    _fast_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(_fast_build)
    tmp = tmp_path_factory.mktemp("fast_portable")
    # portable kernels only, and the other threading backend than the default
    # build's (OpenMP when the compiler has it), so both are exercised
    threading = "openmp" if _fast_build._try_build(_fast_build._OPENMP_PROBE, ["-fopenmp"]) \
        else None
    # FS_MAX_TABLE_WORDS=0: the cycle model without shared waves tables
    # (each task computes its rows' waves, the path of huge layers)
    ffi = _fast_build.make_ffi("_bitlet_fast_portable", simd=False, threading=threading,
                               defines={"FS_MAX_TABLE_WORDS": 0})
    path = ffi.compile(tmpdir=str(tmp))
    spec = importlib.util.spec_from_file_location("_bitlet_fast_portable", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.setdefault("_bitlet_fast_portable", module)
    return fast.FastEngine(module.ffi, module.lib)


def test_portable_build_equals_default(portable_engine, monkeypatch):
    info = portable_engine.info()
    assert info["isa"] == "scalar" and not info["simd_compiled"]
    assert info["threading"] in ("openmp", "pthreads", "none")
    d = load("f32_random_full.npz")
    args = [d[f] for f in PORT_FIELDS]
    assert np.array_equal(portable_engine.group_engine(*args), fast.engine().group_engine(*args))
    rng = np.random.default_rng(30)
    x = np.abs(rng.standard_normal((2, 6, 6, 12))).astype(np.float32)
    w = (rng.standard_normal((6, 3, 3, 4)) * 0.2).astype(np.float32)
    kw = {"padding": 1, "groups": 3, "relu": True, "return_profile": True, "threads": 2,
          "engine": "fast"}
    want, wp = numerics.conv2d(x, w, **kw)
    monkeypatch.setattr(fast, "engine", lambda: portable_engine)   # the layer on the portable build
    got, gp = numerics.conv2d(x, w, **kw)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)) and gp == wp


# ---------------------------------------------------------------------------
# the benchmark script (tiny shapes: a smoke test of its bit-exactness check)
# ---------------------------------------------------------------------------
def test_benchmark_script_checks_bit_exactness(capsys):
    bench = load_script("benchmarks/emulator.py")
    bench._SETTLE = 0.0
    rng = np.random.default_rng(40)
    shapes = [bench.conv_shape(rng, "conv", 1, 6, 5, 8, 8, 3, 1, ref_rows=2),
              bench.conv_shape(rng, "depthwise", 1, 6, 6, 8, 8, 3, 8, ref_rows=2),
              bench.gemm_shape(rng, 16, 96, 8, ref_m=4)]
    rows = bench.run(shapes, 1)
    assert [r["same"] for r in rows] == [True, True, True]
    assert "bit-exact yes" in capsys.readouterr().out
