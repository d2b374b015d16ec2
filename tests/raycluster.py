"""A local 2-CPU Ray cluster shared by the tests that need one (skipped without Ray).

Import the fixture into a test module: ``from raycluster import ray_cluster  # noqa: F401``.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """``ray`` initialised with ``num_cpus=2`` (started once per session, stopped at its end)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'bitlet[cluster]')")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


def kill_worker_of(shard_file) -> int:
    """SIGKILL the process that computed a finished shard (its pid is in the shard file)."""
    pid = json.loads(Path(shard_file).read_text())["worker"]["pid"]
    assert pid != os.getpid(), "the shard was computed in this process, not on a worker"
    os.kill(pid, signal.SIGKILL)
    return pid
