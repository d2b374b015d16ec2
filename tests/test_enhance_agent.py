"""`bitlet enhance --predict --device tcp://...` (issue 15, item 3): the
program's host steps are measured on the agent's machine, labelled so."""
from __future__ import annotations

import json
import time

import pytest
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.tools.cli import main

pytestmark = pytest.mark.device

#: seconds every upload to the agent's device takes on top (its slow bus)
SLOW_S = 0.02


class SlowBoard(SimDevice):
    """The agent's device: each write into device memory takes SLOW_S longer."""

    def _write_arena(self, offset, data):
        time.sleep(SLOW_S)
        super()._write_arena(offset, data)


def test_predict_measures_the_program_host_work_on_the_agent(capsys):
    board = SlowBoard()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent:
            spec = f"tcp://127.0.0.1:{agent.port}"
            assert main(["enhance", "--predict", "--resolution", "48x30", "--device", spec,
                         "--json"]) == 0
            p = json.loads(capsys.readouterr().out)
            runs = agent.stats["op_model_run"]
            assert main(["enhance", "--predict", "--resolution", "48x30", "--device", spec]) == 0
            text = capsys.readouterr().out
    finally:
        board.close()
    assert runs == p["frames"] * p["tiles_per_frame"]  # every tile of every frame ran there
    # the agent's slow uploads are in the program's host work, not in this machine's part
    assert p["program_host_ms_per_frame"] >= 1e3 * SLOW_S * p["tiles_per_frame"]
    assert p["pipeline_host_ms_per_frame"] < 1e3 * SLOW_S
    assert p["host_ms_per_frame"] == pytest.approx(
        p["program_host_ms_per_frame"] + p["pipeline_host_ms_per_frame"], rel=1e-12)
    kernel_ms = p["kernel_cycles_per_frame"] / (p["clock_mhz"] * 1e3)
    assert p["board_fps"] == pytest.approx(1e3 / max(kernel_ms, p["host_ms_per_frame"]), rel=1e-9)
    assert spec[len("tcp://"):] in p["host_measured_on"]
    assert f"measured on the agent at {spec}" in text and "measured on this machine" in text


def test_target_fps_with_a_device_is_refused(capsys):
    assert main(["enhance", "--predict", "--target-fps", "5", "--device", "tcp://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device does not apply" in err[0]


def test_power_through_the_agent_says_to_measure_on_the_board():
    import bitlet
    from bitlet.drivers.power import power_meter

    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent, \
                bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            meter, why = power_meter(remote)
    finally:
        board.close()
    assert meter is None and "run with --power on the board" in why
