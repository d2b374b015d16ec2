"""Data sets for ``bitlet eval`` / ``bitlet sweep``: many inputs, each with a name.

``DATA`` is one of

* a folder or a glob of images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``; sorted by
  path; each image is one input, RGB float32 NCHW ``[1, 3, H, W]`` in [0, 1], as
  ``bitlet run --input image.png``; needs Pillow);
* an ``.npy`` file (one-input models): the first axis enumerates the inputs;
* an ``.npz`` file: one array per model input (named as the input), the first
  axis enumerating the inputs; optionally ``labels`` (int, one per input) and
  ``names`` (str, one per input).

An input whose array has the model's rank is taken as ``data[i:i+1]`` (batch
1), one with one axis fewer as ``data[i]``.

Labels (``--labels``): a CSV of ``name,label`` rows (a header row is allowed)
or an ``.npy``/``.npz`` (array ``labels``) with one integer per input.
Reference outputs (``--reference``): an ``.npy`` (one-output models) or an
``.npz`` with one array per output name, first axis = inputs; used instead of
onnxruntime for the output metrics.
"""
from __future__ import annotations

import csv
import glob as globlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.errors import BitletValueError
from bitlet.tools.inputs import IMAGE_SUFFIXES

__all__ = ["Dataset", "open_dataset"]


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image  # optional: only image data sets need Pillow
    except ImportError:
        raise BitletValueError(f"--data {path}: reading images needs Pillow (pip install pillow); "
                               "or give an .npy/.npz file") from None
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


@dataclass
class Dataset:
    """Named inputs, optional labels and reference outputs.

    Attributes
    ----------
    names : list of str
        One name per input (file names for images, ``stem[i]`` for arrays).
    labels : ndarray [n] int64 or None
    references : dict {output name: ndarray [n, ...]} or None
    source : str
        What ``DATA`` was (for the report).
    """

    names: list[str]
    input_names: list[str]
    source: str
    labels: np.ndarray | None = None
    references: dict[str, np.ndarray] | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _files: list[Path] = field(default_factory=list, repr=False)
    _ranks: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def feeds(self, i: int) -> dict[str, np.ndarray]:
        """``{input name: array}`` of input ``i`` (float32 unless the data say otherwise)."""
        if self._files:
            return {self.input_names[0]: _read_image(self._files[i])}
        out = {}
        for name, arr in self._arrays.items():
            rank = self._ranks.get(name)
            x = arr[i:i + 1] if rank is None or rank == arr.ndim else arr[i]
            out[name] = np.ascontiguousarray(x)
        return out

    def label(self, i: int) -> int | None:
        return None if self.labels is None else int(self.labels[i])

    def reference(self, i: int) -> dict[str, np.ndarray] | None:
        if self.references is None:
            return None
        return {k: np.ascontiguousarray(v[i:i + 1]) for k, v in self.references.items()}


def digest_items(names: Sequence[str], feeds: Sequence[dict[str, np.ndarray]],
                 labels: Sequence[Any], references: Sequence[Any]) -> str:
    """SHA-256 (hex, 16 digits) of a shard's input names, arrays, labels and references."""
    h = hashlib.sha256()
    for name, feed, label, ref in zip(names, feeds, labels, references):
        h.update(name.encode() + b"\0" + repr(label).encode())
        for group in (feed, ref or {}):
            for key in sorted(group):
                arr = np.ascontiguousarray(group[key])
                h.update(f"{key}{arr.dtype}{arr.shape}".encode())
                h.update(arr.tobytes())
    return h.hexdigest()[:16]


def open_dataset(data: str, input_specs: list[dict[str, Any]], *, labels: str | None = None,
                 reference: str | None = None, output_names: Sequence[str] = (),
                 limit: int | None = None) -> Dataset:
    """Open ``DATA`` for a model with inputs ``input_specs`` (``[{"name", "shape"}]``).

    Parameters
    ----------
    data : str
        Folder or glob of images, ``.npy`` or ``.npz`` (module docstring).
    input_specs : list of dict
        The model's inputs: ``name`` and ``shape`` (its rank decides batch slicing).
    labels, reference : str, optional
        Labels file (CSV, .npy, .npz) and reference-outputs file (.npy, .npz).
    output_names : sequence of str
        The model's outputs (for ``reference``).
    limit : int, optional
        Only the first ``limit`` inputs.

    Raises
    ------
    BitletValueError
        Missing files, arrays of the wrong names or lengths, no inputs.
    """
    names_in = [s["name"] for s in input_specs]
    ranks = {s["name"]: len(s["shape"]) for s in input_specs}
    path = Path(data)
    ds: Dataset
    if path.is_dir() or any(c in data for c in "*?["):
        files = sorted(p for p in path.iterdir()) if path.is_dir() else \
            sorted(Path(p) for p in globlib.glob(data))
        files = [p for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise BitletValueError(f"--data {data}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
        if len(names_in) != 1:
            raise BitletValueError(f"--data {data}: images feed one-input models; this model has "
                                   f"inputs {names_in} (give an .npz)")
        root = path if path.is_dir() else None
        names = [str(p.relative_to(root)) if root else str(p) for p in files]
        ds = Dataset(names, names_in, data, _files=files)
    elif not path.exists():
        raise BitletValueError(f"--data {data}: no such file or folder")
    elif path.suffix.lower() == ".npy":
        if len(names_in) != 1:
            raise BitletValueError(f"--data {data}: an .npy feeds one-input models; this model has "
                                   f"inputs {names_in} (give an .npz with one array per input)")
        arr = np.load(path, allow_pickle=False)
        ds = Dataset([f"{path.stem}[{i}]" for i in range(len(arr))], names_in, data,
                     _arrays={names_in[0]: arr}, _ranks=ranks)
    elif path.suffix.lower() == ".npz":
        # like tools/inputs.load_inputs' .npz branch, but a data set holds many inputs along
        # the first axis (checked for equal lengths), not one run's arrays
        with np.load(path, allow_pickle=False) as z:
            missing = [n for n in names_in if n not in z.files]
            if missing:
                raise BitletValueError(f"--data {data}: missing arrays {missing} for the model's "
                                       f"inputs (has {z.files})")
            arrays = {n: z[n] for n in names_in}
            lengths = {len(a) for a in arrays.values()}
            if len(lengths) != 1:
                raise BitletValueError(f"--data {data}: the input arrays have different lengths "
                                       f"{ {n: len(a) for n, a in arrays.items()} }")
            n = lengths.pop()
            names = [str(s) for s in z["names"]] if "names" in z.files else \
                [f"{path.stem}[{i}]" for i in range(n)]
            in_labels = z["labels"] if "labels" in z.files else None
        ds = Dataset(names, names_in, data, _arrays=arrays, _ranks=ranks)
        if in_labels is not None:
            ds.labels = _check_labels(in_labels, len(ds), f"--data {data}: labels")
    else:
        raise BitletValueError(f"--data {data}: use a folder or glob of images, an .npy or an .npz")
    if len(set(ds.names)) != len(ds.names):
        raise BitletValueError(f"--data {data}: input names are not unique")
    if labels is not None:
        ds.labels = _read_labels(labels, ds.names)
    if reference is not None:
        ds.references = _read_reference(reference, output_names, len(ds))
    if limit is not None:
        _truncate(ds, int(limit))
    if not len(ds):
        raise BitletValueError(f"--data {data}: no inputs")
    return ds


def _truncate(ds: Dataset, n: int) -> None:
    ds.names = ds.names[:n]
    ds._files = ds._files[:n]
    ds._arrays = {k: v[:n] for k, v in ds._arrays.items()}
    if ds.labels is not None:
        ds.labels = ds.labels[:n]
    if ds.references is not None:
        ds.references = {k: v[:n] for k, v in ds.references.items()}


def _check_labels(arr: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise BitletValueError(f"{what}: need one integer class per input, got {arr.dtype} "
                               f"shape {arr.shape}")
    if len(arr) != n:
        raise BitletValueError(f"{what}: {len(arr)} labels for {n} inputs")
    return arr.astype(np.int64)


def _read_labels(path: str, names: list[str]) -> np.ndarray:
    file = Path(path)
    if not file.exists():
        raise BitletValueError(f"--labels {path}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        return _check_labels(np.load(file, allow_pickle=False), len(names), f"--labels {path}")
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as z:
            if "labels" not in z.files:
                raise BitletValueError(f"--labels {path}: no array 'labels' (has {z.files})")
            return _check_labels(z["labels"], len(names), f"--labels {path}")
    if suffix != ".csv":
        raise BitletValueError(f"--labels {path}: use a .csv (name,label), .npy or .npz")
    table: dict[str, int] = {}
    with open(file, newline="", encoding="utf-8") as f:
        for row_no, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            try:
                table[row[0].strip()] = int(row[1])
            except (IndexError, ValueError):
                if row_no == 1:
                    continue  # a header row
                raise BitletValueError(f"--labels {path}:{row_no}: expected 'name,label' with an "
                                       f"integer label, got {row!r}") from None
    missing = [n for n in names if n not in table]
    if missing:
        raise BitletValueError(f"--labels {path}: no label for {len(missing)} inputs, e.g. "
                               f"{missing[:3]}")
    return np.array([table[n] for n in names], np.int64)


def _read_reference(path: str, output_names: Sequence[str], n: int) -> dict[str, np.ndarray]:
    file = Path(path)
    if not file.exists():
        raise BitletValueError(f"--reference {path}: no such file")
    if file.suffix.lower() == ".npy":
        if len(output_names) != 1:
            raise BitletValueError(f"--reference {path}: the model has outputs {list(output_names)}; "
                                   "give an .npz with one array per output")
        refs = {output_names[0]: np.load(file, allow_pickle=False)}
    elif file.suffix.lower() == ".npz":
        with np.load(file, allow_pickle=False) as z:
            missing = [o for o in output_names if o not in z.files]
            if missing:
                raise BitletValueError(f"--reference {path}: missing arrays {missing} (has {z.files})")
            refs = {o: z[o] for o in output_names}
    else:
        raise BitletValueError(f"--reference {path}: use an .npy or .npz")
    for name, arr in refs.items():
        if len(arr) != n:
            raise BitletValueError(f"--reference {path}: {name!r} has {len(arr)} entries for "
                                   f"{n} inputs")
    return refs
