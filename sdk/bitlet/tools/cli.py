"""The ``bitlet`` command line (also ``python -m bitlet``).

Sub-commands::

    bitlet info                      device, overlay, ID/config registers, versions
    bitlet run MODEL --input FILE    run a model, write its outputs
    bitlet profile MODEL             per-layer cycles, predicted time, DDR traffic
    bitlet compare MODEL             accuracy against onnxruntime fp32, per layer
    bitlet bench                     Bitlet against the vendor-FP baseline kernel
    bitlet demo                      x3 super-resolution of bundled frames
    bitlet enhance INPUT -o OUTPUT   super-resolve a video, image folder or camera
    bitlet agent --listen URL        serve this board to a remote laptop
    bitlet eval MODEL --data DATA    accuracy and cycles over a data set (optionally on Ray)
    bitlet sweep MODEL... --data D   accuracy vs cycles over a design grid (Pareto table)

Every command takes ``--device SPEC`` (see ``bitlet.open``) and ``--json``
(machine-readable output on stdout).  Errors print one clear line on stderr
and exit with status 1 (2 for usage errors).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bitlet._version import __version__
from bitlet.compiler.frontend import load_model
from bitlet.demo import run_demo
from bitlet.drivers import open_device
from bitlet.drivers.overlays import detect_board, find_overlay
from bitlet.drivers.power import power_meter
from bitlet.errors import BitletError, BitletValueError
from bitlet.jsonable import jsonable
from bitlet.runtime import compile as bitlet_compile
from bitlet.runtime.agent import main as agent_main
from bitlet.runtime.compile import load
from bitlet.tools.accuracy import compare
from bitlet.tools.bench import bench_kernels
from bitlet.tools.bench_board import bench_board
from bitlet.tools.enhance import add_parser as add_enhance_parser
from bitlet.tools.enhance import format_power
from bitlet.tools.eval_cli import add_eval_commands
from bitlet.tools.inputs import (
    Feeds,
    input_summary,
    load_inputs,
    onnx_input_specs,
    parse_floats,
    parse_prune,
    parse_shapes,
    write_outputs,
)
from bitlet.tools.progress import Progress

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
INPUTS_HELP = """\
inputs:
  --input FILE.npy  the model's one input, as is
  --input FILE.npz  one array per input name
  --input IMAGE     png/jpg/bmp/tif/webp, for a one-input 4-d (NCHW or NHWC) model:
                    converted to the input's channel count (1 channel: grayscale,
                    3: RGB, 4: RGBA), scaled to [0, 1] (divided by 255), then
                    optionally normalised per channel (--mean, then --std), and
                    HWC -> NCHW for an NCHW input; every step is printed on stderr
  no --input        random inputs of the model's declared shapes and dtypes
                    (seed 0; floats uniform in [0, 1), integers in [0, 256)),
                    said on stderr; a dynamic dimension needs --shape NAME=D0,D1,...
  Inputs with NaN or Inf values are reported in the summary.
"""


# --------------------------------------------------------------------------- helpers
def _emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    if args.json:
        json.dump(jsonable(data), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text() if callable(text) else text)


def _open(spec: str | None):
    return open_device(spec)


def prepare(args: argparse.Namespace, device: Any) -> tuple[Any, Feeds]:
    """Compile ``args.model`` (ONNX) or load a saved program; read its inputs.

    For an ONNX model the inputs are read first (their shapes: the file's, or
    ``--shape`` for random ones); a model with dynamic dimensions compiles for
    them on its first run, as ``bitlet.compile`` does in Python.  What was done to
    the inputs is printed on stderr (``--quiet`` turns it off), with a
    progress bar on a terminal.
    """
    model = Path(args.model)
    if not model.exists():
        raise BitletValueError(f"model {args.model}: no such file")
    if model.is_dir():
        raise BitletValueError(f"model {args.model}: is a directory, not a model file")
    if args.shape and args.input:
        raise BitletValueError("--shape gives the shapes of random inputs; with --input the "
                               "file's shapes are used: give one or the other")
    norm = {"mean": parse_floats(args.mean, "--mean"), "std": parse_floats(args.std, "--std")}
    progress = Progress(args.command, enabled=_show_progress(args))
    if model.suffix.lower() != ".onnx":
        if not zipfile.is_zipfile(model):  # a saved program is one .npz (a zip archive)
            raise BitletValueError(f"model {args.model}: not a saved Bitlet program (.npz), and "
                                   "not named .onnx")
        progress(0, 2, "load program")
        compiled = load(model, device=device)
        feeds = load_inputs(args.input, [dict(s) for s in compiled.meta["inputs"]], **norm)
    else:
        proto = load_model(str(model))  # read once: the input specs and the compiler share it
        feeds = load_inputs(args.input, onnx_input_specs(proto, parse_shapes(args.shape),
                                                         name=str(model)),
                            **norm)
        progress(0, 2, "compile")
        # the Python API's path: a model with dynamic dimensions compiles for
        # the shapes it is run with (a DynamicModel), a static one right away
        compiled = bitlet_compile(proto, device=device, precision=args.precision,
                                  prune=args.prune)
    progress(1, 2, args.command)
    args.progress = progress
    if not args.quiet:
        for step in feeds.steps:
            print(f"bitlet {args.command}: {step}", file=sys.stderr)
        for name, info in input_summary(feeds.arrays).items():
            if info["nonfinite"]:
                print(f"bitlet {args.command}: warning: input {name!r} has {info['nonfinite']} "
                      "NaN/Inf values", file=sys.stderr)
    return compiled, feeds


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal only, never with --json or --quiet."""
    return not (args.json or args.quiet) and sys.stderr.isatty()


def _inputs_text(feeds: Feeds) -> list[str]:
    lines = []
    for name, info in input_summary(feeds.arrays).items():
        bad = f", {info['nonfinite']} NaN/Inf" if info["nonfinite"] else ""
        lines.append(f"input {name}: {info['dtype']} {info['shape']} ({feeds.source}{bad})")
    return lines


# --------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    dev = _open(args.device)
    try:
        kernel = dev.kernel
        info = {
            "bitlet": __version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "numpy": np.__version__,
            "device": dev.describe(),
            "kernel": kernel.describe(),
            "registers": {name: f"0x{value:08x}" for name, value in kernel.register_dump().items()},
        }
    finally:
        dev.close()
    info["overlay"] = _overlay_info()
    info["optional"] = {name: _version_of(name) for name in ("onnx", "onnxruntime", "serial", "pynq")}

    def text() -> str:
        lines = [(f"bitlet {info['bitlet']} on Python {info['python']} ({info['machine']}), "
                 f"numpy {info['numpy']}")]
        lines += [f"  {k}: {v}" for k, v in info["optional"].items()]
        lines.append("device:")
        lines += [f"  {k}: {v}" for k, v in info["device"].items()]
        lines.append("kernel (ID/config registers):")
        lines += [f"  {k}: {v}" for k, v in info["kernel"].items()]
        lines.append("registers:")
        lines += [f"  {k:<18} {v}" for k, v in info["registers"].items()]
        lines.append(f"overlay: {info['overlay']}")
        return "\n".join(lines)

    _emit(args, info, text)
    return EXIT_OK


def _version_of(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:  # pynq may refuse to import off-board; report that rather than fail
        mod = __import__(module)
    except Exception as exc:  # noqa: BLE001 - third-party import errors vary
        return f"installed, import failed: {type(exc).__name__}"
    return getattr(mod, "__version__", getattr(mod, "VERSION", "installed"))


def _overlay_info() -> Any:
    board = detect_board()
    if board is None:
        return "no PYNQ board detected (simulated overlay)"
    try:
        found = find_overlay(board)
    except BitletError as exc:
        return f"board {board}: {exc}"
    return {"board": board, "bit": str(found.bit), "hwh": str(found.hwh), "metadata": found.metadata}


def cmd_run(args: argparse.Namespace) -> int:
    dev = _open(args.device)
    try:
        compiled, feeds = prepare(args, dev)
        start = time.perf_counter()
        outputs = compiled.run(feeds.arrays)
        wall = time.perf_counter() - start
        args.progress(2, 2, "done")
    finally:
        dev.close()
    written = write_outputs(args.output, outputs) if args.output else None
    summary = {"model": args.model,
               "inputs": {"source": feeds.source, "arrays": input_summary(feeds.arrays)},
               "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                           for k, v in outputs.items()},
               "wall_s": wall, "written": str(written) if written else None}
    _emit(args, summary, lambda: "\n".join(
        _inputs_text(feeds)
        + [f"{k}: shape {v['shape']} {v['dtype']}" for k, v in summary["outputs"].items()]
        + [f"ran in {wall:.3f} s (wall, this host)"]
        + ([f"wrote {written}"] if written else ["(no --output given: outputs not written)"])))
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    dev = _open(args.device)
    try:
        compiled, feeds = prepare(args, dev)
        meter, no_power = power_meter(dev) if args.power else (None, "")
        with meter.measure() if meter else contextlib.nullcontext() as reading:
            profile = compiled.profile(feeds.arrays, trace=args.trace) if args.trace \
                else compiled.profile(feeds.arrays)
        args.progress(2, 2, "done")
    finally:
        dev.close()
    extra, lines = {}, []
    if args.power:  # one inference is one frame
        extra["power"] = reading.per_frame(1) if meter is not None else {"unavailable": no_power}
        lines = [format_power(extra["power"], "inference")]
    return _emit_result(args, profile, feeds, extra, lines)


def _emit_result(args: argparse.Namespace, result: Any, feeds: Feeds, extra: dict | None = None,
                 lines: list[str] | None = None) -> int:
    """Print a profile or comparison (``as_dict()`` for --json) after its inputs,
    with ``extra`` entries (text: ``lines``) after it."""
    data = {**result.as_dict(), "inputs": {"source": feeds.source,
                                           "arrays": input_summary(feeds.arrays)}, **(extra or {})}
    _emit(args, data, lambda: "\n".join(_inputs_text(feeds) + [str(result)] + (lines or [])))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    dev = _open(args.device)
    try:
        compiled, feeds = prepare(args, dev)
        report = compare(compiled, feeds.arrays)
        args.progress(2, 2, "done")
    finally:
        dev.close()
    return _emit_result(args, report, feeds)


def cmd_bench(args: argparse.Namespace) -> int:
    progress = Progress("bench", enabled=not (args.json or args.quiet))
    if args.board is None and args.models:
        raise BitletValueError("--models needs --board (without it bench runs --model or the demo)")
    if args.board is not None:

        if args.model and args.models:
            raise BitletValueError("give --model or --models, not both")
        if args.device not in (None, "sim") or args.input or args.prune is not None:
            raise BitletValueError("--board sizes the kernels and runs them on the simulator: "
                                   "--device, --input and --prune do not apply")
        models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
        result = bench_board(args.board, models=models, model=args.model,
                             input_shapes=parse_shapes(args.shape), precision=args.precision,
                             progress=progress)
        _emit(args, result.as_dict(), lambda: str(result))
        return EXIT_OK

    result = bench_kernels(model=args.model, device=args.device, precision=args.precision or "fp32",
                           input_path=args.input, input_shapes=parse_shapes(args.shape),
                           progress=progress)
    _emit(args, result.as_dict(), lambda: str(result))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    progress = Progress("demo", enabled=not (args.json or args.quiet))
    result = run_demo(args.device, args.out, frames=args.frames, precision=args.precision,
                      prune=args.prune, progress=progress)
    _emit(args, result.as_dict(), lambda: str(result) + "".join(f"\nwrote {p}" for p in result.outputs))
    return EXIT_OK


def cmd_agent(args: argparse.Namespace) -> int:
    argv = ["--listen", args.listen]
    if args.token_env:
        argv += ["--token-env", args.token_env]
    if args.token_file:
        argv += ["--token-file", args.token_file]
    if args.cache_mb is not None:
        argv += ["--cache-mb", str(args.cache_mb)]
    if args.device:
        argv += ["--device", args.device]
    return int(agent_main(argv) or EXIT_OK)


# --------------------------------------------------------------------------- parser
def _model_options(precision_help: str, default: str | None = "fp32") -> argparse.ArgumentParser:
    """Parent parser of the options of commands that compile a model."""
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--precision", default=default, help=precision_help)
    model.add_argument("--prune", type=parse_prune, default=None, help="24-bit column prune mask for every layer")
    model.add_argument("--shape", action="append", metavar="NAME=D0,D1,...",
                       help="shape of a dynamic input (repeatable)")
    model.add_argument("--input", default=None,
                       help=".npy (one input), .npz (one array per input name) or an image; "
                            "without it, random inputs of the model's declared shapes and dtypes")
    model.add_argument("--mean", default=None, metavar="M[,M,...]",
                       help="image input: subtract this (per channel) after scaling to [0, 1]")
    model.add_argument("--std", default=None, metavar="S[,S,...]",
                       help="image input: then divide by this (per channel)")
    return model


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default=None,
                        help="sim, sim:vendor_fp, pynq, pynq:PATH.bit, tcp://HOST:PORT, serial://DEV?baud=N "
                             "(default: $BITLET_DEVICE, else a board if present, else the simulator)")
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars and no notes on stderr (errors still print)")
    model = _model_options("fp32 (default), fp16, bf16 or fixed<n> (e.g. fixed8, fixed12)")

    parser = argparse.ArgumentParser(prog="bitlet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"bitlet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", parents=[common], help="device, overlay, ID registers, versions")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("run", parents=[common, model], epilog=INPUTS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter, help="run a model on the device")
    p.add_argument("model", help="ONNX file, or a program saved by CompiledModel.save")
    p.add_argument("--output", default=None, help="write outputs (.npy for one, .npz for several)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("profile", parents=[common, model], epilog=INPUTS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter, help="per-layer cycles and predicted time")
    p.add_argument("model")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="also write the run's timeline (Chrome trace / Perfetto JSON)")
    p.add_argument("--power", action="store_true",
                   help="measure the board's power during the inference (pynq's power rails, e.g. "
                        "ZCU104): joules and average watts; a device without sensors says so")
    p.set_defaults(func=cmd_profile)
    p = sub.add_parser("compare", parents=[common, model], epilog=INPUTS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter, help="accuracy against onnxruntime fp32")
    p.add_argument("model")
    p.set_defaults(func=cmd_compare)
    # its own copy of the options: parents share their actions, and bench's
    # --precision has another default (None: fp32, or with --board a list)
    bench_model = _model_options("fp32 (default), fp16, bf16 or fixed<n>; with --board a comma "
                                 "list or 'all' (default fp32,bf16,fixed8)", default=None)
    p = sub.add_parser("bench", parents=[common, bench_model],
                       help="Bitlet vs the vendor-FP baseline kernel on the same layers")
    p.add_argument("--model", default=None, help="ONNX model (default: the bundled demo model)")
    p.add_argument("--board", default=None,
                   help="size both kernels for this board (pynqz2, kv260, zcu104) with the resource "
                        "model and compare them board-filling and at an equal LUT+DSP budget")
    p.add_argument("--models", default=None,
                   help="with --board: comma list of demo, cls, det (default: all three)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("demo", parents=[common], help="x3 super-resolution of bundled frames")
    p.add_argument("--out", default="bitlet-demo", help="directory for the output images")
    p.add_argument("--frames", type=int, default=None, help="only the first N bundled frames")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or fixed<n>")
    p.add_argument("--prune", type=parse_prune, default=None)
    p.set_defaults(func=cmd_demo)
    add_enhance_parser(sub, common, parse_prune, _emit)  # bitlet enhance (bitlet.tools.enhance)
    p = sub.add_parser("agent", help="serve this board's device and runtime over UART or TCP")
    p.add_argument("--listen", required=True,
                   help="serial:///dev/ttyPS0?baud=921600 or tcp://127.0.0.1:7700")
    p.add_argument("--token-env", default=None,
                   help="name of an environment variable holding a shared token (TCP)")
    p.add_argument("--token-file", default=None, help="file holding a shared token (TCP)")
    p.add_argument("--cache-mb", type=int, default=None, help="program/weight cache size on the agent")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_agent, json=False, quiet=False)
    add_eval_commands(sub, common, _emit, Progress)  # bitlet eval, bitlet sweep
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bitlet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def one_line(message, category, filename, lineno, file=None, line=None):
        # a warning is one line to the user, like an error (no file:line, no source)
        print(f"bitlet {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return args.func(args)
    except BitletError as exc:
        print(f"bitlet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # stdout's reader went away (`bitlet ... | head`): nothing more to say to it.
        # Point stdout at devnull so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:  # a file the user named cannot be read or written
        print(f"bitlet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"bitlet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
