"""Shards of work for ``bitlet eval`` / ``bitlet sweep``: jobs, per-input metrics, the
worker that runs shards (in this process or as a Ray actor, :mod:`bitlet.tools.cluster`),
resumable per-shard result files and the driver loop (:func:`run_jobs`).

See :mod:`bitlet.tools.evaluate` for what is measured.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.compiler import build_program
from bitlet.compiler.frontend import load_model
from bitlet.drivers import open_device
from bitlet.errors import BitletValueError
from bitlet.program import Program
from bitlet.program.schedule import KernelConfig
from bitlet.runtime.model import CompiledModel
from bitlet.tools.accuracy import comparable_values, error_metrics, reference_session
from bitlet.tools.dataset import Dataset, digest_items
from bitlet.tools.imaging import ssim, ssim_available
from bitlet.tools.variants import kernel_engine

__all__ = ["FORMAT", "Job", "LocalRunner", "ShardStore", "ShardWorker", "Task", "make_job",
           "output_digest", "output_metrics", "run_jobs", "shard_payload"]

FORMAT = "bitlet-eval/1"
DEFAULT_SHARD_SIZE = 16


# --------------------------------------------------------------------------- metrics
# (tests/test_eval.py re-implements it independently, as its oracle)
def output_digest(outputs: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (16 hex digits) of the outputs' names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(outputs):
        arr = np.ascontiguousarray(outputs[name])
        h.update(f"{name}{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _classifier(shape: Sequence[int]) -> bool:
    return len(shape) == 2 and shape[1] >= 2


def output_metrics(outputs: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray],
                   label: int | None = None) -> dict[str, Any]:
    """Per-input metrics of ``outputs`` against ``refs`` (see the module docstring).

    Returns
    -------
    dict
        ``{"outputs": {name: metrics}}`` plus the flat per-input values (``bitlet.tools.evaluate.METRICS``)
        that apply (worst over outputs: largest error, smallest PSNR/SSIM/agreement).
    """
    per = {}
    refs = dict(refs)
    for name, ref in refs.items():
        shape, want = np.shape(ref), np.shape(outputs[name])
        if shape != want:
            if shape[:1] == (1,) and shape[1:] == want:  # references stored with the batch axis
                ref = refs[name] = np.asarray(ref)[0]
            else:
                raise BitletValueError(f"reference for output {name!r}: shape {list(shape)} per "
                                       f"input, but the output has shape {list(want)}")
        m = error_metrics(outputs[name], ref)
        if np.ndim(ref) == 4 and ssim_available():  # without scikit-image: no SSIM column
            m["ssim"] = ssim(outputs[name], ref)
        per[name] = m
    flat: dict[str, Any] = {"outputs": per,
                            "rel_l2": max(m["rel_l2"] for m in per.values()),
                            "max_abs": max(m["max_abs"] for m in per.values())}
    for key in ("psnr_db", "ssim", "top1_agree", "top5_overlap"):
        values = [m[key] for m in per.values() if key in m and not np.isnan(m[key])]
        if values:
            flat[key] = min(values)
    if label is not None:
        cls = [n for n, r in refs.items() if _classifier(np.shape(r))]
        if not cls:
            raise BitletValueError("labels need a classifier output [N, classes]; the outputs are "
                                   f"{ {n: list(np.shape(r)) for n, r in refs.items()} }")
        flat["label"] = int(label)
        flat["pred"] = int(np.argmax(outputs[cls[0]][0]))
        flat["ref_pred"] = int(np.argmax(refs[cls[0]][0]))
        flat["correct"] = float(flat["pred"] == label)
        flat["ref_correct"] = float(flat["ref_pred"] == label)
    return flat


# --------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """What workers run: one compiled program (plus its ONNX model for the reference).

    Attributes
    ----------
    key : str
        Digest of everything that decides the results (program, model, options).
    program : bytes
        ``Program.to_bytes()`` (instructions, weights, metadata).
    onnx : bytes or None
        The serialized ONNX model (the onnxruntime fp32 reference, per-layer values).
    n_pe : int
        The kernel build the program was compiled for (workers open a simulator at it).
    layers : bool
        Also compare every intermediate value (slower: kernel layers run one at a time).
    mode : {"metrics", "outputs"}
        ``"outputs"``: return the raw outputs and per-layer PE cycles instead
        of metrics (for :func:`bitlet.tools.calibrate.calibrate`).
    """

    key: str
    program: bytes
    onnx: bytes | None
    n_pe: int
    layers: bool = False
    mode: str = "metrics"
    info: dict[str, Any] = field(default_factory=dict)


def open_sim(n_pe: int) -> Any:
    """A simulated device whose Bitlet kernel is built at ``n_pe`` PEs."""
    top, _ = kernel_engine("bitlet", int(n_pe))
    return open_device("sim", engine=top)


def kernel_config(n_pe: int | None = None) -> KernelConfig:
    """The kernel configuration of the simulator at ``n_pe`` (None: the header's N_PE)."""
    dev = open_sim(hw.N_PE if n_pe is None else n_pe)
    try:
        return KernelConfig.from_driver(dev.kernel)
    finally:
        dev.close()


def make_job(model: Any, *, precision: str = "fp32", prune: Any = None, bits: Any = None,
             calibration: Any = None, input_shapes: Mapping[str, tuple] | None = None,
             n_pe: int | None = None, layers: bool = False, mode: str = "metrics",
             program: Program | None = None) -> Job:
    """Compile ``model`` (pure compiler, no device) for the simulator at ``n_pe`` into a :class:`Job`.

    ``program`` (a compiled or loaded :class:`~bitlet.program.Program`)
    skips the compilation; ``model`` may then be None (no ONNX reference).
    """
    n_pe = hw.N_PE if n_pe is None else int(n_pe)
    proto = load_model(model) if model is not None else None
    if program is None:
        program = build_program(proto, kernel_config(n_pe), precision=precision, prune=prune,
                                bits=bits, calibration=calibration, input_shapes=input_shapes)
    onnx_bytes = proto.SerializeToString() if proto is not None else None
    h = hashlib.sha256(program.digest().encode())
    h.update(hashlib.sha256(onnx_bytes or b"").digest())
    h.update(f"{FORMAT} layers={layers} mode={mode} n_pe={n_pe}".encode())
    info = {"precision": program.meta["precision"], "n_pe": n_pe,
            "model": program.meta.get("model", ""), "program_sha256": program.digest()[:16],
            "clock_mhz": int(program.meta["kernel"]["clock_mhz"])}
    return Job(h.hexdigest()[:16], program.to_bytes(), onnx_bytes, n_pe,
               layers=layers and onnx_bytes is not None, mode=mode, info=info)


class _Loaded:
    """A job opened in a worker: device, compiled model, reference session."""

    def __init__(self, job: Job):
        self.job = job
        self.device = open_sim(job.n_pe)
        self.compiled = CompiledModel(Program.from_bytes(job.program), self.device)
        self.proto = load_model_bytes(job.onnx) if job.onnx is not None else None
        self.layer_names: list[str] | None = None
        self.session = None
        self.clock_mhz = int(self.compiled.meta["kernel"]["clock_mhz"])

    def close(self) -> None:
        self.compiled.close()
        self.device.close()

    def reference(self, env: dict, feeds: dict) -> dict[str, np.ndarray]:
        """onnxruntime fp32 outputs (and, with ``layers``, every comparable value)."""
        if self.session is None:
            names = list(self.compiled.output_names)
            if self.job.layers:
                names = comparable_values(self.proto, env, self.compiled)
                self.layer_names = [n for n in names if n not in self.compiled.output_names]
            self.session = reference_session(self.proto, names, threads=1)
        sess, wanted = self.session
        values = sess.run(wanted, {k: np.asarray(v) for k, v in feeds.items()})
        return dict(zip(wanted, values))


def load_model_bytes(data: bytes) -> Any:
    import onnx  # onnx: heavy import (~1 s), loaded only when a reference is needed

    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    return proto


class ShardWorker:
    """Runs shards; keeps the jobs it has opened (the latest ``keep`` of them).

    Used in-process and, wrapped as a Ray actor, on every cluster worker.

    Parameters
    ----------
    threads : int, optional
        Sets ``BITLET_THREADS`` (the emulator's threads) for this process.
    """

    def __init__(self, threads: int | None = None, keep: int = 2):
        if threads is not None:
            os.environ["BITLET_THREADS"] = str(int(threads))
        self.threads = threads
        self.keep = keep
        self._jobs: dict[str, _Loaded] = {}

    def pid(self) -> int:
        return os.getpid()

    def _open(self, key: str, get_job: Callable[[], Job]) -> _Loaded:
        loaded = self._jobs.get(key)
        if loaded is None:
            loaded = _Loaded(get_job())
            self._jobs[key] = loaded
            while len(self._jobs) > self.keep:
                self._jobs.pop(next(iter(self._jobs))).close()
        return loaded

    def run(self, key: str, get_job: Callable[[], Job], shard: dict[str, Any]) -> dict[str, Any]:
        """Run one shard (``{"id", "indices", "names", "feeds", "labels", "references", "digest"}``).

        Returns
        -------
        dict
            ``{"id", "digest", "records", "layers", "seconds", "worker"}``
            (``"outputs"`` and ``"layer_cycles"`` instead of metrics in
            ``"outputs"`` mode).
        """
        t0 = time.perf_counter()
        loaded = self._open(key, get_job)
        records, layer_rows, outs, layer_cycles = [], [], [], []
        for i, name, feeds, label, ref in zip(shard["indices"], shard["names"], shard["feeds"],
                                              shard["labels"], shard["references"]):
            try:
                rec, layer_row, outputs, cycles = self._one(loaded, feeds, label, ref)
            except BitletValueError as exc:  # name the input (e.g. an image of another size)
                raise BitletValueError(f"input {name}: {exc}") from None
            rec = {"index": int(i), "name": name, **rec}
            records.append(rec)
            layer_rows.append(layer_row)
            if loaded.job.mode == "outputs":
                outs.append(outputs)
                layer_cycles.append(cycles)
        result = {"id": shard["id"], "digest": shard["digest"], "records": records,
                  "seconds": time.perf_counter() - t0,
                  "worker": {"pid": os.getpid(), "host": socket.gethostname(),
                             "threads": os.environ.get("BITLET_THREADS", "")}}
        if loaded.job.layers:
            result["layers"] = {"names": loaded.layer_names,
                                "rel_l2": [r[0] for r in layer_rows],
                                "max_abs": [r[1] for r in layer_rows]}
        if loaded.job.mode == "outputs":
            result["outputs"], result["layer_cycles"] = outs, layer_cycles
        return result

    @staticmethod
    def _one(loaded: _Loaded, feeds, label, ref):
        compiled, job = loaded.compiled, loaded.job
        env = compiled.run(feeds, keep=job.layers)
        outputs = {n: np.ascontiguousarray(env[n]) for n in compiled.output_names}
        records = compiled.read_profile_records()
        kernel = int(records["kernel_cycles"].sum())
        pe = int(records["pe_cycles"].sum())
        rec: dict[str, Any] = {"digest": output_digest(outputs), "kernel_cycles": kernel,
                               "pe_cycles": pe, "predicted_ms": kernel / (loaded.clock_mhz * 1e3)}
        cycles = None
        if job.mode == "outputs":
            cycles = {}
            for layer in compiled.meta["layers"]:  # column strips count for their ONNX layer
                rec_l = records[layer["insn_first"]: layer["insn_first"] + layer["insn_count"]]
                name = layer.get("origin", layer["name"])
                cycles[name] = cycles.get(name, 0) + int(rec_l["pe_cycles"].sum())
            return rec, None, outputs, cycles
        layer_row = None
        if loaded.proto is not None and (ref is None or job.layers):
            values = loaded.reference(env, feeds)
            if ref is None:
                ref = {n: values[n] for n in compiled.output_names}
            if job.layers:
                ms = [error_metrics(env[n], values[n]) for n in loaded.layer_names]
                layer_row = ([m["rel_l2"] for m in ms], [m["max_abs"] for m in ms])
        if ref is None:
            raise BitletValueError("no reference: evaluating a saved program needs the ONNX model "
                                   "or reference outputs (--reference)")
        rec.update(output_metrics(outputs, ref, label))
        return rec, layer_row, outputs, cycles


# --------------------------------------------------------------------------- running
@dataclass
class Task:
    """One shard of one job; ``load()`` reads its inputs (on the driver)."""

    key: str
    shard: int
    load: Callable[[], dict[str, Any]]
    size: int


class LocalRunner:
    """Runs tasks one after another in this process."""

    workers = 1

    def __init__(self, threads: int | None = None):
        self.worker = ShardWorker(threads=None)
        self.threads = threads

    def map(self, jobs: Mapping[str, Job], tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        saved = os.environ.get("BITLET_THREADS")
        if self.threads is not None:
            os.environ["BITLET_THREADS"] = str(self.threads)
        try:
            for task in tasks:
                job = jobs[task.key]
                yield task, self.worker.run(task.key, lambda job=job: job, task.load())
        finally:
            if self.threads is not None:
                if saved is None:
                    os.environ.pop("BITLET_THREADS", None)
                else:
                    os.environ["BITLET_THREADS"] = saved

    def stats(self) -> dict[str, Any]:
        return {"workers": 1, "cluster": "this process", "retries": 0}

    def close(self) -> None:
        for loaded in self.worker._jobs.values():
            loaded.close()
        self.worker._jobs.clear()


def shard_payload(ds: Dataset, shard: int, shard_size: int) -> dict[str, Any]:
    """Read shard ``shard``'s inputs (and labels, references) from ``ds``."""
    indices = list(range(shard * shard_size, min(len(ds), (shard + 1) * shard_size)))
    names = [ds.names[i] for i in indices]
    feeds = [ds.feeds(i) for i in indices]
    labels = [ds.label(i) for i in indices]
    refs = [ds.reference(i) for i in indices]
    return {"id": shard, "indices": indices, "names": names, "feeds": feeds, "labels": labels,
            "references": refs, "digest": digest_items(names, feeds, labels, refs)}


class ShardStore:
    """Per-shard result files of one job in ``directory`` (None: keep in memory)."""

    def __init__(self, directory: str | os.PathLike | None, manifest: dict[str, Any]):
        self.dir = Path(directory) if directory is not None else None
        self.manifest = manifest
        if self.dir is None:
            return
        (self.dir / "shards").mkdir(parents=True, exist_ok=True)
        path = self.dir / "manifest.json"
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if old != manifest:
                diff = sorted(k for k in set(manifest) | set(old or {})
                              if (old or {}).get(k) != manifest.get(k))
                raise BitletValueError(f"--out {self.dir}: holds the results of another run "
                                       f"(differs in {', '.join(diff) or 'format'}); use another "
                                       "--out or delete it")
        else:
            write_json(path, manifest)

    def path(self, shard: int) -> Path:
        assert self.dir is not None
        return self.dir / "shards" / f"shard-{shard:05d}.json"

    def load(self, shard: int) -> dict[str, Any] | None:
        if self.dir is None:
            return None
        path = self.path(shard)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # cannot happen with atomic writes, but never trust a torn file

    def save(self, result: dict[str, Any]) -> None:
        if self.dir is not None:
            write_json(self.path(result["id"]), {k: v for k, v in result.items()
                                                  if k not in ("outputs", "layer_cycles")})


def write_json(path: Path, data: Any) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(part, path)


def run_jobs(jobs: Mapping[str, Job], datasets: Mapping[str, Dataset], *, runner: Any,
             stores: Mapping[str, ShardStore] | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
             progress: Callable[[int, int, str], None] | None = None) -> dict[str, list[dict]]:
    """Run every shard of every job (skipping the ones already in their store).

    Returns
    -------
    dict
        ``{job key: [shard result, ...]}`` sorted by shard id.
    """
    if shard_size < 1:
        raise BitletValueError(f"--shard-size must be >= 1, got {shard_size}")
    total = sum(len(datasets[k]) for k in jobs)
    done_n = 0
    results: dict[str, dict[int, dict]] = {k: {} for k in jobs}
    tasks = []
    for key in jobs:
        ds, store = datasets[key], (stores or {}).get(key)
        for shard in range((len(ds) + shard_size - 1) // shard_size):
            old = store.load(shard) if store is not None else None
            if old is not None:
                digest = shard_payload(ds, shard, shard_size)["digest"]
                if old.get("digest") != digest:
                    raise BitletValueError(f"--out {store.dir}: shard {shard} was computed from other "
                                           "inputs (did the data change?); use another --out")
                results[key][shard] = {**old, "resumed": True}
                done_n += len(old["records"])
                continue
            n = min(len(ds), (shard + 1) * shard_size) - shard * shard_size
            tasks.append(Task(key, shard, lambda ds=ds, s=shard: shard_payload(ds, s, shard_size), n))
    skipped = done_n
    if progress:
        progress(done_n, total, f"{skipped} inputs already done" if skipped else "")
    for task, result in runner.map(jobs, tasks):
        if task.shard in results[task.key]:
            continue  # a retried shard that came back twice: counted once
        store = (stores or {}).get(task.key)
        if store is not None:
            store.save(result)
        results[task.key][task.shard] = result
        done_n += len(result["records"])
        if progress:
            progress(done_n, total, f"shard {task.shard}")
    return {k: [v[s] for s in sorted(v)] for k, v in results.items()}


def feeds_dataset(feeds: Sequence[Mapping[str, np.ndarray]], name: str = "input") -> Dataset:
    """A :class:`Dataset` of in-memory feeds (``[{input: array}]``, same shapes)."""
    keys = list(feeds[0])
    arrays = {k: np.stack([np.asarray(f[k]) for f in feeds]) for k in keys}
    return Dataset([f"{name}[{i}]" for i in range(len(feeds))], keys, "in memory",
                   _arrays=arrays, _ranks={k: a.ndim - 1 for k, a in arrays.items()})


def run_programs(programs: Sequence[Program], feeds: Sequence[Mapping[str, np.ndarray]], *,
                 runner: Any, n_pe: int) -> list[tuple[list[dict[str, np.ndarray]], dict[str, int]]]:
    """Run every program on every feed through ``runner`` (for calibration's candidate plans).

    Returns
    -------
    list of (outputs, cycles)
        Per program: the outputs of every feed (in order) and the PE cycles per
        ONNX layer summed over the feeds (column strips counted for their layer).
    """
    jobs: dict[str, Job] = {}
    order = []
    for program in programs:
        job = make_job(None, program=program, n_pe=n_pe, mode="outputs")
        jobs.setdefault(job.key, job)
        order.append(job.key)
    ds = feeds_dataset(feeds)
    done = run_jobs(jobs, {k: ds for k in jobs}, runner=runner, shard_size=len(ds))
    results = []
    for key in order:
        outs = [o for sh in done[key] for o in sh["outputs"]]
        cycles: dict[str, int] = {}
        for sh in done[key]:
            for per_input in sh["layer_cycles"]:
                for layer, c in per_input.items():
                    cycles[layer] = cycles.get(layer, 0) + int(c)
        results.append((outs, cycles))
    return results
