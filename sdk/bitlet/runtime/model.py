"""Run a compiled :class:`~bitlet.program.Program` on a device.

>>> import bitlet
>>> model = bitlet.compile("model.onnx", input_shapes={"x": (1, 3, 64, 64)})  # doctest: +SKIP
>>> y = model(x)                        # NCHW in, like onnxruntime          # doctest: +SKIP
>>> print(model.profile(x))             # per-layer cycles, DDR bytes, host time  # doctest: +SKIP
>>> model.save("model.bitlet.npz"); model = bitlet.load("model.bitlet.npz")   # doctest: +SKIP

The program's one device buffer is allocated and its image (instructions,
weights, biases) written and synced once, at load.  Per run only the
activations move: each ``upload`` step writes and syncs the bytes of one
value, each ``download`` step syncs and reads one value, and each ``kernel``
step runs a contiguous slice of the instruction stream.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.drivers import open_device
from bitlet.drivers.kernel import KernelDriver
from bitlet.errors import BitletError, BitletValueError, OverlayMismatch, ProgramError
from bitlet.isa import decode_profile
from bitlet.program import Program, check_feeds
from bitlet.program.hostops import run_host_op
from bitlet.program.preprocess import pack_activations, pack_bias, unpack_outputs
from bitlet.program.schedule import KernelConfig
from bitlet.program.weights import device_rows, limit_ones
from bitlet.runtime.profile import Profile
from bitlet.runtime.protocol import Model
from bitlet.runtime.stream import Stream, single_run_profile, stream, write_trace

#: allowance of a kernel segment, in seconds per MAC, added to the driver's *default*
#: timeout only (generous for the C reference simulator, ~10 MMAC/s; a board is far
#: faster).  A timeout the user chose (``bitlet.open(kernel_timeout=...)``) is exact.
SECONDS_PER_MAC = 1e-6
_NP_FMT = {"fp32": np.uint32, "fp16": np.uint16, "bf16": np.uint16, "fixed": np.uint32}


def driver_of(device: Any):
    """The device's kernel driver, probed and attached on first use.

    One driver a device (as ``bitlet.open`` attaches it): a second model on
    a device opened otherwise (``PynqDevice()``, ``open_pynq_sim()``) must
    not probe the kernel while the first one's run is in flight (a stream's
    second slot).
    """
    driver = getattr(device, "kernel", None)
    if driver is None:
        driver = device.kernel = KernelDriver(device)
    return driver


def open_default_device(device: Any = None) -> Any:
    """``device`` or, when None, ``bitlet.open()``."""
    if device is not None:
        return device
    return open_device()


def check_compatible(program: Program, driver: Any) -> None:
    """Refuse a program compiled for another kernel configuration or ISA."""
    want = KernelConfig.from_dict(program.meta["kernel"])
    have = KernelConfig.from_driver(driver)
    diffs = [f"{key}: program {getattr(want, key)!r}, device {getattr(have, key)!r}"
             for key in ("isa_version", "kind", "n_pe") if getattr(want, key) != getattr(have, key)]
    # buffers: a program tiled for smaller on-chip buffers runs unchanged on larger ones
    diffs += [f"{key}: program needs {getattr(want, key)}, device has {getattr(have, key)}"
              for key in ("act_buf_words", "wgt_buf_words", "out_buf_words", "bias_buf_words")
              if getattr(want, key) > getattr(have, key)]
    fmt = "fixed" if program.meta["precision"].startswith("fixed") else program.meta["precision"]
    if fmt not in have.formats:
        diffs.append(f"precision {program.meta['precision']!r} not in the kernel's formats "
                     f"{list(have.formats)}")
    if diffs:
        raise OverlayMismatch("this program was compiled for another kernel configuration: "
                              + "; ".join(diffs) + ". Recompile the ONNX model for this device "
                              "(bitlet.compile(model, device=...)).")


def cycle_source(device: Any) -> str:
    """Where a device's clock stamps (profile ``start``/``end``) come from:
    ``"measured"`` (a board's free-running counter) or ``"modelled"`` (a
    simulator: the kernel's counted cycle model, hls/README.md)."""
    kind = getattr(device, "kind", "")
    if kind == "sim" or getattr(device, "sim", None) is not None:
        return "modelled"
    if kind == "remote":  # the agent's device: a board measures, a simulator models
        try:
            backend = device.describe().get("remote_backend")
        except BitletError:  # the link failed: claim nothing measured
            backend = None
        return "measured" if backend == "pynq" else "modelled"
    return "measured" if kind == "pynq" else "modelled"


class CompiledModel(Model):
    """A program loaded on a device: call it like an onnxruntime session.

    Parameters
    ----------
    program : Program
    device : bitlet.drivers.device.Device
        The device (its ``kernel`` driver, or a new KernelDriver, runs it).
    placement : bitlet.runtime.arena.Placement, optional
        Where the program already lives in a shared device buffer (the shapes of
        a :class:`~bitlet.runtime.dynamic.DynamicModel` share one buffer, their
        weights and their activation pool); None: the model allocates its own
        buffer and writes the program's image there.
    """

    def __init__(self, program: Program, device: Any, *, placement: Any = None):
        self.program = program
        self.device = device
        self.driver = driver_of(device)
        program.validate()
        check_compatible(program, self.driver)
        self.meta = program.meta
        self._consts = {k[len("const/"):]: v for k, v in program.arrays.items() if k.startswith("const/")}
        self.placement = placement
        self._buffer = None
        self._closed = False
        if placement is None:
            self._buffer = device.allocate(program.device_bytes, np.uint8)
            image = program.relocated_image(int(self._buffer.device_address))
            self._buffer[: len(image)] = image
            self._buffer[: len(image)].sync_to_device()
        self.last_timings: dict[str, Any] = {}
        self.source_model: Any = None

    # -- where the program is (its own buffer, or a placement in a shared one)
    @property
    def base(self) -> int:
        """Device byte address of the program's instructions (its image offset 0)."""
        if self.placement is not None:
            return self.placement.base + self.placement.insn_offset
        return int(self._buffer.device_address)

    def _view(self, region: str, offset: int, nbytes: int):
        """``nbytes`` of the device buffer at ``offset`` into the program's
        ``region`` (``"image"``: instructions and profile; ``"pool"``: activations)."""
        buffers = self.meta["buffers"]
        if self.placement is not None:
            buf = self.placement.buffer
            start = self.placement.insn_offset if region == "image" else self.placement.pool_offset
        else:
            buf, start = self._buffer, (0 if region == "image" else buffers["pool_offset"])
        return buf[start + offset: start + offset + nbytes]

    def _window(self) -> tuple[int, int]:
        """The kernel's memory window: the program's buffer."""
        if self.placement is not None:
            return self.placement.window
        return int(self._buffer.device_address), int(self.program.device_bytes)

    # -- running (input_names, output_names, peak_device_bytes, __call__ and save: Model's)
    def run(self, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
        """Run the model.

        Parameters
        ----------
        feeds : dict
            ``{input name: array}`` with the compiled shapes (float32 unless
            the model says otherwise).
        keep : bool
            Also return every intermediate value the host saw (for
            :func:`bitlet.compare`).

        Returns
        -------
        dict
            ``{output name: array}`` (plus intermediates with ``keep``).
        """
        if self._closed:
            raise BitletValueError("this compiled model was closed (its device memory is freed): "
                                   "compile or load it again")
        env = self._feeds(feeds)
        timings = {"host": [], "upload": 0.0, "download": 0.0, "kernel": 0.0, "kernel_runs": []}
        events = getattr(self, "_trace_events", False) and not keep
        if events:
            timings["events"] = []
        for step in self.meta["steps"]:
            t0 = time.perf_counter()
            if keep and step["op"] == "kernel":
                self._kernel_layer_by_layer(step, env, timings)
            else:
                getattr(self, "_step_" + step["op"])(step, env, timings)
            if events:  # (op, label, start, end): the timeline of profile(x, trace=...)
                label = (f"{step['type']} {step['node']}" if step["op"] == "host" else
                         f"kernel [{step['first']}:+{step['count']}]" if step["op"] == "kernel"
                         else step["op"])
                timings["events"].append((step["op"], label, t0, time.perf_counter()))
        self.last_timings = timings
        if keep:
            return env
        return {name: np.ascontiguousarray(env[name]) for name in self.output_names}

    def _feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = dict(self._consts)
        env.update(check_feeds(self.meta, feeds))
        return env

    def _attrs(self, attrs: dict) -> dict:
        return {k: self.program.arrays[v["__array__"]] if isinstance(v, dict) and "__array__" in v else v
                for k, v in attrs.items()}

    def _step_host(self, step, env, timings) -> None:
        t0 = time.perf_counter()
        ins = [env[i] if i else None for i in step["inputs"]]
        outs = run_host_op(step["type"], ins, self._attrs(step["attrs"]))
        env.update((n, o) for n, o in zip(step["outputs"], outs) if n)
        timings["host"].append((step["node"], step["type"], time.perf_counter() - t0))

    def _dev_view(self, dev: str) -> np.ndarray:
        """The bytes of device value ``dev`` in the program's buffer (a device-buffer view)."""
        info = self.meta["devices"][dev]
        return self._view("pool", info["offset"], info["nbytes"])

    def _write_dev(self, dev: str, data: np.ndarray) -> None:
        view = self._dev_view(dev)
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size > view.size:  # a program whose step and value sizes disagree
            raise ProgramError(f"program: {raw.size} bytes for device value {dev!r}, which "
                               f"holds {view.size}")
        view[: len(raw)] = raw
        view.sync_to_device()

    def _step_upload(self, step, env, timings) -> None:
        t0 = time.perf_counter()
        x = env[step["value"]]
        if step["layout"] == "nhwc":
            x = x.transpose(0, 2, 3, 1)
        elif step["layout"] == "batch_rows":
            x = np.broadcast_to(x, tuple(step["batch"]) + x.shape[-2:])
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(step["shape"])
        if step["fmt"] == "fixed":
            x = self._quantize(x, step, env)
        self._write_dev(step["dev"], pack_activations(x, step["fmt"]))
        timings["upload"] += time.perf_counter() - t0

    @staticmethod
    def _quantize(x: np.ndarray, step: dict, env: dict) -> np.ndarray:
        """Fixed mode: per-tensor symmetric quantisation; the scale goes to ``env``."""
        top = (1 << (step["act_bits"] - 1)) - 1
        amax = float(np.abs(x).max()) if x.size else 0.0
        scale = amax / top if amax > 0 and np.isfinite(amax) else 1.0
        env[step["dev"] + ".scale"] = scale
        return np.clip(np.rint(x.astype(np.float64) / scale), -top, top).astype(np.int32)

    def _step_fixbias(self, step, env, timings) -> None:
        """Fixed mode: the integer bias for this run's activation scale."""
        arrays = self.program.arrays
        scale = arrays[step["scale"]] * env[step["input"] + ".scale"]
        limit = (1 << hw.FIXED_BIAS_BITS) - 1
        bias = np.clip(np.rint(arrays[step["bias"]] / scale), -limit, limit).astype(np.int64)
        self._write_dev(step["dev"], pack_bias(bias, fixed=True))

    def _step_weights(self, step, env, timings) -> None:
        t0 = time.perf_counter()
        b = env[step["value"]].astype(np.float32)
        b = np.broadcast_to(b, tuple(step["batch"]) + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
        if step.get("bits"):
            b = limit_ones(b, step["bits"])
        chunks = []
        for i in range(b.shape[0]):
            w = np.ascontiguousarray(b[i].T)
            chunks += [device_rows(w, step["fmt"], tuple(kt)).reshape(-1) for kt in step["k_tiles"]]
        self._write_dev(step["dev"], np.concatenate(chunks))
        timings["upload"] += time.perf_counter() - t0

    def _step_kernel(self, step, env, timings) -> None:
        t0 = time.perf_counter()
        buffers = self.meta["buffers"]
        first, count = step["first"], step["count"]
        macs = sum(layer["macs"] for layer in self.meta["layers"]
                   if first <= layer["insn_first"] < first + count)
        why = (f"the segment's {macs:,} MACs at {SECONDS_PER_MAC:g} s per MAC "
               "(bitlet.runtime.model.SECONDS_PER_MAC)")
        result = self.driver.run(self.base + first * hw.INSN_BYTES, count,
                                 self.base + buffers["profile_offset"] + first * hw.PROF_BYTES,
                                 allowance=(macs * SECONDS_PER_MAC, why),
                                 window=self._window())
        seconds = time.perf_counter() - t0
        timings["kernel"] += seconds
        timings["kernel_runs"].append((first, count, result.seconds))

    def _kernel_layer_by_layer(self, step, env, timings) -> None:
        """Run a kernel segment one layer at a time, downloading every layer's output."""
        end = step["first"] + step["count"]
        for layer in self.meta["layers"]:
            if step["first"] <= layer["insn_first"] < end:
                self._step_kernel({"first": layer["insn_first"], "count": layer["insn_count"]},
                                  env, timings)
                out = layer["output"]
                if out["value"] not in env:
                    self._step_download({**out, "shape": layer["output_shape"]}, env, timings)

    def _step_download(self, step, env, timings) -> None:
        t0 = time.perf_counter()
        info = self.meta["devices"][step["dev"]]
        view = self._dev_view(step["dev"])
        view.sync_from_device()
        raw = np.frombuffer(view.tobytes(), dtype=_NP_FMT[info["fmt"]])
        x = unpack_outputs(raw, info["fmt"]).reshape(info["shape"])
        if "dequant" in step:
            dq = step["dequant"]
            scale = self.program.arrays[dq["scale"]] * env[dq["input"] + ".scale"] * 2.0 ** dq["quant"]
            x = (x * scale).astype(np.float32)  # channels are the last device axis
        if step["layout"] == "nhwc":
            x = x.transpose(0, 3, 1, 2)  # a view: the host keeps NHWC memory order
        env[step["value"]] = x.reshape(step["shape"])
        timings["download"] += time.perf_counter() - t0

    # -- profile ----------------------------------------------------------------
    def read_profile_records(self) -> np.ndarray:
        """The profile records of the last run, one per instruction (``bitlet.isa.decode_profile``)."""
        buffers = self.meta["buffers"]
        view = self._view("image", buffers["profile_offset"], buffers["n_insn"] * hw.PROF_BYTES)
        view.sync_from_device()
        return decode_profile(np.frombuffer(view.tobytes(), dtype="<u4"))

    def profile(self, x: np.ndarray | Mapping[str, np.ndarray], *,
                trace: str | os.PathLike | None = None) -> Profile:
        """Run once and return the per-layer profile (print it for a table).

        ``trace``: also write the run's timeline (uploads, host ops, kernel
        segments with their modelled board time, downloads) there as Chrome
        trace / Perfetto JSON (:mod:`bitlet.runtime.stream`).
        """
        feeds = x if isinstance(x, Mapping) else {self.input_names[0]: x}
        self._trace_events = trace is not None
        try:
            t0 = time.perf_counter()
            self.run(feeds)
            wall = time.perf_counter() - t0
        finally:
            self._trace_events = False
        records = self.read_profile_records()
        if trace is not None:
            write_trace(trace, single_run_profile(self, self.last_timings, records, t0))
        return build_profile(self, records, self.last_timings, wall)

    def stream(self, frames: Any, *, slots: int = 2,
               trace: str | os.PathLike | None = None) -> Stream:
        """Run every item of ``frames``, overlapping host work with the kernel
        (double-buffered device buffers); see :func:`bitlet.runtime.stream.stream`."""
        return stream(self, frames, slots=slots, trace=trace)

    def close(self) -> None:
        """Free the device buffer (idempotent; a placed program's shared buffer is
        its owner's to free)."""
        self._closed = True
        if self._buffer is not None:
            self.device.free(self._buffer)
            self._buffer = None

    def __repr__(self) -> str:
        m = self.meta
        return (f"<CompiledModel {m['model']!r} {m['precision']} {len(m['layers'])} kernel layers, "
                f"{sum(s['op'] == 'host' for s in m['steps'])} host ops, "
                f"{self.peak_device_bytes / 2**20:.2f} MiB device memory>")


def memory_report(buffers: dict[str, Any]) -> dict[str, int]:
    """Device memory of a program by kind (bytes), from its buffer plan."""
    return {"program_bytes": buffers["blob_offset"], "weight_bytes": buffers["blob_bytes"],
            "activation_bytes": buffers["pool_bytes"],
            "activation_bytes_without_reuse": buffers["pool_naive_bytes"],
            "total_bytes": buffers["total_bytes"]}


def build_profile(model: CompiledModel, records: np.ndarray, timings: dict, wall: float) -> Profile:
    """Aggregate profile records per layer and add the host timings."""
    clock = int(model.meta["kernel"]["clock_mhz"])
    layers = []
    for layer in model.meta["layers"]:
        rec = records[layer["insn_first"]: layer["insn_first"] + layer["insn_count"]]
        sums = {k: int(rec[k].sum()) for k in ("pe_cycles", "ref_cycles", "kernel_cycles", "groups",
                                               "scan", "ddr_bytes")}
        sums["clock_cycles"] = int((rec["end"] - rec["start"]).sum())
        layers.append({**{k: layer[k] for k in ("name", "op", "input_shape", "output_shape", "macs",
                                                  "precision", "prune", "bits", "insn_count")},
                       **sums, "predicted_ms": sums["kernel_cycles"] / (clock * 1e3)})
    host = [{"name": n, "op": op, "ms": s * 1e3} for n, op, s in timings["host"]]
    keys = ("macs", "pe_cycles", "ref_cycles", "kernel_cycles", "clock_cycles", "ddr_bytes",
            "groups")
    totals = {k: sum(l[k] for l in layers) for k in keys}
    totals.update(kernel_layers=len(layers), predicted_ms=totals["kernel_cycles"] / (clock * 1e3),
                  host_ops=len(host), host_ms=sum(h["ms"] for h in host),
                  transfer_ms=(timings["upload"] + timings["download"]) * 1e3,
                  kernel_wall_ms=timings["kernel"] * 1e3, wall_ms=wall * 1e3,
                  device_bytes=model.peak_device_bytes, memory=memory_report(model.meta["buffers"]))
    return Profile(layers, host, totals, clock, device=type(model.device).__name__,
                   cycles=cycle_source(model.device))
