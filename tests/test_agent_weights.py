"""Shapes of one dynamic model share their weights through ``bitlet agent``: each
weight image crosses the link once (later shapes name it by its SHA-256) and is
written to the board's memory once (the agent's arena per model); what the
agent receives is checked; an agent without the feature still works."""
from __future__ import annotations

import contextlib
import warnings

import bitlet
import numpy as np
import pytest
from bitlet import hw
from bitlet.drivers.remote import open_remote
from bitlet.drivers.sim import SimDevice
from bitlet.errors import BlobMissing
from bitlet.program import Program
from bitlet.runtime.agent import Agent
from bitlet.runtime.dynamic import DynamicModel
from bitlet.runtime.remote import RemoteModel
from models import espcn_nhw

pytestmark = pytest.mark.device
#: three shapes with a different batch, height and width (largest first: one buffer layout)
SHAPES = ((2, 1, 16, 20), (1, 1, 12, 12), (3, 1, 9, 14))


def inputs(seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for shape in SHAPES]


def explicit(xs: list[np.ndarray]) -> tuple[list[np.ndarray], Program]:
    """Each shape compiled explicitly (input_shapes) on a local simulator: the reference."""
    outs = []
    with SimDevice() as dev:
        for x in xs:
            model = bitlet.compile(espcn_nhw(), device=dev, input_shapes={"lr": x.shape})
            outs.append(model(x))
            program = model.program
            model.close()
    return outs, program


@contextlib.contextmanager
def agent_and_remote(**agent_kwargs):
    board = SimDevice()
    try:
        with Agent(board, **agent_kwargs).start("tcp://127.0.0.1:0") as agent, \
                open_remote(f"tcp://127.0.0.1:{agent.port}", timeout=20) as remote:
            yield agent, remote, board
    finally:
        board.close()


def test_three_shapes_through_the_agent_send_and_write_the_weights_once():
    xs = inputs()
    expect, program = explicit(xs)
    weight_bytes = int(program.meta["buffers"]["blob_bytes"])
    with agent_and_remote() as (agent, remote, _board):
        model = bitlet.compile(espcn_nhw(), device=remote)
        assert isinstance(model, DynamicModel)
        got = [model(x) for x in xs]
        assert len({p.weights_digest() for p in model._programs.values()}) == 1
        stats = remote.describe()["agent_stats"]
        assert "shared_weights" in stats["features"]
        # the weight image went over the link once and into the board's memory once
        assert stats["weight_bytes_in"] == weight_bytes == remote.stats["weight_bytes_sent"]
        assert stats["weight_writes"] == 1 and model.uploads == 1
        assert agent.stats["op_program_put"] == 3 and agent.stats["op_blob_put"] == 1
        # the three shapes live in one buffer of the agent's device
        (arena,) = agent.session.groups.values()
        assert len(arena) == 3 and arena.layouts == 1
        again = model(xs[1])                       # a cached shape: nothing new sent or written
        assert remote.describe()["agent_stats"]["weight_writes"] == 1
        model.close()
    assert all(g.shape == e.shape and g.tobytes() == e.tobytes() for g, e in zip(got, expect))
    assert again.tobytes() == expect[1].tobytes()


def test_a_new_session_refers_to_the_weights_the_agent_already_holds():
    xs = inputs(6)
    with agent_and_remote() as (agent, remote, _board):
        first = bitlet.compile(espcn_nhw(), device=remote)
        first(xs[0])
        sent = agent.stats["weight_bytes_in"]
        url = f"tcp://127.0.0.1:{agent.port}"
        with open_remote(url, timeout=20) as other:  # another client: a new session
            second = bitlet.compile(espcn_nhw(), device=other)
            y = second(xs[1])
            assert other.stats["weight_bytes_sent"] == 0
            second.close()
        assert agent.stats["weight_bytes_in"] == sent   # found by its hash, not sent again
        assert agent.stats["weight_writes"] == 2         # each session has its own device memory
    assert y.tobytes() == explicit(xs)[0][1].tobytes()


def test_an_agent_without_the_feature_gets_each_shape_whole_and_the_client_says_so_once():
    xs = inputs(7)
    expect, program = explicit(xs)
    with agent_and_remote() as (agent, remote, _board):
        agent.features = []                 # an agent from before the feature ...
        remote.close()                      # ... as the client finds it in a new handshake
        with open_remote(f"tcp://127.0.0.1:{agent.port}", timeout=20) as old:
            assert not old.offers("shared_weights")
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                model = bitlet.compile(espcn_nhw(), device=old)
                got = [model(x) for x in xs]
                other = bitlet.compile(espcn_nhw(), device=old)
                other(xs[0])
            assert [(w.category, "cannot share weights" in str(w.message)) for w in said] \
                == [(RuntimeWarning, True)]
            assert model.uploads == 3
            assert agent.stats["weight_bytes_in"] == 3 * program.meta["buffers"]["blob_bytes"]
            # (the second model's one shape is the first one's first: loaded already)
            assert agent.stats["weight_writes"] == 3 and not agent.session.groups
            model.close()
            other.close()
    assert all(g.tobytes() == e.tobytes() for g, e in zip(got, expect))


def test_a_forged_or_unknown_weights_reference_is_refused():
    _, program = explicit(inputs()[:1])
    digest, weights = program.digest(), program.weights().tobytes()
    stripped = np.frombuffer(program.to_bytes(weights=False), np.uint8)
    assert stripped.size < len(program.to_bytes()) - len(weights) + 4096
    with agent_and_remote() as (agent, remote, _board):
        # a weight image the agent does not hold: refused, naming what to do
        with pytest.raises(BlobMissing, match="not in the agent's cache.*upload it again"):
            remote.call("program_put", {"digest": digest, "weights": "f" * 64}, [stripped])
        # bytes that do not hash to the name they are put under
        with pytest.raises(bitlet.BitletValueError, match="do not hash to it"):
            remote.call("blob_put", {"sha256": "e" * 64, "kind": "weights"},
                        [np.zeros(len(weights), np.uint8)])
        # other weights of the same size, held by the agent: not the program's
        fake = bytes(len(weights))
        fake_sha = remote.put_blob(fake, kind="weights")
        with pytest.raises(bitlet.ProgramError, match="are not the program's"):
            remote.call("program_put", {"digest": digest, "weights": fake_sha}, [stripped])
        # a program that records the fake weights, claimed under the real digest
        image = program.image.copy()
        b = program.meta["buffers"]
        image[b["blob_offset"]: b["blob_offset"] + b["blob_bytes"]] = 0
        forged = Program(program.meta, image, program.arrays)
        forged_bytes = np.frombuffer(forged.to_bytes(weights=False), np.uint8)
        with pytest.raises(bitlet.BitletValueError, match="digest"):
            remote.call("program_put", {"digest": digest, "weights": fake_sha}, [forged_bytes])
        with pytest.raises(bitlet.BitletValueError, match="weights must be a sha256"):
            remote.call("program_put", {"digest": digest, "weights": "../x"}, [stripped])
        # a program without its weights and no reference: refused
        with pytest.raises(bitlet.ProgramError, match="without its weights"):
            remote.call("program_put", {"digest": digest}, [stripped])
        with pytest.raises(bitlet.BitletValueError, match="group must be"):
            remote.call("model_load", {"digest": digest, "group": "a/b"})
        with pytest.raises(bitlet.BitletValueError, match="weights_group must be"):
            RemoteModel(program, remote, weights_group="a b")
        assert not remote.call("program_has", {"digest": digest})[0]
        # the genuine reference works, and the client's flow resends refused weights itself
        remote.weights_held.add(program.weights_digest())   # believes the agent holds them
        model = RemoteModel(program, remote, weights_group="g1")
        assert model.weight_bytes_sent == len(weights)       # refused, then sent
        assert agent.stats["op_blob_put"] == 3             # the refused, the fake, the real
        model.close()
        assert remote.read_reg(hw.REG_CTRL) & hw.CTRL_AP_IDLE


def test_the_shared_buffer_is_freed_with_the_last_shape_that_uses_it():
    xs = inputs(8)
    expect, _ = explicit(xs)
    with agent_and_remote() as (agent, remote, board):
        idle = board._arena.n_blocks              # device memory blocks in use before
        model = bitlet.compile(espcn_nhw(), device=remote)
        model.cache_size = 2
        got = [model(x) for x in xs]                # the first shape is evicted by the third
        (arena,) = agent.session.groups.values()
        assert len(arena) == 2 and arena.buffer is not None
        assert board._arena.n_blocks == idle + 1    # one buffer for the shapes
        # a shape closed (by hand here): the buffer stays for the other one, which runs
        shape1, _shape2 = model._loaded.values()
        shape1.close()
        assert len(arena) == 1 and agent.session.groups
        assert model(xs[2]).tobytes() == expect[2].tobytes()
        model.close()                               # the last shape: the buffer goes
        assert not agent.session.groups and arena.buffer is None and not agent.session.models
        assert board._arena.n_blocks == idle
        # the weights went once, although a shape came and went
        assert agent.stats["weight_bytes_in"] == remote.stats["weight_bytes_sent"]
        assert remote.describe()["agent_stats"]["weight_writes"] == 1
    assert all(g.tobytes() == e.tobytes() for g, e in zip(got, expect))


def test_program_bytes_without_weights_round_trip_only_with_the_right_weights(tmp_path):
    _, program = explicit(inputs()[:1])
    data = program.to_bytes(weights=False)
    back = Program.from_bytes(data, weights=program.weights().tobytes())
    assert back.digest() == program.digest()
    with pytest.raises(bitlet.ProgramError, match="without its weights"):
        Program.from_bytes(data)
    with pytest.raises(bitlet.ProgramError, match="has its own"):
        Program.from_bytes(program.to_bytes(), weights=program.weights().tobytes())
    with pytest.raises(bitlet.ProgramError, match="not the program's"):
        Program.from_bytes(data, weights=program.weights().tobytes()[:-1])
    (tmp_path / "p.npz").write_bytes(data)
    with pytest.raises(bitlet.ProgramError, match="without its weights"):
        Program.load(tmp_path / "p.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Program.from_bytes(program.to_bytes()).digest() == program.digest()
