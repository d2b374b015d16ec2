"""Inputs and outputs of the command line: ``--input`` files (.npy, .npz,
images) or deterministic random inputs, ``--shape``, ``--output`` files."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.compiler.frontend import load_model
from bitlet.errors import BitletValueError

__all__ = ["IMAGE_SUFFIXES", "RANDOM_SEED", "load_inputs", "onnx_input_specs", "parse_shapes",
           "write_outputs"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
RANDOM_SEED = 0


def parse_shapes(items: Sequence[str] | None) -> dict[str, tuple[int, ...]] | None:
    """``["x=1,3,64,64"]`` -> ``{"x": (1, 3, 64, 64)}``."""
    if not items:
        return None
    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise BitletValueError(f"--shape {item!r}: expected NAME=D0,D1,... e.g. x=1,3,64,64") from None
    return shapes


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image  # optional: only image inputs need Pillow
    except ImportError:
        raise BitletValueError(f"--input {path}: reading images needs Pillow (pip install pillow); "
                               "or give a .npy/.npz file") from None
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return pixels.transpose(2, 0, 1)[None]  # NCHW in [0, 1]


def load_inputs(path: str | None, input_specs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Read ``--input``: .npy (the single input), .npz (named inputs) or an image.

    Without a file, a deterministic random input of each input's shape is
    made (seed 0), so ``profile`` and ``compare`` run on any model.
    """
    names = [spec["name"] for spec in input_specs]
    if path is None:
        rng = np.random.default_rng(RANDOM_SEED)
        feeds = {}
        for spec in input_specs:
            shape = tuple(spec["shape"])
            if not all(isinstance(d, int) and d > 0 for d in shape):
                raise BitletValueError(f"input {spec['name']!r} has dynamic shape {list(shape)}: give "
                                       "--input FILE or --shape NAME=D0,D1,...")
            feeds[spec["name"]] = rng.random(shape, dtype=np.float32)
        return feeds
    file = Path(path)
    if not file.exists():
        raise BitletValueError(f"--input {path}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise BitletValueError(f"--input {path}: missing arrays {missing} (has {data.files})")
            return {n: data[n] for n in names}
    if len(names) != 1:
        raise BitletValueError(f"--input {path}: the model has inputs {names}; give an .npz with one "
                               "array per input name")
    if suffix == ".npy":
        return {names[0]: np.load(file, allow_pickle=False)}
    if suffix in IMAGE_SUFFIXES:
        return {names[0]: _read_image(file)}
    raise BitletValueError(f"--input {path}: unsupported file type {suffix!r} (use .npy, .npz or an image)")


def write_outputs(path: str, outputs: dict[str, np.ndarray]) -> Path:
    """Write outputs as .npy (one output) or .npz (named), atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise BitletValueError(f"--output {path}: use a .npy or .npz file name")
    if suffix == ".npy" and len(outputs) != 1:
        raise BitletValueError(f"--output {path}: the model has {len(outputs)} outputs; use .npz")
    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as f:
        if suffix == ".npy":
            np.save(f, next(iter(outputs.values())))
        else:
            np.savez(f, **outputs)
    partial.replace(target)
    return target


def onnx_input_specs(path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> list[dict[str, Any]]:
    """Names and shapes (``"?"`` for dynamic dims) of an ONNX model's real inputs.

    ``shapes`` (from ``--shape``) override the model's own.
    """
    graph = load_model(path).graph
    constants = {init.name for init in graph.initializer}
    specs = []
    for value in graph.input:
        if value.name in constants:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else "?" for d in value.type.tensor_type.shape.dim]
        specs.append({"name": value.name, "shape": list((shapes or {}).get(value.name, dims))})
    unknown = set(shapes or {}) - {spec["name"] for spec in specs}
    if unknown:
        raise BitletValueError(f"--shape names {sorted(unknown)} are not inputs of {path} "
                               f"(inputs: {[spec['name'] for spec in specs]})")
    return specs
