"""Video enhancement end to end: ``bitlet enhance`` and :class:`Enhancer`.

>>> import bitlet                                                     # doctest: +SKIP
>>> with bitlet.enhance.Enhancer(device="sim") as enhancer:          # doctest: +SKIP
...     result = enhancer.enhance("clip.mp4", "clip_x3.mp4", compare=True)
>>> print(result)                     # frames, sizes, emulation and board frames/s  # doctest: +SKIP

An SR model (ONNX; default: the embedded ESPCN x3 demo model) runs on a
Bitlet device (the simulator by default) over every frame of a video file, a
folder or glob of images, or a camera:

* models with one input channel are luma (Y) models: each frame is converted
  to BT.601 full-range YCbCr, the model upscales Y, the chroma planes are
  upscaled bicubically, and the result is converted back to RGB; models with
  three input channels get RGB in [0, 1] directly;
* frames are cut into tiles of the compiled input size with a halo of the
  model's receptive field (read from the ONNX graph), so the stitched output
  is bit for bit that of the whole frame; by default a frame up to
  :data:`MAX_TILE` pixels a side is one tile;
* tiles run through :meth:`CompiledModel.stream`, which overlaps the host's
  decoding, colour conversion, tiling, stitching and encoding with the
  kernel, on two device buffers;
* the output is an H.264 video or a folder of PNGs; ``compare`` writes
  bicubic | Bitlet side by side, labelled; ``reference`` (the high-resolution
  video) adds PSNR and SSIM per frame (on luma, as SR papers report them).

Frames per second are reported twice and labelled: the emulation's on this
machine (measured), and a board's (*modelled*: the kernel's counted cycles
at its clock for N_PE PEs, with the host work of a frame as measured on this
machine overlapped, as the stream overlaps it).  :func:`predict` with
``agent="tcp://..."`` measures the program's host steps on that board
instead (the rest of the host work stays measured here, labelled so);
:func:`choose_setting` picks from the calibration trade-off curves; and
``enhance(..., power=True)`` reports joules per frame from the board's power
rails (:mod:`bitlet.drivers.power`).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.demo import load_frames
from bitlet.demo import model_path as demo_model_path
from bitlet.drivers import open_device
from bitlet.drivers.overlays import available_boards, find_overlay
from bitlet.drivers.power import power_meter
from bitlet.errors import BitletValueError
from bitlet.runtime import compile as bitlet_compile
from bitlet.runtime.remote import RemoteModel
from bitlet.tools.bench_board import _tiled
from bitlet.tools.calibrate import calibrate
from bitlet.tools.imaging import bicubic_resize, draw_label, rgb_to_ycbcr, ssim, ycbcr_planes_to_rgb
from bitlet.tools.imaging import psnr
from bitlet.tools.variants import kernel_engine
from bitlet.tools.video import FrameSource, open_sink, open_source

__all__ = ["MAX_TILE", "EnhanceResult", "Enhancer", "choose_setting", "predict",
           "receptive_radius", "tile_plan"]

#: default largest tile (input pixels a side): a larger frame is tiled
MAX_TILE = 512
# ops whose output pixel depends only on the same pixel of their inputs
_POINTWISE = {"Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
              "Elu", "Selu", "Softplus", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Max", "Min",
              "Identity", "Cast", "BatchNormalization", "Concat", "Neg", "Abs", "Exp", "Erf",
              "Gelu", "Mish", "Swish", "Round", "Floor", "Ceil"}


# ------------------------------------------------------------------------------ tiling
def receptive_radius(model: str | os.PathLike) -> tuple[int | None, str]:
    """Receptive-field radius of an ONNX image model, in input pixels.

    Walks the graph: convolutions and pools add their half extent (divided by
    the upscaling before them), ``DepthToSpace``, integer ``Resize`` and
    ``ConvTranspose`` upscale, pointwise ops add nothing.

    Returns
    -------
    (int or None, str)
        The radius, or None and the reason when an output pixel can depend
        on more than a fixed neighbourhood (a stride, a global pool, an op
        this walk does not know): such a model runs on whole frames only.
    """
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read
    from onnx import numpy_helper  # (part of onnx)

    graph = onnx.load(os.fspath(model), load_external_data=False).graph
    consts = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
    info = {i.name: (0.0, 1.0) for i in graph.input if i.name not in consts}  # (radius, scale)
    for node in graph.node:
        ins = [info[i] for i in node.input if i in info]
        if not ins:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        radius = max(r for r, _ in ins)
        scale = ins[0][1]
        if any(abs(s - scale) > 1e-9 for _, s in ins):
            return None, f"node {node.name or node.op_type} joins tensors of different scales"
        op = node.op_type
        if op in ("Conv", "MaxPool", "AveragePool"):
            kernel = attrs.get("kernel_shape")
            if kernel is None and len(node.input) > 1 and node.input[1] in consts:
                kernel = list(consts[node.input[1]].dims[2:])
            if kernel is None:
                return None, f"{op} {node.name}: kernel size unknown"
            if any(s != 1 for s in attrs.get("strides", [1] * len(kernel))):
                return None, f"{op} {node.name} has a stride (tiles would need aligning)"
            dil = attrs.get("dilations", [1] * len(kernel))
            pads = attrs.get("pads", [0] * 2 * len(kernel))
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                pads = [d * (k - 1) // 2 for d, k in zip(dil, kernel)] * 2
            half = max(max(pads[i], d * (k - 1) - pads[i]) for i, (d, k) in enumerate(zip(dil, kernel)))
            radius += half / scale
        elif op == "DepthToSpace":
            scale *= attrs["blocksize"]
        elif op == "ConvTranspose":
            kernel = attrs.get("kernel_shape") or list(consts[node.input[1]].dims[2:])
            stride = attrs.get("strides", [1] * len(kernel))
            if len(set(stride)) != 1:
                return None, f"ConvTranspose {node.name}: unequal strides"
            radius += max(kernel) / (scale * stride[0]) + 1.0 / scale
            scale *= stride[0]
        elif op in ("Resize", "Upsample"):
            scales = [node.input[i] for i in (2, 1) if len(node.input) > i and node.input[i]]
            arr = numpy_helper.to_array(consts[scales[0]]) if scales and scales[0] in consts else None
            if arr is None or arr.size < 4 or arr[2] != arr[3] or arr[2] < 1 or arr[2] % 1:
                return None, f"{op} {node.name}: not a constant integer upscaling"
            radius += 2.0 / scale  # the cubic's support; nearest and linear need less
            scale *= float(arr[2])
        elif op not in _POINTWISE:
            return None, f"op {op} ({node.name}) may see the whole frame"
        for out in node.output:
            info[out] = (radius, scale)
    outs = [info[o.name][0] for o in graph.output if o.name in info]
    if not outs:
        return None, "the outputs do not depend on the input image"
    return int(math.ceil(max(outs) - 1e-9)), ""


def _spans(size: int, tile: int, halo: int) -> list[tuple[int, int, int]]:
    """(window start, core start, core end) along one axis, windows of ``tile``."""
    if tile >= size:
        return [(0, 0, size)]
    step = tile - 2 * halo
    out, core = [], 0
    while core < size:
        end = min(core + step, size)
        start = min(max(core - halo, 0), size - tile)
        out.append((start, core, end))
        core = end
    return out


def tile_plan(height: int, width: int, tile: tuple[int, int], halo: int) -> list[tuple[int, ...]]:
    """Tiles covering a frame so that stitching their cores equals the whole frame.

    Parameters
    ----------
    height, width : int
        Frame size (input pixels).
    tile : (int, int)
        Compiled tile (rows, columns), each <= the frame's.
    halo : int
        At least the model's receptive-field radius.

    Returns
    -------
    list of (y0, x0, core_y0, core_y1, core_x0, core_x1)
        Window origin and the core it contributes (frame coordinates).
    """
    th, tw = tile
    for size, t in ((height, th), (width, tw)):
        if t < size and t - 2 * halo < 1:
            raise BitletValueError(f"tile {th}x{tw} is too small for a halo of {halo} pixels "
                                   f"(each side): use a tile larger than {2 * halo}")
    return [(y0, x0, cy0, cy1, cx0, cx1) for y0, cy0, cy1 in _spans(height, th, halo)
            for x0, cx0, cx1 in _spans(width, tw, halo)]


def _parse_tile(tile: Any) -> tuple[int, int] | None:
    if tile is None:
        return None
    if isinstance(tile, str):
        parts = tile.lower().replace("x", ",").split(",")
        try:
            tile = tuple(int(p) for p in parts)
        except ValueError:
            raise BitletValueError(f"--tile {tile!r}: expected N or HxW (input pixels)") from None
    if isinstance(tile, int):
        tile = (tile, tile)
    tile = tuple(int(t) for t in tile)
    if len(tile) == 1:
        tile = tile * 2
    if len(tile) != 2 or min(tile) < 1:
        raise BitletValueError(f"tile {tile}: expected N or HxW, positive")
    return tile


# ------------------------------------------------------------------------------ results
@dataclass
class EnhanceResult:
    """What :meth:`Enhancer.enhance` did (plain data: :meth:`as_dict`)."""

    frames: list[dict[str, Any]]
    summary: dict[str, Any]
    stream: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "frames": self.frames, "stream": self.stream}

    def __str__(self) -> str:
        s = self.summary
        lines = [f"{s['frames']} frames of {s['input']}: {s['input_size']} -> {s['output_size']} "
                 f"({s['mode']}, x{s['scale']}, {s['precision']}, tile {s['tile']} halo "
                 f"{s['halo']}, {s['tiles_per_frame']} tile(s) a frame)"]
        if s.get("output"):
            lines.append(f"wrote {s['output']}" + (" (bicubic | Bitlet side by side)"
                                                   if s["compare"] else ""))
        if s.get("note"):
            lines.append(f"note: {s['note']}")
        if "psnr_db" in s:
            lines.append(f"vs reference: PSNR {s['psnr_db']:.2f} dB (bicubic {s['psnr_bicubic_db']:.2f}"
                         f" dB, {s['psnr_db'] - s['psnr_bicubic_db']:+.2f}), SSIM {s['ssim']:.4f} "
                         f"(bicubic {s['ssim_bicubic']:.4f}), on luma, mean over frames")
        lines.append(f"emulation: {s['emulation_fps']:.2f} frames/s on this machine (measured; "
                     f"kernel {s['device']})")
        lines.append(f"board: {s['board_kernel_fps']:.2f} frames/s on the kernel alone "
                     f"({s['kernel_cycles_per_frame']:,} kernel cycles a frame, modelled, "
                     f"N_PE={s['n_pe']} at {s['clock_mhz']} MHz); {s['board_fps']:.2f} frames/s "
                     f"with the host work of a frame ({s['host_ms_per_frame']:.1f} ms, measured on "
                     f"this machine) overlapped")
        if "power" in s:
            lines.append(format_power(s["power"]))
        return "\n".join(lines)


def format_power(p: dict[str, Any], what: str = "frame") -> str:
    """One line: joules per frame and mean watts (measured), or why there are none."""
    if "joules_per_frame" not in p:
        return f"energy: not measured ({p['unavailable']})"
    return (f"energy: {p['joules_per_frame']:.4g} J a {what}, {p['watts']:.3f} W average over "
            f"{p['seconds']:.3f} s ({p['frames']} {what}s, {p['samples']} samples of "
            f"{len(p['rails'])} rails; {p['label']})")


class _Frame:
    """A frame being enhanced: its planes and the stitched model output."""

    def __init__(self, index: int, rgb: np.ndarray, planes: np.ndarray, n_tiles: int,
                 out_shape: tuple[int, ...]) -> None:
        self.index, self.rgb, self.planes = index, rgb, planes
        self.left = n_tiles
        self.out = np.empty(out_shape, np.float32)


# ------------------------------------------------------------------------------ Enhancer
class Enhancer:
    """Super-resolution of frames on a Bitlet device.

    Parameters
    ----------
    model : path, optional
        ONNX SR model with input [1, C, H, W] (C = 1: luma, C = 3: RGB) in
        [0, 1]; default: the embedded ESPCN x3 demo model.
    device : Device or str, optional
        A device or a ``bitlet.open`` spec (default: ``bitlet.open()``).
    precision, prune, bits
        Passed to :func:`bitlet.compile`.
    tile : int or (int, int) or str, optional
        Compiled tile (input pixels); default: the whole frame, up to
        :data:`MAX_TILE` a side.
    halo : int, optional
        Overlap each side of a tile (input pixels); default and minimum:
        the receptive-field radius (:func:`receptive_radius`).  Smaller
        halos are refused unless ``exact=False``.
    scale : int, optional
        Expected upscaling factor; a model with another is refused.
    calibration : dict or CalibrationResult, optional
        Per-layer prune masks and bit budgets (:func:`bitlet.compile`'s).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: Any = None,
                 precision: str = "fp32", prune: Any = None, bits: Any = None,
                 tile: Any = None, halo: int | None = None, scale: int | None = None,
                 exact: bool = True, calibration: Any = None) -> None:
        self.model_path = Path(model) if model is not None else demo_model_path()
        if not self.model_path.is_file():
            raise BitletValueError(f"model {model}: no such file")
        self.precision, self.prune, self.bits = precision, prune, bits
        self.calibration = calibration
        self.tile = _parse_tile(tile)
        self.scale_wanted = scale
        self._own_device = device is None or isinstance(device, str)
        self.device = open_device(device) if self._own_device else device
        self.radius, self.why_untileable = receptive_radius(self.model_path)
        if halo is not None and self.radius is not None and halo < self.radius and exact:
            raise BitletValueError(f"halo {halo} is smaller than the model's receptive-field radius "
                                   f"{self.radius}: tiles would not match the whole frame")
        self.halo = self.radius if halo is None else int(halo)
        self.channels = self._input_channels()
        self.compiled: Any = None
        self.slots = 2  # device buffers of the stream (1: no overlap, for comparisons)
        self._tile_shape: tuple[int, int] | None = None
        self.scale: int | None = None

    def _input_channels(self) -> int:
        import onnx  # onnx: heavy import, loaded only when a model is read

        graph = onnx.load(os.fspath(self.model_path), load_external_data=False).graph
        inits = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise BitletValueError(f"model {self.model_path}: {len(inputs)} inputs; an SR model "
                                   "has one image input [1, C, H, W]")
        dims = inputs[0].type.tensor_type.shape.dim
        self.input_name = inputs[0].name
        channels = dims[1].dim_value if len(dims) == 4 else 0
        if channels not in (1, 3):
            raise BitletValueError(f"model {self.model_path}: input {self.input_name} is not "
                                   "[1, 1, H, W] (luma) or [1, 3, H, W] (RGB)")
        return channels

    @property
    def mode(self) -> str:
        return "Y (BT.601 luma; bicubic chroma)" if self.channels == 1 else "RGB"

    def close(self) -> None:
        """Free the compiled model's device memory (and close a device this opened)."""
        if self.compiled is not None:
            self.compiled.close()
            self.compiled = None
        if self._own_device:
            self.device.close()

    def __enter__(self) -> Enhancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- compiling ---------------------------------------------------------------
    def prepare(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Compile for frames of ``height`` x ``width`` (input pixels); returns the tile plan."""
        if self.radius is None and self.tile is not None:
            raise BitletValueError(f"this model cannot be tiled exactly ({self.why_untileable}): "
                                   "leave out --tile")
        want = self.tile or (MAX_TILE, MAX_TILE)
        if self.radius is None:
            want = (height, width)
        shape = (min(want[0], height), min(want[1], width))
        if shape != self._tile_shape:
            if self.compiled is not None:
                self.compiled.close()
            self.compiled = bitlet_compile(str(self.model_path), device=self.device,
                                           precision=self.precision, prune=self.prune,
                                           bits=self.bits, calibration=self.calibration,
                                           input_shapes={self.input_name: (1, self.channels) + shape})
            out = self.compiled.meta["outputs"][0]["shape"]
            if len(out) != 4 or out[2] % shape[0] or out[3] % shape[1] \
                    or out[2] // shape[0] != out[3] // shape[1] or out[1] != self.channels:
                raise BitletValueError(f"model {self.model_path}: output {out} for input "
                                       f"{(1, self.channels) + shape} is not an integer upscaling "
                                       "of the same channels")
            self.scale = out[2] // shape[0]
            if self.scale_wanted is not None and self.scale != self.scale_wanted:
                raise BitletValueError(f"--scale {self.scale_wanted}: the model upscales "
                                       f"x{self.scale}")
            self._tile_shape = shape
        return tile_plan(height, width, shape, self.halo or 0)

    # -- the pipeline --------------------------------------------------------------
    def _planes(self, rgb: np.ndarray) -> np.ndarray:
        """[C, H, W] float32 model input planes in [0, 1] (C = 1: Y, C = 3: RGB)."""
        if self.channels == 1:
            return rgb_to_ycbcr(rgb)[:1] / np.float32(255.0)
        return rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)

    def super_resolve(self, planes: Iterable[np.ndarray], *, trace: Any = None,
                      on_stream: Callable[[Any], None] | None = None) -> Iterator[np.ndarray]:
        """Model output for each [C, H, W] float32 input (stitched from tiles), in order.

        The output [C, s*H, s*W] float32 is unclipped, bit for bit what the
        model gives for the whole frame.
        """
        pending: deque[_Frame] = deque()
        shape: list[tuple[int, int]] = []

        def tiles() -> Iterator[np.ndarray]:
            for n, p in enumerate(planes):
                h, w = p.shape[1:]
                if not shape:
                    shape.append((h, w))
                    self._plan = self.prepare(h, w)
                elif (h, w) != shape[0]:
                    raise BitletValueError(f"frame {n} is {w}x{h}, frame 0 was {shape[0][1]}x"
                                           f"{shape[0][0]}: the frames of one input need one size")
                s = self.scale
                fr = _Frame(n, None, p, len(self._plan), (p.shape[0], s * h, s * w))
                pending.append(fr)
                th, tw = self._tile_shape
                for y0, x0, *_ in self._plan:
                    yield np.ascontiguousarray(p[None, :, y0:y0 + th, x0:x0 + tw])

        source = tiles()
        first = next(source, None)  # compiles for the first frame's size
        if first is None:
            return
        if not hasattr(self.compiled, "stream"):
            raise BitletValueError(f"{type(self.compiled).__name__} has no streaming runtime (a "
                                   "board behind `bitlet agent`): run `bitlet enhance` on the "
                                   "board itself")
        stream = self.compiled.stream(_chain(first, source), slots=self.slots, trace=trace)
        if on_stream is not None:
            on_stream(stream)
        done = 0
        for out in stream:
            fr = pending[0]
            y0, x0, cy0, cy1, cx0, cx1 = self._plan[len(self._plan) - fr.left]
            s = self.scale
            fr.out[:, s * cy0:s * cy1, s * cx0:s * cx1] = \
                out[0, :, s * (cy0 - y0):s * (cy1 - y0), s * (cx0 - x0):s * (cx1 - x0)]
            fr.left -= 1
            if fr.left == 0:
                pending.popleft()
                done += 1
                yield fr.out

    def enhance_frames(self, frames: Iterable[np.ndarray], *, trace: Any = None,
                       on_stream: Callable[[Any], None] | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(enhanced, bicubic) uint8 RGB [s*H, s*W, 3] for each uint8 RGB [H, W, 3] frame."""
        held: deque[np.ndarray] = deque()

        def planes() -> Iterator[np.ndarray]:
            for rgb in frames:
                rgb = np.asarray(rgb)
                if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                    raise BitletValueError(f"frames must be uint8 RGB [H, W, 3], got {rgb.dtype} "
                                           f"{rgb.shape}")
                held.append(rgb)
                yield self._planes(rgb)

        for out in self.super_resolve(planes(), trace=trace, on_stream=on_stream):
            rgb = held.popleft()
            h, w = out.shape[1:]
            if self.channels == 1:
                ycc = bicubic_resize(rgb_to_ycbcr(rgb), h, w)
                bicubic = ycbcr_planes_to_rgb(ycc)
                ycc[0] = np.clip(out[0], 0.0, 1.0) * 255.0
                enhanced = ycbcr_planes_to_rgb(ycc)
            else:
                bicubic = np.clip(np.rint(bicubic_resize(rgb.transpose(2, 0, 1).astype(np.float32),
                                                         h, w)), 0, 255).astype(np.uint8)
                bicubic = bicubic.transpose(1, 2, 0)
                enhanced = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            yield np.ascontiguousarray(enhanced), np.ascontiguousarray(bicubic)

    def enhance(self, source: str, output: str | os.PathLike | None = None, *,
                compare: bool = False, reference: str | None = None,
                max_frames: int | None = None, trace: Any = None,
                progress: Callable[[int, int | None, dict[str, Any]], None] | None = None,
                power: bool = False) -> EnhanceResult:
        """Enhance every frame of ``source`` and write ``output``.

        Parameters
        ----------
        source : str or FrameSource
            Video file, folder or glob of images, or a camera index
            (:func:`bitlet.tools.video.open_source`).
        output : path, optional
            ``.mp4``/``.mkv``/... (H.264) or a folder (PNGs); None: nothing written.
        compare : bool
            Write bicubic | Bitlet side by side, labelled.
        reference : str, optional
            The high-resolution frames (same kinds as ``source``): PSNR and
            SSIM per frame, on luma.
        max_frames : int, optional
        trace : path, optional
            Chrome trace / Perfetto JSON timeline of the stream.
        progress : callable(done, total or None, figures), optional
            Called after every frame with the running figures.
        power : bool
            Measure the board's power over the run (:mod:`bitlet.drivers.power`):
            ``summary["power"]`` has ``joules_per_frame`` and ``watts``, or
            ``unavailable`` (why not: a device without power sensors).

        Returns
        -------
        EnhanceResult
        """
        src = source if isinstance(source, FrameSource) else open_source(str(source), max_frames)
        ref_iter = iter(open_source(str(reference), max_frames)) if reference else None
        sink = open_sink(output, src.fps) if output is not None else None
        frames, streams = [], []
        started = time.perf_counter()
        ok = False
        meter, no_power = power_meter(self.device) if power else (None, "")
        out_shape: list[tuple[int, int]] = []
        try:
            with meter.measure() if meter else contextlib.nullcontext() as reading:
                for n, (enhanced, bicubic) in enumerate(self.enhance_frames(
                        iter(src), trace=trace, on_stream=streams.append)):
                    if n == 0:
                        out_shape.append(enhanced.shape[:2])
                    record: dict[str, Any] = {"frame": n}
                    if ref_iter is not None:
                        record.update(_metrics(enhanced, bicubic, next(ref_iter, None), n))
                    if sink is not None:
                        if compare:
                            label = f"x{self.scale}"
                            sink.write(np.concatenate([draw_label(bicubic, "bicubic " + label),
                                                       draw_label(enhanced, "Bitlet " + label)],
                                                      axis=1))
                        else:
                            sink.write(enhanced)
                    frames.append(record)
                    if progress is not None:
                        progress(n + 1, src.count, self._figures(streams[0], n + 1, started))
            ok = True
        finally:
            if sink is not None:
                sink.close(ok)
        if not frames:
            raise BitletValueError(f"{src.describe}: no frames")
        h, w = out_shape[0]
        in_size, out_size = f"{w // self.scale}x{h // self.scale}", f"{w}x{h}"
        stream = streams[0]
        per_frame = len(self._plan)
        for n, record in enumerate(frames):
            tiles = stream.profile.frames[n * per_frame:(n + 1) * per_frame]
            record["kernel_cycles"] = int(sum(t["kernel_cycles"] for t in tiles))
        summary = {
            "input": src.describe, "frames": len(frames), "input_size": in_size,
            "output_size": out_size, "mode": self.mode, "scale": self.scale,
            "model": str(self.model_path), "precision": self.precision,
            "tile": f"{self._tile_shape[1]}x{self._tile_shape[0]}", "halo": self.halo,
            "tiles_per_frame": per_frame, "compare": bool(compare),
            "output": str(output) if output is not None else None,
            "note": sink.note if sink is not None else "",
            **self._figures(stream, len(frames), started),
        }
        if power:
            summary["power"] = (reading.per_frame(len(frames)) if meter is not None
                                else {"unavailable": no_power})
        if ref_iter is not None:
            for key in ("psnr_db", "psnr_bicubic_db", "ssim", "ssim_bicubic"):
                summary[key] = float(np.mean([f[key] for f in frames]))
        return EnhanceResult(frames, summary, stream.profile.as_dict())

    def _figures(self, stream: Any, done: int, started: float) -> dict[str, Any]:
        """Running frames/s: emulation (measured) and board (modelled)."""
        tiles = stream.profile.frames
        per_frame = len(self._plan)
        kernel = self.compiled.driver
        figures = {"emulation_fps": done / max(time.perf_counter() - started, 1e-9),
                   "device": stream.profile.cycles, "n_pe": int(kernel.n_pe),
                   "clock_mhz": int(self.compiled.meta["kernel"]["clock_mhz"])}
        if not tiles:
            return {**figures, "board_kernel_fps": 0.0, "board_fps": 0.0,
                    "kernel_cycles_per_frame": 0, "host_ms_per_frame": 0.0}
        cycles = sum(t["kernel_cycles"] for t in tiles) / len(tiles) * per_frame
        host_keys = ("input_ms", "upload_ms", "download_ms", "host_ms", "output_ms")
        steady = tiles[per_frame:] or tiles  # frame 0 warms up (its input is read before the stream)
        host_ms = sum(t[k] for t in steady for k in host_keys) / len(steady) * per_frame
        kernel_ms = cycles / (figures["clock_mhz"] * 1e3)
        return {**figures, "kernel_cycles_per_frame": int(round(cycles)),
                "board_kernel_fps": 1e3 / kernel_ms if kernel_ms else float("inf"),
                "host_ms_per_frame": host_ms,
                "board_fps": 1e3 / max(kernel_ms, host_ms) if max(kernel_ms, host_ms) else 0.0}


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _metrics(enhanced: np.ndarray, bicubic: np.ndarray, ref: np.ndarray | None,
             n: int) -> dict[str, float]:
    """PSNR (dB) and SSIM on BT.601 luma against the reference frame."""
    if ref is None:
        raise BitletValueError(f"--reference has fewer frames than the input (none for frame {n})")
    if ref.shape != enhanced.shape:
        raise BitletValueError(f"--reference frame {n} is {ref.shape[1]}x{ref.shape[0]}, the output "
                               f"{enhanced.shape[1]}x{enhanced.shape[0]}")
    y_ref = rgb_to_ycbcr(ref)[0]
    y_out, y_bic = rgb_to_ycbcr(enhanced)[0], rgb_to_ycbcr(bicubic)[0]
    return {"psnr_db": psnr(y_out, y_ref, peak=255.0), "psnr_bicubic_db": psnr(y_bic, y_ref, peak=255.0),
            "ssim": ssim(y_out, y_ref, 255.0), "ssim_bicubic": ssim(y_bic, y_ref, 255.0)}


# ------------------------------------------------------------------------------ prediction
def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise BitletValueError(f"--resolution {text!r}: expected WIDTHxHEIGHT, e.g. 640x360") from None
    return w, h


def board_device(board: str | None) -> tuple[Any, dict[str, Any]]:
    """A simulated device with ``board``'s kernel configuration (its overlay
    metadata: N_PE, clock), or the default simulator for None."""
    if board is None:
        dev = open_device("sim")
        return dev, {"board": "simulator (header configuration)", "n_pe": dev.kernel.n_pe,
                     "clock_mhz": dev.kernel.clock_mhz}
    if board not in available_boards():
        raise BitletValueError(f"--board {board!r}: not one of {', '.join(available_boards())}")
    meta = find_overlay(board, "bitlet", require_bitstream=False).metadata
    top, engine = kernel_engine("bitlet", int(meta["n_pe"]))
    dev = open_device("sim", engine=top)
    if dev.kernel.n_pe != int(meta["n_pe"]) or dev.kernel.clock_mhz != int(meta["clock_mhz"]):
        dev.close()
        raise BitletValueError(f"board {board}: the simulated kernel has N_PE={dev.kernel.n_pe} at "
                               f"{dev.kernel.clock_mhz} MHz, the overlay N_PE={meta['n_pe']} at "
                               f"{meta['clock_mhz']} MHz")
    return dev, {"board": board, "n_pe": int(meta["n_pe"]), "clock_mhz": int(meta["clock_mhz"]),
                 "engine": engine}


def predict(model: str | os.PathLike | None = None, *, board: str | None = None,
            resolution: str = "640x360", precision: str = "fp32", prune: Any = None,
            bits: Any = None, tile: Any = None, frames: int = 2,
            agent: str | None = None, calibration: Any = None) -> dict[str, Any]:
    """Predicted board frames/s for output frames of ``resolution``.

    The input frames are the bundled demo photographs tiled to the input
    size (the kernel's cycles depend on the data); they run through the
    whole pipeline on a simulator with ``board``'s kernel configuration.
    The host work is that of the frames after the first (a warm-up).

    Parameters
    ----------
    agent : str, optional
        A board behind ``bitlet agent`` (``"tcp://HOST:PORT"``, a serial
        spec): the program's host steps (packing and uploading the tiles,
        host ops, downloading) are then measured there, by running the same
        program on the same tiles through the agent
        (:attr:`RemoteModel.last_timings`); the frame pipeline's own work
        (colour conversion, tiling, stitching) is still measured here.

    Returns
    -------
    dict
        The :class:`EnhanceResult` summary plus ``board``, ``resolution``:
        ``board_kernel_fps`` is modelled (counted kernel cycles at the
        clock), ``host_ms_per_frame`` measured (``host_measured_on`` says
        where), ``board_fps`` the two overlapped.  With ``agent``:
        ``program_host_ms_per_frame`` (on the agent) and
        ``pipeline_host_ms_per_frame`` (here) make up ``host_ms_per_frame``.
    """
    if frames < 2 and agent is not None:
        raise BitletValueError("predict with an agent needs frames >= 2 (the first warms up)")
    width, height = _resolution(resolution)
    remote = open_device(agent) if agent is not None else None
    if remote is not None and getattr(remote, "kind", "") != "remote":
        remote.close()
        raise BitletValueError(f"--device {agent!r} is not a board behind `bitlet agent` "
                               "(tcp://HOST:PORT or serial://...): --predict measures the host "
                               "work there; on the board itself leave out --device")
    try:
        pred = _predict_here(model, board, width, height, precision, prune, bits, tile, frames,
                             remote, calibration)
    finally:
        if remote is not None:
            remote.close()
    return pred


def _predict_here(model: Any, board: str | None, width: int, height: int, precision: str,
                  prune: Any, bits: Any, tile: Any, frames: int, remote: Any,
                  calibration: Any = None) -> dict[str, Any]:
    dev, conf = board_device(board)
    agent_host: dict[str, Any] = {}
    try:
        with Enhancer(model, device=dev, precision=precision, prune=prune, bits=bits,
                      tile=tile, calibration=calibration) as enhancer:
            enhancer.prepare(16, 16)  # learns the scale
            s = enhancer.scale
            h, w = -(-height // s), -(-width // s)
            photos = load_frames()["hr"]
            rgb = [np.ascontiguousarray(_tiled(np.roll(photos, k, axis=0), h, w))
                   for k in range(frames)]
            source = FrameSource(f"the bundled photographs tiled to {w}x{h}", Fraction(25),
                                 frames, iter(rgb))
            result = enhancer.enhance(source)
            if remote is not None:
                agent_host = _agent_host_work(enhancer, remote, rgb)
    finally:
        dev.close()
    out = {**result.summary, **conf, "resolution": f"{width}x{height}",
           "host_measured_on": "this machine"}
    if agent_host:
        per_frame = out["tiles_per_frame"]
        steady = result.stream["frames"][per_frame:]  # frame 0 warms up, as in _figures
        pipeline = sum(t["input_ms"] + t["output_ms"] for t in steady) / len(steady) * per_frame
        host_ms = agent_host["program_host_ms_per_frame"] + pipeline
        kernel_ms = out["kernel_cycles_per_frame"] / (out["clock_mhz"] * 1e3)
        out.update(agent_host, pipeline_host_ms_per_frame=pipeline, host_ms_per_frame=host_ms,
                   host_measured_on=agent_host["agent"],
                   board_fps=1e3 / max(kernel_ms, host_ms) if max(kernel_ms, host_ms) else 0.0)
    return out


def _agent_host_work(enhancer: Enhancer, remote: Any, rgb: list[np.ndarray]) -> dict[str, Any]:
    """The program's host steps per frame, measured on the agent's machine.

    Runs the enhancer's compiled program (the same bytes) through the agent
    on the tiles of every frame; frame 0 warms up.  Per tile the agent
    reports its own timings: packing and uploading the inputs, host ops,
    downloading the outputs (seconds on its clock; the link is not in them).
    """
    model = RemoteModel(enhancer.compiled.program, remote)
    th, tw = enhancer._tile_shape
    name = enhancer.input_name
    totals, kernel = [], []
    try:
        for frame in rgb:
            planes = enhancer._planes(frame)
            seconds = kernel_s = 0.0
            for y0, x0, *_ in enhancer._plan:
                model.run({name: np.ascontiguousarray(planes[None, :, y0:y0 + th, x0:x0 + tw])})
                t = model.last_timings
                seconds += t["upload"] + t["download"] + sum(step[-1] for step in t["host"])
                kernel_s += t["kernel"]
            totals.append(seconds)
            kernel.append(kernel_s)
    finally:
        model.close()
    info = remote.describe()
    what = info.get("board") or info.get("remote_backend") or "?"
    agent = f"the agent at {info.get('link', remote.address)} (device: {what})"
    return {"program_host_ms_per_frame": 1e3 * sum(totals[1:]) / len(totals[1:]),
            "agent_kernel_wall_ms_per_frame": 1e3 * sum(kernel[1:]) / len(kernel[1:]),
            "agent": agent}


def format_prediction(p: dict[str, Any]) -> str:
    """One paragraph: what a board reaches, each figure labelled."""
    return (f"{p['board']} (N_PE={p['n_pe']}, {p['clock_mhz']} MHz), {p['precision']}, output "
            f"{p['output_size']} (input {p['input_size']}, tile {p['tile']}, "
            f"{p['tiles_per_frame']} tile(s)):\n"
            f"  kernel {p['kernel_cycles_per_frame']:,} cycles a frame (modelled) -> "
            f"{p['board_kernel_fps']:.2f} frames/s on the kernel alone (modelled)\n"
            + (f"  host work {p['host_ms_per_frame']:.1f} ms a frame (measured on this machine, "
               f"beside the emulator) -> {p['board_fps']:.2f} frames/s with it overlapped\n"
               if "program_host_ms_per_frame" not in p else
               f"  host work {p['host_ms_per_frame']:.1f} ms a frame = the program's host steps "
               f"(transfers, host ops) {p['program_host_ms_per_frame']:.1f} ms, measured on "
               f"{p['agent']}, + the frame pipeline (colour conversion, tiling, stitching) "
               f"{p['pipeline_host_ms_per_frame']:.1f} ms, measured on this machine -> "
               f"{p['board_fps']:.2f} frames/s with it overlapped\n")
            + f"  (the emulation itself ran at {p['emulation_fps']:.3f} frames/s here)")


#: what ``--target-fps`` calibrates: precisions, then per layer these bit budgets
#: (ones per weight significand) and kept bit columns (calibrate's candidates)
TARGET_PRECISIONS = ("fp32", "bf16")
TARGET_BITS = (5, 3, 2)
TARGET_COLUMNS = (16, 12)
#: calibrate's error budget (relative L2 against the unmodified model) for its greedy
#: search; the trade-off curve holds every measured plan, inside it or not
TARGET_BUDGET = 0.1


def choose_setting(target_fps: float, *, board: str | None = None, resolution: str = "640x360",
                   precisions: tuple[str, ...] = TARGET_PRECISIONS,
                   bits: tuple[int, ...] = TARGET_BITS, keep_columns: tuple[int, ...] = TARGET_COLUMNS,
                   frames: int | None = None) -> dict[str, Any]:
    """The setting on the calibration trade-off curve with the least PSNR loss
    whose modelled kernel frames/s reach ``target_fps``.

    For each precision, :func:`bitlet.tools.calibrate.calibrate` measures the
    demo model on the bundled low-resolution frames with per-layer bit
    budgets and column masks, and its trade-off curve (every measured plan no
    other beats on both PE cycles and output error) gives the candidate
    settings.  The loss of each is its PSNR on the same frames against their
    ground truth, relative to the fp32 baseline; the settings are then
    predicted (:func:`predict`: the kernel's modelled cycles at
    ``resolution`` on ``board``'s configuration) in order of loss until one
    reaches the target.

    Returns
    -------
    dict
        ``chosen`` (None when no setting reaches the target), ``tried``
        (every setting with its plan, loss and, where predicted, frames/s).
    """
    if not target_fps > 0:
        raise BitletValueError(f"--target-fps must be > 0, got {target_fps}")
    data = load_frames()
    count = len(data["names"]) if frames is None else int(frames)
    lr = [(data["lr_y"][i].astype(np.float32) / 255.0)[None, None] for i in range(count)]
    hr = [data["hr_y"][i].astype(np.float64) / 255.0 for i in range(count)]
    shapes = {"lr": lr[0].shape}
    dev, conf = board_device(board)
    tried = []
    try:
        for precision in precisions:
            curve = calibrate(str(demo_model_path()), lr, device=dev, budget=TARGET_BUDGET,
                              bits=bits, keep_columns=keep_columns, precision=precision,
                              input_shapes=shapes).tradeoff()
            for point in curve:
                model = bitlet_compile(str(demo_model_path()), device=dev, precision=precision,
                                       calibration=point["plan"], input_shapes=shapes)
                try:
                    quality = float(np.mean([psnr(np.clip(model(x)[0, 0], 0, 1), h)
                                             for x, h in zip(lr, hr)]))
                finally:
                    model.close()
                tried.append({"setting": f"{precision}, {point['change']}", "precision": precision,
                              "plan": point["plan"], "pe_cycles_calibration": point["pe_cycles"],
                              "error": point["error"], "psnr_db": quality})
    finally:
        dev.close()
    base = tried[0]["psnr_db"]
    for t in tried:
        t["loss_db"] = base - t["psnr_db"]
    chosen = None
    for t in sorted(tried, key=lambda t: t["loss_db"]):
        p = predict(board=board, resolution=resolution, precision=t["precision"],
                    calibration=t["plan"], frames=1)
        t["board_kernel_fps"] = p["board_kernel_fps"]
        t["kernel_cycles_per_frame"] = p["kernel_cycles_per_frame"]
        if p["board_kernel_fps"] >= target_fps:
            chosen = t
            break
    return {"target_fps": target_fps, "resolution": resolution, **conf, "chosen": chosen,
            "tried": tried, "frames": count,
            "basis": "settings: the calibration trade-off curve of each precision (per-layer bit "
                     "budgets and column masks, bitlet.tools.calibrate); loss: PSNR on the bundled "
                     "held-out frames against ground truth, relative to fp32 (measured on the "
                     "simulator, bit-exact); frames/s: kernel cycles at the clock (modelled), host "
                     "work not included"}


def format_choice(c: dict[str, Any]) -> str:
    head = (f"target {c['target_fps']:g} frames/s at {c['resolution']} on {c['board']} "
            f"(N_PE={c['n_pe']}, {c['clock_mhz']} MHz), from the calibration trade-off curves:")
    lines = [head]
    for t in c["tried"]:
        fps = (f"{t['board_kernel_fps']:.2f} frames/s (modelled)" if "board_kernel_fps" in t
               else "not predicted")
        lines.append(f"  {t['setting'][:60]:<60} PSNR {t['psnr_db']:.2f} dB, loss "
                     f"{t['loss_db']:+.3f} dB, {fps}")
    if c["chosen"] is None:
        fastest = max((t for t in c["tried"] if "board_kernel_fps" in t),
                      key=lambda t: t["board_kernel_fps"])
        lines.append(f"no setting reaches {c['target_fps']:g} frames/s: the fastest is "
                     f"{fastest['setting']} at {fastest['board_kernel_fps']:.2f} (modelled)")
    else:
        t = c["chosen"]
        plan = ", ".join(f"{layer} " + " ".join(f"{k}={v:#x}" if k == "prune" else f"{k}={v}"
                                                for k, v in opts.items())
                         for layer, opts in t["plan"].items()) or "no changes"
        lines.append(f"chosen: {t['setting']} ({plan}) -> {t['board_kernel_fps']:.2f} frames/s "
                     f"(modelled, kernel only) at a loss of {t['loss_db']:.3f} dB (measured on the "
                     f"{c['frames']} bundled frames)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line
def add_parser(sub: Any, common: Any, prune_type: Callable[[str], int],
               emit: Callable[[Any, Any, Any], None]) -> Any:
    """Register ``bitlet enhance`` on the CLI's sub-parsers.

    ``common``: the parent parser of --device and --json; ``prune_type``: the
    CLI's mask parser; ``emit(args, data, text)``: the CLI's output (text or JSON).
    """
    p = sub.add_parser("enhance", parents=[common],
                       help="super-resolve a video, image folder or camera on the device",
                       description="Super-resolve every frame of INPUT with an SR model (default: "
                                   "the embedded ESPCN x3) on a Bitlet device and write OUTPUT.")
    p.add_argument("input", metavar="INPUT", nargs="?",
                   help="video file (mp4, mkv, avi, ...), folder or quoted glob of images, or a "
                        "camera index (0)")
    p.add_argument("-o", "--output", default=None,
                   help="video (.mp4/.mkv/...: H.264) or folder (PNG frames); default: none")
    p.add_argument("--model", default=None, help="ONNX SR model (default: the embedded demo model)")
    p.add_argument("--scale", type=int, default=None, help="expected upscaling (checked)")
    p.add_argument("--tile", default=None, metavar="N|HxW",
                   help=f"compiled tile in input pixels (default: the frame, up to {MAX_TILE})")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or fixed<n>")
    p.add_argument("--prune", type=prune_type, default=None, help="24-bit column prune mask")
    p.add_argument("--bits", type=int, default=None, help="at most this many ones per weight")
    p.add_argument("--compare", action="store_true",
                   help="write bicubic | Bitlet side by side, labelled")
    p.add_argument("--reference", default=None, metavar="HR",
                   help="high-resolution frames (video, folder, glob): PSNR/SSIM per frame")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="write the stream's timeline (Chrome trace / Perfetto JSON)")
    p.add_argument("--power", action="store_true",
                   help="measure the board's power over the run (pynq's power rails, e.g. ZCU104): "
                        "joules per frame and average watts; a device without sensors says so")
    p.add_argument("--predict", action="store_true",
                   help="no INPUT: predict the board's frames/s at --resolution (the bundled "
                        "photographs tiled to that size, run on the simulator; the host work is "
                        "measured on this machine, or with --device tcp://HOST:PORT the program's "
                        "host steps are measured on that `bitlet agent`'s board)")
    p.add_argument("--board", default=None,
                   help="with --predict: the kernel configuration of this board's overlay "
                        "(pynqz2, kv260, zcu104; default: the simulator's)")
    p.add_argument("--resolution", default="640x360", metavar="WxH",
                   help="with --predict: output frame size (default 640x360)")
    p.add_argument("--target-fps", type=float, default=None, metavar="F",
                   help="with --predict: calibrate the demo model in fp32 and bf16 (per-layer bit "
                        "budgets 5/3/2 and kept columns 16/12 on its 4 bundled frames) and choose, "
                        "from the calibration trade-off curves, the setting with the least PSNR "
                        "loss whose modelled kernel frames/s reach F (host work not included)")
    p.set_defaults(func=cmd_enhance, emit=emit)
    return p


def cmd_enhance(args: Any) -> int:
    """``bitlet enhance``: returns the exit status (errors raise BitletError)."""
    if args.predict:
        if args.input or args.output or args.reference or args.compare or args.power:
            raise BitletValueError("--predict runs the bundled photographs: give no INPUT, -o, "
                                   "--reference, --compare or --power")
        agent = None if args.device in (None, "sim") else args.device
        if args.target_fps is not None:
            if args.model is not None:
                raise BitletValueError("--target-fps measures the loss on the demo model's bundled "
                                       "frames: leave out --model")
            if agent is not None:
                raise BitletValueError("--target-fps compares the kernel's modelled frames/s (no "
                                       "host work): --device does not apply")
            choice = choose_setting(args.target_fps, board=args.board, resolution=args.resolution)
            args.emit(args, choice, lambda: format_choice(choice))
            return 0
        pred = predict(args.model, board=args.board, resolution=args.resolution,
                       precision=args.precision, prune=args.prune, bits=args.bits, tile=args.tile,
                       agent=agent)
        args.emit(args, pred, lambda: format_prediction(pred))
        return 0
    if args.input is None:
        raise BitletValueError("give INPUT (a video, a folder or glob of images, a camera index) "
                               "or --predict")
    if args.board is not None or args.target_fps is not None:
        raise BitletValueError("--board and --target-fps go with --predict (to run on a board, "
                               "use --device)")

    def progress(done: int, total: int | None, fig: dict[str, Any]) -> None:
        if args.json:
            return
        of = f"/{total}" if total else ""
        board = (f", board {fig['board_kernel_fps']:.2f} frames/s (kernel, modelled, N_PE="
                 f"{fig['n_pe']}, {fig['clock_mhz']} MHz)" if fig["board_kernel_fps"] else "")
        sys.stderr.write(f"\renhance: frame {done}{of}  emulation {fig['emulation_fps']:.2f} "
                         f"frames/s{board}   ")
        sys.stderr.flush()

    with Enhancer(args.model, device=args.device, precision=args.precision, prune=args.prune,
                  bits=args.bits, tile=args.tile, scale=args.scale) as enhancer:
        result = enhancer.enhance(args.input, args.output, compare=args.compare,
                                  reference=args.reference, max_frames=args.max_frames,
                                  trace=args.trace, progress=progress, power=args.power)
    if not args.json:
        sys.stderr.write("\n")
    args.emit(args, result.as_dict(), lambda: str(result))
    return 0
