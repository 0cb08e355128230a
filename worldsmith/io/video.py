"""Video I/O on PyAV: probe, decode, stream, encode mp4, contact sheets, torch conversion.

Conventions (every module in worldsmith relies on them):

* Frames are RGB ``uint8 (T, H, W, 3)`` in presentation order, with the display rotation applied: a phone video
  stored landscape with a 90 degree display matrix decodes portrait, and ``probe`` reports the displayed size.
  Mirroring in the display matrix (or JPEG EXIF orientation) is applied the way FFmpeg's autorotate does.
* Pixels come out square: a stored frame whose sample aspect ratio is not 1 (704x576 PAL at 16:11, shown 16:9) is
  resized to its display size first, its height kept and its width scaled (``round(width * sar)``: 1024x576),
  as players and FFmpeg's ``scale=iw*sar:ih`` do; ``probe`` reports that size.
* A source is a path, in-memory bytes (shards hold mp4 bytes) or a binary file object.
* ``fps=None`` returns every frame. ``fps=f`` resamples to a regular rate: output frame ``k`` (time ``k / f``
  after the first frame) is the source frame whose presentation time is nearest (ties: the earlier frame), so
  variable-frame-rate input comes out regular. The clip lasts until one frame step after its last frame, so
  ``n`` frames at rate ``r`` give ``ceil(n * f / r)`` outputs.
* ``start`` / ``end`` / ``max_frames`` index the *output* (after resampling): ``decode(x, start=s, end=e)``
  equals ``decode(x)[s:e]`` exactly, even though it seeks to a keyframe near ``s`` instead of decoding from 0.
* ``size=int`` resizes so the short side has that many pixels (aspect kept, rounded); ``size=(H, W)`` resizes
  to exactly H x W (aspect not kept). Downscaling uses area averaging, upscaling bicubic (FFmpeg swscale).
* Images (PNG, JPEG, ...) are 1-frame videos: ``probe`` reports fps 1, duration 1 s, and ``fps`` is ignored.
* Encoding writes H.264 yuv420p in mp4 tagged BT.709. yuv420p needs even sizes, so an odd height or width is
  padded by one row / column replicating the edge; decoding returns the padded (even) size.
* Torch tensors are ``float32 (3, T, H, W)`` or ``(B, 3, T, H, W)`` in [-1, 1] (``to_tensor`` / ``to_uint8``).
* Every failure (missing, empty, truncated, non-video or audio-only input; any PyAV/FFmpeg error) raises one
  ``VideoError`` naming the file. A truncated file decodes up to the damage when at least one frame decodes.
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter

from worldsmith.errors import VideoError
from worldsmith.io.contact_sheet import contact_sheet
from worldsmith.io.encode import encode_mp4, encode_mp4_bytes
from worldsmith.io.source import Source, VideoInput
from worldsmith.io.timing import Orientation, check_fps, frame_time, is_irregular, nearest_in_time, output_count

__all__ = [
    "Source", "VideoError", "VideoInfo", "probe", "decode", "iter_frames", "to_tensor", "to_uint8",
    "encode_mp4", "encode_mp4_bytes", "contact_sheet",
]  # fmt: skip

Size = int | tuple[int, int]

log = logging.getLogger(__name__)
_HEAD_PACKETS = 120  # packets probe reads to detect a variable frame rate
_MAX_PREALLOC_BYTES = 1 << 31  # decode() grows its output past this instead of reserving it up front


@dataclass
class VideoInfo:
    path: str  # "<bytes>" for in-memory input
    width: int  # displayed width (square pixels: after the sample aspect ratio, then rotation)
    height: int  # displayed height (square pixels: after the sample aspect ratio, then rotation)
    fps: float  # average frame rate
    num_frames: int  # exact count when the container indexes it, else duration * fps
    duration: float  # seconds
    codec: str
    rotation: int  # clockwise display rotation applied on decode: 0, 90, 180 or 270 (a mirror is applied too)
    is_image: bool
    variable_fps: bool  # best effort: uneven timestamps among the first packets
    has_audio: bool
    sample_aspect: float = 1.0  # width / height of a stored pixel (decoded frames are resized to square pixels)


def probe(source: Source) -> VideoInfo:
    """Describe a video or image without decoding it (one frame is decoded to read the display rotation)."""
    with VideoInput(source) as src, src.wrapped():
        first, pts = src.head(_HEAD_PACKETS)
        stream = src.stream
        if first is None and (src.is_image or not stream.width or not stream.height):
            kind = "image" if src.is_image else "video"  # e.g. a PNG signature in a file named .mp4
            raise VideoError(f"{src.label} is a corrupt {stream.codec_context.name} {kind}: no frame of it "
                             "decodes; re-export or re-download it.")  # fmt: skip
        orientation = Orientation.of(first) if first is not None else Orientation()
        stored_h, stored_w = (first.height, first.width) if first is not None else (stream.height, stream.width)
        sar = src.sample_aspect
        height, width = orientation.stored_size(stored_h, _square_width(stored_w, sar))  # transposing: own inverse
        if src.is_image:
            fps, num_frames, duration, variable = 1.0, 1, 1.0, False
        else:
            fps = src.rate or _rate_from_pts(pts, src.time_base) or 30.0
            duration = src.duration()
            num_frames = stream.frames if stream.frames > 0 else max(1, round(duration * fps))
            duration = duration or num_frames / fps
            variable = is_irregular(pts)
        return VideoInfo(
            path=src.label,
            width=width,
            height=height,
            fps=fps,
            num_frames=num_frames,
            duration=duration,
            codec=stream.codec_context.name,
            rotation=orientation.rotation,
            is_image=src.is_image,
            variable_fps=variable,
            has_audio=bool(src.container.streams.audio),
            sample_aspect=float(sar),
        )


def decode(
    source: Source,
    *,
    start: int = 0,
    end: int | None = None,
    fps: float | None = None,
    size: Size | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Frames ``[start, end)`` (indices after ``fps`` resampling, at most ``max_frames``) as uint8 (T, H, W, 3)."""
    _check_options(fps, size)
    if start < 0 or (end is not None and end < 0) or (max_frames is not None and max_frames < 0):
        raise VideoError(f"decode needs start, end and max_frames >= 0, got {start}, {end}, {max_frames}.")
    stop = end if max_frames is None else start + max_frames if end is None else min(end, start + max_frames)
    src = VideoInput(source)
    try:
        with src.wrapped():
            fps = None if src.is_image else fps
            if start > 0 and src.seekable and not src.is_image:
                frames = _decode_seeking(src, start, stop, fps, size)
                if frames is not None:
                    return frames
                src = src.reopen()
            slots = nearest_in_time(src.timed_frames(), fps, src.step) if fps else src.frames()
            return _collect(slots, start, stop, size, _capacity(src, fps, start, stop), src.sample_aspect)
    finally:
        src.close()


def iter_frames(
    source: Source, *, fps: float | None = None, size: Size | None = None, start: int = 0
) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) frames one at a time (same selection as ``decode``), holding one frame in memory.

    ``start``: the first frame to yield; a seekable file seeks to the keyframe before it (the frames are the ones
    decoding from the start gives, as in ``decode``). The source is opened (and bad input raises) when this is
    called, not at the first ``next``.
    """
    _check_options(fps, size)
    if start < 0:
        raise VideoError(f"iter_frames needs start >= 0, got {start}.")
    first = VideoInput(source)

    def generate() -> Iterator[np.ndarray]:
        src, done, used = first, 0, False  # used: this input was demuxed or decoded (a fresh read must reopen)
        try:
            use_fps = None if src.is_image else fps
            seeking = start > 0 and src.seekable and not src.is_image
            while True:
                with src.wrapped():
                    frames = None
                    if seeking:  # only the first time round
                        frames, used, seeking = _seek_wanted(src, start, None, use_fps), True, False
                    if frames is None:
                        src = src.reopen() if used else src
                        used = True
                        slots = nearest_in_time(src.timed_frames(), use_fps, src.step) if use_fps else src.frames()
                        frames = itertools.islice(slots, start + done, None)
                    convert, last, image = None, None, None
                    try:
                        for frame in frames:
                            convert = convert or _Converter(frame, size, src.sample_aspect)
                            image = image.copy() if frame is last else np.ascontiguousarray(convert(frame))
                            last = frame
                            done += 1
                            yield image
                        return
                    except LookupError as e:  # the seek went wrong after all: go on from the start of the file
                        log.info("%s: seeking gave up (%s); decoding from the start", src.label, e)
        finally:
            src.close()

    return generate()


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) in [-1, 1]; a batch (B, T, H, W, 3) -> (B, 3, T, H, W)."""
    ok = isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim in (4, 5)
    if not ok or frames.shape[-1] != 3:
        raise VideoError(f"to_tensor needs uint8 (T, H, W, 3) or (B, T, H, W, 3) frames, got {_describe(frames)}.")
    x = torch.from_numpy(np.ascontiguousarray(frames))
    x = x.permute(3, 0, 1, 2) if x.ndim == 4 else x.permute(0, 4, 1, 2, 3)  # (T,H,W,3)->(3,T,H,W)
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(127.5).sub_(1.0)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) or (B, 3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3) / (B, T, H, W, 3), clamped, rounded."""
    channel_dim = video.ndim - 4 if isinstance(video, torch.Tensor) else -1
    if channel_dim not in (0, 1) or video.shape[channel_dim] != 3:
        raise VideoError(f"to_uint8 needs a tensor (3, T, H, W) or (B, 3, T, H, W), got {_describe(video)}.")
    x = torch.nan_to_num(video.detach().to(torch.float32), nan=0.0).clamp_(-1.0, 1.0)
    x = x.add_(1.0).mul_(127.5).round_().to(torch.uint8)
    x = x.permute(1, 2, 3, 0) if x.ndim == 4 else x.permute(0, 2, 3, 4, 1)  # (3,T,H,W)->(T,H,W,3)
    return np.ascontiguousarray(x.cpu().numpy())


class _Converter:
    """Decoded frame -> displayed RGB array at the output size, reusing one swscale context for the whole clip."""

    def __init__(self, first: av.VideoFrame, size: Size | None, sar: Fraction = Fraction(1)) -> None:
        self.orientation = Orientation.of(first)
        display_h, display_w = self.orientation.stored_size(first.height, _square_width(first.width, sar))
        out_h, out_w = _output_size(display_h, display_w, size)
        self.height, self.width = self.orientation.stored_size(out_h, out_w)
        self.shape = (out_h, out_w, 3)
        resized = (self.height, self.width) != (first.height, first.width)
        shrinking = self.height * self.width <= first.height * first.width
        self.interpolation = (Interpolation.AREA if shrinking else Interpolation.BICUBIC) if resized else None
        self.reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = self.reformatter.reformat(
            frame, width=self.width, height=self.height, format="rgb24", interpolation=self.interpolation
        )
        return self.orientation.apply(rgb.to_ndarray())  # (H, W, 3) view into the converted frame


def _collect(
    slots: Iterator[av.VideoFrame], start: int, stop: int | None, size: Size | None, capacity: int, sar: Fraction
) -> np.ndarray:
    """Convert output slots ``[start, stop)`` into one array; a repeated frame (up-sampling) is converted once."""
    convert, out, count, last = None, None, 0, None
    for index, frame in enumerate(slots):
        if stop is not None and index >= stop:
            break
        convert = convert or _Converter(frame, size, sar)
        if index < start:
            continue
        if out is None:
            frame_bytes = math.prod(convert.shape)
            out = np.empty((max(1, min(capacity, _MAX_PREALLOC_BYTES // frame_bytes)), *convert.shape), np.uint8)
        elif count == len(out):
            out = np.concatenate([out, np.empty_like(out)])
        out[count] = out[count - 1] if frame is last else convert(frame)
        last, count = frame, count + 1
    if out is None:
        shape = convert.shape if convert is not None else (0, 0, 3)
        return np.empty((0, *shape), np.uint8)
    return out[:count] if count * 4 >= len(out) * 3 else out[:count].copy()  # copy only to give back a lot


def _decode_seeking(
    src: VideoInput, start: int, stop: int | None, fps: float | None, size: Size | None
) -> np.ndarray | None:
    """Seek to the keyframe before the first wanted frame and decode from there; None means "decode from 0"."""
    try:
        frames = _seek_wanted(src, start, stop, fps)
        if frames is None:
            return None
        return _collect(frames, 0, None, size, _capacity(src, fps, start, stop), src.sample_aspect)
    except (av.FFmpegError, VideoError, LookupError) as e:
        log.info("%s: seeking gave up (%s); decoding from the start", src.label, e)
        return None


def _seek_wanted(src: VideoInput, start: int, stop: int | None, fps: float | None) -> Iterator[av.VideoFrame] | None:
    """The decoded frames ``[start, stop)`` after seeking to the keyframe before ``start``; None where that cannot
    work (then decode from 0). The iterator raises LookupError if a frame does not come out where it should.

    The exact frame order comes from packet timestamps (demuxed, not decoded, and only as far as the range
    needs), so the result equals decoding from the start; any surprise (missing or duplicate timestamps, a
    frame that does not come out after the seek) gives up instead of guessing.
    """
    keyframes: list[int] = []
    order: list[int] = []  # pts by presentation rank, as far as demuxed
    rank: dict[int, int] = {}

    def ranked() -> Iterator[int]:
        for pts in src.presentation_order(keyframes):
            if pts in rank:
                raise LookupError("two frames share a timestamp")
            rank[pts] = len(order)
            order.append(pts)
            yield rank[pts]

    try:
        if fps:
            timed = ((frame_time(order[i], order[0], src.time_base), i) for i in ranked())
            wanted = list(itertools.islice(nearest_in_time(timed, fps, src.step), start, stop))
        else:
            wanted = list(itertools.islice(ranked(), start, stop))
        if not wanted:
            return None  # past the end: let the plain path work out the (empty) result and its shape
        first_pts = order[wanted[0]]
        key_pts = max((k for k in keyframes if k <= first_pts), default=None)
        if key_pts is None:
            return None
        src.container.seek(key_pts, stream=src.stream)  # FFmpeg seeks by presentation time (mov, mkv, webm)
    except (av.FFmpegError, LookupError) as e:
        log.info("%s: seeking gave up (%s); decoding from the start", src.label, e)
        return None
    return _wanted_frames(src, rank, wanted)


def _wanted_frames(src: VideoInput, rank: dict[int, int], wanted: list[int]) -> Iterator[av.VideoFrame]:
    """Decoded frames for each wanted rank, in order (repeats allowed), checking nothing was skipped."""
    j = 0
    for frame in src.frames():
        r = rank.get(frame.pts)
        if r is None or r > wanted[j]:
            raise LookupError(f"frame {wanted[j]} did not come out after the seek")
        while j < len(wanted) and wanted[j] == r:
            yield frame
            j += 1
        if j == len(wanted):
            return
    raise LookupError(f"the stream ended before frame {wanted[j]}")


def _capacity(src: VideoInput, fps: float | None, start: int, stop: int | None) -> int:
    """How many output frames to reserve: exact for indexed containers at native rate, else an estimate."""
    if src.is_image:
        return 1
    duration = src.duration()
    n = src.stream.frames or max(1, round(duration * src.rate))
    if fps:
        n = output_count(n, duration, fps)
    if stop is not None:
        n = min(n, stop)
    return max(1, n - start)


def _square_width(width: int, sar: Fraction) -> int:
    """Stored width -> width in square pixels (the height is kept)."""
    return width if sar == 1 else max(1, round(width * sar))


def _output_size(height: int, width: int, size: Size | None) -> tuple[int, int]:
    if size is None:
        return height, width
    if isinstance(size, numbers.Integral):
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return int(size[0]), int(size[1])


def _check_options(fps: float | None, size: Size | None) -> None:
    if fps is not None:
        check_fps(fps)
    pair = isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_side(s) for s in size)
    if size is not None and not (_is_side(size) or pair):
        raise VideoError(f"size must be None, a short side (int > 0) or (height, width), got {size!r}.")


def _is_side(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _rate_from_pts(pts: list[int], time_base: float) -> float:
    gaps = np.diff(np.asarray(sorted(pts), dtype=np.float64)) * time_base
    gaps = gaps[gaps > 0]
    return float(1.0 / np.median(gaps)) if gaps.size else 0.0


def _describe(x: object) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
