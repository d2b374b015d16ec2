"""The embedded default demo: x3 super-resolution of bundled frames.

The model (``espcn_x3.onnx``, about 23k parameters, ESPCN with ReLU) and the
frames (``frames.npz``: held-out crops, low-resolution inputs, ground truth
and the bicubic baseline) ship inside the package; see ``model_card.json``
and ``examples/models/train_espcn.py`` for how they were made.  Nothing is
downloaded.

:func:`run_demo` compiles the model for a device (the simulator by
default), upscales every frame on it and reports, per frame, PSNR against
the ground truth for Bitlet and for bicubic upscaling, the difference to the
fp32 onnxruntime output, the kernel cycles and the predicted frames per
second at the overlay clock (modelled on the simulator, measured on a board).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.drivers import open_device
from bitlet.runtime import compile as bitlet_compile
from bitlet.tools.imaging import psnr, write_png, ycbcr_to_rgb

MODEL_FILE = "espcn_x3.onnx"
FRAMES_FILE = "frames.npz"
CARD_FILE = "model_card.json"


def _data_path(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


def model_path() -> Path:
    """Path of the bundled ONNX model."""
    return _data_path(MODEL_FILE)


def model_card() -> dict[str, Any]:
    """The model card: data, seed, parameters and PSNR reached in training."""
    return json.loads(_data_path(CARD_FILE).read_text(encoding="utf-8"))


def load_frames() -> dict[str, np.ndarray]:
    """The bundled frames (``names``, ``lr_y``, ``hr_y``, ``bicubic_y``, ``bicubic_cbcr``, ...)."""
    with np.load(_data_path(FRAMES_FILE), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@dataclass
class DemoResult:
    """Per-frame and summary figures of a demo run (plain data: :meth:`as_dict`)."""

    frames: list[dict[str, Any]]
    device: dict[str, Any]
    timing: str
    outputs: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        f = self.frames

        def mean(key: str) -> float:
            return float(np.mean([x[key] for x in f]))

        return {
            "frames": len(f),
            "psnr_bitlet_db": mean("psnr_bitlet_db"),
            "psnr_bicubic_db": mean("psnr_bicubic_db"),
            "gain_over_bicubic_db": mean("psnr_bitlet_db") - mean("psnr_bicubic_db"),
            "psnr_vs_onnxruntime_db": min(x["psnr_vs_onnxruntime_db"] for x in f),
            "kernel_cycles": int(np.mean([x["kernel_cycles"] for x in f])),
            "ref_schedule_cycles": int(np.mean([x["ref_cycles"] for x in f])),
            "predicted_fps": mean("predicted_fps"),
            "timing": self.timing,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "frames": self.frames, "device": self.device,
                "outputs": self.outputs}

    def __str__(self) -> str:
        lines = [(f"{'frame':<28} {'bitlet dB':>9} {'bicubic dB':>10} {'vs ORT dB':>9} "
                 f"{'kernel cycles':>14} {'pred. FPS':>9}")]
        for x in self.frames:
            lines.append(f"{x['name'][:28]:<28} {x['psnr_bitlet_db']:>9.2f} {x['psnr_bicubic_db']:>10.2f} "
                         f"{x['psnr_vs_onnxruntime_db']:>9.1f} {x['kernel_cycles']:>14,} "
                         f"{x['predicted_fps']:>9.1f}")
        s = self.summary
        lines.append(f"mean: Bitlet {s['psnr_bitlet_db']:.2f} dB vs bicubic {s['psnr_bicubic_db']:.2f} dB "
                     f"({s['gain_over_bicubic_db']:+.2f} dB); worst PSNR vs fp32 onnxruntime "
                     f"{s['psnr_vs_onnxruntime_db']:.1f} dB")
        lines.append(f"{s['kernel_cycles']:,} kernel cycles per frame ({s['timing']}), reference schedule "
                     f"{s['ref_schedule_cycles']:,}; predicted {s['predicted_fps']:.1f} frames/s at "
                     f"{self.device.get('clock_mhz')} MHz for {self.device.get('frame')} frames")
        return "\n".join(lines)


def run_demo(device: Any = None, out_dir: str | Path | None = None, *, frames: int | None = None,
             precision: str = "fp32", prune: int | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> DemoResult:
    """Upscale the bundled frames x3 on a Bitlet device.

    Parameters
    ----------
    device : Device or str, optional
        A device or a ``bitlet.open`` spec; None opens the default
        (a board if present, else the simulator).
    out_dir : path, optional
        Where to write ``<frame>.png`` montages (bicubic | Bitlet | ground truth).
    frames : int, optional
        Only the first ``frames`` bundled frames.
    precision, prune
        Passed to :func:`bitlet.compile`.
    progress : callable(done, total, name), optional
        Called after each frame.

    Returns
    -------
    DemoResult
    """
    import onnxruntime as ort  # onnxruntime: heavy import, loaded only for reference runs


    data = load_frames()
    count = len(data["names"]) if frames is None else max(1, min(int(frames), len(data["names"])))
    dev = open_device(device) if device is None or isinstance(device, str) else device
    lr_shape = (1, 1) + tuple(data["lr_y"].shape[1:])
    compiled = bitlet_compile(str(model_path()), device=dev, precision=precision, prune=prune,
                              input_shapes={"lr": lr_shape})
    session = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    outputs, results = [], []
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = str(data["names"][i])
        x = (data["lr_y"][i].astype(np.float32) / 255.0)[None, None]
        profile = compiled.profile(x)
        sr = np.asarray(compiled(x), dtype=np.float32)[0, 0]
        ref = session.run(None, {"lr": x})[0][0, 0]
        hr = data["hr_y"][i].astype(np.float64) / 255.0
        bicubic = data["bicubic_y"][i].astype(np.float64)  # already in [0, 1]
        cycles = int(profile.totals["kernel_cycles"])
        results.append({
            "name": name,
            "psnr_bitlet_db": psnr(np.clip(sr, 0, 1), hr),
            "psnr_bicubic_db": psnr(np.clip(bicubic, 0, 1), hr),
            "psnr_vs_onnxruntime_db": psnr(sr, ref),
            "max_abs_vs_onnxruntime": float(np.max(np.abs(sr.astype(np.float64) - ref))),
            "kernel_cycles": cycles,
            "ref_cycles": int(profile.totals["ref_cycles"]),
            "pe_cycles": int(profile.totals["pe_cycles"]),
            "predicted_fps": profile.clock_mhz * 1e6 / cycles if cycles else float("inf"),
        })
        if out is not None:
            cbcr = data["bicubic_cbcr"][i]
            tiles = [ycbcr_to_rgb(np.clip(img, 0, 1) * 255.0, cbcr) for img in (bicubic, sr, hr)]
            stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
            outputs.append(str(write_png(out / f"{i:02d}_{stem}.png", np.concatenate(tiles, axis=1))))
        if progress is not None:
            progress(i + 1, count, name)
    info = {"backend": type(dev).__name__, "clock_mhz": profile.clock_mhz,
            "frame": f"{lr_shape[2]}x{lr_shape[3]} -> {3 * lr_shape[2]}x{3 * lr_shape[3]}"}
    timing = "measured on the board" if getattr(dev, "kind", "") == "pynq" else "modelled"
    return DemoResult(results, info, timing, outputs)
