"""A program from a file or a wire never reaches outside its own buffer (issue 13, items 5, 6).

Every field of a saved program is bounded before it reaches a device (the
buffer plan, every instruction operand, the steps), malformed metadata is a
ProgramError naming what is wrong, an archive that would inflate is refused
before inflating, and the kernel's memory window is the program's own buffer.
"""
from __future__ import annotations

import io
import json
import struct
import time
import zipfile
import zlib

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers.sim import SimDevice
from bitlet.program import Program
from bitlet.runtime.model import CompiledModel
from models import tiny_cnn

pytestmark = pytest.mark.device

X = np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)


# (every test module opens its own simulator: these fixtures are alike in shape)
@pytest.fixture(scope="module")
def dev():
    with SimDevice() as device:
        yield device


@pytest.fixture(scope="module")
def saved(dev):
    model = bitlet.compile(tiny_cnn(), device=dev)
    data = model.program.to_bytes()
    model.close()
    return data


def tampered(saved: bytes, change) -> Program:
    """A copy of the saved program with ``change(meta, arrays)`` applied (arrays include the image)."""
    with np.load(io.BytesIO(saved), allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    change(meta, arrays)
    return meta, arrays


def write(path, meta, arrays, raw_meta: bytes | None = None) -> None:
    blob = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    arrays = dict(arrays, __meta__=np.frombuffer(blob, np.uint8))
    np.savez(path, **arrays)


def refused(path, dev, match: str) -> None:
    with pytest.raises(bitlet.BitletError, match=match) as info:
        bitlet.load(path, device=dev)
    assert type(info.value).__name__ == "ProgramError", type(info.value)
    assert isinstance(info.value, bitlet.BitletValueError)


# ---------------------------------------------------------------------------
# item 5: every offset and extent bounded by the program's own buffer
# ---------------------------------------------------------------------------
def _set(key, value):
    def change(meta, arrays):
        meta["buffers"][key] = value(meta["buffers"]) if callable(value) else value
    return change


@pytest.mark.parametrize("change, match", [
    (_set("profile_offset", lambda b: b["total_bytes"] + 4096), r"buffers\.profile_offset"),
    (_set("profile_offset", lambda b: b["blob_offset"]), r"buffers\.profile_offset .*overlaps the weights"),
    (_set("pool_offset", 0), r"buffers\.pool_offset 0 must be .* after the end of the image"),
    (_set("pool_offset", -4096), r"buffers\.pool_offset must be an int >= 0, got -4096"),
], ids=["profile-past-buffer", "profile-on-own-weights", "pool-offset-0", "pool-offset-negative"])
def test_a_program_reaching_outside_its_regions_is_refused_naming_the_field(
        saved, dev, tmp_path, change, match):
    meta, arrays = tampered(saved, change)
    write(tmp_path / "bad.npz", meta, arrays)
    refused(tmp_path / "bad.npz", dev, match)


def test_an_operand_writing_the_weights_is_refused(saved, dev, tmp_path):
    def change(meta, arrays):
        words = arrays["__image__"][: meta["buffers"]["n_insn"] * hw.INSN_BYTES].view("<u4")
        words.reshape(-1, hw.INSN_WORDS)[0, hw.W_OUT_LO] = meta["buffers"]["blob_offset"]
    meta, arrays = tampered(saved, change)
    write(tmp_path / "bad.npz", meta, arrays)
    refused(tmp_path / "bad.npz", dev, r"instruction 0 operand out .* outside the activation pool")


def test_the_agent_refuses_the_same_programs(saved, dev):
    from bitlet.runtime.agent import Agent
    from bitlet.drivers.remote import open_remote

    meta, arrays = tampered(saved, _set("pool_offset", 0))
    buf = io.BytesIO()
    write(buf, meta, arrays)
    bad = Program(meta={}, image=np.zeros(0, np.uint8))
    with Agent(dev).start("tcp://127.0.0.1:0") as agent, \
            open_remote(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
        digest = "0" * 64
        with pytest.raises(bitlet.BitletError, match=r"buffers\.pool_offset 0"):
            remote.call("program_put", {"digest": digest},
                        [np.frombuffer(buf.getvalue(), np.uint8)])
        assert agent.stats["op_program_put"] == 1 and bad.meta == {}


def test_the_kernel_window_is_the_programs_own_buffer(saved, dev):
    program = Program.from_bytes(saved)
    neighbour = dev.allocate(4096, np.uint8)  # the next model's memory
    model = CompiledModel(program, dev)
    try:
        model(X)
        base_lo, base_hi = dev.read_reg(hw.REG_MEM_BASE_LO), dev.read_reg(hw.REG_MEM_BASE_HI)
        assert base_lo | base_hi << 32 == model.base
        assert dev.read_reg(hw.REG_MEM_LO) | dev.read_reg(hw.REG_MEM_HI) << 32 == model.base
        assert dev.read_reg(hw.REG_MEM_SIZE) == program.device_bytes
    finally:
        model.close()
    # a program that escaped validation still cannot write outside its buffer: a bus error
    bad = Program.from_bytes(saved)
    words = bad.insn_words()
    words[0, hw.W_OUT_LO] = bad.device_bytes  # one byte past the buffer's end
    bad.validate = lambda: None  # as if the check had a hole
    model = CompiledModel(bad, dev)
    try:
        neighbour[:] = 7
        neighbour.sync_to_device()
        before = dev.read_memory(neighbour.device_address, 4096)
        with pytest.raises(bitlet.BusError, match="instruction 0"):
            model(X)
        assert dev.read_memory(neighbour.device_address, 4096) == before
        dev.reset()
    finally:
        model.close()
        neighbour.freebuffer()


# ---------------------------------------------------------------------------
# item 6: one validating reader, with size limits, for local and remote loads
# ---------------------------------------------------------------------------
def _drop(key):
    def change(meta, arrays):
        del meta[key]
    return change


def _download_shape(meta, arrays):
    step = next(s for s in meta["steps"] if s["op"] == "download")
    step["shape"] = [s * 2 for s in step["shape"]]


@pytest.mark.parametrize("change, match", [
    (_drop("buffers"), r"meta\.buffers is missing"),
    (_drop("steps"), r"meta\.steps is missing"),
    (lambda m, a: m.update(format="onnx"), r"unsupported program format 'onnx'"),
    (lambda m, a: m.update(format_version=99), r"unsupported program format .* version 99"),
    (_download_shape, r"step 'download'\.shape .* (does not fit|disagrees with) device value"),
    (lambda m, a: a.update(__image__=a["__image__"][:-64]), r"the image must be \d+ uint8 bytes"),
    (lambda m, a: a.update(__reloc__=a["__reloc__"].astype(np.float64)),
     r"relocation table __reloc__ must be \d+ uint8"),
    (lambda m, a: m["inputs"][0].update(shape="1x3"), r"inputs\.shape must be a list"),
    (lambda m, a: m["inputs"][0].update(dtype="object"), r"inputs\.dtype 'object' is not plain data"),
    (lambda m, a: m["buffers"].update(n_insn=2.5), r"buffers\.n_insn must be an int"),
    (lambda m, a: m["layers"][0].update(macs=None), r"layers\.macs must be an int"),
    (lambda m, a: m["kernel"].update(n_pe="four", bogus=1), r"meta\.kernel is not a kernel"),
], ids=["no-buffers", "no-steps", "format", "version", "download-shape", "image-size",
        "float-reloc", "input-shape", "object-dtype", "float-n_insn", "null-macs", "kernel"])
def test_malformed_metadata_is_a_program_error(saved, dev, tmp_path, change, match):
    meta, arrays = tampered(saved, change)
    write(tmp_path / "bad.npz", meta, arrays)
    refused(tmp_path / "bad.npz", dev, match)


@pytest.mark.parametrize("raw, match", [
    (b'{"format": "bitlet-program", "model": "\xff\xfe"}', "not UTF-8"),
    (b"[" * 200000 + b"]" * 200000, "nested too deeply|nested deeper"),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
    (b"[1, 2, 3]", "must be a JSON object, got a JSON list"),
    (b"{not json", "not JSON"),
], ids=["non-utf8", "deep-nesting", "nesting-past-limit", "not-an-object", "not-json"])
def test_malformed_metadata_text_is_a_program_error(saved, dev, tmp_path, raw, match):
    meta, arrays = tampered(saved, lambda m, a: None)
    if raw.startswith(b'{"a"'):  # a valid program with a deep extra key
        meta["extra"] = json.loads(raw)["a"]
        raw = None
    write(tmp_path / "bad.npz", meta, arrays, raw_meta=raw)
    refused(tmp_path / "bad.npz", dev, match)


def test_a_member_that_inflates_is_refused_before_inflating(saved, dev, tmp_path):
    bomb = tmp_path / "bomb.npz"
    with np.load(io.BytesIO(saved), allow_pickle=False) as src:
        members = [_stored(name + ".npy", _npy(src[name])) for name in src.files]
    bomb.write_bytes(_zip(members + [_zeros_bomb("pad.npy", 2 << 30)]))
    assert bomb.stat().st_size < 4 << 20, "a small file"
    start = time.monotonic()
    refused(bomb, dev, r"members unpack to 2,147,\d{3},\d{3} bytes, beyond the limit")
    assert time.monotonic() - start < 1.0, "refused before inflating"
    with pytest.raises(bitlet.BitletValueError, match="members unpack"):
        Program.from_bytes(bomb.read_bytes(), max_bytes=1 << 20)  # the agent's reader too


def test_an_npy_header_larger_than_its_member_is_refused(saved, dev, tmp_path):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        with np.load(io.BytesIO(saved), allow_pickle=False) as src:
            for name in src.files:
                z.writestr(name + ".npy", _npy(src[name]))
        z.writestr("huge.npy", _npy_header(np.dtype(np.float64), (1 << 40,)) + bytes(8))
    refused(path, dev, r"member 'huge\.npy': its header declares shape \(1099511627776,\)")


def test_a_good_program_still_loads_and_runs(saved, dev, tmp_path):
    path = tmp_path / "good.npz"
    path.write_bytes(saved)
    model = bitlet.load(path, device=dev)
    try:
        assert model(X).shape == (1, 10)
    finally:
        model.close()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic string included


def _stored(name: str, data: bytes) -> tuple:
    return name, 0, data, zlib.crc32(data), len(data)


def _zeros_bomb(name: str, nbytes: int) -> tuple:
    """A deflated .npy member of ``nbytes`` zeros, built from one compressed 64 MiB block
    repeated (each block ends with a full flush, so it stands alone): ~2 MB for 2 GiB."""
    header = _npy_header(np.dtype(np.uint8), (nbytes,))
    chunk = 64 << 20
    assert nbytes % chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(chunk)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(zeros, crc)
    return name, 8, head + block * (nbytes // chunk) + tail, crc, len(header) + nbytes


def _zip(members: list) -> bytes:
    """A zip archive of ``(name, method, raw data, crc32, uncompressed size)`` members."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in members:
        offset, raw_name = len(out), name.encode()
        out += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 0x21, crc,
                           len(data), size, len(raw_name), 0) + raw_name + data
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 0x21,
                               crc, len(data), size, len(raw_name), 0, 0, 0, 0, 0,
                               offset) + raw_name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central),
                      len(out), 0)
    return bytes(out + central + end)


def test_a_step_writing_more_than_its_device_value_holds_is_refused(dev):
    from models import tiny_attention

    model = bitlet.compile(tiny_attention(), device=dev)
    program = Program.from_bytes(model.program.to_bytes())
    model.close()
    step = next(s for s in program.meta["steps"] if s["op"] == "weights")
    program.meta["devices"][step["dev"]]["nbytes"] = 64  # the weights need more
    program.validate()  # the plan itself is consistent: the sizes meet at run time
    model = CompiledModel(program, dev)
    try:
        with pytest.raises(bitlet.BitletError, match=rf"bytes for device value '{step['dev']}'"):
            model(np.ones((1, 8, 16), np.float32))
    finally:
        model.close()
