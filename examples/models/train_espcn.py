#!/usr/bin/env python3
"""Train the embedded demo's super-resolution model and regenerate its files.

The model is ESPCN (Shi et al., CVPR 2016, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network")
for a 3x upscale of the luma (Y) channel::

    lr [1, 1, H, W] float32, Y in [0, 1]
    Conv 5x5, 1 -> 64, pad 2   + ReLU
    Conv 3x3, 64 -> 32, pad 1  + ReLU
    Conv 3x3, 32 -> 9, pad 1
    DepthToSpace(3, mode CRD)  (torch's PixelShuffle)
    sr [1, 1, 3H, 3W] float32

22,729 fp32 parameters. ReLU (not the paper's tanh) because Bitlet's kernel
fuses ReLU into the convolution.

Data: scikit-image's bundled sample images (``skimage.data``; no network).
The images in ``TRAIN_IMAGES`` train the model; the ones in
``HELD_OUT_IMAGES`` are never seen in training and give the PSNR figures and
the demo's bundled frames. A low-resolution image is the high-resolution one
(cropped to a multiple of 3) downscaled by 3 with Pillow's antialiased
BICUBIC filter, in RGB uint8, as a camera pipeline would deliver it. Luma is
Pillow's YCbCr conversion (ITU-R BT.601, full range, as JPEG). The baseline is
Pillow's BICUBIC upscale of the float luma; PSNR is measured on Y in [0, 1]
over the whole image (no border shave), outputs clipped to [0, 1].

Writes, into ``--out`` (default: the package's ``sdk/bitlet/demo``):

- ``espcn_x3.onnx``: the model (opset 13, IR 7, dynamic H and W);
- ``frames.npz``: a few 96x96 crops of the held-out images with their 32x32
  inputs, their luma and the bicubic baseline (see ``save_frames``);
- ``model_card.json``: data, seed, training, parameters, PSNR of the model
  against bicubic per held-out image and per frame, versions, date.

Needs torch, onnx, onnxruntime, Pillow and scikit-image; the demo itself
needs none of torch, Pillow or scikit-image. Deterministic: fixed seeds, one
thread, deterministic algorithms; re-running it regenerates the same model
with the same torch build. Run it niced (it uses one core for ~5-10 min)::

    nice -n 10 python examples/models/train_espcn.py
    python examples/models/train_espcn.py --steps 300 --out espcn-try   # quick try
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

SCALE = 3
SEED = 2021
STEPS = 12000
BATCH = 32
PATCH_LR = 24  # low-resolution patch side, pixels
LEARNING_RATE = 1e-3
FINAL_LEARNING_RATE = 1e-5
OPSET = 13
IR_VERSION = 7  # the IR of opset 13: loads in old onnxruntime builds (PYNQ images)
FRAME_HR = 96  # side of a bundled frame, high-resolution pixels
FRAMES_PER_IMAGE = {"camera": 1, "chelsea": 1, "motorcycle": 2}
ONNX_NAME = f"espcn_x{SCALE}.onnx"
FRAMES_NAME = "frames.npz"
CARD_NAME = "model_card.json"
INPUT_NAME = "lr"
OUTPUT_NAME = "sr"

TRAIN_IMAGES = (
    "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "brick", "grass", "gravel", "moon", "coins", "clock", "page", "text", "cell",
)
# Never used in training ("cat" is the same photograph as "chelsea", so it is
# excluded from both lists; "motorcycle" is the left view of stereo_motorcycle).
HELD_OUT_IMAGES = ("camera", "chelsea", "motorcycle")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "sdk" / "bitlet" / "demo"


# ---------------------------------------------------------------- images

def load_rgb(name: str) -> np.ndarray:
    """Load a scikit-image sample image as RGB.

    Parameters
    ----------
    name : str
        A ``skimage.data`` function name, or ``"motorcycle"`` for the left
        view of ``stereo_motorcycle``.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8, H and W cropped (top-left kept) to multiples of SCALE.
    """
    import skimage.data
    from PIL import Image

    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    else:
        image = getattr(skimage.data, name)()
    rgb = np.asarray(Image.fromarray(image).convert("RGB"))
    height, width = (s - s % SCALE for s in rgb.shape[:2])
    return np.ascontiguousarray(rgb[:height, :width])


def downscale(rgb: np.ndarray) -> np.ndarray:
    """Make the low-resolution image: Pillow BICUBIC (antialiased) by SCALE.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8, H and W multiples of SCALE.

    Returns
    -------
    numpy.ndarray
        (H/SCALE, W/SCALE, 3) uint8.
    """
    from PIL import Image

    height, width = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((width // SCALE, height // SCALE), Image.Resampling.BICUBIC)
    return np.asarray(small)


def ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Pillow's YCbCr (BT.601 full range) of an RGB image: (H, W, 3) uint8."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("YCbCr"))


def bicubic_luma(lr_y: np.ndarray) -> np.ndarray:
    """The baseline: Pillow BICUBIC upscale by SCALE of a float luma image.

    Parameters
    ----------
    lr_y : numpy.ndarray
        (h, w) luma, any real dtype, in [0, 1].

    Returns
    -------
    numpy.ndarray
        (SCALE*h, SCALE*w) float32, clipped to [0, 1].
    """
    from PIL import Image

    height, width = lr_y.shape
    image = Image.fromarray(np.ascontiguousarray(lr_y, dtype=np.float32))  # mode "F"
    up = image.resize((width * SCALE, height * SCALE), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def bicubic_chroma(lr_rgb: np.ndarray) -> np.ndarray:
    """Pillow BICUBIC upscale of the Cb and Cr planes: (SCALE*h, SCALE*w, 2) uint8."""
    from PIL import Image

    height, width = lr_rgb.shape[:2]
    image = Image.fromarray(lr_rgb).convert("YCbCr")
    up = image.resize((width * SCALE, height * SCALE), Image.Resampling.BICUBIC)
    return np.asarray(up)[..., 1:]


def psnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB of two images with values in [0, 1] (peak 1)."""
    error = np.mean((reference.astype(np.float64) - estimate.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(1.0 / error))


def luma_pair(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HR luma (H, W), LR luma (H/SCALE, W/SCALE)), float32 in [0, 1]."""
    hr_y = ycbcr(rgb)[..., 0].astype(np.float32) / 255.0
    lr_y = ycbcr(downscale(rgb))[..., 0].astype(np.float32) / 255.0
    return hr_y, lr_y


# ---------------------------------------------------------------- model

def build_model():
    """ESPCN x SCALE with ReLU, 'same' zero padding: a torch.nn.Sequential."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 64, 5, padding=2), nn.ReLU(),
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, SCALE * SCALE, 3, padding=1),
        nn.PixelShuffle(SCALE),
    )


def sample_batch(pairs, weights, rng: np.random.Generator):
    """Random aligned patches with flips and 90-degree rotations.

    Returns
    -------
    tuple of numpy.ndarray
        LR (BATCH, 1, PATCH_LR, PATCH_LR) and HR (BATCH, 1, SCALE*PATCH_LR,
        SCALE*PATCH_LR), float32 in [0, 1].
    """
    lr_batch = np.empty((BATCH, 1, PATCH_LR, PATCH_LR), np.float32)
    hr_batch = np.empty((BATCH, 1, PATCH_LR * SCALE, PATCH_LR * SCALE), np.float32)
    for b, index in enumerate(rng.choice(len(pairs), size=BATCH, p=weights)):
        hr_y, lr_y = pairs[index]
        row = int(rng.integers(0, lr_y.shape[0] - PATCH_LR + 1))
        col = int(rng.integers(0, lr_y.shape[1] - PATCH_LR + 1))
        lr = lr_y[row:row + PATCH_LR, col:col + PATCH_LR]
        hr = hr_y[row * SCALE:(row + PATCH_LR) * SCALE, col * SCALE:(col + PATCH_LR) * SCALE]
        turns, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        lr, hr = np.rot90(lr, turns), np.rot90(hr, turns)
        if flip:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        lr_batch[b, 0], hr_batch[b, 0] = lr, hr
    return lr_batch, hr_batch


def train(pairs, steps: int, log=print):
    """Train ESPCN on (HR luma, LR luma) pairs; MSE loss, Adam, cosine schedule.

    Returns
    -------
    tuple
        (trained torch model in eval mode, final-1000-step mean train PSNR in dB)
    """
    import torch

    torch.manual_seed(SEED)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, FINAL_LEARNING_RATE)
    rng = np.random.default_rng(SEED)
    areas = np.array([lr.size for _, lr in pairs], np.float64)
    recent = []
    for step in range(1, steps + 1):
        lr_np, hr_np = sample_batch(pairs, areas / areas.sum(), rng)
        loss = torch.mean((model(torch.from_numpy(lr_np)) - torch.from_numpy(hr_np)) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [loss.item()])[-1000:]
        if step % 500 == 0 or step == steps:
            log(f"step {step}/{steps}: train PSNR {10 * np.log10(1 / np.mean(recent)):.2f} dB")
    return model.eval(), float(10 * np.log10(1 / np.mean(recent)))


# ---------------------------------------------------------------- ONNX

def to_onnx(model):
    """The trained model as an ONNX ModelProto (built node by node).

    Input ``lr`` [1, 1, H, W] float32, output ``sr`` [1, 1, 3H, 3W] float32;
    Conv/Relu/DepthToSpace(CRD), opset 13, IR 7, H and W dynamic.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    convs = [layer for layer in model if layer.__class__.__name__ == "Conv2d"]
    nodes, initializers, tensor = [], [], INPUT_NAME
    for number, conv in enumerate(convs, start=1):
        name = f"conv{number}"
        weight = conv.weight.detach().numpy().astype(np.float32)
        bias = conv.bias.detach().numpy().astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"{name}.weight"),
                         numpy_helper.from_array(bias, f"{name}.bias")]
        pad = conv.padding[0]
        nodes.append(helper.make_node(
            "Conv", [tensor, f"{name}.weight", f"{name}.bias"], [name], name=name,
            kernel_shape=list(conv.kernel_size), pads=[pad] * 4, strides=[1, 1]))
        tensor = name
        if number < len(convs):
            relu = f"relu{number}"
            nodes.append(helper.make_node("Relu", [tensor], [relu], name=relu))
            tensor = relu
    nodes.append(helper.make_node("DepthToSpace", [tensor], [OUTPUT_NAME], name="depth_to_space",
                                  blocksize=SCALE, mode="CRD"))
    graph = helper.make_graph(
        nodes, f"espcn_x{SCALE}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT,
                                       [1, 1, f"{SCALE}H", f"{SCALE}W"])],
        initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="bitlet train_espcn.py",
                              doc_string=f"ESPCN x{SCALE} on luma (Y in [0,1]); see {CARD_NAME}")
    helper.set_model_props(proto, {"scale": str(SCALE), "input": "Y (BT.601 full range) / 255",
                                   "model_card": CARD_NAME})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def onnx_upscale(session, lr_y: np.ndarray) -> np.ndarray:
    """Run the ONNX model on one (h, w) luma in [0, 1]: (3h, 3w) float32 clipped to [0, 1]."""
    lr = np.ascontiguousarray(lr_y, dtype=np.float32)[None, None]
    (sr,) = session.run([OUTPUT_NAME], {INPUT_NAME: lr})
    return np.clip(sr[0, 0], 0.0, 1.0)


def check_export(model, session, lr_y: np.ndarray) -> float:
    """Largest |torch - onnxruntime| difference on one luma image."""
    import torch

    with torch.no_grad():
        expected = model(torch.from_numpy(lr_y[None, None].astype(np.float32))).numpy()[0, 0]
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: lr_y[None, None].astype(np.float32)})
    return float(np.max(np.abs(got[0, 0] - expected)))


# ---------------------------------------------------------------- frames

def frame_origins(hr_y: np.ndarray, count: int) -> list[tuple[int, int]]:
    """Top-left corners of the `count` most detailed, non-overlapping FRAME_HR crops.

    Detail is the mean squared gradient of the luma; candidates lie on a
    grid of step 3*SCALE (so crops stay aligned to the LR grid).
    """
    gy, gx = np.gradient(hr_y.astype(np.float64))
    energy = gy ** 2 + gx ** 2
    step = 3 * SCALE
    candidates = []
    for row in range(0, hr_y.shape[0] - FRAME_HR + 1, step):
        for col in range(0, hr_y.shape[1] - FRAME_HR + 1, step):
            detail = energy[row:row + FRAME_HR, col:col + FRAME_HR].mean()
            candidates.append((detail, row, col))
    chosen = []
    for _, row, col in sorted(candidates, reverse=True):
        if all(abs(row - r) >= FRAME_HR or abs(col - c) >= FRAME_HR for r, c in chosen):
            chosen.append((row, col))
        if len(chosen) == count:
            break
    return chosen


def make_frames(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The demo's bundled frames, cut from the held-out images.

    Returns
    -------
    dict of numpy.ndarray, N frames:
        names (N,) str, e.g. "camera[r0:r1,c0:c1]" (HR pixel ranges);
        hr (N, 96, 96, 3) uint8 RGB ground truth;
        lr (N, 32, 32, 3) uint8 RGB input (``downscale(hr)``);
        hr_y (N, 96, 96), lr_y (N, 32, 32) uint8 luma (Pillow YCbCr);
        bicubic_y (N, 96, 96) float32 in [0, 1]: ``bicubic_luma(lr_y / 255)``;
        bicubic_cbcr (N, 96, 96, 2) uint8: Pillow BICUBIC upscale of LR Cb, Cr;
        scale () int64.
    """
    names, hrs = [], []
    for image_name, count in FRAMES_PER_IMAGE.items():
        rgb = images[image_name]
        for row, col in frame_origins(ycbcr(rgb)[..., 0], count):
            names.append(f"{image_name}[{row}:{row + FRAME_HR},{col}:{col + FRAME_HR}]")
            hrs.append(rgb[row:row + FRAME_HR, col:col + FRAME_HR])
    lrs = [downscale(hr) for hr in hrs]
    lr_y = np.stack([ycbcr(lr)[..., 0] for lr in lrs])
    return {
        "names": np.array(names),
        "hr": np.stack(hrs),
        "lr": np.stack(lrs),
        "hr_y": np.stack([ycbcr(hr)[..., 0] for hr in hrs]),
        "lr_y": lr_y,
        "bicubic_y": np.stack([bicubic_luma(y.astype(np.float32) / 255.0) for y in lr_y]),
        "bicubic_cbcr": np.stack([bicubic_chroma(lr) for lr in lrs]),
        "scale": np.array(SCALE, np.int64),
    }


def evaluate(session, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """PSNR (dB) of the model and of bicubic per image; the mean gain."""
    results = {}
    for name, (hr_y, lr_y) in pairs.items():
        model_db = psnr(hr_y, onnx_upscale(session, lr_y))
        bicubic_db = psnr(hr_y, bicubic_luma(lr_y))
        results[name] = {"model_db": round(model_db, 4), "bicubic_db": round(bicubic_db, 4),
                         "gain_db": round(model_db - bicubic_db, 4)}
    mean_gain = float(np.mean([r["gain_db"] for r in results.values()]))
    return {"images": results, "mean_gain_db": round(mean_gain, 4)}


# ---------------------------------------------------------------- main

def versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnxruntime", "numpy", "pillow", "scikit-image"):
        found[package] = metadata.version(package)
    return found


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so no half file is left."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def model_card(proto_bytes: bytes, images, held_out, frames_eval, train_db, export_error,
               steps: int, wall_s: float, command: str) -> dict:
    parameters = int(sum(p.size for p in _initializers(proto_bytes)))
    return {
        "model": ONNX_NAME,
        "task": f"x{SCALE} single-image super-resolution of the luma (Y) channel",
        "scale": SCALE,
        "architecture": "ESPCN (Shi et al. 2016) with ReLU: Conv5x5 1->64 + ReLU, "
                        "Conv3x3 64->32 + ReLU, Conv3x3 32->9, DepthToSpace(3, CRD); "
                        "'same' zero padding",
        "parameters": parameters,
        "onnx": {"opset": OPSET, "ir_version": IR_VERSION, "bytes": len(proto_bytes),
                 "sha256": hashlib.sha256(proto_bytes).hexdigest(),
                 "input": {"name": INPUT_NAME, "shape": [1, 1, "H", "W"], "dtype": "float32",
                           "meaning": "luma Y / 255, Y from Pillow's YCbCr (BT.601 full range)"},
                 "output": {"name": OUTPUT_NAME, "shape": [1, 1, f"{SCALE}H", f"{SCALE}W"],
                            "dtype": "float32", "meaning": "luma in [0, 1] (clip before use)"},
                 "max_abs_diff_torch_vs_onnxruntime": export_error},
        "data": {
            "source": "scikit-image sample images (skimage.data), shipped with the package; "
                      "no download",
            "train_images": {n: list(images[n].shape) for n in TRAIN_IMAGES},
            "held_out_images": {n: list(images[n].shape) for n in HELD_OUT_IMAGES},
            "notes": "'motorcycle' = stereo_motorcycle()[0]; 'cat' (same photo as "
                     "'chelsea') is not used; images cropped top-left to multiples of 3",
            "degradation": "HR RGB uint8 -> Pillow Image.resize(BICUBIC) to 1/3 size "
                           "(antialiased) -> LR RGB uint8 -> luma",
        },
        "training": {"seed": SEED, "steps": steps, "batch": BATCH, "patch_lr": PATCH_LR,
                     "patch_hr": PATCH_LR * SCALE, "loss": "MSE on Y",
                     "optimizer": f"Adam lr {LEARNING_RATE}, cosine to {FINAL_LEARNING_RATE}",
                     "augmentation": "random crops, rot90, horizontal flip",
                     "sampling": "image chosen with probability proportional to its area",
                     "threads": 1, "wall_time_s": round(wall_s, 1),
                     "train_psnr_last_1000_steps_db": round(train_db, 3)},
        "evaluation": {
            "metric": "PSNR on Y in [0, 1] (peak 1), whole image, no border shave, "
                      "outputs clipped to [0, 1], model run with onnxruntime",
            "bicubic": "Pillow Image.resize(BICUBIC) x3 of the float LR luma (mode 'F')",
            "held_out": held_out,
            "frames": frames_eval,
        },
        "versions": versions(),
        "date": datetime.date.today().isoformat(),
        "script": "examples/models/train_espcn.py",
        "command": command,
    }


def _initializers(proto_bytes: bytes):
    import onnx
    from onnx import numpy_helper

    return [numpy_helper.to_array(t) for t in onnx.load_from_string(proto_bytes).graph.initializer]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the ONNX model, frames and card (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help="training steps (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    images = {name: load_rgb(name) for name in TRAIN_IMAGES + HELD_OUT_IMAGES}
    train_pairs = [luma_pair(images[name]) for name in TRAIN_IMAGES]
    start = time.monotonic()
    model, train_db = train(train_pairs, args.steps)
    wall_s = time.monotonic() - start

    proto_bytes = to_onnx(model).SerializeToString()
    session = onnxruntime.InferenceSession(proto_bytes, providers=["CPUExecutionProvider"])
    held_out_pairs = {name: luma_pair(images[name]) for name in HELD_OUT_IMAGES}
    export_error = check_export(model, session, held_out_pairs["camera"][1])
    held_out = evaluate(session, held_out_pairs)
    frames = make_frames(images)
    frame_pairs = {name: (hr.astype(np.float32) / 255, lr.astype(np.float32) / 255)
                   for name, hr, lr in zip(frames["names"], frames["hr_y"], frames["lr_y"])}
    frames_eval = evaluate(session, frame_pairs)

    command = "python examples/models/train_espcn.py" + (
        f" --steps {args.steps}" if args.steps != STEPS else "")
    card = model_card(proto_bytes, images, held_out, frames_eval, train_db, export_error,
                      args.steps, wall_s, command)
    write_atomically(args.out / ONNX_NAME, proto_bytes)
    write_atomically(args.out / FRAMES_NAME, npz_bytes(frames))
    write_atomically(args.out / CARD_NAME, (json.dumps(card, indent=2) + "\n").encode())
    print(json.dumps(card["evaluation"], indent=2))
    print(f"wrote {ONNX_NAME}, {FRAMES_NAME}, {CARD_NAME} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
