"""A program loaded on a board behind ``bitlet agent``: :class:`RemoteModel`.

The client end of program-level remote runs; the server end is
:mod:`bitlet.runtime.agent` (its ``program_*`` and ``model_*`` operations),
the device under both is :class:`bitlet.drivers.remote.RemoteDevice`.
``RemoteModel`` and the local :class:`~bitlet.runtime.model.CompiledModel`
both satisfy :class:`bitlet.runtime.protocol.Model`.

>>> dev = bitlet.open("tcp://board:7700")                  # doctest: +SKIP
>>> model = bitlet.compile("model.onnx", device=dev)      # a RemoteModel  # doctest: +SKIP
>>> y = model(x)                                           # doctest: +SKIP
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bitlet.drivers.link.errors import LinkProtocolError
from bitlet.drivers.remote import RemoteDevice
from bitlet.errors import BitletTypeError, BitletValueError, BlobMissing
from bitlet.isa import profile_dtype
from bitlet.program import Program, check_feeds
from bitlet.runtime.arena import check_group
from bitlet.runtime.model import SECONDS_PER_MAC
from bitlet.runtime.profile import Profile
from bitlet.runtime.protocol import Model

__all__ = ["SHARED_WEIGHTS", "RemoteModel"]

#: the agent feature (its WELCOME ``features``) that lets shapes share weight images
SHARED_WEIGHTS = "shared_weights"


class RemoteModel(Model):
    """A program loaded on a remote board: call it like a local CompiledModel.

    Created by ``RemoteModel(program, device)`` (and so by
    ``bitlet.compile(model, device=remote)`` and ``bitlet.load(path,
    device=remote)``): the program's bytes cross the link only if the agent
    does not hold them yet (keyed by ``program.digest()``), and the agent
    loads it on its device once per session; every run then moves only the
    inputs and the outputs.  ``model(x)`` and ``model.run({name: array})`` send the
    inputs, run on the board and return the outputs (numpy arrays,
    bit-identical to a local run of the program); ``profile``, ``save``,
    ``close``, ``read_profile_records``, ``input_names``, ``output_names``,
    ``meta``, ``peak_device_bytes`` and ``last_timings`` behave as those of
    :class:`bitlet.runtime.model.CompiledModel`.

    Parameters
    ----------
    program : bitlet.program.Program
        From ``bitlet.compile(...).program`` or ``Program.load(path)``.
    device : bitlet.drivers.remote.RemoteDevice
        A board behind ``bitlet agent`` (``bitlet.open("tcp://...")``).
    run_timeout : float, optional
        Seconds one run may take on the board (default: the device's
        timeout plus the runtime's kernel budget for the program's MACs,
        :data:`bitlet.runtime.model.SECONDS_PER_MAC` each); the line time of
        the inputs and outputs comes on top.
    weights_group : str, optional
        Share device memory with the other programs loaded with the same
        group (1..64 ASCII letters and digits; a
        :class:`~bitlet.runtime.dynamic.DynamicModel` gives one per model):
        the program goes over the link without its weights, the weight image
        goes once (named by its SHA-256 afterwards, sent again only if the
        agent no longer holds it), and the agent places the group's programs
        in one device buffer beside one copy of each distinct weight image
        (:class:`~bitlet.runtime.arena.Arena`).  An agent without the
        ``shared_weights`` feature loads the program whole, in its own
        buffer (a RuntimeWarning says so once per device).

    Attributes
    ----------
    device : bitlet.drivers.remote.RemoteDevice
    program : bitlet.program.Program
    meta : dict
        The program's metadata (inputs, outputs, layers, steps).
    digest : str
        sha256 of the program (its key in the agent's cache).
    base : int
        Device address of the program's instructions on the board, at load (a
        later, larger program of the same ``weights_group`` may move them).
    weights_group : str or None
        The group the program was loaded in (None: its own buffer).
    weight_bytes_sent : int
        Bytes of weights this load sent over the link (0 when the agent held
        them already).
    device_bytes : int
        Device memory of the program's buffer on the board (the group's shared
        buffer, at load, for a grouped program).
    last_timings : dict
        Of the last run: the agent's timings (``host``, ``upload``,
        ``download``, ``kernel``, ``kernel_runs``, seconds, as
        CompiledModel's) plus ``wall``, the seconds this host waited for the
        run, link included.
    source_model : ONNX model or None
        What ``bitlet.compile`` was given (for :func:`bitlet.compare`).
    """

    def __init__(self, program: Program, device: RemoteDevice, *,
                 run_timeout: float | None = None, weights_group: str | None = None):
        if not isinstance(program, Program):
            raise BitletTypeError(f"RemoteModel takes a bitlet Program, got {type(program).__name__}")
        if not isinstance(device, RemoteDevice):
            raise BitletTypeError(f"RemoteModel takes a device opened on a link (bitlet.open("
                                  f"'tcp://...')), got {type(device).__name__}")
        if run_timeout is not None and (isinstance(run_timeout, bool) or not isinstance(
                run_timeout, (int, float)) or not run_timeout > 0):
            raise BitletValueError(f"run_timeout must be a positive number of seconds, "
                                   f"got {run_timeout!r}")
        check_group(weights_group, "weights_group")
        shared = weights_group is not None and device.offers(SHARED_WEIGHTS)
        if weights_group is not None and not shared:
            device.say_once(SHARED_WEIGHTS, f"the agent at {device.address} (SDK "
                            f"{device.agent.get('sdk')}) cannot share weights between the "
                            "shapes of a model: each shape uploads its own (update the SDK on "
                            "the board to upload them once)")
        digest = program.digest()
        self.weight_bytes_sent = 0
        present, _ = device.call("program_has", {"digest": digest})
        if not present and shared:
            self._put_without_weights(program, digest, device)
        elif not present:
            data = np.frombuffer(program.to_bytes(), dtype=np.uint8)
            device.call("program_put", {"digest": digest}, [data])
            self.weight_bytes_sent = int(program.meta["buffers"]["blob_bytes"])
            device.stats["weight_bytes_sent"] += self.weight_bytes_sent
        load = {"digest": digest, **({"group": weights_group} if shared else {})}
        loaded, _ = device.call("model_load", load, timeout=run_timeout)
        self.weights_group = weights_group if shared else None
        self.device_bytes = int((loaded or {}).get("device_bytes", program.device_bytes))
        self.device = device
        self.program = program
        self.meta = program.meta
        self.digest = digest
        self.run_timeout = run_timeout
        self._base = int((loaded or {}).get("base", 0))
        self.source_model: Any = None  # as CompiledModel (for bitlet.compare)
        self.last_timings: dict[str, Any] = {}
        self._closed = False

    def _put_without_weights(self, program: Program, digest: str, device: RemoteDevice) -> None:
        """Send ``program`` without its weights, which go (once per agent) by ``blob_put``:
        a weight image the agent holds is named by its sha256; one it refuses
        (:class:`bitlet.errors.BlobMissing`: evicted or never sent) is sent and the
        program sent again."""
        weights = program.weights_digest()
        data = np.frombuffer(program.to_bytes(weights=False), dtype=np.uint8)
        for attempt in range(2):
            if weights not in device.weights_held:
                before = device.stats["weight_bytes_sent"]
                device.put_blob(program.weights().tobytes(), kind="weights")
                self.weight_bytes_sent += device.stats["weight_bytes_sent"] - before
                device.weights_held.add(weights)
            try:
                device.call("program_put", {"digest": digest, "weights": weights}, [data])
                return
            except BlobMissing:
                device.weights_held.discard(weights)
                if attempt:
                    raise

    def _check_open(self) -> None:
        if self._closed:  # the same error as a closed CompiledModel
            raise BitletValueError(f"this compiled model ({self.meta.get('model')!r}) was closed "
                                   "(its device memory on the board is freed, it is not loaded "
                                   "any more): load it again (RemoteModel(program, device), "
                                   "bitlet.compile or bitlet.load)")

    def _args(self, feeds: Any) -> tuple[dict, list]:
        """Check ``feeds`` here (before any byte goes out) and cast to the compiled dtypes."""
        self._check_open()
        arrays = list(check_feeds(self.meta, feeds).values())
        return {"digest": self.digest, "inputs": self.input_names}, arrays

    def _run_budget(self) -> float:
        """Seconds one run may take on the board (see ``run_timeout``)."""
        if self.run_timeout is not None:
            return float(self.run_timeout)
        macs = sum(int(layer["macs"]) for layer in self.meta["layers"])
        return self.device.timeout + macs * SECONDS_PER_MAC

    def _set_timings(self, agent_timings: Any, wall: float) -> None:
        timings = dict(agent_timings) if isinstance(agent_timings, dict) else {}
        for key in ("host", "kernel_runs"):  # JSON lists back to CompiledModel's tuples
            if isinstance(timings.get(key), list):
                timings[key] = [tuple(item) for item in timings[key]]
        self.last_timings = {**timings, "wall": wall}

    def run(self, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
        """Run once on the board.

        Parameters
        ----------
        feeds : dict
            ``{input name: array}`` with the compiled shapes (cast to the
            compiled dtype, float32 unless the model says otherwise, before
            sending).
        keep : bool
            Also return every intermediate value (for :func:`bitlet.compare`).

        Returns
        -------
        dict
            ``{output name: array}`` (plus intermediates with ``keep``).

        Raises
        ------
        bitlet.BitletValueError, bitlet.BitletTypeError
            Unknown or missing input names, wrong shapes (checked here).
        bitlet.KernelTimeout, bitlet.DeviceError
            As raised by the run on the board.
        bitlet.LinkError
            The link failed beyond its bounded retries.
        """
        args, arrays = self._args(feeds)
        start = time.perf_counter()
        result, outputs = self.device.call("model_run", {**args, "keep": bool(keep)}, arrays,
                                           timeout=self._run_budget())
        self._set_timings(result.get("timings"), time.perf_counter() - start)
        values: dict[str, Any] = dict(zip(result["outputs"], outputs))
        scalars = result.get("scalars")
        if keep and isinstance(scalars, dict):  # e.g. the activation scales of fixed<n> layers
            values.update((k, v) for k, v in scalars.items() if isinstance(v, (int, float)))
        return values

    @property
    def base(self) -> int:
        """Device byte address of the program's buffer on the board."""
        return self._base

    def profile(self, x: np.ndarray | Mapping[str, np.ndarray], *,
                trace: str | os.PathLike | None = None) -> Profile:
        """Run once and return the board's per-layer profile (print it for a table).

        ``trace`` is refused: the timeline of a run through ``bitlet agent`` is
        not recorded (profile a local device for it).

        Returns
        -------
        bitlet.runtime.model.Profile
            As a local profile, measured on the board (``device`` is
            ``"remote:<the agent's device>"``, ``cycles`` the agent's label:
            ``"measured"`` on a board, ``"modelled"`` on a simulator);
            ``extra["client_wall_ms"]`` is this host's wall time of the call,
            link included.
        """
        if trace is not None:
            raise BitletValueError("trace needs a local device: the timeline of a run through "
                                   "`bitlet agent` is not recorded")
        feeds = x if isinstance(x, Mapping) else {self.input_names[0]: x}
        args, arrays = self._args(feeds)
        start = time.perf_counter()
        result, _ = self.device.call("model_profile", args, arrays, timeout=self._run_budget())
        wall = time.perf_counter() - start
        self._set_timings(result.get("timings"), wall)
        return Profile(result["layers"], result["host"], result["totals"], result["clock_mhz"],
                       device=f"remote:{result.get('device', '')}",
                       extra={"client_wall_ms": wall * 1e3},
                       cycles="measured" if result.get("cycles") == "measured" else "modelled")

    def read_profile_records(self) -> np.ndarray:
        """The profile records of the last run on the board, one per instruction.

        Returns
        -------
        np.ndarray, shape [n_insn], dtype :func:`bitlet.isa.profile_dtype`
            As :meth:`bitlet.runtime.model.CompiledModel.read_profile_records`.
        """
        self._check_open()
        result, arrays = self.device.call("model_profile_records", {"digest": self.digest})
        dtype = profile_dtype()
        fields = result.get("fields") if isinstance(result, dict) else None
        if fields != list(dtype.names) or len(arrays) != len(fields) \
                or len({a.shape for a in arrays}) > 1:
            raise LinkProtocolError(f"model_profile_records: the agent sent fields {fields}, "
                                    f"expected {list(dtype.names)}")
        records = np.zeros(arrays[0].shape if arrays else (0,), dtype=dtype)
        for name, values in zip(fields, arrays):
            records[name] = values
        return records

    def close(self) -> None:
        """Free the program's device memory on the board (idempotent; the agent keeps it cached)."""
        if self._closed:
            return
        self._closed = True
        if not self.device._closed:  # a closed device's session freed it already
            self.device.call("model_close", {"digest": self.digest})

    def __repr__(self) -> str:
        m = self.meta
        return (f"<RemoteModel {m.get('model')!r} {m.get('precision')} "
                f"{len(m.get('layers', []))} kernel layers, "
                f"{sum(s.get('op') == 'host' for s in m.get('steps', []))} host ops, "
                f"{self.peak_device_bytes / 2**20:.2f} MiB device memory, on {self.device.address}>")
