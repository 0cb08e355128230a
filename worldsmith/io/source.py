"""Opening a video source (path, bytes or file object) with PyAV, turning every failure into one VideoError.

``VideoInput`` holds the container and its video stream, and yields packets and decoded frames in the forms the
decoders in ``video.py`` need. Messages name the file (``"<bytes>"`` for in-memory input) and say what to do.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import BinaryIO

import av

from worldsmith.errors import VideoError
from worldsmith.io.timing import frame_time

Source = str | os.PathLike | bytes | BinaryIO

log = logging.getLogger(__name__)
_HEAD_BYTES = 16  # enough to recognise mp4 (ftyp) and Matroska/WebM (EBML) headers


class VideoInput:
    """An opened source: the container, its first real video stream (not cover art), and a label for messages."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.label, target, self.seekable, head = _resolve(source)
        self._offset = source.tell() if self.seekable and hasattr(source, "read") else 0
        try:
            self.container = av.open(target, metadata_errors="ignore")
        except av.FFmpegError as e:
            raise _unreadable(self.label, head, e) from e
        try:
            self.stream = self._video_stream()
        except BaseException:
            self.container.close()
            raise
        self.stream.thread_type = "AUTO"  # frame + slice threads in FFmpeg's decoder
        name = self.container.format.name
        self.is_image = name == "image2" or name.endswith("pipe")  # png_pipe, jpeg_pipe, webp_pipe, ...
        self.time_base = float(self.stream.time_base or 0) or 1e-6
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate = float(rate) if rate and rate > 0 else 0.0

    def _video_stream(self) -> av.video.stream.VideoStream:
        if self.container.format.name == "tty":  # FFmpeg renders any *.txt as ANSI art
            raise VideoError(f"{self.label} is not a video PyAV can read (it looks like text); pass a video or image.")
        streams = [s for s in self.container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if streams:
            return streams[0]
        if self.container.streams.audio:
            raise VideoError(f"{self.label} has no video stream (audio only); pass a file with a video track.")
        raise VideoError(f"{self.label} has no video stream; pass a video or image file.")

    def reopen(self) -> VideoInput:
        """A fresh input on the same source, from its start (this one is closed)."""
        self.close()
        return VideoInput(self.source)

    def close(self) -> None:
        """Close the container; a seekable file object is put back where it was, ready for the next reader."""
        self.container.close()
        if self.seekable and hasattr(self.source, "seek") and not getattr(self.source, "closed", False):
            self.source.seek(self._offset)

    def __enter__(self) -> VideoInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def wrapped(self) -> Iterator[None]:
        """Turn any PyAV error escaping the block into a VideoError naming this input."""
        try:
            yield
        except av.FFmpegError as e:
            raise VideoError(f"{self.label} could not be decoded ({why(e)}); it may be corrupt.") from e

    @property
    def sample_aspect(self) -> Fraction:
        """Width / height of one stored pixel (16/11 for 704x576 PAL shown at 16:9), 1 when unset or invalid.

        The container's value wins over the codec's, as in FFmpeg's ``av_guess_sample_aspect_ratio``."""
        for ratio in (self.stream.sample_aspect_ratio, self.stream.codec_context.sample_aspect_ratio):
            if ratio and ratio > 0:
                return Fraction(ratio)
        return Fraction(1)

    @property
    def step(self) -> float:
        """Average seconds per frame (1/30 when the file gives no rate)."""
        return 1.0 / self.rate if self.rate > 0 else 1.0 / 30.0

    def duration(self) -> float:
        if self.stream.duration:
            return self.stream.duration * self.time_base
        if self.container.duration:
            return self.container.duration / av.time_base
        return self.stream.frames / self.rate if self.rate > 0 else 0.0

    def frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; a corrupt tail ends the stream once a frame has decoded."""
        count = 0
        decoded = self.container.decode(self.stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.FFmpegError as e:
                if count == 0:
                    raise VideoError(f"{self.label} is truncated or corrupt: no video frame decodes ({why(e)}).") from e
                log.warning("%s: stopped after %d frames at a damaged part (%s)", self.label, count, why(e))
                break
            count += 1
            yield frame
        if count == 0:
            raise VideoError(f"{self.label} is truncated or corrupt: it contains no decodable video frame.")

    def timed_frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """``(seconds since the first frame, frame)``; a frame without a timestamp follows at the average rate."""
        origin, t = None, 0.0
        for frame in self.frames():
            if frame.pts is None:
                t = t + self.step if origin is not None else 0.0
            else:
                origin = frame.pts if origin is None else origin
                t = frame_time(frame.pts, origin, self.time_base)
            yield t, frame

    def packets(self) -> Iterator[av.Packet]:
        """Video packets with data, in decode order, without decoding; a truncated file just ends early."""
        try:
            for packet in self.container.demux(self.stream):
                if packet.size and not packet.is_discard:
                    yield packet
        except av.FFmpegError as e:
            log.info("%s: demuxing stopped early (%s)", self.label, why(e))

    def presentation_order(self, keyframes: list[int]) -> Iterator[int]:
        """Every packet's pts in ascending (presentation) order, demuxing only as far as needed.

        A pts is final once the decode timestamp passes it (later packets have pts >= dts > it). Keyframe pts
        are appended to ``keyframes`` as they are read. Raises LookupError when a packet has no pts.
        """
        pending: list[int] = []
        for packet in self.packets():
            if packet.pts is None:
                raise LookupError("a packet has no timestamp")
            heapq.heappush(pending, packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
            while pending and packet.dts is not None and pending[0] <= packet.dts:
                yield heapq.heappop(pending)
        while pending:
            yield heapq.heappop(pending)

    def head(self, limit: int) -> tuple[av.VideoFrame | None, list[int]]:
        """First decodable frame (or None) and the presentation times of the first frames, ascending.

        About ``limit`` packets are read. When reading stops early, only the pts already final in presentation
        order are kept (those at or below the last decode timestamp, as in ``presentation_order``): with B-frames
        the packets after the window hold frames presented inside it, and without them the sorted pts would show
        a gap at the end of the window.
        """
        first, pts, last_dts, cut = None, [], None, False
        for packet in self.packets():
            if packet.pts is not None:
                pts.append(packet.pts)
            last_dts = packet.dts if packet.dts is not None else last_dts
            if first is None:
                with contextlib.suppress(av.FFmpegError):
                    first = next(iter(self.stream.decode(packet)), None)
            if first is not None and len(pts) >= limit:
                cut = True
                break
        pts.sort()
        if cut and last_dts is not None:
            pts = [p for p in pts if p <= last_dts]
        if first is None:  # frame threading holds frames back until flushed
            with contextlib.suppress(av.FFmpegError):
                first = next(iter(self.stream.decode(None)), None)
        return first, pts


def why(error: Exception) -> str:
    """FFmpeg's reason without PyAV's errno prefix."""
    return getattr(error, "strerror", None) or str(error)


def _resolve(source: Source) -> tuple[str, object, bool, bytes]:
    """(label, what av.open takes, seekable, first bytes) after checking the input exists and is not empty."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise VideoError("<bytes> is empty (0 bytes); pass the encoded video bytes.")
        return "<bytes>", io.BytesIO(data), True, data[:_HEAD_BYTES]
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(source))
        if os.path.isdir(path):
            raise VideoError(f"{path} is a directory, not a video file; pass a file path.")
        try:
            with open(path, "rb") as f:
                head = f.read(_HEAD_BYTES)
        except FileNotFoundError:
            raise VideoError(f"video file not found: {path}; check the path.") from None
        except OSError as e:
            raise VideoError(f"cannot read {path} ({e.strerror}); check its permissions.") from e
        if not head:
            raise VideoError(f"{path} is empty (0 bytes); re-export or re-download it.")
        return path, path, True, head
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = name if isinstance(name, str) else "<bytes>"
        seekable = bool(getattr(source, "seekable", lambda: False)())
        head = b""
        if seekable:
            offset = source.tell()
            head = source.read(_HEAD_BYTES)
            source.seek(offset)
            if not head:
                raise VideoError(f"{label} is empty (0 bytes); pass the encoded video bytes.")
        return label, source, seekable, head
    raise VideoError(f"cannot read a video from {type(source).__name__}; pass a path, bytes or a binary file object.")


def _unreadable(label: str, head: bytes, error: av.FFmpegError) -> VideoError:
    if head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3"):  # an mp4/mov or Matroska/WebM header
        return VideoError(f"{label} is truncated or corrupt ({why(error)}); re-export or re-download it.")
    return VideoError(f"{label} is not a video PyAV can read ({why(error)}); pass a video or image file.")
