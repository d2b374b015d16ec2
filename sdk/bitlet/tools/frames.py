"""Frame arithmetic for ``bitlet enhance``: colour conversion, bicubic
resampling, SSIM and text labels, in numpy only (no Pillow, no OpenCV), so
that the same code runs on a board image.
"""
from __future__ import annotations

import numpy as np

from bitlet.errors import BitletValueError

__all__ = ["bicubic_resize", "draw_label", "rgb_to_ycbcr", "ssim", "ycbcr_to_rgb_float"]

# BT.601 full range (JFIF; Pillow's "YCbCr" mode and bitlet.tools.imaging.ycbcr_to_rgb)
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range RGB -> YCbCr.

    Parameters
    ----------
    rgb : ndarray [H, W, 3], uint8 or float in [0, 255]

    Returns
    -------
    ndarray [3, H, W] float32, Y, Cb, Cr in [0, 255] (Cb, Cr centred on 128)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BitletValueError(f"rgb_to_ycbcr: need [H, W, 3], got shape {rgb.shape}")
    out = np.tensordot(_RGB_TO_YCBCR, rgb.astype(np.float64), axes=([1], [2]))
    out[1:] += 128.0
    return out.astype(np.float32)


def ycbcr_to_rgb_float(ycbcr: np.ndarray) -> np.ndarray:
    """BT.601 full-range YCbCr [3, H, W] (floats in [0, 255]) -> uint8 RGB [H, W, 3]."""
    y = ycbcr[0].astype(np.float32)
    cb = ycbcr[1].astype(np.float32) - np.float32(128.0)
    cr = ycbcr[2].astype(np.float32) - np.float32(128.0)
    rgb = np.empty(y.shape + (3,), np.float32)
    rgb[..., 0] = y + np.float32(1.402) * cr
    rgb[..., 1] = y - np.float32(0.344136) * cb - np.float32(0.714136) * cr
    rgb[..., 2] = y + np.float32(1.772) * cb
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5, as Pillow's BICUBIC)."""
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((x - 5) * x + 8) * x * a - 4 * a, 0.0))


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Bicubic taps along one axis: source indices and weights, each [n_out, T]
    (half-pixel centres, edges clamped)."""
    scale = n_in / n_out
    support = 2.0 * max(scale, 1.0)  # widened when shrinking (antialiasing), as Pillow does
    centre = (np.arange(n_out) + 0.5) * scale
    taps = np.arange(int(np.floor(-support)), int(np.ceil(support)) + 1)
    src = np.floor(centre)[:, None] + taps[None, :]
    w = _cubic((src + 0.5 - centre[:, None]) / max(scale, 1.0))
    w /= w.sum(axis=1, keepdims=True)
    return np.clip(src.astype(np.intp), 0, n_in - 1), w.astype(np.float32)


def bicubic_resize(planes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resampling of image planes (Keys, a = -0.5; edges clamped).

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
    if squeeze:
        planes = planes[None]
    idx, w = _taps(planes.shape[1], height)
    rows = np.zeros((planes.shape[0], height, planes.shape[2]), np.float32)
    for k in range(idx.shape[1]):  # rows, then columns: a few taps each
        rows += w[None, :, k, None] * planes[:, idx[:, k], :]
    idx, w = _taps(planes.shape[2], width)
    out = np.zeros((planes.shape[0], height, width), np.float32)
    for k in range(idx.shape[1]):
        out += w[None, None, :, k] * rows[:, :, idx[:, k]]
    return out[0] if squeeze else out


def _gaussian_filter(img: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian filter, 'valid' region only ([H - 2r, W - 2r])."""
    x = np.arange(-radius, radius + 1)
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    g /= g.sum()
    rows = sum(g[i] * img[i:img.shape[0] - 2 * radius + i] for i in range(2 * radius + 1))
    return sum(g[i] * rows[:, i:img.shape[1] - 2 * radius + i] for i in range(2 * radius + 1))


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004: Gaussian window 11x11, sigma
    1.5, K1 = 0.01, K2 = 0.03) of two grey images [H, W] (H, W >= 11),
    averaged over the valid window positions."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape or x.ndim != 2:
        raise BitletValueError(f"ssim: need two [H, W] images of one shape, got {x.shape} and "
                               f"{ref.shape}")
    if min(x.shape) < 11:
        raise BitletValueError(f"ssim: images must be at least 11x11, got {x.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    filt = _gaussian_filter
    mx, my = filt(x), filt(ref)
    sxx = filt(x * x) - mx * mx
    syy = filt(ref * ref) - my * my
    sxy = filt(x * ref) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


# 5x7 glyphs of the characters the labels use
_GLYPHS = {
    " ": ["....."] * 7,
    "B": ["1111.", "1...1", "1...1", "1111.", "1...1", "1...1", "1111."],
    "b": ["1....", "1....", "1.11.", "11..1", "1...1", "1...1", "1111."],
    "c": [".....", ".....", ".111.", "1....", "1....", "1....", ".111."],
    "e": [".....", ".....", ".111.", "1...1", "11111", "1....", ".111."],
    "i": ["..1..", ".....", ".11..", "..1..", "..1..", "..1..", ".111."],
    "l": [".11..", "..1..", "..1..", "..1..", "..1..", "..1..", ".111."],
    "t": ["..1..", "..1..", "11111", "..1..", "..1..", "..1.1", "...1."],
    "u": [".....", ".....", "1...1", "1...1", "1...1", "1..11", ".11.1"],
    "x": [".....", ".....", "1...1", ".1.1.", "..1..", ".1.1.", "1...1"],
    "0": [".111.", "1...1", "1..11", "1.1.1", "11..1", "1...1", ".111."],
    "1": ["..1..", ".11..", "..1..", "..1..", "..1..", "..1..", ".111."],
    "2": [".111.", "1...1", "....1", "...1.", "..1..", ".1...", "11111"],
    "3": ["11111", "...1.", "..1..", "...1.", "....1", "1...1", ".111."],
    "4": ["...1.", "..11.", ".1.1.", "1..1.", "11111", "...1.", "...1."],
    "5": ["11111", "1....", "1111.", "....1", "....1", "1...1", ".111."],
    "6": ["..11.", ".1...", "1....", "1111.", "1...1", "1...1", ".111."],
    "7": ["11111", "....1", "...1.", "..1..", ".1...", ".1...", ".1..."],
    "8": [".111.", "1...1", "1...1", ".111.", "1...1", "1...1", ".111."],
    "9": [".111.", "1...1", "1...1", ".1111", "....1", "...1.", ".11.."],
}


def draw_label(image: np.ndarray, text: str, scale: int | None = None) -> np.ndarray:
    """Write ``text`` (white on a dark box) into the top-left corner of a copy of ``image``.

    Parameters
    ----------
    image : ndarray [H, W, 3] uint8
    text : str
        Characters of ``B b c e i l t u x``, digits and space.
    scale : int, optional
        Pixels per font pixel (default: 1 per 120 rows of the image, at least 1).
    """
    bad = sorted(set(text) - set(_GLYPHS))
    if bad:
        raise BitletValueError(f"draw_label: no glyph for {bad}")
    out = np.array(image, dtype=np.uint8, copy=True)
    s = max(1, out.shape[0] // 120) if scale is None else int(scale)
    bitmap = np.concatenate([np.array([[c == "1" for c in row] + [False] for row in _GLYPHS[ch]])
                             for ch in text], axis=1)
    bitmap = np.pad(bitmap, 1).repeat(s, axis=0).repeat(s, axis=1)
    h, w = min(bitmap.shape[0], out.shape[0]), min(bitmap.shape[1], out.shape[1])
    box = out[:h, :w]
    box[...] = box // 4  # darken the box: readable on any picture
    box[bitmap[:h, :w]] = 255
    return out
