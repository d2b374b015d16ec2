"""Board power through pynq's power rails: :class:`PowerMeter`.

On boards whose power rails have sensors pynq can read (ZCU104: PMBus/INA226
sensors through libsensors), ``pynq.get_rails()`` returns ``{name: Rail}``
with a ``power`` sensor (watts) per rail, and ``pynq.DataRecorder`` samples
sensors on a thread.  :meth:`PowerMeter.measure` records the power of every
rail while a block runs and gives the energy::

    meter, why = power_meter(device)        # None and the reason without sensors
    with meter.measure() as reading:
        run_the_frames()
    reading.joules, reading.watts           # mean total power x the block's wall time

The energy is the mean of the sampled total power (the sum of the rails)
times the block's wall time (``time.perf_counter`` around it): it is
*measured on the board*, for the rails the board reports (their names are
in :attr:`PowerReading.rails`), not the whole board's wall-plug power.

Devices without sensors (the simulator, a board whose pynq finds no rails,
a device behind ``bitlet agent``) give ``(None, reason)``.  pynq is imported
only by the devices that have rails.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bitlet.drivers.pynq_board import import_pynq
from bitlet.errors import DeviceError

__all__ = ["PowerMeter", "PowerReading", "power_meter"]

#: seconds between samples of the rails (pynq.DataRecorder's interval)
SAMPLE_INTERVAL_S = 0.01


@dataclass
class PowerReading:
    """Energy of one measured block (filled when the block ends).

    Attributes
    ----------
    seconds : float
        Wall time of the block (``time.perf_counter``), seconds.
    watts : float
        Mean over the samples of the summed rail power, watts.
    joules : float
        ``watts * seconds``, joules.
    samples : int
        Samples taken (the recorder's; at least one: a block shorter than
        the interval is read once at its end).
    rails : dict
        Rail name -> mean power (watts).
    source : str
        Where the rails are, e.g. ``"pynq.get_rails() on zcu104"``.
    """

    seconds: float = 0.0
    watts: float = 0.0
    joules: float = 0.0
    samples: int = 0
    rails: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def per_frame(self, frames: int) -> dict[str, Any]:
        """Plain data with ``joules_per_frame`` for ``frames`` frames of the block."""
        if frames < 1:
            raise DeviceError("energy per frame of a block without frames")
        return {"joules_per_frame": self.joules / frames, "watts": self.watts,
                "joules": self.joules, "seconds": self.seconds, "frames": int(frames),
                "samples": self.samples, "rails": dict(self.rails), "source": self.source,
                "label": f"measured on the board ({self.source})"}


class PowerMeter:
    """Samples the power sensors of a set of rails with ``pynq.DataRecorder``.

    Parameters
    ----------
    rails : mapping
        ``{name: rail}``, rails as ``pynq.get_rails()`` returns them (an
        object with a ``power`` sensor: ``.name`` and ``.value`` in watts);
        rails without a power sensor are left out.
    source : str
        Where the rails are (for the label).
    interval : float
        Seconds between samples.
    """

    def __init__(self, rails: Mapping[str, Any], source: str,
                 interval: float = SAMPLE_INTERVAL_S) -> None:
        self.sensors = {name: rail.power for name, rail in rails.items()
                        if getattr(rail, "power", None) is not None}
        if not self.sensors:
            raise DeviceError(f"{source}: no rail has a power sensor")
        self.source, self.interval = source, float(interval)

    @contextlib.contextmanager
    def measure(self) -> Iterator[PowerReading]:
        """Record the rails while the ``with`` block runs; the reading fills at its end."""
        pynq = import_pynq()  # pynq's recorder; only devices with rails get here
        names = list(self.sensors)
        try:
            recorder = pynq.DataRecorder(*(self.sensors[n] for n in names))
        except ImportError as exc:  # pynq 4 records into pandas without depending on it
            raise DeviceError(f"pynq's DataRecorder needs pandas: pip install 'pandas<3' "
                              f"(the bitlet[board] extra has it) ({exc})") from exc
        reading = PowerReading(source=self.source)
        start = time.perf_counter()
        with recorder.record(self.interval):
            yield reading
            reading.seconds = time.perf_counter() - start
        # pynq's samples: a DataFrame, columns Mark then the sensors in order
        rows = recorder.frame.iloc[:, 1:].to_numpy(dtype=float).tolist()
        if not rows:  # stopped before the recorder's first sample
            rows = [[float(self.sensors[n].value) for n in names]]
        means = [sum(float(r[i]) for r in rows) / len(rows) for i in range(len(names))]
        reading.rails = dict(zip(names, means))
        reading.samples = len(rows)
        reading.watts = float(sum(means))
        reading.joules = reading.watts * reading.seconds


def power_meter(device: Any, interval: float = SAMPLE_INTERVAL_S) -> tuple[PowerMeter | None, str]:
    """The device's power meter, or ``(None, why)`` when it cannot measure power.

    Parameters
    ----------
    device : Device
        A device; those with power sensors have ``power_rails()`` returning
        ``(rails, source)``.
    """
    rails_of = getattr(device, "power_rails", None)
    kind = getattr(device, "kind", type(device).__name__)
    if kind == "remote":
        return None, ("no power sensors here: a board behind `bitlet agent` reads its rails "
                      "itself (run with --power on the board)")
    if rails_of is None:
        what = "the simulator" if kind == "sim" else f"this device ({kind})"
        return None, f"no power sensors: {what} has no power rails to read"
    rails, source = rails_of()
    rails = {n: r for n, r in rails.items() if getattr(r, "power", None) is not None}
    if not rails:
        return None, f"no power sensors: {source} finds no rail with a power sensor"
    return PowerMeter(rails, source, interval), ""
