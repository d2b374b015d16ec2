"""Models with dynamic input dimensions: compiled per shape on first use, like
onnxruntime; weights uploaded once per model; save/load keep the compiled
shapes and compile new ones on demand; the same on a remote device."""
from __future__ import annotations

import bitlet
import numpy as np
import pytest
from bitlet.demo import model_path
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.runtime.dynamic import DynamicModel
from bitlet.runtime.model import CompiledModel
from models import espcn_nhw, tiny_cnn

pytestmark = pytest.mark.device
RNG = np.random.default_rng(11)


def _lr(h, w):
    return RNG.random((1, 1, h, w), dtype=np.float32)


def _static(dev, x):
    """The same model compiled ahead of time for x's shape (the reference)."""
    model = bitlet.compile(str(model_path()), device=dev, input_shapes={"lr": x.shape})
    try:
        return model(x)
    finally:
        model.close()


def _dynamic_batch_cnn():
    model = tiny_cnn()
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_value")
    dim.dim_param = "N"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def test_a_dynamic_model_compiles_each_shape_on_first_use_bit_identically():
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        assert isinstance(model, DynamicModel)
        assert model.shapes == []
        a, b = _lr(12, 12), _lr(16, 20)
        ya, yb = model(a), model(b)
        assert ya.shape == (1, 1, 36, 36) and yb.shape == (1, 1, 48, 60)
        assert [s["lr"] for s in model.shapes] == [(1, 1, 12, 12), (1, 1, 16, 20)]
        again = model(a)                        # from the cache: no new compile
        assert len(model.shapes) == 2
        assert again.tobytes() == ya.tobytes()
        assert ya.tobytes() == _static(dev, a).tobytes()
        assert yb.tobytes() == _static(dev, b).tobytes()
        model.close()


def test_weights_are_uploaded_once_when_shapes_share_them():
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        for h, w in ((12, 12), (13, 17), (8, 30)):
            model(_lr(h, w))
        blobs = {model._arena._key(p) for p in model._programs.values()}
        assert len(blobs) == 1                   # the demo's weight layout does not depend on H, W
        # the one weight image is written once per buffer layout (the buffer
        # doubles when a larger shape does not fit), never once per shape
        assert model.uploads == model._arena.layouts <= 2
        x = _lr(12, 12)
        first = model(x)
        layouts = model._arena.layouts
        model(_lr(64, 64))                         # larger than the buffer: a new layout
        assert model._arena.layouts == layouts + 1
        assert model(x).tobytes() == first.tobytes()   # earlier shapes placed again
        model.close()


def test_the_cache_is_bounded_and_evicted_shapes_come_back_without_recompiling():
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        model.cache_size = 2
        xs = [_lr(10, 10), _lr(11, 11), _lr(12, 12)]
        ys = [model(x) for x in xs]
        assert len(model._loaded) == 2 and len(model.shapes) == 3
        compiled = dict(model._programs)
        assert model(xs[0]).tobytes() == ys[0].tobytes()
        assert model._programs == compiled       # taken from the programs kept, not recompiled
        model.close()


def test_save_keeps_the_shapes_and_load_compiles_new_ones(tmp_path):
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        a, b = _lr(12, 12), _lr(9, 14)
        ya = model(a)
        model.save(tmp_path / "espcn.bitlet.npz")
        model.close()
        loaded = bitlet.load(tmp_path / "espcn.bitlet.npz", device=dev)
        assert isinstance(loaded, DynamicModel)
        assert [s["lr"] for s in loaded.shapes] == [(1, 1, 12, 12)]
        assert loaded(a).tobytes() == ya.tobytes()
        assert loaded(b).tobytes() == _static(dev, b).tobytes()
        assert len(loaded.shapes) == 2
        loaded.close()


def test_messages_name_the_models_own_dimensions():
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        with pytest.raises(bitlet.BitletValueError, match=r"\(1, 1, H, W\): dimension 1 must be 1"):
            model(np.zeros((1, 3, 8, 8), np.float32))
        with pytest.raises(bitlet.BitletValueError, match="4 dimensions"):
            model(np.zeros((8, 8), np.float32))
        with pytest.raises(bitlet.BitletValueError, match="has not run yet.*lr \\(1, 1, H, W\\)"):
            model.meta  # noqa: B018
        model.close()


def test_a_dynamic_batch_is_not_fixed_to_one():
    with SimDevice() as dev:
        model = bitlet.compile(_dynamic_batch_cnn(), device=dev)
        assert isinstance(model, DynamicModel)
        x = RNG.standard_normal((3, 3, 16, 16)).astype(np.float32)
        y = model(x)
        static = bitlet.compile(_dynamic_batch_cnn(), device=dev, input_shapes={"x": x.shape})
        assert isinstance(static, CompiledModel)
        assert y.shape[0] == 3 and y.tobytes() == static(x).tobytes()
        model.close()
        static.close()


def test_compare_works_on_a_dynamic_model():
    pytest.importorskip("onnxruntime")
    with SimDevice() as dev:
        model = bitlet.compile(str(model_path()), device=dev)
        report = bitlet.compare(model, {"lr": _lr(12, 12)})
        assert report.as_dict()["outputs"]
        model.close()


def test_a_dynamic_model_on_a_remote_device_compiles_per_shape_there():
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent, \
                bitlet.open(f"tcp://127.0.0.1:{agent.port}", timeout=10) as remote:
            model = bitlet.compile(str(model_path()), device=remote)
            assert isinstance(model, DynamicModel)
            a, b = _lr(12, 12), _lr(10, 16)
            ya, yb = model(a), model(b)
            model.close()
    finally:
        board.close()
    with SimDevice() as dev:
        assert ya.tobytes() == _static(dev, a).tobytes()
        assert yb.tobytes() == _static(dev, b).tobytes()


def test_dynamic_batch_and_image_size_at_three_shapes_write_the_weights_once():
    xs = [RNG.random(shape, dtype=np.float32)
          for shape in ((2, 1, 16, 20), (1, 1, 12, 12), (3, 1, 9, 14))]
    with SimDevice() as dev:
        model = bitlet.compile(espcn_nhw(), device=dev)
        got = [model(x) for x in xs]
        assert model.uploads == 1 and model._arena.layouts == 1
        model.close()
        for x, y in zip(xs, got):
            static = bitlet.compile(espcn_nhw(), device=dev, input_shapes={"lr": x.shape})
            assert y.tobytes() == static(x).tobytes()
            static.close()
