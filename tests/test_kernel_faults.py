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
    from bitlet import runtime

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
