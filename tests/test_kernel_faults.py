"""Timeouts, reset and threads on the simulated board (issue 13, items 1, 2 and 9).

A timed-out run must stop at the user's timeout, ``dev.reset()`` must fence
off an abandoned run, and any mix of simulators, engines and threads must give
the results of a single-threaded run.
"""
from __future__ import annotations

import threading
import time

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers import kernel as kernel_mod
from bitlet.drivers.kernel import KernelDriver
from bitlet.drivers.sim import SimDevice
from bitlet.runtime import model as runtime
from models import single_node

pytestmark = pytest.mark.device


def conv_model(cin: int, cout: int, size: int, seed: int = 5):
    """One 3x3 Conv, ``cin*cout*9*size*size`` MACs."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    return single_node("Conv", {"x": (1, cin, size, size)},
                       {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, {"w": w})


# ---------------------------------------------------------------------------
# item 9: the user's timeout is the timeout
# ---------------------------------------------------------------------------
def test_a_hung_run_times_out_at_the_users_kernel_timeout():
    dev = bitlet.open("sim", kernel_timeout=1.0)
    try:
        model = bitlet.compile(conv_model(64, 64, 24), device=dev)  # 21 MMAC
        assert sum(layer["macs"] for layer in model.meta["layers"]) > 20e6
        dev.faults.hang_after = 0
        start = time.monotonic()
        with pytest.raises(bitlet.KernelTimeout, match=r"within 1 s\b") as info:
            model(np.ones((1, 64, 24, 24), np.float32))
        elapsed = time.monotonic() - start
        assert 0.9 < elapsed < 3.0, f"timed out after {elapsed:.1f} s, not ~1 s"
        assert info.value.timeout == 1.0 and "allowance" not in str(info.value)
        dev.faults.hang_after = None
        dev.reset()
        model.close()
    finally:
        dev.close()


def test_the_default_timeout_prints_its_per_model_allowance(monkeypatch):
    monkeypatch.setattr(kernel_mod, "DEFAULT_TIMEOUT", 0.2)
    dev = SimDevice()
    dev.kernel = KernelDriver(dev)  # no timeout given: the default and the allowance
    try:
        model = bitlet.compile(conv_model(8, 8, 8), device=dev)
        macs = sum(layer["macs"] for layer in model.meta["layers"])
        monkeypatch.setattr(runtime, "SECONDS_PER_MAC", 0.3 / macs)
        dev.faults.hang_after = 0
        start = time.monotonic()
        with pytest.raises(bitlet.KernelTimeout,
                           match=r"within 0\.5 s \(the default timeout 0\.2 s \+ an allowance "
                                 r"of 0\.3 s for the segment's .* MAC") as info:
            model(np.ones((1, 8, 8, 8), np.float32))
        assert time.monotonic() - start < 2.5
        assert "kernel_timeout=" in str(info.value)
        dev.faults.hang_after = None
        dev.reset()
        model.close()
    finally:
        dev.close()


# ---------------------------------------------------------------------------
# item 2: simulators, engines and threads mixed give single-threaded results
# ---------------------------------------------------------------------------
def test_simulators_and_numerics_in_threads_give_the_single_threaded_bits():
    from bitlet import numerics

    rng = np.random.default_rng(11)
    onnx_model = conv_model(16, 16, 16)
    xs = [rng.standard_normal((1, 16, 16, 16)).astype(np.float32) for _ in range(2)]
    x_nhwc = rng.standard_normal((1, 12, 12, 16)).astype(np.float32)
    w_ohwi = rng.standard_normal((16, 3, 3, 16)).astype(np.float32)
    devices = [SimDevice(engine="reference"), SimDevice(engine="reference"), SimDevice(engine="fast")]
    models = [bitlet.compile(onnx_model, device=d) for d in devices]
    try:
        want = [models[0](x).tobytes() for x in xs]  # one thread, one device at a time
        assert all(m(x).tobytes() == w for m in models[1:] for x, w in zip(xs, want))
        want_conv = numerics.conv2d(x_nhwc, w_ohwi, padding=1, engine="reference").tobytes()
        wrong: list[str] = []
        start = threading.Barrier(5)

        def run_model(i: int) -> None:
            start.wait()
            for r in range(2):
                for x, w in zip(xs, want):
                    if models[i](x).tobytes() != w:
                        wrong.append(f"{devices[i].engine_name} simulator {i}, round {r}")

        def run_numerics(engine: str) -> None:
            start.wait()
            for r in range(5):
                got = numerics.conv2d(x_nhwc, w_ohwi, padding=1, engine=engine)
                if got.tobytes() != want_conv:
                    wrong.append(f"numerics.conv2d(engine={engine!r}), round {r}")

        threads = [threading.Thread(target=run_model, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=run_numerics, args=(e,)) for e in ("reference", "fast")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert wrong == [], f"{len(wrong)} wrong results: {wrong[:6]}"
    finally:
        for m, d in zip(models, devices):
            m.close()
            d.close()


# ---------------------------------------------------------------------------
# item 1: after reset() no earlier run touches memory or state
# ---------------------------------------------------------------------------
#: conv layers (cin, cout, size) tried in turn until one run takes long enough
SLOW_LAYERS = {"reference": [(16, 16, 32), (16, 16, 64), (32, 32, 64)],
               "fast": [(48, 48, 96), (64, 64, 160), (64, 64, 320)]}


def _slow_model(dev, rng):
    """A model whose run on ``dev`` lasts > 0.3 s on this machine: (model, inputs, output, s)."""
    for cin, cout, size in SLOW_LAYERS[dev.engine_name]:
        xs = [rng.standard_normal((1, cin, size, size)).astype(np.float32) for _ in range(2)]
        model = bitlet.compile(conv_model(cin, cout, size), device=dev)
        start = time.monotonic()
        want = model(xs[0])
        took = time.monotonic() - start
        if took > 0.3:
            return model, xs, want, took
        model.close()
    pytest.fail(f"no layer of {SLOW_LAYERS[dev.engine_name]} runs 0.3 s on this machine")


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_a_timed_out_run_never_touches_memory_after_reset(engine):
    dev = SimDevice(engine=engine)
    dev.kernel = KernelDriver(dev, timeout=120.0)
    model, xs, want, took = _slow_model(dev, np.random.default_rng(2))
    try:
        dev.kernel.timeout = 0.05
        with pytest.raises(bitlet.KernelTimeout):
            model(xs[1])  # abandoned: the simulated kernel goes on computing
        with pytest.raises(bitlet.DeviceError, match=r"still computing .* call dev\.reset\(\) again"):
            dev.reset(timeout=0.01)  # a bounded wait, and a diagnosis
        with pytest.raises(bitlet.DeviceError, match="busy"):
            model(xs[0])  # not reset yet: the kernel is still busy
        dev.reset()
        dev.kernel.timeout = 120.0
        memory = dev.read_memory(model.base, model.peak_device_bytes)
        time.sleep(took + 0.5)  # longer than the abandoned run needs
        assert dev.read_memory(model.base, model.peak_device_bytes) == memory, \
            "an abandoned run wrote device memory after reset()"
        assert dev.read_reg(hw.REG_CTRL) == hw.CTRL_AP_IDLE
        assert dev.read_reg(hw.REG_INSN_DONE) == 0, "the abandoned run latched no output"
        np.testing.assert_array_equal(model(xs[0]), want)
    finally:
        model.close()
        dev.close()
