"""Ray actors for ``bitlet eval`` / ``bitlet sweep`` (the optional ``bitlet[cluster]`` extra).

Each worker is a Ray actor holding the compiled models it was given
(:class:`bitlet.tools.evaluate.ShardWorker`): a job (program, weights and the
ONNX model) is put into the object store once and fetched by an actor the
first time it runs a shard of that job, never shipped per task.  Every actor
reserves ``threads`` CPUs and sets ``BITLET_THREADS`` to that number, so the
emulator's threads do not oversubscribe the cores.

Shards go to idle actors (at most two in flight per actor) and come back as
they finish.  A shard whose actor died (killed, out of memory, node lost) is
run again on a fresh actor, up to ``retries`` times; the driver keeps one
result per shard, so nothing is counted twice.

Cluster addresses: ``local`` (a new local cluster with as many CPUs as the
workers need), ``local:N`` (N CPUs), ``ray://HOST:PORT`` (Ray client) or
``auto`` (the cluster ``ray start`` runs on this machine).  When Ray is
already initialised in this process, that cluster is used and left running.
"""
from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bitlet.errors import BitletError, BitletValueError
from bitlet.tools.shards import Job, ShardWorker, Task

__all__ = ["RayRunner", "import_ray"]

INSTALL_HINT = "pip install 'bitlet[cluster]' (or pip install ray)"


def import_ray() -> Any:
    """``ray``, or a one-line BitletValueError saying what to install."""
    try:
        import ray  # optional: the `cluster` extra; the single-process path does not need it
    except ImportError:
        raise BitletValueError(f"--workers > 1 and --cluster need Ray: {INSTALL_HINT}; "
                               "or run in this process with --workers 1") from None
    return ray


def _connect(ray: Any, cluster: str | None, cpus: int) -> bool:
    """Initialise Ray for ``cluster``; True when this process started (and must stop) it."""
    if ray.is_initialized():
        return False
    spec = cluster or "local"
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if spec == "local" or spec.startswith("local:"):
        n = cpus
        if spec.startswith("local:"):
            try:
                n = int(spec[len("local:"):])
                if n < 1:
                    raise ValueError
            except ValueError:
                raise BitletValueError(f"--cluster {spec}: expected local:N with N >= 1 CPUs") from None
        ray.init(num_cpus=n, **kwargs)
        return True
    if spec == "auto" or spec.startswith("ray://"):
        try:
            ray.init(address=spec, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BitletValueError(f"--cluster {spec}: cannot connect ({exc})") from None
        return True
    raise BitletValueError(f"--cluster {spec!r}: use local, local:N, ray://HOST:PORT or auto")


class RayRunner:
    """A pool of ``workers`` Ray actors running shards (the runner interface of
    :func:`bitlet.tools.evaluate.run_jobs`: ``map``, ``stats``, ``close``).

    Parameters
    ----------
    workers : int
        Number of actors (at most as many as the cluster's CPUs hold, ``threads`` each).
    cluster : str, optional
        See the module docstring (None: ``local``).
    threads : int, optional
        CPUs reserved per actor and its ``BITLET_THREADS`` (default 1).
    retries : int
        How often a shard is run again after its actor died.
    """

    def __init__(self, workers: int = 2, cluster: str | None = None, threads: int | None = None,
                 retries: int = 3):
        self.ray = import_ray()
        self.threads = int(threads) if threads else 1
        self.n = int(workers)
        self.retries = retries
        self.started = _connect(self.ray, cluster, self.n * self.threads)
        self.cluster = cluster or "local"
        total = int(self.ray.cluster_resources().get("CPU", 0))
        if total < self.threads:
            self.close()
            raise BitletValueError(f"--cluster {self.cluster}: {total} CPUs, but a worker needs "
                                   f"{self.threads} (--threads)")
        # an actor keeps its CPUs while it lives: more actors than fit would never start
        # and the shards handed to them would wait for ever
        self.requested = self.n
        self.n = min(self.n, total // self.threads)
        self._cls = self.ray.remote(num_cpus=self.threads, max_restarts=0)(_Actor)
        self._serial = 0
        self.actors = [self._new_actor() for _ in range(self.n)]
        self._job_refs: dict[str, Any] = {}
        self.retried = 0
        self.task_seconds: list[tuple[float, float]] = []  # (driver round trip, worker compute)
        self.bytes_sent = 0       # input arrays shipped to workers (through the object store)
        self.bytes_received = 0   # results shipped back (their pickled size)
        self.job_bytes = 0        # programs, weights and ONNX models, once per job

    def _new_actor(self) -> Any:
        self._serial += 1
        return self._cls.options(name=f"bitlet-eval-{id(self):x}-{self._serial}").remote(self.threads)

    def map(self, jobs: Mapping[str, Job], tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        ray = self.ray
        queue = deque(tasks)
        attempts: dict[tuple[str, int], int] = {}
        pending: dict[Any, tuple] = {}  # ref -> (task, actor slot, actor, t0, payload)
        load = [0] * len(self.actors)

        def submit(task: Task, payload: Any = None) -> None:
            if task.key not in self._job_refs:  # the program and weights, once per job
                self._job_refs[task.key] = ray.put(jobs[task.key])
                self.job_bytes += len(jobs[task.key].program) + len(jobs[task.key].onnx or b"")
            slot = min(range(len(self.actors)), key=lambda s: load[s])
            if payload is None:
                payload = task.load()
                self.bytes_sent += sum(a.nbytes for f in payload["feeds"] for a in f.values())
            actor = self.actors[slot]
            ref = actor.run_ref.remote(task.key, [self._job_refs[task.key]], payload)
            load[slot] += 1
            pending[ref] = (task, slot, actor, time.perf_counter(), payload)

        def fill() -> None:
            while queue and len(pending) < 2 * len(self.actors):
                submit(queue.popleft())

        fill()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            task, slot, actor, t0, payload = pending.pop(ref)
            load[slot] -= 1
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                n = attempts[(task.key, task.shard)] = attempts.get((task.key, task.shard), 0) + 1
                if n > self.retries:
                    raise BitletError(f"shard {task.shard}: its worker died {n} times "
                                      f"(last: {type(exc).__name__})") from None
                self.retried += 1
                self._replace(slot, actor)
                submit(task, payload)
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BitletError):
                    raise cause from None
                raise BitletError(f"shard {task.shard}: the worker failed: "
                                  f"{type(cause).__name__ if cause else ''} {cause or exc}") from None
            self.task_seconds.append((time.perf_counter() - t0, float(result["seconds"])))
            self.bytes_received += len(pickle.dumps(result, protocol=5))
            yield task, result
            fill()

    def _replace(self, slot: int, dead: Any) -> None:
        """A fresh actor in ``slot`` unless ``dead`` was replaced already (its other shards fail too)."""
        if self.actors[slot] is dead:
            self.actors[slot] = self._new_actor()

    def warm_up(self, jobs: Mapping[str, Job] = ()) -> list[int]:
        """Wait until every actor is up and has opened ``jobs``; their process ids."""
        for key, job in dict(jobs).items():
            if key not in self._job_refs:
                self._job_refs[key] = self.ray.put(job)
                self.job_bytes += len(job.program) + len(job.onnx or b"")
        self.ray.get([a.open_ref.remote(k, [self._job_refs[k]]) for a in self.actors for k in dict(jobs)])
        return self.ray.get([a.pid.remote() for a in self.actors])

    def stats(self) -> dict[str, Any]:
        return {"workers": self.n, "workers_requested": self.requested, "cluster": f"ray {self.cluster}",
                "threads_per_worker": self.threads, "retries": self.retried}

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - already dead: nothing to stop
                pass
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


class _Actor(ShardWorker):
    """The Ray actor: a ShardWorker that fetches a job from the object store the first time."""

    def run_ref(self, key: str, box: list, shard: dict) -> dict:
        import ray  # optional: only ever runs inside a Ray worker

        return self.run(key, lambda: ray.get(box[0]), shard)

    def open_ref(self, key: str, box: list) -> None:
        import ray  # optional: only ever runs inside a Ray worker

        self._open(key, lambda: ray.get(box[0]))
