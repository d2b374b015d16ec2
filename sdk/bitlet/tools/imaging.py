"""Image helpers for the demo and the CLI: PSNR, BT.601 colour conversion,
and PNG files through Pillow (a dependency; the PYNQ image ships it)."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


# BT.601 full range (JFIF; Pillow's "YCbCr" mode, and the inverse of ycbcr_to_rgb)
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range RGB -> YCbCr, unrounded (the model sees Y as it is).

    Parameters
    ----------
    rgb : ndarray [H, W, 3], uint8 or float in [0, 255]

    Returns
    -------
    ndarray [3, H, W] float32: Y, Cb, Cr in [0, 255] (Cb, Cr centred on 128)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BitletValueError(f"rgb_to_ycbcr: need [H, W, 3], got shape {rgb.shape}")
    out = np.tensordot(_RGB_TO_YCBCR, rgb.astype(np.float64), axes=([1], [2]))
    out[1:] += 128.0
    return out.astype(np.float32)


def ycbcr_planes_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """YCbCr planes [3, H, W] (floats in [0, 255]) -> uint8 RGB [H, W, 3]
    (:func:`ycbcr_to_rgb` on the planes)."""
    ycbcr = np.asarray(ycbcr)
    return ycbcr_to_rgb(ycbcr[0], ycbcr[1:].transpose(1, 2, 0))


def bicubic_resize(planes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resampling of float image planes by Pillow (``Image.BICUBIC`` on
    mode ``"F"``: Keys' kernel, a = -0.5, antialiased when shrinking).

    Parameters
    ----------
    planes : ndarray [C, H, W] or [H, W], float
    height, width : int
        Output size in pixels.

    Returns
    -------
    ndarray [C, height, width] (or [height, width]) float32, not clipped
    """
    planes = np.asarray(planes, dtype=np.float32)
    squeeze = planes.ndim == 2
    stack = planes[None] if squeeze else planes
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(p), mode="F")
                               .resize((int(width), int(height)), Image.BICUBIC))
                    for p in stack]).astype(np.float32)
    return out[0] if squeeze else out


@lru_cache(maxsize=1)
def ssim_available() -> bool:
    """Whether :func:`ssim` can run (scikit-image is an optional dependency;
    looked up once per process: evaluations ask per output)."""
    return importlib.util.find_spec("skimage") is not None


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """Structural similarity by scikit-image, with the settings of Wang et al.
    2004 (Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population covariance).

    Parameters
    ----------
    x, ref : ndarray [..., H, W], one shape
        Grey images, or stacks of planes (averaged with equal weight).
    data_range : float, optional
        The value range (255 for 8-bit images); default: the range of ``ref``.

    Returns
    -------
    float
        1.0 for identical images; NaN when H or W is under 11 (the window).
    """
    try:
        from skimage.metrics import structural_similarity  # optional: only SSIM needs it
    except ImportError:
        raise BitletValueError("SSIM needs scikit-image: pip install scikit-image "
                               "(or 'bitlet[video]' / 'bitlet[cluster]')") from None
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape or x.ndim < 2:
        raise BitletValueError(f"ssim: need two [..., H, W] arrays of one shape, got {x.shape} and "
                               f"{ref.shape}")
    if min(x.shape[-2:]) < 11:
        return float("nan")
    if data_range is None:
        data_range = float(ref.max() - ref.min()) or 1.0
    planes = zip(x.reshape((-1,) + x.shape[-2:]), ref.reshape((-1,) + ref.shape[-2:]))
    return float(np.mean([structural_similarity(a, b, data_range=data_range, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)
                          for a, b in planes]))


def draw_label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` ([H, W, 3] uint8) with ``text`` written in its top-left
    corner (white on a darkened box, Pillow's default font)."""
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    _, _, right, bottom = draw.textbbox((2, 1), text, font=font)
    box = (0, 0, min(right + 2, out.width), min(bottom + 2, out.height))
    region = out.crop(box)
    out.paste(Image.fromarray(np.asarray(region) // 4), box[:2])
    draw.text((2, 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(out)
