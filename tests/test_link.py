"""Unit tests of the link layers (bitlet.drivers.link): URLs, frames, messages,
transfers.  No threads, no sockets: everything here is deterministic."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from bitlet import BitletValueError, LinkError
from bitlet.drivers import link
from bitlet.drivers.link import (
    ACK,
    DATA,
    HEADER,
    HELLO,
    FrameParser,
    Inbound,
    Limits,
    LinkProtocolError,
    LinkTimeout,
    Outbound,
    Tuning,
    encode_frame,
    pack_message,
    parse_url,
    unpack_message,
)


# -- URLs -------------------------------------------------------------------------
@pytest.mark.parametrize("url, scheme, path, host, port, baud", [
    ("serial:///dev/ttyPS0?baud=921600", "serial", "/dev/ttyPS0", "", 0, 921600),
    ("serial:///dev/ttyUSB1", "serial", "/dev/ttyUSB1", "", 0, link.DEFAULT_BAUD),
    ("serial://COM3?baud=115200", "serial", "COM3", "", 0, 115200),
    ("tcp://board.local:7700", "tcp", "", "board.local", 7700, 0),
    ("tcp://:7700", "tcp", "", "127.0.0.1", 7700, 0),
    ("socket://10.0.0.2:9", "tcp", "", "10.0.0.2", 9, 0),
])
def test_parse_url(url, scheme, path, host, port, baud):
    a = parse_url(url)
    assert (a.scheme, a.path, a.host, a.port, a.baud) == (scheme, path, host, port, baud)


def test_parse_url_pyserial_forms():
    assert parse_url("tcp://h:5").pyserial_url() == "socket://h:5"
    assert parse_url("serial:///dev/ttyS1?baud=9600").pyserial_url() == "/dev/ttyS1"


@pytest.mark.parametrize("url, words", [
    ("http://x:1", "unknown link scheme"),
    ("tcp://host", "no TCP port"),
    ("serial://", "no serial device"),
    ("serial:///dev/ttyS0?baud=fast", "baud"),
    ("serial:///dev/ttyS0?baud=-5", "baud"),
])
def test_parse_url_rejects(url, words):
    with pytest.raises(BitletValueError, match=words):
        parse_url(url)


def test_parse_url_rejects_non_string():
    with pytest.raises(BitletValueError, match="url must be a string"):
        parse_url(7700)


def test_tuning_scales_timeouts_with_baud_and_bytes_in_flight():
    slow = Tuning.for_address(parse_url("serial:///dev/x?baud=115200"))
    fast = Tuning.for_address(parse_url("serial:///dev/x?baud=921600"))
    window_bytes = slow.chunk * slow.window
    assert slow.byte_rate == 11520 and fast.byte_rate == 92160
    assert slow.timeout_for(window_bytes) > 2 * window_bytes / slow.byte_rate
    assert fast.timeout_for(window_bytes) < slow.timeout_for(window_bytes)
    assert slow.timeout_for(100) < slow.timeout_for(window_bytes)
    tcp = Tuning.for_address(parse_url("tcp://h:1"), window=3)
    assert tcp.byte_rate is None and tcp.window == 3 and tcp.transfer_time(10**6) == 0.0


# -- frames -----------------------------------------------------------------------
def _frames(*frames):
    return b"".join(frames)


def test_frame_round_trip_and_layout():
    raw = encode_frame(DATA, rid=7, offset=4096, total=10000, payload=b"abc", flags=1)
    assert len(raw) == link.FRAME_OVERHEAD + 3
    sync, ftype, flags, rid, offset, total, length, hcrc = HEADER.unpack_from(raw)
    assert (sync, ftype, flags, rid, offset, total, length) == (link.SYNC, DATA, 1, 7, 4096, 10000, 3)
    assert hcrc == zlib.crc32(raw[:HEADER.size - 4])
    assert struct.unpack_from("<I", raw, HEADER.size + 3)[0] == zlib.crc32(b"abc")
    p = FrameParser(1 << 16)
    p.feed(raw)
    f = p.next()
    assert (f.ftype, f.flags, f.rid, f.offset, f.total, f.payload) == (DATA, 1, 7, 4096, 10000, b"abc")
    assert p.next() is None


def test_parser_resyncs_through_garbage_and_split_input():
    good1 = encode_frame(ACK, rid=1, offset=5)
    good2 = encode_frame(HELLO, payload=b'{"a":1}')
    stream = b"\x00\xb1junk\xb1" + good1 + b"\x7e\xb1\xb1" + good2
    p = FrameParser(1 << 16)
    out = []
    for i in range(len(stream)):  # one byte at a time
        p.feed(stream[i:i + 1])
        while (f := p.next()) is not None:
            out.append(f)
    assert [(f.ftype, f.rid, f.offset) for f in out] == [(ACK, 1, 5), (HELLO, 0, 0)]
    assert out[1].json() == {"a": 1}


@pytest.mark.parametrize("where", ["header", "payload", "payload_crc"])
def test_parser_drops_corrupted_frames(where):
    bad = bytearray(encode_frame(DATA, rid=3, offset=0, total=4, payload=b"wxyz"))
    index = {"header": 9, "payload": HEADER.size + 1, "payload_crc": len(bad) - 1}[where]
    bad[index] ^= 0x10
    good = encode_frame(ACK, rid=4)
    p = FrameParser(1 << 16)
    p.feed(bytes(bad) + good)
    f = p.next()
    assert (f.ftype, f.rid) == (ACK, 4)
    assert p.bad_frames >= 1


def test_parser_rejects_oversize_length_from_the_header_alone():
    p = FrameParser(max_payload=1024)
    p.feed(encode_frame(DATA, payload=b"x" * 2000)[:HEADER.size])  # only the header arrived
    assert p.next() is None
    assert p.bad_frames == 1  # rejected without waiting for (or buffering) 2000 bytes
    p.feed(encode_frame(ACK, rid=9))
    assert p.next().rid == 9


def test_frame_json_errors_are_link_errors():
    p = FrameParser(1024)
    p.feed(encode_frame(HELLO, payload=b"[1, 2]") + encode_frame(HELLO, payload=b"\xff"))
    for _ in range(2):
        with pytest.raises(LinkProtocolError, match="not"):
            p.next().json()


# -- messages -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "<u2", ">i2", "uint32", ">i4",
                                   "uint64", "int64", "float16", ">f4", "float64"])
def test_message_round_trip_is_bit_exact(dtype):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=48, dtype=np.uint8).tobytes()
    a = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("=")).copy()
    if a.dtype == bool:
        a = a.astype(bool)
    a = a.astype(np.dtype(dtype))
    b = np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2]  # non-contiguous
    header, arrays = unpack_message(bytearray(pack_message({"op": "x", "n": 3}, [a, b])))
    assert header["op"] == "x" and header["n"] == 3
    assert arrays[0].dtype == link.wire_dtype(a.dtype) and arrays[0].dtype.str in link.WIRE_DTYPES
    assert arrays[0].tobytes() == a.astype(arrays[0].dtype).tobytes()
    np.testing.assert_array_equal(arrays[0], a)
    np.testing.assert_array_equal(arrays[1], b)
    arrays[1][0, 0] = 5  # writable


@pytest.mark.parametrize("dtype", [object, np.complex64, "U3", "datetime64[s]"])
def test_message_rejects_dtypes_outside_the_allow_list(dtype):
    with pytest.raises(BitletValueError, match="cannot cross the link"):
        pack_message({}, [np.zeros(2, dtype=dtype)])


def _raw_message(header: dict, payload: bytes = b"") -> bytearray:
    text = json.dumps(header).encode()
    return bytearray(struct.pack("<I", len(text)) + text + payload)


@pytest.mark.parametrize("header, payload, words", [
    ({"arrays": [{"dtype": "|O", "shape": [1]}]}, b"", "allow-list"),
    ({"arrays": [{"dtype": "<f4", "shape": [-1]}]}, b"", "bad shape"),
    ({"arrays": [{"dtype": "<f4", "shape": [True]}]}, b"", "bad shape"),
    ({"arrays": [{"dtype": "<f4", "shape": [4]}]}, b"\0" * 8, "overruns"),
    ({"arrays": []}, b"\0", "stray bytes"),
    ({"op": "x"}, b"", "arrays"),
])
def test_unpack_rejects_malformed_messages(header, payload, words):
    with pytest.raises(LinkProtocolError, match=words):
        unpack_message(_raw_message(header, payload))


def test_unpack_bounds_json_length_and_array_count():
    with pytest.raises(LinkProtocolError, match="out of bounds"):
        unpack_message(struct.pack("<I", 10**9) + b"{}")
    many = {"arrays": [{"dtype": "|u1", "shape": [0]}] * 3}
    with pytest.raises(LinkProtocolError, match="bounded"):
        unpack_message(_raw_message(many), Limits(max_arrays=2))
    assert isinstance(LinkProtocolError("x"), LinkError)


# -- transfers ------------------------------------------------------------------------
def _tuning(**kw):
    values = {"chunk": 100, "window": 3, "byte_rate": None, "ack_timeout": 1.0, "max_retries": 2}
    values.update(kw)
    return Tuning(**values)


def _offsets(frames):
    return [HEADER.unpack_from(f)[4] for f in frames]


def test_outbound_window_acks_and_go_back():
    out = Outbound(1, bytes(range(250)) * 2, _tuning())  # 500 bytes, 5 chunks
    t = out.last_progress
    assert _offsets(out.frames_to_send(t)) == [0, 100, 200]  # window of 3
    assert out.frames_to_send(t) == []
    out.on_ack(100, t + 0.1)
    assert _offsets(out.frames_to_send(t + 0.1)) == [300]
    # no progress for longer than ack_timeout: go back to the last ack (100)
    assert _offsets(out.frames_to_send(t + 1.2)) == [100, 200, 300]
    assert out.resent_bytes == 300
    out.on_ack(500, t + 1.3)
    assert out.done and out.frames_to_send(t + 5) == []


def test_outbound_gives_up_after_bounded_retries():
    out = Outbound(4, b"x" * 50, _tuning(max_retries=2))
    t = out.last_progress
    out.frames_to_send(t)
    out.frames_to_send(t + 1.1)
    out.frames_to_send(t + 2.2)
    with pytest.raises(LinkTimeout, match="request 4: no acknowledgement for 3"):
        out.frames_to_send(t + 3.3)


def test_outbound_fast_retransmit_on_third_duplicate_ack():
    out = Outbound(1, b"y" * 300, _tuning())
    t = out.last_progress
    out.frames_to_send(t)
    assert out.on_ack(0, t) == [] and out.on_ack(0, t) == []
    again = out.on_ack(0, t)
    assert _offsets(again) == [0]
    assert out.on_ack(0, t) == []  # once per hole


def test_outbound_resumes_from_an_acknowledged_offset():
    out = Outbound(2, b"z" * 1000, _tuning(), acked=600)
    assert _offsets(out.frames_to_send(out.last_progress)) == [600, 700, 800]


def test_inbound_reassembles_out_of_order_and_ignores_duplicates():
    data = bytes(range(256)) * 2
    inb = Inbound(5, len(data), Limits())
    assert inb.add(200, data[200:400]) == 200
    assert inb.received == 0
    assert inb.add(0, data[0:200]) == 200
    assert inb.received == 400
    assert inb.add(0, data[0:200]) == 0  # duplicate
    assert inb.add(500, b"too long" * 10) == 0  # beyond the total
    inb.add(400, data[400:])
    assert inb.done and bytes(inb.buf) == data


def test_inbound_refuses_oversize_messages_before_allocating():
    with pytest.raises(LinkProtocolError, match="exceeds the limit"):
        Inbound(1, 10**12, Limits(max_message=1 << 20))


# -- handshake versions ---------------------------------------------------------------
def test_version_mismatch_names_both_sides():
    mine = link.local_versions()
    assert link.version_mismatch(mine, dict(mine), "client", "agent") is None
    theirs = {**mine, "isa": mine["isa"] + 1, "sdk": "9.9.0",
              "config": {**mine["config"], "n_pe": 16}}
    text = link.version_mismatch(mine, theirs, "client", "agent")
    assert f"isa client={mine['isa']} agent={mine['isa'] + 1}" in text
    assert f"SDK client={mine['sdk']!r} agent='9.9.0'" in text
    assert "kernel n_pe client=4 agent=16" in text
    old_overlay = {**mine, "kernel": {"magic": mine["magic"], "version": mine["isa"] + 1}}
    assert f"isa client={mine['isa']} agent's overlay={mine['isa'] + 1}" in link.version_mismatch(
        mine, old_overlay, "client", "agent")
    patch_only = {**mine, "sdk": mine["sdk"].rsplit(".", 1)[0] + ".99"}
    assert link.version_mismatch(mine, patch_only, "client", "agent") is None


def test_auth_digest_depends_on_token_nonce_and_client():
    d = link.auth_digest(b"secret", "n1", "c1")
    assert d == link.auth_digest(b"secret", "n1", "c1")
    assert len({d, link.auth_digest(b"other", "n1", "c1"), link.auth_digest(b"secret", "n2", "c1"),
                link.auth_digest(b"secret", "n1", "c2")}) == 4


def test_inbound_allocates_only_what_arrives_and_bounds_out_of_order_bytes():
    inb = Inbound(1, 200 << 20, Limits(max_ahead=300))
    assert len(inb.buf) == 0  # 200 MiB announced, nothing allocated
    assert inb.add(100, b"a" * 200) == 200  # ahead of a gap: kept
    assert inb.add(300, b"b" * 200) == 0  # beyond max_ahead: dropped (resent later)
    assert inb.add(0, b"c" * 100) == 100
    assert inb.received == 300 and len(inb.buf) == 300


@pytest.mark.parametrize("kw, words", [
    ({"chunk": 0}, "chunk must be an int >= 1"),
    ({"chunk": "big"}, "chunk must be an int >= 1"),
    ({"window": 0}, "window must be an int >= 1"),
    ({"max_retries": -1}, "max_retries must be an int >= 0"),
    ({"ack_timeout": 0}, "ack_timeout must be a positive number"),
    ({"poll": -1.0}, "poll must be a positive number"),
])
def test_tuning_rejects_bad_values_naming_them(kw, words):
    with pytest.raises(BitletValueError, match=words):
        Tuning.for_address(parse_url("serial:///dev/x?baud=9600"), **kw)


@pytest.mark.parametrize("kw, words", [
    ({"chunk": 0}, "chunk must be"),
    ({"window": -2}, "window must be"),
    ({"ack_timeout": -1}, "ack_timeout must be"),
    ({"token": 5}, "token must be"),
    ({"token": ""}, "token must be"),
    ({"limits": "x"}, "limits must be"),
    ({"reconnects": True}, "reconnects must be"),
])
def test_open_remote_rejects_bad_options_before_connecting(kw, words):
    from bitlet import BitletError
    from bitlet.drivers.remote import open_remote

    with pytest.raises(BitletError, match=words):  # nothing listens there: checked first
        open_remote("tcp://127.0.0.1:9", **kw)


@pytest.mark.parametrize("kw, words", [
    ({"token": b""}, "token must be"),
    ({"cache_bytes": 0}, "cache_bytes must be"),
    ({"limits": {}}, "limits must be"),
])
def test_agent_rejects_bad_options(kw, words):
    from bitlet import BitletError
    from bitlet.runtime.agent import Agent

    with pytest.raises(BitletError, match=words):
        Agent(object(), **kw)
