"""The streaming runtime (bitlet.runtime.stream): order and bits kept, host work
overlapped with the kernel on two device buffers, per-frame profile, Chrome trace."""
from __future__ import annotations

import json
import time

import bitlet
import numpy as np
import pytest
from bitlet.demo import model_path

pytestmark = pytest.mark.device

SHAPE = (1, 1, 8, 10)  # a small LR tile of the demo model: the emulator takes milliseconds


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(7)
    return [rng.random(SHAPE, dtype=np.float32) for _ in range(6)]


def _compiled(**device_options):
    dev = bitlet.open("sim", **device_options)
    return dev, bitlet.compile(str(model_path()), device=dev, input_shapes={"lr": SHAPE})


def test_stream_keeps_order_and_bits(inputs):
    dev, model = _compiled()
    try:
        expected = [model(x) for x in inputs]
        s = model.stream(iter(inputs))
        got = list(s)
        assert len(got) == len(inputs)
        for a, b in zip(got, expected):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), "not bit for bit"
        # frames differ, so a wrong order would show
        assert not np.array_equal(got[0], got[1])
        # dict feeds give dicts, as run() does
        out = list(model.stream({"lr": x} for x in inputs[:2]))
        assert np.array_equal(out[1][model.output_names[0]], expected[1])
        prof = s.profile
        assert [f["frame"] for f in prof.frames] == list(range(len(inputs)))
        cycles = model.profile(inputs[0]).totals["kernel_cycles"]
        assert prof.frames[0]["kernel_cycles"] == cycles  # the slot's own profile records
        assert prof.frames[0]["kernel_modelled_ms"] == pytest.approx(cycles / 200e3)
        assert prof.cycles == "emulated"
        # the second device buffer was freed at the end
        assert dev.describe()["memory"]["buffers"] == 1
    finally:
        model.close()
        dev.close()


def test_stream_overlaps_host_work_with_the_kernel(inputs):
    """With the kernel's time modelled (the simulator holds ap_done back 60 ms, as a
    board's kernel would take) and 40 ms of host work a frame (a camera delivering
    the frame), the stream takes about max(kernel, host) a frame, one by one the sum."""
    dev, model = _compiled(delay=0.06)
    try:
        def camera():
            for x in inputs:
                time.sleep(0.04)
                yield x

        t0 = time.perf_counter()
        one_by_one = [model(x) for x in camera()]
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = model.stream(camera())
        streamed = list(s)
        overlapped = time.perf_counter() - t0
        assert all(np.array_equal(a, b) for a, b in zip(streamed, one_by_one))
        # ideal: 6 x 100 ms vs 40 + 6 x 60 ms; a generous margin for a loaded machine
        assert overlapped < 0.85 * sequential, (overlapped, sequential)
        t = s.profile.totals
        assert t["overlap_ms"] > 0.5 * t["input_ms"], t  # most of the camera's wait hid
        assert all(f["kernel_ms"] >= 60.0 for f in s.profile.frames)
        assert t["bottleneck"] == "kernel"
        # one slot: the same pipeline, nothing overlaps
        single = model.stream(camera(), slots=1)
        list(single)
        assert single.profile.totals["overlap_ms"] < 0.2 * s.profile.totals["overlap_ms"]
    finally:
        model.close()
        dev.close()


def test_stream_trace_and_profile_trace(tmp_path, inputs):
    dev, model = _compiled()
    try:
        path = tmp_path / "stream.json"
        list(model.stream(iter(inputs[:3]), trace=path))
        doc = json.loads(path.read_text())
        events = [e for e in doc["traceEvents"] if e["ph"] == "X"]
        threads = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M"
                   and e["name"] == "thread_name"}
        assert set(threads.values()) == {"host", "kernel (wall)", "kernel (modelled board time)"}
        by_frame = {}
        for e in events:
            by_frame.setdefault(e["args"]["frame"], set()).add(e["name"].split(" ")[0])
        for frame in range(3):
            assert {"input", "upload", "kernel", "download", "DepthToSpace", "output"} <= by_frame[frame]
        assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in events)
        # the host thread's events never overlap each other (one thread)
        host = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if threads[e["tid"]] == "host")
        assert all(a[1] <= b[0] + 1e-3 for a, b in zip(host, host[1:]))

        single = tmp_path / "one.json"
        prof = model.profile(inputs[0], trace=single)
        events = [e for e in json.loads(single.read_text())["traceEvents"] if e["ph"] == "X"]
        names = [e["name"] for e in events]
        assert names[0] == "upload" and any(n.startswith("kernel") for n in names)
        modelled = [e for e in events if e["cat"] == "modelled"]
        assert sum(e["dur"] for e in modelled) == pytest.approx(
            prof.totals["kernel_cycles"] / 200.0, rel=1e-6)  # microseconds at 200 MHz
    finally:
        model.close()
        dev.close()


def test_stream_stopped_early_frees_its_buffers(inputs):
    dev, model = _compiled()
    try:
        expected = model(inputs[0])
        s = model.stream(iter(inputs))
        first = next(s)  # frame 1 is on the kernel meanwhile
        assert np.array_equal(first, expected)
        s.close()
        assert dev.describe()["memory"]["buffers"] == 1
        with pytest.raises(bitlet.BitletValueError, match="slots"):
            model.stream(iter(inputs), slots=0)
    finally:
        model.close()
        dev.close()


def test_cli_profile_writes_a_trace(tmp_path, capsys):
    from bitlet.tools.cli import main

    path = tmp_path / "profile.json"
    assert main(["profile", str(model_path()), "--shape", "lr=1,1,8,8", "--device", "sim",
                 "--trace", str(path)]) == 0
    assert "kernel" in capsys.readouterr().out
    events = json.loads(path.read_text())["traceEvents"]
    assert {e["cat"] for e in events if e["ph"] == "X"} == {"host", "kernel", "modelled"}
