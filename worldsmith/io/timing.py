"""Frame timing and display orientation: pure helpers shared by the decode paths of ``video.py``.

* ``nearest_in_time`` turns frames with presentation times into a regular ``fps`` sequence by picking, for every
  output time ``k / fps``, the frame whose time is nearest (ties go to the earlier frame). The decoder feeds it real
  frames; the seeking path feeds it the same times paired with frame ranks, so both paths select identically.
* ``Orientation`` maps a stored frame to the displayed frame, following FFmpeg's own autorotate rules
  (``fftools``: transpose / hflip / vflip chosen from the display matrix).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import av
import numpy as np

from worldsmith.errors import VideoError

T = TypeVar("T")
TIE_S = 1e-9  # two frames closer than this to a target time count as equally near: the earlier one wins


def check_fps(fps: object) -> float:
    """``fps`` as a float, or VideoError when it is not a positive finite number."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise VideoError(f"fps must be a positive number, got {fps!r}.")
    return float(fps)


def frame_time(pts: int, origin: int, time_base: float) -> float:
    """Seconds since the first presented frame (one formula for every path, so floats compare exactly)."""
    return (pts - origin) * time_base


def nearest_in_time(timed: Iterable[tuple[float, T]], fps: float, default_step: float) -> Iterator[T]:
    """Items picked for output times ``0, 1/fps, 2/fps, ...`` from ``(time, item)`` pairs in presentation order.

    The clip ends one frame step after the last frame (the last step is the last gap between frames, or
    ``default_step`` for a single frame), so ``n`` frames at a steady rate ``r`` give ``ceil(n * fps / r)``.
    Up-sampling repeats items (the same object, consecutively); down-sampling skips them.
    """
    k = 0
    prev: tuple[float, T] | None = None
    last_step = default_step
    for t, item in timed:
        if prev is not None:
            prev_t, prev_item = prev
            while k / fps <= t:
                target = k / fps
                yield prev_item if target - prev_t <= t - target + TIE_S else item
                k += 1
            if t > prev_t:
                last_step = t - prev_t
        prev = (t, item)
    if prev is None:
        return
    prev_t, prev_item = prev
    end = prev_t + last_step
    while k / fps < end - TIE_S:
        yield prev_item
        k += 1


def is_irregular(pts: list[int], tolerance: float = 0.1) -> bool:
    """True when sorted timestamps are not evenly spaced (gaps differ from the median by > 10% and > 1 tick)."""
    if len(pts) < 3:
        return False
    gaps = np.diff(np.asarray(sorted(pts), dtype=np.float64))
    median = float(np.median(gaps))
    if median <= 0:
        return True
    return bool(np.any(np.abs(gaps - median) > max(tolerance * median, 1.0)))


@dataclass(frozen=True)
class Orientation:
    """How a stored frame becomes the displayed one: optional transpose, then optional vertical/horizontal flips."""

    rotation: int = 0  # clockwise degrees (0, 90, 180, 270) of "rotate, then maybe mirror left-right"
    transpose: bool = False
    vflip: bool = False
    hflip: bool = False

    @staticmethod
    def of(frame: av.VideoFrame) -> Orientation:
        """Read the frame's display matrix (FFmpeg attaches the stream's matrix or JPEG EXIF orientation)."""
        theta = int(round(-frame.rotation / 90.0)) * 90 % 360
        m = _display_matrix(frame)
        # FFmpeg's autorotate table (fftools/ffmpeg_filter.c); m[0], m[3], m[4] tell mirrored matrices apart.
        if theta == 90:
            transpose, vflip, hflip = True, False, m is None or m[3] <= 0
        elif theta == 180:
            transpose, vflip, hflip = False, m is None or m[4] < 0, m is None or m[0] < 0
        elif theta == 270:
            transpose, vflip, hflip = True, True, m is not None and m[3] < 0
        else:
            transpose, vflip, hflip = False, m is not None and m[4] < 0, False
        # Reported rotation: the transform written as "rotate clockwise, then maybe mirror left-right".
        rotation = {(False, False): 0, (True, False): 90, (False, True): 180, (True, True): 270}[(transpose, vflip)]
        return Orientation(rotation, transpose, vflip, hflip)

    def stored_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) before orientation of a frame displayed as (height, width)."""
        return (width, height) if self.transpose else (height, width)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) stored -> displayed, as a view (no copy)."""
        if self.transpose:
            image = image.swapaxes(0, 1)
        if self.vflip:
            image = image[::-1]
        if self.hflip:
            image = image[:, ::-1]
        return image


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The 3x3 display matrix as 9 int32, or None when absent or unreadable.

    PyAV raises ValueError while listing side data of a type it does not know (e.g. EXIF on JPEGs in FFmpeg 8);
    then only ``frame.rotation`` is used and a mirrored orientation is read as the plain rotation.
    """
    try:
        side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    except ValueError:
        return None
    if side is None:
        return None
    data = np.frombuffer(bytes(side), dtype=np.int32)
    return data if data.size == 9 else None


def output_count(num_frames: int, duration: float, fps: float) -> int:
    """Estimate of how many frames ``nearest_in_time`` yields for a clip (used to preallocate)."""
    return max(1, math.ceil(duration * fps - TIE_S)) if duration > 0 else num_frames
