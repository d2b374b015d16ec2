"""Inputs and outputs of the command line: ``--input`` files (.npy, .npz,
images) or deterministic random inputs, ``--shape``, ``--output`` files.

Every input is made in the model's declared dtype and layout, and what was
done is returned as plain steps (:class:`Feeds`), which the CLI prints on
stderr and puts in its ``--json`` summary.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.compiler.frontend import declared_inputs
from bitlet.errors import BitletValueError

__all__ = ["IMAGE_SUFFIXES", "RANDOM_SEED", "Feeds", "input_summary", "load_inputs",
           "onnx_input_specs", "parse_floats", "parse_prune", "parse_shapes", "write_outputs"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
RANDOM_SEED = 0
# random integer inputs (token ids, byte values) are drawn from [0, _INT_HIGH)
_INT_HIGH = 256
@dataclass
class Feeds:
    """Inputs of one run and how they were made.

    Attributes
    ----------
    arrays : dict
        ``{input name: ndarray}`` in the model's declared dtypes.
    source : str
        ``"random"`` (no ``--input``), ``"npy"``, ``"npz"`` or ``"image"``.
    steps : list of str
        What was done to make them, one line each (printed on stderr by the
        CLI): the random inputs made, an image's conversions; empty for
        arrays read as they are.
    """

    arrays: dict[str, np.ndarray]
    source: str
    steps: list[str] = field(default_factory=list)


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
        if any(d <= 0 for d in shapes[name]):
            raise BitletValueError(f"--shape {item!r}: every dimension must be positive")
    return shapes


def parse_prune(text: str) -> int:
    """A ``--prune`` mask: an integer (``0xFFFF00``) of at most ``hw.SIG_BITS`` bits
    (argparse type: ``ArgumentTypeError`` naming the value)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer mask (e.g. 0xFFFF00)") from None
    if not 0 <= value <= hw.PRUNE_ALL:
        raise argparse.ArgumentTypeError(f"prune mask {text} is outside 0..0x{hw.PRUNE_ALL:X} "
                                         f"({hw.SIG_BITS} bit columns)")
    return value


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """``"0.5,0.5,0.5"`` -> ``(0.5, 0.5, 0.5)`` (for ``--mean``/``--std``)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise BitletValueError(f"{option} {text!r}: expected numbers separated by commas, "
                               "e.g. 0.485,0.456,0.406") from None
    if not values or not all(np.isfinite(values)):
        raise BitletValueError(f"{option} {text!r}: expected finite numbers")
    return values


def _dims_text(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _random(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    shape, dtype = tuple(spec["shape"]), np.dtype(spec.get("dtype", "float32"))
    if not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise BitletValueError(f"input {spec['name']!r} has dynamic shape {_dims_text(shape)}: give "
                               "--input FILE or --shape NAME=D0,D1,...")
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        high = min(_INT_HIGH, int(np.iinfo(dtype).max) + 1)
        return rng.integers(0, high, shape).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def _image_layout(spec: dict[str, Any]) -> tuple[str, int]:
    """``("NCHW" | "NHWC", channels)`` of a 4-d image input, from its declared shape."""
    shape = list(spec["shape"])
    if len(shape) != 4:
        raise BitletValueError(f"input {spec['name']!r} has shape {_dims_text(shape)}: an image "
                               "needs a 4-d NCHW or NHWC input")
    if shape[1] in (1, 3, 4):
        return "NCHW", shape[1]
    if shape[3] in (1, 3, 4):
        return "NHWC", shape[3]
    raise BitletValueError(f"input {spec['name']!r} has shape {_dims_text(shape)}: no channel "
                           "dimension of 1, 3 or 4 (give an .npy instead of an image)")


def _read_image(path: Path, spec: dict[str, Any], mean, std) -> tuple[np.ndarray, list[str]]:
    try:
        from PIL import Image  # optional: only image inputs need Pillow
    except ImportError:
        raise BitletValueError(f"--input {path}: reading images needs Pillow (pip install pillow); "
                               "or give a .npy/.npz file") from None
    layout, channels = _image_layout(spec)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    try:
        with Image.open(path) as img:
            steps = [f"read {path.name}: {img.width}x{img.height} {img.mode}"]
            if img.mode != mode:
                steps.append(f"convert {img.mode} -> {mode} (the model's input "
                             f"{spec['name']!r} has {channels} channel{'s' * (channels > 1)})")
            pixels = np.asarray(img.convert(mode), dtype=np.float32)
    except OSError as exc:
        raise BitletValueError(f"--input {path}: not a readable image ({exc})") from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels) / 255.0
    steps.append("scale to [0, 1] (divide by 255)")
    for values, option in ((mean, "--mean"), (std, "--std")):
        if values is not None and len(values) not in (1, channels):
            raise BitletValueError(f"{option} has {len(values)} values; the input has {channels} "
                                   "channels (give 1 or one per channel)")
    if mean is not None:
        pixels = pixels - np.asarray(mean, np.float32)
        steps.append(f"subtract mean {list(mean)}")
    if std is not None:
        if any(s == 0 for s in std):
            raise BitletValueError("--std must not contain 0")
        pixels = pixels / np.asarray(std, np.float32)
        steps.append(f"divide by std {list(std)}")
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
        steps.append("HWC -> NCHW")
    array = pixels[None].astype(np.dtype(spec.get("dtype", "float32")))
    steps.append(f"{spec['name']}: {array.dtype} {_dims_text(array.shape)}")
    return array, steps


def load_inputs(path: str | None, input_specs: list[dict[str, Any]], *, mean=None,
                std=None) -> Feeds:
    """Read ``--input``: .npy (the single input), .npz (named inputs) or an image.

    Parameters
    ----------
    path : str or None
        The file; None makes a deterministic random input of each input's
        declared shape and dtype (seed :data:`RANDOM_SEED`; floats uniform in
        [0, 1), integers in [0, 256)), so ``profile`` and ``compare`` run on
        any model.
    input_specs : list of dict
        ``{"name", "shape", "dtype"}`` per model input (:func:`onnx_input_specs`
        or a compiled program's ``meta["inputs"]``).
    mean, std : sequence of float, optional
        Per-channel normalisation of an image input, after scaling to [0, 1].

    Returns
    -------
    Feeds
    """
    names = [spec["name"] for spec in input_specs]
    if path is None:
        if mean is not None or std is not None:
            raise BitletValueError("--mean/--std apply to an image --input")
        rng = np.random.default_rng(RANDOM_SEED)
        arrays = {spec["name"]: _random(spec, rng) for spec in input_specs}
        steps = [f"no --input: random inputs (seed {RANDOM_SEED}): "
                 + ", ".join(f"{n} {a.dtype} {_dims_text(a.shape)}" for n, a in arrays.items())]
        return Feeds(arrays, "random", steps)
    file = Path(path)
    if not file.is_file():
        raise BitletValueError(f"--input {path}: no such file")
    suffix = file.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if len(names) != 1:
            raise BitletValueError(f"--input {path}: the model has inputs {names}; an image feeds a "
                                   "one-input model (give an .npz with one array per input name)")
        array, steps = _read_image(file, input_specs[0], mean, std)
        return Feeds({names[0]: array}, "image", steps)
    if mean is not None or std is not None:
        raise BitletValueError("--mean/--std apply to an image --input, not to a "
                               f"{suffix or 'suffix-less'} file")
    if suffix == ".npz":
        # one run's arrays; tools/dataset.py reads a data set's (many inputs, first axis)
        with np.load(file, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise BitletValueError(f"--input {path}: missing arrays {missing} (has {data.files}; "
                                       f"the model's inputs are {names})")
            arrays = {n: data[n] for n in names}
        return Feeds(arrays, "npz")
    if len(names) != 1:
        raise BitletValueError(f"--input {path}: the model has inputs {names}; give an .npz with one "
                               "array per input name")
    if suffix == ".npy":
        return Feeds({names[0]: np.load(file, allow_pickle=False)}, "npy")
    raise BitletValueError(f"--input {path}: unsupported file type {suffix!r} (use .npy, .npz or an "
                           f"image: {', '.join(IMAGE_SUFFIXES)})")


def input_summary(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per input: shape, dtype and the number of NaN/Inf values (reported, since
    the kernel computes them exactly as IEEE-754 says but they are rarely meant)."""
    out = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        nonfinite = int(array.size - np.count_nonzero(np.isfinite(array))) \
            if np.issubdtype(array.dtype, np.floating) else 0
        out[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "nonfinite": nonfinite}
    return out


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


def onnx_input_specs(model: Any, shapes: dict[str, tuple[int, ...]] | None = None, *,
                     name: str | None = None) -> list[dict[str, Any]]:
    """Names, shapes and dtypes of an ONNX model's real inputs
    (:func:`bitlet.compiler.frontend.declared_inputs`: a dynamic dimension is
    the model's own name for it, ``"H"``); ``shapes`` (from ``--shape``)
    override the model's own.  ``model``: a path or an already read
    ``onnx.ModelProto`` (``name`` then says what to call it in messages)."""
    specs = declared_inputs(model)
    unknown = set(shapes or {}) - {spec["name"] for spec in specs}
    if unknown:
        raise BitletValueError(f"--shape names {sorted(unknown)} are not inputs of "
                               f"{name or model} "
                               f"(inputs: {[spec['name'] for spec in specs]})")
    for spec in specs:
        if spec["name"] in (shapes or {}):
            spec["shape"] = list(shapes[spec["name"]])
    return specs
