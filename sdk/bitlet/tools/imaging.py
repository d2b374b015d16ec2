"""Image helpers for the demo and the CLI: PSNR, BT.601 colour conversion,
and PNG files through Pillow (a dependency; the PYNQ image ships it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bitlet.errors import BitletValueError


def psnr(x: np.ndarray, ref: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``x`` against ``ref`` (same shape).

    Returns ``inf`` for identical images.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape:
        raise BitletValueError(f"psnr: shapes differ: {x.shape} vs {ref.shape}")
    mse = float(np.mean((x - ref) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(peak * peak / mse)


def ycbcr_to_rgb(y: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """BT.601 full-range YCbCr (as Pillow's ``YCbCr`` mode) to uint8 RGB.

    Parameters
    ----------
    y : ndarray [H, W], float in [0, 255]
    cbcr : ndarray [H, W, 2], uint8 or float in [0, 255]

    Returns
    -------
    ndarray [H, W, 3] uint8
    """
    y = np.asarray(y, dtype=np.float64)
    cb = np.asarray(cbcr[..., 0], dtype=np.float64) - 128.0
    cr = np.asarray(cbcr[..., 1], dtype=np.float64) - 128.0
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 image ([H, W] grey or [H, W, 3] RGB) as a PNG (Pillow), atomically."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise BitletValueError(f"write_png: image must be uint8, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise BitletValueError(f"write_png: need [H, W] or [H, W, 3], got shape {image.shape}")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)  # never leave a half-written image behind
    return path


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (any format Pillow reads) as uint8 [H, W] (grey) or [H, W, 3]/[H, W, 4]."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "RGB", "RGBA"):
                img = img.convert("RGB")
            return np.asarray(img)
    except OSError as exc:
        raise BitletValueError(f"{path}: not a readable image ({exc})") from None
