"""H.264 mp4 encoding (libx264, yuv420p, BT.709 tags) from uint8 RGB frames.

yuv420p stores chroma at half resolution, so H.264 needs even sizes: an odd height or width is padded by one
row / column that repeats the last one (edge replication), and the decoded video has the padded size.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from worldsmith.atomic import atomic_open
from worldsmith.errors import VideoError
from worldsmith.io.timing import check_fps

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# x264's macroblock-tree rate control made different bytes (and different decoded pixels) on every encode of the
# same frames at widths whose chroma rows carry padding (160, 320 ...; multiples of 128 were stable): clips, their
# scores and shards must not change from run to run, so it is off (files ~5-10 % larger at the same crf).
DETERMINISTIC = {"x264-params": "mbtree=0"}
_BT709 = 1  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC value for ITU-R BT.709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG (16-235), what players expect from yuv420p


def encode_mp4(
    frames: np.ndarray | Iterable[np.ndarray],
    dest: str | os.PathLike | BinaryIO,
    fps: float,
    *,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Write uint8 (T, H, W, 3) frames (or an iterable of (H, W, 3) frames) as an H.264 mp4.

    A path is written atomically (temporary file, then rename); a file object receives the bytes in one write.
    ``crf`` is x264's constant quality (0 lossless-ish .. 51 worst; 18 is visually transparent).
    """
    if isinstance(dest, (str, os.PathLike)):
        label = os.fsdecode(os.fspath(dest))
        with atomic_open(label, "wb") as f:
            _encode(frames, f, fps, crf, preset, label)
    else:
        dest.write(encode_mp4_bytes(frames, fps, crf=crf, preset=preset))


def encode_mp4_bytes(
    frames: np.ndarray | Iterable[np.ndarray], fps: float, *, crf: int = 18, preset: str = "medium"
) -> bytes:
    """Same as ``encode_mp4`` but returns the mp4 as bytes (what shards store)."""
    buffer = io.BytesIO()
    _encode(frames, buffer, fps, crf, preset, "<bytes>")
    return buffer.getvalue()


def _encode(
    frames: np.ndarray | Iterable[np.ndarray], f: BinaryIO, fps: float, crf: int, preset: str, label: str
) -> None:
    rate = _frame_rate(fps)
    if not isinstance(crf, int) or not 0 <= crf <= 51:
        raise VideoError(f"crf must be an integer in [0, 51], got {crf!r}.")
    if preset not in PRESETS:
        raise VideoError(f"unknown x264 preset {preset!r}; use one of {', '.join(PRESETS)}.")
    images = _frames(frames)
    first = next(images, None)
    if first is None:
        raise VideoError(f"cannot encode {label}: no frames given; pass at least one (H, W, 3) frame.")
    height, width = first.shape[:2]
    try:
        with av.open(f, "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset, **DETERMINISTIC}
            codec = stream.codec_context
            codec.time_base = 1 / rate
            codec.colorspace = codec.color_primaries = codec.color_trc = _BT709
            codec.color_range = _LIMITED_RANGE
            reformatter = VideoReformatter()
            for index, image in enumerate(itertools.chain([first], images)):
                if image.shape != first.shape:
                    sizes = f"frame {index} is {image.shape[:2]}, frame 0 is {(height, width)}"
                    raise VideoError(f"cannot encode {label}: {sizes}; all frames must have one size.")
                frame = av.VideoFrame.from_ndarray(_pad_even(image), format="rgb24")
                frame = reformatter.reformat(frame, format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
                frame.pts, frame.time_base = index, codec.time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except av.FFmpegError as e:
        raise VideoError(f"cannot encode {label} with libx264 ({getattr(e, 'strerror', None) or e}).") from e


def _frames(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Validated uint8 (H, W, 3) frames from a (T, H, W, 3) array or an iterable of frames."""
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise VideoError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    for image in frames:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
            raise VideoError(f"each frame must be uint8 (H, W, 3) RGB (use to_uint8 for float tensors), got {got}.")
        if min(image.shape[:2]) < 1:
            raise VideoError(f"frames must be at least 1x1 pixels, got {image.shape[:2]}.")
        yield image


def _pad_even(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H + H % 2, W + W % 2, 3), repeating the last row / column."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if pad_h or pad_w:
        return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(image)


def _frame_rate(fps: float) -> Fraction:
    """fps as a fraction with a small denominator: 30 -> 30/1, 29.97 -> 2997/100, 30000/1001 stays NTSC."""
    return Fraction(check_fps(fps)).limit_denominator(1001)
