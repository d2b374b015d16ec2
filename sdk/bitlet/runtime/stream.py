"""Streaming inference: host work overlapped with kernel execution.

>>> outputs = model.stream(frames)     # an iterator in, an iterator out, order kept  # doctest: +SKIP
>>> for y in outputs:                                                               # doctest: +SKIP
...     encode(y)
>>> print(outputs.profile)              # per frame: kernel, transfers, host, overlap   # doctest: +SKIP

A :class:`~bitlet.runtime.model.CompiledModel` keeps its instructions,
weights and activations in one device buffer, and the instructions address
the activations directly.  :func:`stream` therefore loads the program a
second time (a second device buffer: double buffering) and runs frames
alternately in the two *slots*.  While the kernel computes frame ``i`` in one
slot, the host thread works on the other: it pulls frame ``i + 1`` from the
input iterator (decoding, colour conversion, tiling: whatever the iterator
does), packs and uploads it, and finishes frame ``i - 1`` (download, host
ops) and hands it to the consumer (stitching, encoding).  Kernel segments run
in order on one worker thread, which waits for the kernel's completion (the
interrupt on a board, the simulator's modelled ap_done otherwise), so the
host thread never blocks on the kernel while it has other work.

Every frame is timed: kernel wall time (``kernel_ms``: measured on a board;
on the simulator the emulation's wall time), the kernel's modelled time
(``kernel_modelled_ms``: counted cycles at the kernel clock), transfers,
host ops, the input iterator and the consumer, and the part of the kernel's
time during which the host thread did other work (``overlap_ms``).
:func:`write_trace` writes the same events as a Chrome trace / Perfetto
JSON timeline (open it in https://ui.perfetto.dev or ``chrome://tracing``).
"""
from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet.errors import BitletValueError

__all__ = ["Stream", "StreamProfile", "stream", "trace_events", "write_trace"]

#: names of the threads on the timeline (Chrome trace ``tid``)
HOST, KERNEL, MODELLED = 1, 2, 3
_THREAD_NAMES = {HOST: "host", KERNEL: "kernel (wall)", MODELLED: "kernel (modelled board time)"}


@dataclass
class StreamProfile:
    """Timing of a stream (plain data: :meth:`as_dict`).

    Attributes
    ----------
    frames : list of dict
        Per frame, milliseconds: ``input_ms`` (the input iterator producing
        it), ``upload_ms`` and ``download_ms`` (transfers: packing, copies and
        cache syncs), ``host_ms`` (host ops), ``kernel_ms`` (kernel wall time:
        measured on a board, the emulation on a simulator),
        ``kernel_modelled_ms`` (the kernel's counted cycles at its clock),
        ``output_ms`` (the consumer holding the result), ``overlap_ms`` (the
        part of ``kernel_ms`` during which the host thread did other work),
        ``latency_ms`` (input requested -> output handed over), and
        ``kernel_cycles``.
    events : list of tuple
        ``(frame, thread, name, start_s, end_s)`` on the stream's clock
        (seconds from its start); ``thread`` is ``"host"``, ``"kernel"`` or
        ``"modelled"``.
    wall_s : float
        First input requested -> last output handed over.
    slots : int
        Device buffers used (2: double buffering).
    clock_mhz : int
        Kernel clock of ``kernel_modelled_ms``.
    cycles : str
        What ``kernel_ms`` is: ``"measured"`` (the kernel on a board) or
        ``"emulated"`` (a simulator: the emulator's wall time on this machine).
    """

    frames: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[int, str, str, float, float]] = field(default_factory=list)
    wall_s: float = 0.0
    slots: int = 2
    clock_mhz: int = 0
    cycles: str = "emulated"

    @property
    def totals(self) -> dict[str, Any]:
        """Sums and rates over the frames (milliseconds, frames/s)."""
        n = len(self.frames)
        keys = ("input_ms", "upload_ms", "download_ms", "host_ms", "kernel_ms",
                "kernel_modelled_ms", "output_ms", "overlap_ms")
        sums = {k: float(sum(f[k] for f in self.frames)) for k in keys}
        serial = sum(sums[k] for k in keys[:5]) + sums["output_ms"]
        host = serial - sums["kernel_ms"]
        out = {"frames": n, "wall_ms": self.wall_s * 1e3, **sums, "serial_ms": serial,
               "fps": n / self.wall_s if self.wall_s > 0 else 0.0,
               "overlap_fraction": sums["overlap_ms"] / sums["kernel_ms"] if sums["kernel_ms"] else 0.0,
               "bottleneck": "kernel" if sums["kernel_ms"] >= host else "host"}
        if n:
            per_kernel = sums["kernel_modelled_ms"] / n
            per_host = host / n
            out["board_kernel_fps"] = 1e3 / per_kernel if per_kernel else float("inf")
            # a board overlaps its host work with the kernel in the same way
            out["board_fps"] = 1e3 / max(per_kernel, per_host) if max(per_kernel, per_host) else 0.0
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "totals": self.totals, "slots": self.slots,
                "clock_mhz": self.clock_mhz, "cycles": self.cycles}

    def __str__(self) -> str:
        head = (f"{'frame':>5} {'input':>8} {'upload':>8} {'host':>8} {'kernel':>9} "
                f"{'kern(m)':>9} {'download':>8} {'output':>8} {'overlap':>8} {'latency':>8}")
        lines = [head + "   (ms)", "-" * len(head)]
        for i, f in enumerate(self.frames):
            lines.append(f"{i:>5} {f['input_ms']:>8.2f} {f['upload_ms']:>8.2f} {f['host_ms']:>8.2f} "
                         f"{f['kernel_ms']:>9.2f} {f['kernel_modelled_ms']:>9.2f} "
                         f"{f['download_ms']:>8.2f} {f['output_ms']:>8.2f} {f['overlap_ms']:>8.2f} "
                         f"{f['latency_ms']:>8.2f}")
        t = self.totals
        lines.append(f"{t['frames']} frames in {t['wall_ms']:.1f} ms ({t['fps']:.2f} frames/s on this "
                     f"machine, {self.slots} slots); run one after another the same work took "
                     f"{t['serial_ms']:.1f} ms; {100 * t['overlap_fraction']:.0f} % of the kernel time "
                     f"overlapped host work; bottleneck: {t['bottleneck']}")
        if t["frames"]:
            what = ("measured on the board" if self.cycles == "measured" else
                    "the emulator's wall time on this machine")
            lines.append(f"kernel: {what}; kern(m): modelled (counted "
                         f"cycles at {self.clock_mhz} MHz): a board would reach "
                         f"{t['board_kernel_fps']:.2f} frames/s on the kernel alone, "
                         f"{t['board_fps']:.2f} with this machine's host work overlapped")
        return "\n".join(lines)


class _Frame:
    """One frame in flight: its slot, its step generator, its timings."""

    def __init__(self, index: int, slot: Any) -> None:
        self.index, self.slot = index, slot
        self.timings: dict[str, Any] = {"host": [], "upload": 0.0, "download": 0.0, "kernel": 0.0,
                                        "kernel_runs": []}
        self.kernel_intervals: list[tuple[float, float]] = []
        self.gen: Iterator[Future] | None = None
        self.pending: Future | None = None
        self.result: Any = None
        self.done = False
        self.record: dict[str, float] = {"input_ms": 0.0, "output_ms": 0.0}
        self.started = 0.0


class Stream:
    """The iterator returned by :func:`stream`; ``profile`` fills as frames complete."""

    def __init__(self, model: Any, frames: Iterable, slots: int = 2,
                 trace: str | os.PathLike | None = None) -> None:
        if not isinstance(slots, int) or slots < 1:
            raise BitletValueError(f"slots must be an int >= 1, got {slots!r}")
        self.model = model
        self.slots_wanted = slots
        self.trace = trace
        self.profile = StreamProfile(slots=slots, clock_mhz=int(model.meta["kernel"]["clock_mhz"]),
                                     cycles=_cycle_source(model))
        self._frames = frames
        self._host_busy: list[tuple[float, float]] = []
        self._gen = self._run()

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        """Stop early: wait for the kernel runs in flight, free the extra device buffers."""
        self._gen.close()

    # -- the pipeline ----------------------------------------------------------
    def _run(self) -> Iterator[Any]:
        model = self.model
        t_zero = time.perf_counter()
        events = self.profile.events
        lock = threading.Lock()  # the worker and the host thread both append events

        def now() -> float:
            return time.perf_counter() - t_zero

        def host_event(frame: int, name: str, start: float, end: float) -> None:
            with lock:
                events.append((frame, "host", name, start, end))
            self._host_busy.append((start, end))  # in time order: one host thread

        def kernel(fr: _Frame, step: dict, env: dict) -> None:
            start = now()
            fr.slot._step_kernel(step, env, fr.timings)
            end = now()
            fr.kernel_intervals.append((start, end))
            with lock:
                events.append((fr.index, "kernel", f"kernel [{step['first']}:+{step['count']}]",
                               start, end))

        def steps(fr: _Frame, feeds: Any) -> Iterator[Future]:
            single = not isinstance(feeds, Mapping)
            if single:
                if len(model.input_names) != 1:
                    raise BitletValueError(f"this model has inputs {model.input_names}: stream "
                                           "dicts {name: array}")
                feeds = {model.input_names[0]: feeds}
            env = fr.slot._feeds(feeds)
            for step in model.meta["steps"]:
                if step["op"] == "kernel":
                    future = worker.submit(kernel, fr, step, env)
                    yield future
                    future.result()
                    continue
                start = now()
                getattr(fr.slot, "_step_" + step["op"])(step, env, fr.timings)
                name = f"{step['type']} {step['node']}" if step["op"] == "host" else step["op"]
                host_event(fr.index, name, start, now())
            outputs = {name: np.ascontiguousarray(env[name]) for name in model.output_names}
            if single:
                values = [outputs[n] for n in model.output_names]
                fr.result = values[0] if len(values) == 1 else tuple(values)
            else:
                fr.result = outputs

        def advance(fr: _Frame) -> None:
            """Run the frame's host steps up to its next kernel segment (or its end)."""
            try:
                fr.pending = next(fr.gen)
            except StopIteration:
                fr.pending, fr.done = None, True

        slots = [model]
        inflight: deque[_Frame] = deque()
        free = deque([model])
        source = iter(self._frames)
        exhausted = False
        count = 0
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitlet-kernel")
        try:
            while True:
                # 1. fill the free slots: the input iterator runs while the kernel computes
                while not exhausted and (free or len(slots) < self.slots_wanted):
                    if not free:
                        extra = type(model)(model.program, model.device)
                        slots.append(extra)
                        free.append(extra)
                    start = now()
                    try:
                        feeds = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    fr = _Frame(count, free.popleft())
                    count += 1
                    fr.started = start
                    end = now()
                    fr.record["input_ms"] = (end - start) * 1e3
                    host_event(fr.index, "input", start, end)
                    fr.gen = steps(fr, feeds)
                    inflight.append(fr)
                    advance(fr)
                if not inflight:
                    break
                # 2. finish the oldest frame; advance others whose kernel finished meanwhile
                oldest = inflight[0]
                while not oldest.done:
                    if oldest.pending is not None:
                        oldest.pending.result()  # blocks only when the host has nothing else
                    advance(oldest)
                    for other in list(inflight)[1:]:
                        if not other.done and other.pending is not None and other.pending.done():
                            advance(other)
                inflight.popleft()
                self._finish_frame(oldest)
                free.append(oldest.slot)
                start = now()
                yield oldest.result
                end = now()
                oldest.record["output_ms"] = (end - start) * 1e3
                host_event(oldest.index, "output", start, end)
                self._record(oldest, end)
        finally:
            # wait for kernel runs in flight before their buffers can be freed
            worker.shutdown(wait=True)
            for fr in inflight:
                if fr.gen is not None:
                    fr.gen.close()
            for extra in slots[1:]:
                extra.close()
            self.profile.wall_s = now()
            if self.trace is not None:
                write_trace(self.trace, self.profile)

    def _finish_frame(self, fr: _Frame) -> None:
        records = fr.slot.read_profile_records()
        cycles = int(sum(int(records[layer["insn_first"]:layer["insn_first"] + layer["insn_count"]]
                                     ["kernel_cycles"].sum()) for layer in self.model.meta["layers"]))
        fr.record["kernel_cycles"] = cycles
        fr.record["kernel_modelled_ms"] = cycles / (self.profile.clock_mhz * 1e3)
        # the modelled board time, drawn from the start of each kernel wall interval
        runs = fr.timings["kernel_runs"]
        for (first, count, _), (start, _end) in zip(runs, fr.kernel_intervals):
            seg = int(records[first:first + count]["kernel_cycles"].sum())
            self.profile.events.append((fr.index, "modelled", f"kernel [{first}:+{count}]", start,
                                        start + seg / (self.profile.clock_mhz * 1e6)))

    def _record(self, fr: _Frame, end: float) -> None:
        t = fr.timings
        overlap = sum(_intersection(k, self._host_busy) for k in fr.kernel_intervals)
        self.profile.frames.append({
            "frame": fr.index,
            "input_ms": fr.record["input_ms"],
            "upload_ms": t["upload"] * 1e3,
            "host_ms": sum(s for _, _, s in t["host"]) * 1e3,
            "kernel_ms": t["kernel"] * 1e3,
            "kernel_modelled_ms": fr.record["kernel_modelled_ms"],
            "kernel_cycles": fr.record["kernel_cycles"],
            "download_ms": t["download"] * 1e3,
            "output_ms": fr.record["output_ms"],
            "overlap_ms": overlap * 1e3,
            "latency_ms": (end - fr.started) * 1e3,
        })


def _intersection(interval: tuple[float, float], others: list[tuple[float, float]]) -> float:
    """Seconds of ``interval`` covered by ``others`` (disjoint, in time order)."""
    start, end = interval
    total = 0.0
    i = bisect.bisect_left(others, (start, start)) - 1  # the last one starting before
    for s, e in others[max(i, 0):]:
        if s >= end:
            break
        total += max(0.0, min(end, e) - max(start, s))
    return total


def _cycle_source(model: Any) -> str:
    """``"measured"``: the kernel runs on a board; else ``"emulated"`` (a simulator)."""
    kind = getattr(model.device, "kind", "")
    return "measured" if kind == "pynq" else "emulated"


def stream(model: Any, frames: Iterable, *, slots: int = 2,
           trace: str | os.PathLike | None = None) -> Stream:
    """Run ``model`` on every item of ``frames``, overlapping host and kernel work.

    Parameters
    ----------
    model : CompiledModel
    frames : iterable
        Arrays (models with one input: NCHW float32, the compiled shape) or
        ``{input name: array}`` dicts.  Pulled lazily: whatever the iterable
        does (decoding, conversion) overlaps the kernel.
    slots : int
        Device buffers (program copies) used in turn; 2 is double buffering,
        1 runs frames one after another through the same pipeline.
    trace : path, optional
        Write the timeline (Chrome trace JSON) there when the stream ends.

    Notes
    -----
    While the stream is open its kernel runs are in flight: do not call the
    model directly until it is exhausted or closed (``Stream.close()``).

    Returns
    -------
    Stream
        An iterator of outputs in input order (an array, or a tuple for
        several outputs; a dict for dict inputs), bit for bit those of
        ``model(x)``.  ``Stream.profile`` holds the timing.
    """
    return Stream(model, frames, slots=slots, trace=trace)


# ------------------------------------------------------------------------------ trace
def trace_events(profile: StreamProfile) -> list[dict[str, Any]]:
    """The profile's events as Chrome trace events (``ph: "X"``, microseconds)."""
    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "bitlet stream"}}]
    out += [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}}
            for tid, name in _THREAD_NAMES.items()]
    tids = {"host": HOST, "kernel": KERNEL, "modelled": MODELLED}
    for frame, thread, name, start, end in sorted(profile.events, key=lambda e: e[3]):
        out.append({"name": name, "cat": thread, "ph": "X", "pid": 1, "tid": tids[thread],
                    "ts": round(start * 1e6, 3), "dur": round(max(0.0, end - start) * 1e6, 3),
                    "args": {"frame": frame}})
    return out


def write_trace(path: str | os.PathLike, profile: StreamProfile) -> str:
    """Write ``profile`` as a Chrome trace / Perfetto JSON file; returns the path."""
    doc = {"traceEvents": trace_events(profile), "displayTimeUnit": "ms",
           "otherData": {"clock_mhz": profile.clock_mhz, "kernel_wall": profile.cycles,
                         "kernel_modelled": "the kernel's counted cycles at the clock"}}
    path = os.fspath(path)
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)  # never leave a half-written trace behind
    return path


def single_run_profile(model: Any, timings: dict, records: np.ndarray, t_zero: float) -> StreamProfile:
    """A one-frame :class:`StreamProfile` of a plain run (``profile(x, trace=...)``)."""
    clock = int(model.meta["kernel"]["clock_mhz"])
    prof = StreamProfile(slots=1, clock_mhz=clock, cycles=_cycle_source(model))
    runs = iter(timings["kernel_runs"])
    for op, name, start, end in timings.get("events", []):
        thread = "kernel" if op == "kernel" else "host"
        prof.events.append((0, thread, name, start - t_zero, end - t_zero))
        if op == "kernel":
            first, count, _ = next(runs)
            cyc = int(records[first:first + count]["kernel_cycles"].sum())
            prof.events.append((0, "modelled", name, start - t_zero,
                                start - t_zero + cyc / (clock * 1e6)))
    prof.wall_s = max((e[4] for e in prof.events), default=0.0)
    return prof
