"""Frame sources and sinks of ``bitlet enhance``: video files, image folders
and globs, cameras in; H.264 video or a folder of PNGs out.

Video decoding and encoding use PyAV (``pip install "bitlet[video]"``), whose
wheels bundle FFmpeg with its codecs (libx264 included): no system ffmpeg is
needed.  PNG folders in and out need nothing beyond numpy (PNGs other tools
wrote with row filters are decoded through PyAV when it is installed).
"""
from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bitlet.errors import BitletValueError
from bitlet.tools.imaging import read_image, write_png

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "FrameSink", "FrameSource", "open_sink",
           "open_source", "require_av"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_FPS = Fraction(25)
MISSING_AV = ("video files and cameras need PyAV: pip install 'bitlet[video]' (or: pip install av); "
              "folders of PNG images work without it")


def require_av() -> Any:
    """Import PyAV, or raise one clear :class:`BitletValueError` naming the extra."""
    try:
        import av  # optional: the `video` extra (PyAV bundles FFmpeg and its codecs)
    except ImportError:
        raise BitletValueError(MISSING_AV) from None
    return av


@dataclass
class FrameSource:
    """Frames of one input: ``iter(source)`` yields uint8 RGB [H, W, 3].

    Attributes
    ----------
    describe : str
        What was opened (for messages).
    fps : Fraction
        Frame rate (a video's own; 25 for images).
    count : int or None
        Frames, when known before decoding.
    """

    describe: str
    fps: Fraction
    count: int | None
    _frames: Any
    _close: Any = None

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            yield from self._frames
        finally:
            if self._close is not None:
                self._close()


def _image(path: Path) -> np.ndarray:
    """One image (any format Pillow reads) as uint8 RGB [H, W, 3]."""
    img = read_image(path)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _images(paths: list[Path], describe: str, max_frames: int | None) -> FrameSource:
    if not paths:
        raise BitletValueError(f"{describe}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    paths = paths[:max_frames] if max_frames is not None else paths
    return FrameSource(f"{describe} ({len(paths)} images)", DEFAULT_FPS, len(paths),
                       (_image(p) for p in paths))


def _video(av: Any, container: Any, describe: str, max_frames: int | None) -> FrameSource:
    if not container.streams.video:
        container.close()
        raise BitletValueError(f"{describe}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
    count = int(stream.frames) or None
    if max_frames is not None:
        count = min(count, max_frames) if count else None

    def frames() -> Iterator[np.ndarray]:
        try:
            for n, frame in enumerate(container.decode(stream)):
                if max_frames is not None and n >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise BitletValueError(f"{describe}: decoding failed: {exc}") from None

    return FrameSource(describe, Fraction(fps), count, frames(), container.close)


def _camera(index: int, max_frames: int | None) -> FrameSource:
    av = require_av()
    if sys.platform.startswith("linux"):
        url, fmt = f"/dev/video{index}", "v4l2"
    elif sys.platform == "darwin":
        url, fmt = str(index), "avfoundation"
    else:
        raise BitletValueError(f"camera {index}: cameras are opened through v4l2 (Linux) or "
                               "avfoundation (macOS); on this system give a video file or images")
    try:
        container = av.open(url, format=fmt)
    except (av.FFmpegError, OSError) as exc:
        raise BitletValueError(f"camera {index} ({url}): cannot open it: {exc}") from None
    return _video(av, container, f"camera {index} ({url})", max_frames)


def open_source(spec: str, max_frames: int | None = None) -> FrameSource:
    """Open a video file, a folder or glob of images, or a camera index.

    Parameters
    ----------
    spec : str
        ``clip.mp4`` (any container FFmpeg reads), ``frames/`` (its images in
        name order), ``'frames/*.png'``, ``0`` (camera 0), or one image.
    max_frames : int, optional
        Stop after this many frames.
    """
    if max_frames is not None and max_frames < 1:
        raise BitletValueError(f"--max-frames must be >= 1, got {max_frames}")
    if spec.isdigit():
        return _camera(int(spec), max_frames)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return _images(files, f"folder {spec}", max_frames)
    if any(c in spec for c in "*?[") and not path.exists():
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        return _images(files, f"glob {spec!r}", max_frames)
    if not path.exists():
        raise BitletValueError(f"input {spec}: no such file, folder or camera")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _images([path], f"image {spec}", max_frames)
    av = require_av()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise BitletValueError(f"input {spec}: not a video FFmpeg can read ({exc})") from None
    return _video(av, container, f"video {spec}", max_frames)


class FrameSink:
    """Where enhanced frames go: ``write(rgb)`` uint8 [H, W, 3], then ``close()``.

    A video (H.264, yuv420p) needs even sizes: an odd last row or column is
    dropped, and ``note`` says so.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction, crf: int = 18) -> None:
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.count = 0
        self.note = ""
        self.is_video = self.path.suffix.lower() in VIDEO_SUFFIXES
        self._container: Any = None
        self._stream: Any = None
        if self.is_video:
            self._av = require_av()
            if not self.path.parent.is_dir():
                raise BitletValueError(f"output {path}: folder {self.path.parent} does not exist")
        else:
            if self.path.suffix and not self.path.is_dir():
                raise BitletValueError(f"output {path}: give a video ({', '.join(VIDEO_SUFFIXES)}) "
                                       "or a folder for PNG frames")
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, rgb: np.ndarray) -> None:
        if not self.is_video:
            write_png(self.path / f"{self.count:06d}.png", rgb)
            self.count += 1
            return
        av = self._av
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if self._stream is None:
            if (h, w) != rgb.shape[:2]:
                self.note = (f"H.264 (yuv420p) needs even sizes: frames of {rgb.shape[1]}x"
                             f"{rgb.shape[0]} written as {w}x{h} (last odd column/row dropped)")
            self._tmp = self.path.with_name(self.path.stem + ".part" + self.path.suffix)
            self._container = av.open(str(self._tmp), "w")
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf)}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.count += 1

    def close(self, ok: bool = True) -> None:
        """Finish the file (``ok``) or remove the partial one."""
        if self._container is None:
            return
        try:
            if ok:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
        if ok:
            os.replace(self._tmp, self.path)  # never leave a half-written video behind
        else:
            self._tmp.unlink(missing_ok=True)


def open_sink(path: str | os.PathLike, fps: Fraction) -> FrameSink:
    """A video (by its suffix: H.264) or a folder of PNGs (``000000.png``, ...)."""
    return FrameSink(path, fps)
