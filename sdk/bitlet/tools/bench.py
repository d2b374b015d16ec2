"""Bitlet against the vendor floating-point baseline kernel, on the same layers.

Both kernels implement the same ISA (hls/bitlet_kernel.c and
hls/vendor_kernel.c), so one compiled model runs on either.  For every
kernel layer :func:`bench_kernels` reports the cycles of each kernel, the
predicted time at the overlay clock, MACs per cycle and the speed-up, and
for the final outputs the error of each against onnxruntime fp32.

On the simulator the cycles come from the kernels' cycle models
(*modelled*); on a board they are the kernels' own counters (*measured*).
The result says which.  Resource and timing figures of the overlays are
added from the Vivado reports when a build left them (``bitlet.drivers.overlays``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet import hw
from bitlet.demo import load_frames, model_path
from bitlet.drivers import open_device
from bitlet.drivers.overlays import available_boards, detect_board
from bitlet.drivers.overlays.reports import format_reports, read_reports
from bitlet.errors import BitletValueError
from bitlet.runtime import compile as bitlet_compile
from bitlet.tools.inputs import load_inputs

KINDS = ("bitlet", "vendor_fp")


def kernel_specs(device: str | None) -> dict[str, str]:
    """The two device specs to bench: ``{"bitlet": spec, "vendor_fp": spec}``.

    ``None``/``"sim"`` -> the simulator with each kernel; ``"pynq"`` -> the
    board with each overlay (loaded one after the other).
    """
    base = (device or "sim").split(":", 1)[0]
    if base not in ("sim", "pynq"):
        raise BitletValueError(f"bench needs both kernels: --device must be 'sim' or 'pynq', got {device!r}")
    return {kind: f"{base}:{kind}" for kind in KINDS}


def _rel_l2(x: np.ndarray, ref: np.ndarray) -> float:
    x64, ref64 = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    denom = float(np.linalg.norm(ref64))
    return float(np.linalg.norm(x64 - ref64)) / denom if denom else float(np.linalg.norm(x64))


@dataclass
class BenchResult:
    """Per-layer comparison of the two kernels (plain data: :meth:`as_dict`)."""

    layers: list[dict[str, Any]]
    totals: dict[str, Any]
    accuracy: dict[str, dict[str, float]]
    timing: str
    clock_mhz: dict[str, int]
    n_pe: dict[str, int]
    reports: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "totals": self.totals, "accuracy": self.accuracy,
                "timing": self.timing, "clock_mhz": self.clock_mhz, "n_pe": self.n_pe,
                "reports": self.reports}

    def __str__(self) -> str:
        head = (f"{'layer':<24} {'MMAC':>8} {'Bitlet cyc':>12} {'vendor cyc':>12} {'speed-up':>8} "
                f"{'MAC/cyc B':>9} {'MAC/cyc V':>9}")

        lines = [(f"cycles {self.timing}; Bitlet {self.n_pe['bitlet']} PEs x {hw.GROUP} MACs at "
                 f"{self.clock_mhz['bitlet']} MHz, vendor-FP {self.n_pe['vendor_fp']} units x "
                 f"{hw.VENDOR_LANES} fp32 MAC lanes at {self.clock_mhz['vendor_fp']} MHz"), head,
                 "-" * len(head)]
        for row in self.layers + [dict(self.totals, name="total")]:
            lines.append(f"{row['name'][:24]:<24} {row['macs'] / 1e6:>8.3f} {row['bitlet_cycles']:>12,} "
                         f"{row['vendor_fp_cycles']:>12,} {row['speedup']:>7.2f}x "
                         f"{row['bitlet_macs_per_cycle']:>9.2f} {row['vendor_fp_macs_per_cycle']:>9.2f}")
        t = self.totals
        lines.append(f"predicted time: Bitlet {t['bitlet_ms']:.3f} ms, vendor-FP {t['vendor_fp_ms']:.3f} ms")
        for kind, acc in self.accuracy.items():
            lines.append(f"accuracy {kind:<9} vs onnxruntime fp32: relative L2 {acc['rel_l2']:.3e}, "
                         f"max abs {acc['max_abs']:.3e}")
        for kind, text in self.reports.get("text", {}).items():
            lines.append(f"resources {kind}: {text}")
        return "\n".join(lines)


def _model_and_inputs(model: str | None, input_path: str | None,
                      input_shapes: dict | None) -> tuple[str, dict | None, dict | None]:
    if model is not None:
        return model, input_path, input_shapes

    frame = load_frames()["lr_y"][0].astype(np.float32) / 255.0
    return str(model_path()), {"lr": frame[None, None]}, {"lr": (1, 1) + frame.shape}


def _run_kind(spec: str, model: str, feeds: Any, input_path: str | None, precision: str,
              input_shapes: dict | None) -> tuple[Any, dict, dict]:

    dev = open_device(spec)
    try:
        compiled = bitlet_compile(model, device=dev, precision=precision, input_shapes=input_shapes)
        if feeds is None:
            feeds = load_inputs(input_path, [dict(s) for s in compiled.meta["inputs"]]).arrays
        profile = compiled.profile(feeds)
        outputs = compiled.run(feeds)
        ctx = {"feeds": feeds, "board": getattr(dev, "kind", "sim") == "pynq", "n_pe": dev.kernel.n_pe}
    finally:
        dev.close()
    return profile, outputs, ctx


def bench_kernels(model: str | None = None, device: str | None = None, precision: str = "fp32",
                  input_path: str | None = None, input_shapes: dict | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> BenchResult:
    """Run one model on the Bitlet kernel and on the vendor-FP kernel and compare.

    Parameters
    ----------
    model : str, optional
        ONNX file; default the bundled demo model on a bundled frame.
    device : {"sim", "pynq"}, optional
        Simulator (modelled cycles) or board (measured cycles).
    precision : {"fp32", "fp16", "bf16"}
    input_path, input_shapes
        As for ``bitlet run`` (``--input``, ``--shape``).
    progress : callable(done, total, what), optional

    Returns
    -------
    BenchResult
    """
    import onnxruntime as ort  # onnxruntime: heavy import, loaded only for reference runs

    model, feeds, input_shapes = _model_and_inputs(model, input_path, input_shapes)
    profiles, outputs, n_pe, board = {}, {}, {}, False
    for step, (kind, spec) in enumerate(kernel_specs(device).items()):
        if progress:
            progress(step, len(KINDS) + 1, f"{kind} kernel")
        profiles[kind], outputs[kind], ctx = _run_kind(spec, model, feeds, input_path, precision,
                                                       input_shapes)
        feeds, board, n_pe[kind] = ctx["feeds"], ctx["board"], ctx["n_pe"]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    if progress:
        progress(len(KINDS) + 1, len(KINDS) + 1, "done")
    accuracy = {kind: {"rel_l2": max(_rel_l2(outputs[kind][n], reference[n]) for n in reference),
                       "max_abs": max(float(np.max(np.abs(outputs[kind][n].astype(np.float64)
                                                          - reference[n]))) for n in reference)}
                for kind in KINDS}
    layers = _layer_rows(profiles)
    return BenchResult(layers, _totals(layers, profiles), accuracy,
                       "measured on the board" if board else "modelled (simulator)",
                       {k: profiles[k].clock_mhz for k in KINDS}, n_pe, _reports())


def _row(name: str, macs: int, cycles: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "macs": macs}
    for kind in KINDS:
        row[f"{kind}_cycles"] = cycles[kind]
        row[f"{kind}_macs_per_cycle"] = macs / cycles[kind] if cycles[kind] else 0.0
    row["speedup"] = cycles["vendor_fp"] / cycles["bitlet"] if cycles["bitlet"] else 0.0
    return row


def _layer_rows(profiles: dict[str, Any]) -> list[dict[str, Any]]:
    bitlet_layers, vendor_layers = profiles["bitlet"].layers, profiles["vendor_fp"].layers
    if [l["name"] for l in bitlet_layers] != [l["name"] for l in vendor_layers]:
        raise BitletValueError("the two kernels compiled different layer lists; cannot compare")
    return [_row(b["name"], int(b["macs"]), {"bitlet": int(b["kernel_cycles"]),
                                             "vendor_fp": int(v["kernel_cycles"])})
            for b, v in zip(bitlet_layers, vendor_layers)]


def _totals(layers: list[dict[str, Any]], profiles: dict[str, Any]) -> dict[str, Any]:
    total = _row("total", sum(l["macs"] for l in layers),
                 {k: sum(l[f"{k}_cycles"] for l in layers) for k in KINDS})
    for kind in KINDS:
        total[f"{kind}_ms"] = total[f"{kind}_cycles"] / (profiles[kind].clock_mhz * 1e3)
    return total


def _reports() -> dict[str, Any]:
    """Vivado figures of both overlays when a build left reports: parsed
    (``figures``, None when absent) and as text (``text``).

    On a board, its own overlays; elsewhere (the workstation that built
    them) the first board that has reports for the kind.
    """

    board = detect_board()
    candidates = [board] if board else available_boards()
    figures = {kind: next((r for b in candidates if (r := read_reports(b, kind))), None)
               for kind in KINDS}
    return {"figures": figures, "text": {k: format_reports(v) for k, v in figures.items()}}
