"""``bitlet.compile`` and ``bitlet.load`` on a remote device upload the program
once and run it on the agent, bit-identical to a local run."""
from __future__ import annotations

import bitlet
import numpy as np
import pytest
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.runtime.remote import RemoteModel
from models import tiny_cnn

pytestmark = pytest.mark.device


def test_compile_and_load_on_a_remote_device_run_on_the_agent(tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with SimDevice() as local_dev:
        local = bitlet.compile(tiny_cnn(), device=local_dev)
        expect = local(x)
        local.save(tmp_path / "tiny.npz")
        local.close()
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent:
            with bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
                model = bitlet.compile(tiny_cnn(), device=remote)
                assert isinstance(model, RemoteModel)
                assert model(x).tobytes() == expect.tobytes()
                loaded = bitlet.load(tmp_path / "tiny.npz", device=remote)
                assert isinstance(loaded, RemoteModel)
                assert loaded(x).tobytes() == expect.tobytes()
            assert agent.stats["op_program_put"] == 1  # same program: uploaded once
            assert agent.stats["op_model_run"] == 2
    finally:
        board.close()


def test_compare_and_save_on_a_remote_model_match_a_local_model(tmp_path):
    pytest.importorskip("onnxruntime")
    from bitlet.program import Program
    from bitlet.runtime.model import CompiledModel

    x = np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with SimDevice() as local_dev:
        local = bitlet.compile(tiny_cnn(), device=local_dev)
        expect = bitlet.compare(local, x).as_dict()
        local.close()
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent, \
                bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            model = bitlet.compile(tiny_cnn(), device=remote)
            assert bitlet.compare(model, x).as_dict() == expect  # bit-identical values
            model.save(tmp_path / "remote.npz")
            y = model(x)
    finally:
        board.close()
    with SimDevice() as dev:  # what a remote model saved runs anywhere
        again = CompiledModel(Program.load(tmp_path / "remote.npz"), dev)
        assert again(x).tobytes() == y.tobytes()
        again.close()


def test_cli_run_and_profile_with_a_remote_device(tmp_path, capsys):
    """`bitlet run|profile MODEL --device tcp://...` go through the agent."""
    import json

    import onnx
    from bitlet.tools import cli

    onnx.save(tiny_cnn(), tmp_path / "tiny.onnx")
    x = np.random.default_rng(8).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with SimDevice() as dev:
        local = bitlet.compile(tiny_cnn(), device=dev)
        expect, local_profile = local(x), local.profile(x)
        local.close()
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent:
            url = f"tcp://127.0.0.1:{agent.port}"
            common = [str(tmp_path / "tiny.onnx"), "--input", str(tmp_path / "x.npy"),
                      "--device", url]
            assert cli.main(["run", *common, "--output", str(tmp_path / "y.npy")]) == 0
            capsys.readouterr()
            assert cli.main(["profile", *common, "--json"]) == 0
            profile = json.loads(capsys.readouterr().out)
            assert agent.stats["op_model_run"] == 1 and agent.stats["op_model_profile"] == 1
            assert agent.stats["op_program_put"] == 1  # the second command found it cached
    finally:
        board.close()
    assert np.load(tmp_path / "y.npy").tobytes() == expect.tobytes()
    assert [layer["pe_cycles"] for layer in profile["layers"]] == \
        [layer["pe_cycles"] for layer in local_profile.layers]
    assert profile["totals"]["kernel_cycles"] == local_profile.totals["kernel_cycles"]


@pytest.mark.parametrize("precision", ["bf16", "fixed8"])
def test_remote_runs_match_local_runs_in_other_precisions(precision):
    """Every value run(keep=True) returns, fixed-point activation scales included."""
    x = np.random.default_rng(6).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with SimDevice() as local_dev:
        local = bitlet.compile(tiny_cnn(), device=local_dev, precision=precision)
        here = local.run({"x": x}, keep=True)
        local.close()
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent, \
                bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            there = bitlet.compile(tiny_cnn(), device=remote, precision=precision).run(
                {"x": x}, keep=True)
    finally:
        board.close()
    assert set(there) == set(here)
    if precision == "fixed8":
        assert any(k.endswith(".scale") for k in there)
    for name, value in here.items():
        assert np.asarray(there[name]).tobytes() == np.ascontiguousarray(value).tobytes(), name
