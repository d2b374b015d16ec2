"""The ``bitlet eval`` and ``bitlet sweep`` sub-commands (registered by :mod:`bitlet.tools.cli`)."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bitlet.errors import BitletValueError
from bitlet.tools.evaluate import evaluate
from bitlet.tools.inputs import parse_prune, parse_shapes
from bitlet.tools.shards import DEFAULT_SHARD_SIZE
from bitlet.tools.sweep import sweep

__all__ = ["add_eval_commands"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _mask_value(text: str) -> int:
    try:
        return parse_prune(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


def _list(text: str | None, convert: Callable[[str], Any], what: str) -> list:
    if text is None:
        return [None]
    out = []
    for item in text.split(","):
        item = item.strip()
        if item.lower() in ("none", "-", ""):
            out.append(None)
            continue
        try:
            out.append(convert(item))
        except ValueError:
            raise BitletValueError(f"{what} {item!r}: not a valid value") from None
    return out


def _distributed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="folder or glob of images, .npy (first axis = inputs) or .npz (one array per "
                        "input, optional 'labels' and 'names')")
    p.add_argument("--labels", default=None, help="labels: CSV (name,label), .npy or .npz ('labels')")
    p.add_argument("--shape", action="append", metavar="NAME=D0,D1,...",
                   help="shape of a dynamic input (repeatable)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N inputs")
    p.add_argument("--out", default=None,
                   help="directory for per-shard results (a rerun resumes) and the tables")
    p.add_argument("--plots", default=None, help="save plots (PNG) into this directory")
    p.add_argument("--workers", type=_positive, default=1,
                   help="parallel workers (Ray actors; > 1 needs `pip install 'bitlet[cluster]'`)")
    p.add_argument("--cluster", default=None,
                   help="local (default with --workers > 1), local:N (N CPUs), ray://HOST:PORT or auto")
    p.add_argument("--threads", type=_positive, default=None,
                   help="BITLET_THREADS per worker (CPUs reserved per Ray actor; default 1)")
    p.add_argument("--shard-size", type=_positive, default=DEFAULT_SHARD_SIZE,
                   help=f"inputs per shard (unit of work, retry and resumption; default "
                        f"{DEFAULT_SHARD_SIZE})")


def add_eval_commands(sub: Any, common: argparse.ArgumentParser, emit: Callable[..., None],
                      progress_cls: Callable[..., Any]) -> None:
    """Add ``eval`` and ``sweep`` to the ``bitlet`` sub-parsers ``sub``.

    ``emit(args, data, text)`` prints the result (``--json`` aware) and
    ``progress_cls(label, enabled=...)`` makes the progress bar (both from the CLI).
    """

    def cmd_eval(args: argparse.Namespace) -> int:
        if args.device not in (None, "sim"):
            raise BitletValueError("eval runs on the simulated kernel (bit-exact emulator): "
                                   "--device does not apply")
        progress = progress_cls("eval", enabled=not args.json)
        result = evaluate(args.model, args.data, out=args.out, labels=args.labels,
                          reference=args.reference, precision=args.precision, prune=args.prune,
                          bits=args.bits, input_shapes=parse_shapes(args.shape), n_pe=args.n_pe,
                          layers=not args.no_layers, workers=args.workers, cluster=args.cluster,
                          threads=args.threads, shard_size=args.shard_size, limit=args.limit,
                          plots=args.plots, progress=progress)
        emit(args, result.as_dict(), lambda: str(result))
        return 0

    def cmd_sweep(args: argparse.Namespace) -> int:
        if args.device not in (None, "sim"):
            raise BitletValueError("sweep runs on the simulated kernel: --device does not apply")
        progress = progress_cls("sweep", enabled=not args.json)
        result = sweep(args.models, args.data,
                       precisions=[p for p in _list(args.precisions, str, "--precisions") if p]
                       or ["fp32"],
                       prunes=_list(args.prunes, _mask_value, "--prunes"),
                       bits=_list(args.bits, int, "--bits"),
                       n_pes=_list(args.n_pe, int, "--n-pe"), labels=args.labels,
                       input_shapes=parse_shapes(args.shape), limit=args.limit,
                       workers=args.workers, cluster=args.cluster, threads=args.threads,
                       shard_size=args.shard_size, out=args.out, plots=args.plots,
                       progress=progress)
        emit(args, result.as_dict(), lambda: str(result))
        return 0

    p = sub.add_parser("eval", parents=[common],
                       help="accuracy and modelled cycles over a data set (optionally on Ray)")
    p.add_argument("model", help="ONNX file (or a saved program with --reference)")
    _distributed(p)
    p.add_argument("--reference", default=None,
                   help="reference outputs (.npy / .npz per output, first axis = inputs) instead "
                        "of onnxruntime fp32")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or fixed<n>")
    p.add_argument("--prune", type=parse_prune, default=None,
                   help="24-bit column prune mask for every layer")
    p.add_argument("--bits", type=_positive, default=None, help="bit budget for every layer")
    p.add_argument("--n-pe", type=_positive, default=None,
                   help="kernel build (default: the header's N_PE; others are compiled once)")
    p.add_argument("--no-layers", action="store_true",
                   help="skip the per-layer errors (faster: kernel segments run whole)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sweep", parents=[common],
                       help="accuracy vs modelled cycles over precisions, prune masks, bit budgets, "
                            "N_PE and models: Pareto table and plot")
    p.add_argument("models", nargs="+", help="ONNX files")
    _distributed(p)
    p.add_argument("--precisions", default="fp32", help="comma list, e.g. fp32,fp16,fixed8")
    p.add_argument("--prunes", default=None, help="comma list of masks, e.g. none,0xFFFF00")
    p.add_argument("--bits", default=None, help="comma list of bit budgets, e.g. none,8,5")
    p.add_argument("--n-pe", default=None, help="comma list of kernel builds, e.g. 4,8")
    p.set_defaults(func=cmd_sweep)
