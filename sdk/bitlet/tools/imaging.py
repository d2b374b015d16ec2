"""Small, dependency-free image helpers for the demo and the CLI.

Only numpy and the standard library (zlib) are used, so the demo runs on a
board image without Pillow.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from bitlet.errors import BitletValueError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPE = {1: 0, 3: 2}  # channels -> PNG colour type (grey, RGB)


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
    """Write a uint8 image ([H, W] grey or [H, W, 3] RGB) as an 8-bit PNG."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise BitletValueError(f"write_png: image must be uint8, got {image.dtype}")
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    if channels not in _PNG_COLOR_TYPE:
        raise BitletValueError(f"write_png: need [H, W] or [H, W, 3], got shape {image.shape}")
    height, width = image.shape[:2]
    rows = image.reshape(height, width * channels)
    raw = b"".join(b"\x00" + rows[r].tobytes() for r in range(height))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(_PNG_SIGNATURE + chunk(b"IHDR", header)
                    + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp.replace(path)  # never leave a half-written image behind
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Read an 8-bit grey or RGB PNG written by :func:`write_png` (no interlace)."""
    data = Path(path).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise BitletValueError(f"{path}: not a PNG file")
    pos, idat, header = len(_PNG_SIGNATURE), b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if header is None:
        raise BitletValueError(f"{path}: PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {v: k for k, v in _PNG_COLOR_TYPE.items()}.get(color)
    if depth != 8 or channels is None or interlace:
        raise BitletValueError(f"{path}: only 8-bit grey/RGB non-interlaced PNG is supported")
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    if np.any(raw[:, 0] != 0):
        raise BitletValueError(f"{path}: PNG row filters other than 'None' are not supported")
    rows = raw[:, 1:]
    return rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
