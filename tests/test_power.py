"""Energy per frame (issue 15, item 5): ``bitlet enhance --power`` and
``bitlet profile --power`` through pynq's power rails.

The rails are simulated (sensors whose readings the test chooses and logs)
on the pynq-backed simulated board, and sampled by pynq's own
``DataRecorder``: the joules must be the mean of the readings the sensors
actually gave times the measured run time.  Without pynq (the ``board``
extra) those tests skip; the simulator's one-line "no sensors" runs anywhere.
"""
from __future__ import annotations

import json
import time
import warnings
from fractions import Fraction

import numpy as np
import pytest
from bitlet.demo import model_path
from bitlet.tools import cli
from bitlet.tools.cli import main
from bitlet.tools.enhance import Enhancer
from bitlet.tools.video import FrameSource

pytestmark = pytest.mark.device


def _frames(n: int, h: int = 12, w: int = 16) -> FrameSource:
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    return FrameSource(f"{n} random frames", Fraction(25), n, iter(frames))


def test_the_simulator_says_in_one_line_that_it_has_no_sensors(tmp_path, capsys):
    assert main(["enhance", "--device", "sim", "--power", "--max-frames", "1",
                 str(_png_folder(tmp_path))]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("energy")]
    assert lines == ["energy: not measured (no power sensors: the simulator has no power rails "
                     "to read)"]
    assert main(["profile", "--device", "sim", "--power", "--shape", "lr=1,1,8,8", "--json",
                 str(model_path())]) == 0
    assert "no power sensors" in json.loads(capsys.readouterr().out)["power"]["unavailable"]


def test_predict_refuses_power(capsys):
    assert main(["enhance", "--predict", "--power"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--power" in err[0]


def _png_folder(tmp_path):
    from bitlet.tools.imaging import write_png

    folder = tmp_path / "lr"
    folder.mkdir()
    write_png(folder / "0.png", np.full((8, 8, 3), 100, np.uint8))
    return folder


# ------------------------------------------------------------------------------ pynq
@pytest.fixture(scope="module")
def pynq():
    with warnings.catch_warnings():  # pynq warns about this CPU and pkg_resources on import
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", message=".*pkg_resources")
        return pytest.importorskip("pynq", reason="pynq is not installed (the bitlet[board] extra)")


class FakeSensor:
    """A power sensor as pynq's (``name``; ``get_value()`` with no ``parents``, as
    pynq 4's recorder reads it, and ``value``, as pynq 2's), in watts, that
    logs what it returned."""

    parents = ()

    def __init__(self, name: str, watts: list[float]) -> None:
        self.name, self.watts, self.given = name, watts, []

    def get_value(self, parents=None) -> float:
        v = self.watts[len(self.given) % len(self.watts)]
        self.given.append(v)
        return v

    @property
    def value(self) -> float:
        return self.get_value()


def _rails(pynq):
    from pynq.pmbus import Rail

    rails = {}
    for name, watts in (("VCCINT", [1.25, 2.75]), ("VCC1V2", [0.5])):
        rails[name] = Rail(name)
        rails[name].power = FakeSensor(f"{name}_power", watts)
    rails["VCCAUX"] = Rail("VCCAUX")  # voltage only: no power sensor, left out
    return rails


@pytest.fixture
def board(pynq):
    from bitlet.drivers.pynq_sim import open_pynq_sim

    rails = _rails(pynq)
    dev = open_pynq_sim(rails=rails)
    yield dev, rails
    dev.close()


def _expected_watts(rails) -> float:
    sensors = [rails[n].power for n in ("VCCINT", "VCC1V2")]
    return sum(sum(s.given) / len(s.given) for s in sensors)


def test_enhance_reports_joules_per_frame_from_the_rails(board):
    dev, rails = board
    t0 = time.perf_counter()
    with Enhancer(device=dev) as enhancer:
        result = enhancer.enhance(_frames(3), power=True)
    wall = time.perf_counter() - t0
    p = result.summary["power"]
    vccint, vcc1v2 = rails["VCCINT"].power, rails["VCC1V2"].power
    assert p["samples"] == len(vccint.given) == len(vcc1v2.given) >= 1
    assert p["rails"] == {"VCCINT": pytest.approx(sum(vccint.given) / len(vccint.given)),
                          "VCC1V2": 0.5}
    assert p["watts"] == pytest.approx(_expected_watts(rails), rel=1e-12)
    assert 0 < p["seconds"] <= wall
    assert p["joules_per_frame"] == pytest.approx(p["watts"] * p["seconds"] / 3, rel=1e-12)
    assert p["frames"] == 3 and "measured on the board" in p["label"]
    line = [l for l in str(result).splitlines() if l.startswith("energy:")]
    assert len(line) == 1 and f"{p['joules_per_frame']:.4g} J a frame" in line[0]


def test_profile_power_on_the_simulated_board(board, monkeypatch, capsys):
    dev, rails = board
    monkeypatch.setattr(cli, "_open", lambda spec: dev)
    monkeypatch.setattr(dev, "close", lambda: None)  # the fixture closes it
    assert main(["profile", "--power", "--shape", "lr=1,1,8,8", "--json", str(model_path())]) == 0
    p = json.loads(capsys.readouterr().out)["power"]
    assert p["frames"] == 1 and p["samples"] == len(rails["VCC1V2"].power.given)
    assert p["watts"] == pytest.approx(_expected_watts(rails), rel=1e-12)
    assert p["joules_per_frame"] == pytest.approx(p["watts"] * p["seconds"], rel=1e-12)


def test_a_board_without_sensors_says_so(pynq):
    from bitlet.drivers.pynq_sim import open_pynq_sim

    dev = open_pynq_sim()
    try:
        with Enhancer(device=dev) as enhancer:
            result = enhancer.enhance(_frames(1), power=True)
    finally:
        dev.close()
    assert result.summary["power"] == {"unavailable": "no power sensors: the simulated board "
                                                      "(pynq) finds no rail with a power sensor"}
