"""Split stage: one source video -> shot boundaries -> clips within the length limits, written as mp4.

Steps of ``split_source`` (each pass streams, so memory does not grow with the source's length):

1. probe the source; a file PyAV cannot read (missing, empty, not a video, audio only, an image, truncated) raises
   one ``VideoError`` sentence the engine lists in the report;
2. detect shots on small decoded frames (``detect_shots``: TransNetV2 at 48x27, in ~16:9 tiles for very wide or
   tall frames and with repeated frames below 20 fps (see ``shot_detect``), or the adaptive detector);
3. cut every shot to the length limits: shots shorter than ``min_clip_s`` become dropped records (counted in the
   report, no file); longer than ``max_clip_s`` are cut into windows of ``max_clip_s`` starting every ``stride_s``;
4. write each clip as ``clips_dir/<key>.mp4`` atomically: stream-copied (packets remuxed with PyAV, no
   re-encoding) when the source is H.264 and the clip starts on a keyframe and ends at a keyframe or the end of
   the source, so the copy is exactly the clip's frames; otherwise decoded and encoded with libx264. A copy is
   checked by decoding it (frame count) and re-encoded if the check fails. ``rec.meta["copied"]`` says which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import av
import cv2
import numpy as np

from worldsmith.atomic import atomic_open
from worldsmith.curate import shot_detect
from worldsmith.curate.record import ClipRecord, clip_key
from worldsmith.errors import ConfigError, VideoError
from worldsmith.io.encode import encode_mp4
from worldsmith.io.source import VideoInput
from worldsmith.io.video import VideoInfo, iter_frames, probe
from worldsmith.precision import check_precision, use_bf16


@dataclass
class SplitConfig:
    detector: Literal["transnetv2", "adaptive"] = "transnetv2"
    threshold: float = 0.5  # TransNetV2: single-frame transition probability
    many_threshold: float = 0.5  # TransNetV2: many-hot (gradual transition) probability; <= 0 or >= 1: cuts only
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # TransNetV2 arithmetic; auto: bf16 where the CPU has it
    transnet_window: int = 300  # TransNetV2 frames per window (50 of them context): 100 is the reference's, 2x cost
    adaptive_threshold: float = 3.0  # adaptive: score / mean of neighbours' scores
    min_content: float = 15.0  # adaptive: minimum HSV difference (0..255) for a cut
    adaptive_window: int = 2  # adaptive: neighbour frames on each side
    min_scene_frames: int = 15  # adaptive: frames between two cuts at least
    adaptive_side: int = 96  # adaptive: short side of the frames it looks at (pixels)
    min_clip_s: float = 2.0  # shorter shots are dropped (and counted)
    max_clip_s: float = 60.0  # longer shots are cut into windows of this length
    stride_s: float = 0.0  # start of one window to the next in a long shot; 0 = max_clip_s (no overlap)
    crf: int = 18  # libx264 quality of re-encoded clips
    preset: str = "veryfast"  # libx264 speed preset of re-encoded clips
    stream_copy: bool = True  # remux clips that start on a keyframe instead of re-encoding
    allow_truncated: bool = False  # keep what decodes of a truncated source instead of rejecting it

    def __post_init__(self) -> None:
        if self.detector not in ("transnetv2", "adaptive"):
            raise ConfigError(f"split.detector must be 'transnetv2' or 'adaptive', got {self.detector!r}.")
        check_precision(self.precision, "split.precision")
        if self.transnet_window < 100 or self.transnet_window % 50:
            raise ConfigError(f"split.transnet_window must be a multiple of 50 and at least 100 (the reference uses "
                              f"100), got {self.transnet_window}.")
        if not 0 < self.min_clip_s <= self.max_clip_s:
            raise ConfigError(f"split needs 0 < min_clip_s <= max_clip_s, got {self.min_clip_s}, {self.max_clip_s}.")
        if self.stride_s < 0:
            raise ConfigError(f"split.stride_s must be >= 0 (0 = max_clip_s), got {self.stride_s}.")

    @property
    def stride(self) -> float:
        return self.stride_s or self.max_clip_s


# ---------------------------------------------------------------------------------------------------- detection
def detect_shots(
    frames_or_path: str | Path | np.ndarray | Iterable[np.ndarray], cfg: SplitConfig, fps: float | None = None
) -> list[tuple[int, int]]:
    """Shot spans ``[(start, end), ...]`` (frame indices, end exclusive) of a video path or uint8 (T, H, W, 3)
    frames (any size: they are resized; ``fps`` is their rate, a path's is probed). Frames of gradual transitions
    belong to no span."""
    info = probe(frames_or_path) if isinstance(frames_or_path, (str, Path)) else None
    return _detect(_small_frames(frames_or_path, cfg, info), cfg, info.fps if info else fps)[0]


def _small_frames(frames_or_path, cfg: SplitConfig, info: VideoInfo | None = None) -> Iterator[np.ndarray]:
    """The frames the detector looks at: TransNetV2's 27x48 tiles side by side (``transnet_input_size``), short
    side ``adaptive_side`` for adaptive. A path is decoded at that size directly (``info``: its probe)."""
    if info is not None:
        return iter_frames(frames_or_path, size=detector_size(cfg, info))

    def resized() -> Iterator[np.ndarray]:
        for frame in frames_or_path:
            h, w = frame.shape[:2]
            if cfg.detector == "transnetv2":
                out_h, out_w = shot_detect.transnet_input_size(h, w)
            else:
                scale = cfg.adaptive_side / min(h, w)
                out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
            yield cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)

    return resized()


def detector_size(cfg: SplitConfig, info: VideoInfo) -> int | tuple[int, int]:
    """The size a source is decoded at for its detector: TransNetV2's tiles (h, w), or the adaptive short side."""
    return shot_detect.transnet_input_size(info.height, info.width) if cfg.detector == "transnetv2" else cfg.adaptive_side


def _detect(frames: Iterator[np.ndarray], cfg: SplitConfig, fps: float | None) -> tuple[list[tuple[int, int]], int]:
    """(spans, number of frames seen)."""
    return spans_from_signals(detector_signals(frames, cfg, fps), cfg)


def detector_signals(frames: Iterable[np.ndarray], cfg: SplitConfig, fps: float | None, *, start: int = 0,
                     final: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
    """The detector's per-frame outputs, (T,) arrays: TransNetV2's ``single`` and ``many`` probabilities, or
    the adaptive detector's ``score``, ``back``, ``fwd`` and ``value``. ``start`` / ``final``: a segment of a longer
    video whose frames include context on each side (``curate/segments.py``); TransNetV2 only (the adaptive
    detector's context is cut off by the caller)."""
    if cfg.detector == "transnetv2":
        bf16 = use_bf16(cfg.precision, "cpu")
        repeat = shot_detect.transnet_repeat(fps)
        single, many = shot_detect.transnet_predictions(
            frames, 1, bf16, repeat, cfg.transnet_window, start=start, final=final
        )
        return {"single": single, "many": many}
    stats = shot_detect.AdaptiveStats()
    for frame in frames:
        stats.add(frame)
    return {k: np.asarray(getattr(stats, k), np.float64) for k in ("score", "back", "fwd", "value")}


def spans_from_signals(signals: dict[str, np.ndarray], cfg: SplitConfig) -> tuple[list[tuple[int, int]], int]:
    """(shot spans, frames) from the detector's per-frame outputs of a whole video (``detector_signals``)."""
    if cfg.detector == "transnetv2":
        single, many = signals["single"], signals["many"]
        use_many = cfg.many_threshold if 0 < cfg.many_threshold < 1 else None
        bounds = shot_detect.transnet_boundaries(single, many, cfg.threshold, use_many)
    else:
        stats = SimpleNamespace(**signals)
        bounds = shot_detect.adaptive_boundaries(
            stats, cfg.adaptive_threshold, cfg.min_content, cfg.adaptive_window, cfg.min_scene_frames
        )
    n = len(next(iter(signals.values())))
    # boundaries closer than 8 frames are one transition (the two halves of a fade through black)
    return shot_detect.boundaries_to_spans(bounds, n, min_gap=8), n


# ---------------------------------------------------------------------------------------------------- windows
Spans = list[tuple[int, int]]


def clip_windows(start: int, end: int, fps: float, cfg: SplitConfig) -> tuple[Spans, Spans]:
    """(clips, too_short) frame spans of one shot ``[start, end)`` under the length limits."""
    min_n = math.ceil(cfg.min_clip_s * fps - 1e-6)
    max_n = max(1, math.floor(cfg.max_clip_s * fps + 1e-6))
    stride = max(1, round(cfg.stride * fps))
    if end - start < min_n:
        return [], [(start, end)]
    clips, short = [], []
    a = start
    while True:
        b = min(a + max_n, end)
        (clips if b - a >= min_n else short).append((a, b))
        if b >= end:
            break
        a += stride
    return clips, short


# ---------------------------------------------------------------------------------------------------- writing
class _Packets:
    """Presentation-order packet timestamps and keyframe flags of the source's video stream (demuxed, not decoded)."""

    def __init__(self, source: str) -> None:
        pts, keys = [], set()
        with VideoInput(source) as src, src.wrapped():
            for packet in src.packets():
                if packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.add(packet.pts)
        self.pts = sorted(pts)  # rank -> pts
        self.key_ranks = {i for i, p in enumerate(self.pts) if p in keys}


def _copy_clip(source: str, dest: Path, pts: list[int], s: int, e: int) -> bool:
    """Remux the packets of presentation ranks [s, e) into an mp4 (no re-encoding); timestamps start at 0.

    Returns False (and writes nothing) for an open GOP: a wanted packet that comes after the next keyframe in
    decode order may reference it, and the next keyframe is not part of the clip."""
    wanted = set(pts[s:e])
    base, last = pts[s], pts[e - 1]
    next_key = pts[e] if e < len(pts) else None
    with VideoInput(source) as src, src.wrapped():
        src.container.seek(base, stream=src.stream, backward=True)
        try:
            with atomic_open(dest, "wb") as f, av.open(f, "w", format="mp4") as out:
                stream = out.add_stream_from_template(src.stream)
                passed_next_key = False
                for packet in src.packets():
                    if packet.dts is not None and packet.dts > last:
                        break  # later packets all have pts >= dts > last
                    passed_next_key |= packet.pts == next_key
                    if packet.pts not in wanted:
                        continue
                    if passed_next_key:
                        raise _OpenGop
                    packet.pts -= base
                    packet.dts = None if packet.dts is None else packet.dts - base
                    packet.stream = stream
                    out.mux(packet)
        except _OpenGop:
            return False
    return True


class _OpenGop(Exception):
    pass


def indexed_count(source: str) -> int:
    """Frames the container's index lists (mp4/mov sample tables), 0 when it has no such count."""
    with VideoInput(source) as src, src.wrapped():
        return max(0, int(src.stream.frames or 0))


def _count_frames(path: Path) -> int:
    try:
        return sum(1 for _ in iter_frames(path, size=(16, 16)))
    except VideoError:
        return -1


class _FrameCursor:
    """Full-size frames of the source, read front to back from the first span asked for; an earlier span reopens it."""

    def __init__(self, source: str) -> None:
        self.source, self.frames, self.pos = source, None, 0

    def take(self, s: int, e: int) -> Iterator[np.ndarray]:
        if self.frames is None or self.pos > s:  # (re)open at the keyframe before s: not from 0 for a late clip
            self.frames, self.pos = iter_frames(self.source, start=s), s
        try:
            for frame in self.frames:
                self.pos += 1
                if self.pos > s:
                    yield frame
                if self.pos >= e:
                    return
        except BaseException:
            self.frames = None
            raise


# ---------------------------------------------------------------------------------------------------- the stage
def split_source(path: str | Path, cfg: SplitConfig, clips_dir: str | Path, *,
                 shots: tuple[list[tuple[int, int]], int] | None = None,
                 own: tuple[int, int] | None = None) -> list[ClipRecord]:  # fmt: skip
    """Cut one source into clips written to ``clips_dir`` (see the module docstring); one record per clip, plus
    dropped records (``dropped_by="split"``, no file) for shots and tails shorter than ``min_clip_s``.

    A source split in segments across workers (``curate/segments.py``) passes ``shots`` (its spans and frame count,
    already detected) and ``own``: only the clips that start in frames ``[a, b)`` are cut by this call."""
    source = str(Path(path).resolve())
    clips_dir = Path(clips_dir)
    # 1. probe: bad input raises VideoError naming the file
    info = probe(source)
    if info.is_image:
        raise VideoError(f"{source} is a still image, not a video; curation needs video files.")
    fps = info.fps
    # 2. shots on small frames (one streamed decode)
    if shots is None:
        spans, n = _detect(_small_frames(source, cfg, info), cfg, fps)
        indexed = indexed_count(source)  # 0 when the container does not count its frames (mkv, webm, ts ...)
        if n < indexed * 0.97 - 2 and not cfg.allow_truncated:
            raise VideoError(
                f"{source} is truncated or corrupt: only {n} of its {indexed} frames decode "
                "(set split.allow_truncated to keep the part that decodes)."
            )
    else:
        spans, n = shots
    first, last = own if own is not None else (0, n)
    # 3. clips under the length limits
    records: list[ClipRecord] = []
    for shot, (a, b) in enumerate(spans):
        clips, short = clip_windows(a, b, fps, cfg)
        for s, e in clips + short:
            if not first <= s < last:
                continue
            rec = ClipRecord(
                key=clip_key(source, s, e), source=source, start_frame=s, end_frame=e, start_s=s / fps,
                end_s=e / fps, fps=fps, width=info.width + info.width % 2, height=info.height + info.height % 2,
                shot=shot, meta={"detector": cfg.detector, "source_codec": info.codec},
            )  # fmt: skip
            if (s, e) in short:
                what = "shot" if (s, e) == (a, b) else "tail of a long shot"
                rec.drop("split", f"{what} is {rec.duration:.1f} s, shorter than min_clip_s={cfg.min_clip_s:g}")
            records.append(rec)
    records.sort(key=lambda r: (r.start_frame, r.end_frame))
    # 4. write the kept clips: stream copy where the span is closed by keyframes, else re-encode
    packets = _Packets(source) if cfg.stream_copy and info.codec == "h264" and not info.rotation else None
    if packets is not None and len(packets.pts) != n:
        packets = None  # the container's packets do not map one-to-one to decoded frames: always re-encode
    cursor = _FrameCursor(source)
    for rec in records:
        if not rec.kept:
            continue
        s, e = rec.start_frame, rec.end_frame
        dest = clips_dir / f"{rec.key}.mp4"
        copied = False
        if packets is not None and s in packets.key_ranks and (e == n or e in packets.key_ranks):
            copied = _copy_clip(source, dest, packets.pts, s, e) and _count_frames(dest) == e - s
        if not copied:
            encode_mp4(cursor.take(s, e), dest, fps, crf=cfg.crf, preset=cfg.preset)
        rec.path = str(dest)
        rec.meta["copied"] = copied
    return records
