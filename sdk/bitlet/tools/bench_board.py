"""``bitlet bench --board BOARD``: the two kernels sized for one board and compared.

Three configurations (:mod:`bitlet.tools.resources`):

* ``board_filling``: each kernel at the largest N_PE that fits the board at
  the model's utilisation limit;
* ``equal_budget``: the Bitlet kernel as above, the vendor-FP kernel at the
  largest N_PE whose kernel IP stays within the Bitlet kernel IP's LUT and
  DSP counts;
* ``overlay``: each kernel at the N_PE ``overlay/boards.tcl`` builds under
  the same area report (:func:`~bitlet.tools.resources.overlay_n_pe`,
  written by ``python overlay/size_boards.py --write``): the board-filling
  N_PE, at least 1; a kernel whose one PE exceeds the limit is flagged
  ``over_limit``.  ``overlay_metadata`` gives the N_PE of the packaged
  overlay metadata, which equals it when boards.tcl is up to date.

For each configuration, model and precision the kernels run on the
simulator compiled at that N_PE (:func:`bitlet.tools.variants.kernel_engine`):
predicted frames/s from the kernels' modelled cycles at the overlay clock
(kernel layers only: host ops and host transfers are not counted), MACs per
cycle, MACs per cycle per 1,000 LUT of the kernel IP, DSP use, and the
error against onnxruntime fp32 on the same input.  Every figure is a
``{"value": ..., "basis": ...}`` pair.

Cycles are never scaled from a smaller input: the Bitlet kernel's cycles
depend on the data (the per-group scan length S), and both kernels' tiling
depends on the image width, so every model runs at the size it reports.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.demo import load_frames, model_path
from bitlet.drivers import open_device
from bitlet.drivers.overlays import available_boards, find_overlay
from bitlet.drivers.overlays.reports import format_reports, read_reports
from bitlet.errors import BitletValueError
from bitlet.runtime import compile as bitlet_compile
from bitlet.tools.bench import _rel_l2
from bitlet.tools.resources import (
    area_report,
    board_device,
    board_sizing,
    equal_budget,
    kernel_resources,
    model_data,
    overlay_n_pe,
)
from bitlet.tools.variants import kernel_engine

__all__ = ["BOARD_MODELS", "DEFAULT_PRECISIONS", "BoardBench", "bench_board"]

KINDS = ("bitlet", "vendor_fp")
#: Precisions run by default (``"all"`` adds fp16).
DEFAULT_PRECISIONS = ("fp32", "bf16", "fixed8")
ALL_PRECISIONS = ("fp32", "fp16", "bf16", "fixed8")
#: The models of ``bench --board`` without ``--model``: name -> description.
BOARD_MODELS = {
    "demo": "ESPCN x3 demo model (bundled), input 1x1x120x214 -> output 360x642, the smallest "
            "x3 output covering 640x360; input: the luma of the bundled 96x96 frames, tiled",
    "cls": "ch_ppocr_mobile_v2.0_cls (rapidocr_onnxruntime wheel), a MobileNet-class classifier "
           "(MobileNetV3-small-style backbone: pointwise, depthwise, squeeze-excite), input "
           "1x3x48x192 (its native size): the bundled RGB frames tiled, (x - 0.5) / 0.5",
    "det": "PP-OCRv4 text detector ch_PP-OCRv4_det_infer (rapidocr_onnxruntime wheel), input "
           "1x3x192x320 (a quarter of a 640x360 frame's area, rounded to multiples of 32, to keep "
           "the vendor kernel's reference engine within minutes): the bundled RGB frames tiled, "
           "ImageNet mean/std (photographs, not text: its output map is mostly empty)",
}
_RAPIDOCR = {"cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx", "det": "ch_PP-OCRv4_det_infer.onnx"}
_SHAPES = {"demo": (1, 1, 120, 214), "cls": (1, 3, 48, 192), "det": (1, 3, 192, 320)}
#: PP-OCR input normalisation (x / 255 - mean) / std, as rapidocr applies it
_NORMALIZE = {"cls": (np.float32(0.5), np.float32(0.5)),
              "det": (np.array([0.485, 0.456, 0.406], np.float32),
                      np.array([0.229, 0.224, 0.225], np.float32))}
MODELLED = "modelled (the kernel's cycle model, simulator at this N_PE)"


def _figure(value: Any, basis: str) -> dict[str, Any]:
    return {"value": value, "basis": basis}


def _parse_precisions(precision: str | None) -> tuple[str, ...]:
    if precision in (None, ""):
        return DEFAULT_PRECISIONS
    if precision == "all":
        return ALL_PRECISIONS
    out = tuple(p.strip() for p in precision.split(",") if p.strip())
    bad = [p for p in out if p not in ("fp32", "fp16", "bf16") and not p.startswith("fixed")]
    if bad or not out:
        raise BitletValueError(f"--precision: {', '.join(bad) or precision!r} is not fp32, fp16, "
                               "bf16, fixed<n>, a comma list of them, or 'all'")
    return out


def _tiled(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    """``frames`` [n, fh, fw, ...] tiled row by row into [h, w, ...]."""
    n, fh, fw = frames.shape[:3]
    rows = [np.concatenate([frames[(r * 7 + c) % n] for c in range(-(-w // fw))], axis=1)
            for r in range(-(-h // fh))]
    return np.concatenate(rows, axis=0)[:h, :w]


def _model(name: str) -> tuple[str, dict[str, np.ndarray]]:
    """(ONNX path, feeds) of a board model; inputs are the bundled demo frames
    (photographs, 96x96) tiled to the model's input size."""

    frames = load_frames()
    _, _, h, w = _SHAPES[name]
    if name == "demo":

        y = _tiled(frames["hr_y"].astype(np.float32) / 255.0, h, w)
        return str(model_path()), {"lr": np.ascontiguousarray(y)[None, None]}
    try:
        import rapidocr_onnxruntime  # optional: ships the PP-OCR models
    except ImportError:
        raise BitletValueError(f"model {name!r} needs the rapidocr_onnxruntime wheel "
                               "(pip install rapidocr_onnxruntime)") from None

    path = Path(rapidocr_onnxruntime.__file__).parent / "models" / _RAPIDOCR[name]
    if not path.is_file():
        raise BitletValueError(f"{path} is missing from the rapidocr_onnxruntime wheel")
    mean, std = _NORMALIZE[name]
    rgb = (_tiled(frames["hr"].astype(np.float32) / 255.0, h, w) - mean) / std
    return str(path), {"x": np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32)}


def _user_model(model: str, input_shapes: dict | None) -> tuple[str, dict[str, np.ndarray]]:
    """(path, feeds): uniform [0, 1) seed 0 inputs of the model's (or the given) shapes."""
    import onnx  # onnx: heavy import (~1 s), loaded only when a model is read

    graph = onnx.load(model, load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    feeds, rng = {}, np.random.default_rng(0)
    for inp in graph.input:
        if inp.name in inits:
            continue
        shape = (input_shapes or {}).get(inp.name)
        if shape is None:
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            if not all(dims):
                raise BitletValueError(f"input {inp.name!r} of {model} has dynamic dimensions: "
                                       f"give --shape {inp.name}=D0,D1,...")
            shape = tuple(dims)
        feeds[inp.name] = rng.random(shape, dtype=np.float32)
    return model, feeds


def _run(kind: str, n_pe: int, model: str, feeds: dict, precision: str) -> dict[str, Any]:
    """Compile and run one model on the simulated kernel at ``n_pe``."""

    top, engine = kernel_engine(kind, n_pe)
    dev = open_device(f"sim:{kind}", engine=top)
    try:
        if dev.kernel.n_pe != n_pe:
            raise BitletValueError(f"the {kind} engine reports N_PE={dev.kernel.n_pe}, not {n_pe}")
        compiled = bitlet_compile(model, device=dev, precision=precision,
                                  input_shapes={k: v.shape for k, v in feeds.items()})
        profile = compiled.profile(feeds)
        outputs = compiled.run(feeds)
    finally:
        dev.close()
    cycles = sum(int(layer["kernel_cycles"]) for layer in profile.layers)
    macs = sum(int(layer["macs"]) for layer in profile.layers)
    return {"engine": engine, "cycles": cycles, "macs": macs, "clock_mhz": profile.clock_mhz,
            "outputs": outputs}


def _accuracy(outputs: dict, reference: dict) -> dict[str, Any]:
    rel = max(_rel_l2(outputs[n], reference[n]) for n in reference)
    mx = max(float(np.max(np.abs(outputs[n].astype(np.float64) - reference[n]))) for n in reference)
    basis = "modelled (the kernel's C model on the simulator) against onnxruntime fp32, same input"
    return {"rel_l2": _figure(rel, basis), "max_abs": _figure(mx, basis)}


def _short(basis: str) -> str:
    """The label of a basis text: 'synthesized (...)', 'published', 'estimated', ..."""
    if basis.startswith("synthesized"):
        return basis
    return basis.split(" (", 1)[0]


def _resource_figures(res: dict) -> dict[str, Any]:
    """Kernel IP and whole-design figures of a sizing, each with the bases of its parts."""
    labels = "; ".join(f"{p['name']} x{p['count']}: {_short(p['basis'])}"
                       for p in res["parts"] if p["count"])
    return {
        "kernel": {r: _figure(v, f"model sum ({labels})") for r, v in res["kernel"].items()},
        "total": {r: _figure(v, f"model sum ({labels})") for r, v in res["total"].items()},
        "utilisation_pct": res["utilisation_pct"],
        "capacity": _figure(res["capacity"], res["capacity_basis"]),
        "parts": [{k: p[k] for k in ("name", "count", "lut", "ff", "dsp", "bram36", "basis")}
                  for p in res["parts"]],
    }


@dataclass
class BoardBench:
    """Result of :func:`bench_board` (plain data: :meth:`as_dict`)."""

    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.data

    def __str__(self) -> str:
        d = self.data
        limits = ", ".join(f"{r.upper()} {pct} %" for r, pct in d["limit"]["pct"].items())
        lines = [(f"bitlet bench --board {d['board']} ({d['device']}; fits within {limits}; "
                  f"clock {d['clock_mhz']} MHz; PE area: {d['area_report']['tool']})")]
        for cname, conf in d["configurations"].items():
            lines.append(f"\n[{cname}] {conf['about']}")
            for kind in KINDS:
                c = conf[kind]
                k = c["resources"]["kernel"]
                variant = f", {c['variant']} operators" if c["variant"] else ""
                flag = "  OVER THE LIMIT (one PE does not fit)" if c.get("over_limit") else ""
                lines.append(f"  {kind:<9} n_pe {c['n_pe']:>3}{variant}: kernel IP {k['lut']['value']:,} LUT, "
                             f"{k['ff']['value']:,} FF, {k['dsp']['value']} DSP, {k['bram36']['value']} BRAM36; "
                             "whole design " + ", ".join(
                                 f"{r.upper()} {v:.0f}%" for r, v in c["resources"]["utilisation_pct"].items())
                             + flag)
            head = (f"  {'model':<6} {'precision':<9} {'kernel':<9} {'frames/s':>10} {'MAC/cyc':>9} "
                    f"{'MAC/cyc/kLUT':>12} {'rel L2 vs ORT':>14}")
            lines += [head, "  " + "-" * (len(head) - 2)]
            for model, per_prec in conf["results"].items():
                for prec, per_kind in per_prec.items():
                    for kind, r in per_kind.items():
                        if "skipped" in r:
                            lines.append(f"  {model:<6} {prec:<9} {kind:<9} {r['skipped']}")
                            continue
                        lines.append(f"  {model:<6} {prec:<9} {kind:<9} {r['fps']['value']:>10.2f} "
                                     f"{r['macs_per_cycle']['value']:>9.2f} "
                                     f"{r['macs_per_cycle_per_klut']['value']:>12.4f} "
                                     f"{r['accuracy']['rel_l2']['value']:>14.2e}")
        meta = d.get("overlay_metadata", {})
        lines.append("\npackaged overlay metadata: " + ", ".join(
            f"{k} n_pe {v['n_pe']}" + ("" if v["agrees"] else
                                       f" (the [overlay] sizing says {v['sized_n_pe']}: run "
                                       "`python overlay/size_boards.py --write`)")
            for k, v in meta.items()))
        lines.append("bases: frames/s, MAC/cycle: modelled cycles; LUT/FF/DSP: resource model "
                     "(PE synthesized by yosys, vendor operators and shell as labelled in --json); "
                     "accuracy: kernel C model vs onnxruntime fp32")
        for kind, text in d.get("vivado_text", {}).items():
            lines.append(f"Vivado ({kind}): {text}")
        return "\n".join(lines)


def _overlay(board: str, report: dict | None, filling: dict) -> dict[str, Any]:
    """The ``overlay`` configuration: each kind at :func:`overlay_n_pe`."""

    sized = overlay_n_pe(board, report=report)
    conf: dict[str, Any] = {"about": ("each kernel at the n_pe overlay/boards.tcl builds: the "
                                      "board-filling n_pe, at least 1 (python overlay/"
                                      "size_boards.py)")}
    for kind in KINDS:
        s = sized[kind]
        if s["n_pe"] == filling[kind]["n_pe"]:
            entry = filling[kind]
        else:
            entry = dict(kernel_resources(kind, s["n_pe"], board, variant=s["variant"],
                                          report=report), alternatives={})
        conf[kind] = dict(entry, over_limit=s["over_limit"])
    return conf


def _overlay_metadata(board: str, overlay: dict) -> dict[str, Any]:
    """N_PE of the packaged overlay metadata against the ``overlay`` sizing."""

    out = {}
    for kind in KINDS:
        n_pe = int(find_overlay(board, kind, require_bitstream=False).metadata["n_pe"])
        out[kind] = {"n_pe": n_pe, "sized_n_pe": overlay[kind]["n_pe"],
                     "agrees": n_pe == overlay[kind]["n_pe"]}
    return out


def _configurations(board: str, report: dict | None) -> dict[str, Any]:
    filling = board_sizing(board, report=report)
    budget = equal_budget(board, report=report)
    return {
        "board_filling": {"about": "each kernel at the largest n_pe that fits the board",
                          "bitlet": filling["bitlet"], "vendor_fp": filling["vendor_fp"]},
        "equal_budget": {"about": (f"vendor-FP within the Bitlet kernel IP's LUT "
                                   f"({budget['budget']['lut']:,}) and DSP "
                                   f"({budget['budget']['dsp']}) ({budget['budget_basis']})"),
                         "budget": budget["budget"], "bitlet": budget["bitlet"],
                         "vendor_fp": budget["vendor_fp"]},
        "overlay": _overlay(board, report, filling),
    }


def _vivado(board: str) -> dict[str, Any]:
    figures = {kind: read_reports(board, kind) for kind in KINDS}
    return {"vivado": {k: ({"report": v, "basis": "Vivado report"} if v else None)
                       for k, v in figures.items()},
            "vivado_text": {k: format_reports(v) for k, v in figures.items() if v}}


def bench_board(board: str, *, models: tuple[str, ...] | None = None, model: str | None = None,
                input_shapes: dict | None = None, precision: str | None = None,
                report: dict | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> BoardBench:
    """Compare the kernels sized for ``board`` (see the module docstring).

    Parameters
    ----------
    board : str
        ``pynqz2``, ``kv260`` or ``zcu104`` (an overlay board).
    models : tuple of str, optional
        Names from :data:`BOARD_MODELS` (default all three).
    model : str, optional
        One ONNX file instead (inputs uniform [0, 1), seed 0; ``input_shapes``
        for dynamic dimensions).
    precision : str, optional
        ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"fixed<n>"``, a comma list, or
        ``"all"``; default :data:`DEFAULT_PRECISIONS`.  The vendor kernel
        runs the float formats only.
    report : dict, optional
        The PE area report (default: :func:`bitlet.tools.resources.area_report`).
    progress : callable(done, total, what), optional

    Returns
    -------
    BoardBench

    Raises
    ------
    BitletValueError
        Unknown board, model or precision; no area report; an engine that
        cannot be built.
    """
    import onnxruntime as ort  # onnxruntime: heavy import, loaded only for reference runs


    if board not in available_boards():
        raise BitletValueError(f"unknown board {board!r}; known: {', '.join(available_boards())}")
    precisions = _parse_precisions(precision)
    report = report if report is not None else area_report()
    if model is not None:
        cases = {"model": _user_model(model, input_shapes)}
    else:
        names = models or tuple(BOARD_MODELS)
        unknown = [m for m in names if m not in BOARD_MODELS]
        if unknown:
            raise BitletValueError(f"unknown model(s) {unknown}; known: {', '.join(BOARD_MODELS)}")
        cases = {name: _model(name) for name in names}
    configs = _configurations(board, report)
    runs: dict[tuple, dict] = {}
    todo = sorted({(kind, conf[kind]["n_pe"]) for conf in configs.values() for kind in KINDS
                   if conf[kind]["n_pe"] > 0})
    total = len(todo) * len(cases) * len(precisions)
    step = 0
    references = {}
    for name, (path, feeds) in cases.items():
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        references[name] = dict(zip([o.name for o in session.get_outputs()],
                                    session.run(None, feeds)))
        for prec in precisions:
            for kind, n_pe in todo:
                if progress:
                    progress(step, total, f"{name} {prec} {kind} n_pe={n_pe}")
                step += 1
                if kind == "vendor_fp" and prec.startswith("fixed"):
                    continue
                runs[(name, prec, kind, n_pe)] = _run(kind, n_pe, path, feeds, prec)
    if progress:
        progress(total, total, "done")
    data = model_data()
    out_configs = {}
    for cname, conf in configs.items():
        entry = {"about": conf["about"], "results": {}}
        if "budget" in conf:
            entry["budget"] = _figure(conf["budget"], "resource model (the Bitlet kernel IP's LUT "
                                      "and DSP at its board-filling n_pe)")
        for kind in KINDS:
            c = conf[kind]
            entry[kind] = {"n_pe": c["n_pe"], "variant": c["variant"],
                           "alternatives": c["alternatives"],
                           "over_limit": bool(c.get("over_limit", False)),
                           "resources": _resource_figures(c),
                           "dsp": _figure(c["kernel"]["dsp"], "resource model (the kernel IP; "
                                          "bases: resources.kernel.dsp)")}
        for name in cases:
            per_prec = entry["results"].setdefault(name, {})
            for prec in precisions:
                per_kind = per_prec.setdefault(prec, {})
                for kind in KINDS:
                    c = conf[kind]
                    key = (name, prec, kind, c["n_pe"])
                    if c["n_pe"] == 0:
                        within = "the board limit" + (" and the budget" if "budget" in conf else "")
                        per_kind[kind] = {"skipped": f"does not fit (n_pe 0 within {within})"}
                    elif key not in runs:
                        per_kind[kind] = {"skipped": f"{prec} is not supported by the {kind} kernel"}
                    else:
                        per_kind[kind] = _result(runs[key], references[name], c)
        out_configs[cname] = entry
    key, _ = board_device(board, data)
    result = {"board": board, "device": key, "limit": data["limit"],
              "clock_mhz": next(iter(runs.values()))["clock_mhz"] if runs else None,
              "area_report": {"tool": report["tool"], "command": report.get("command"),
                              "design": report.get("design")},
              "models": {name: {"path": path, "about": BOARD_MODELS.get(name, "user model, inputs "
                                                                          "uniform [0, 1) seed 0"),
                                "inputs": {k: list(v.shape) for k, v in feeds.items()}}
                         for name, (path, feeds) in cases.items()},
              "precisions": list(precisions), "configurations": out_configs,
              "notes": [("frames/s count the kernel layers' cycles only (host ops and host-device "
                         "transfers excluded)"),
                        ("the vendor operators' figures are not from PG060 tables (see "
                         "bitlet/overlays/resources.json 'pg060_tables')")]}
    result["overlay_metadata"] = _overlay_metadata(board, configs["overlay"])
    result.update(_vivado(board))
    return BoardBench(result)


def _result(run: dict, reference: dict, conf: dict) -> dict[str, Any]:
    cycles, macs = run["cycles"], run["macs"]
    klut = conf["kernel"]["lut"] / 1e3
    per_cycle = macs / cycles if cycles else 0.0
    basis = f"{MODELLED}; engine {run['engine']}"
    return {
        "cycles": _figure(cycles, basis),
        "macs": _figure(macs, "counted (the MACs of the model's kernel layers, compiler)"),
        "fps": _figure(run["clock_mhz"] * 1e6 / cycles if cycles else None,
                       f"{MODELLED} at {run['clock_mhz']} MHz, kernel layers only"),
        "macs_per_cycle": _figure(per_cycle, basis),
        "macs_per_cycle_per_klut": _figure(per_cycle / klut if klut else None,
                                           "modelled (MACs per modelled cycle) per 1,000 LUT of "
                                           "the kernel IP in the resource model (its bases: "
                                           "resources.kernel.lut)"),
        "accuracy": _accuracy(run["outputs"], reference),
    }
