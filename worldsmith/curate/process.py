"""The per-clip work after splitting: filter, annotate and sign one written clip.

``process_clip`` decodes the clip once at a working size and rate (``worldsmith.io.video.decode``; every filter and
annotator shares these frames) and scans its stream once more at native resolution for what only that pass has:
the codec's motion vectors (a decoder option) and full-resolution luma for blockiness; that scan skips
non-reference frames and costs less than half of the decode. It runs the filters cheapest first (quality ->
motion -> text overlay -> video type), stores every score it computes in ``rec.scores`` and drops the clip on the
first failure with a one-sentence reason naming the score and its threshold. A kept clip gets camera-motion tags,
a caption (a caption that came with the source is kept, ``caption_source="source"``) and its dedup signature
(``rec.phash``, ``rec.embedding`` from ``dedup.clip_signature``).

Per-clip cost, one thread, a 320x240 clip of 5 s at 24 fps (x264 medium), best of 5 on a busy 2-core machine
(ranges over runs): decode at the working size 35-60 ms, motion-vector scan 12-18 ms, quality 12-17 ms, motion
2 ms (optical flow instead: 135-250 ms), text detector on 4 frames 95-190 ms, video type on 4 frames 45-100 ms,
annotate 5-10 ms, dedup signature 35-70 ms; 0.3-0.53 s in all. The text detector and the two CNNs dominate.
At 1280x720 the two decodes dominate (working decode ~0.6 s, scan ~0.23 s of ~1.2 s).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldsmith.curate.camera_motion import CameraMotionConfig, camera_motion
from worldsmith.curate.captions import CaptionConfig, CaptionError, OpenAICaptioner, offline_caption
from worldsmith.curate.dedup import clip_signature
from worldsmith.curate.motion import MotionConfig, clip_motion, motion_scores, motion_verdict, scan_native
from worldsmith.curate.quality import QualityConfig, quality_scores, quality_verdict
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.text_overlay import TextOverlayConfig, text_scores, text_verdict
from worldsmith.curate.video_type import (
    VideoTypeClassifier, VideoTypeConfig, default_classifier, video_type_scores, video_type_verdict,
)  # fmt: skip
from worldsmith.errors import ConfigError, VideoError
from worldsmith.io.video import VideoInfo, decode, probe


@dataclass
class FilterConfig:
    work_short_side: int = 240  # clips are decoded once at this short side (never upscaled) ...
    work_fps: float = 8.0  # ... and at most this frame rate (the clip's own divided by a whole number)
    quality: QualityConfig = field(default_factory=QualityConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    text: TextOverlayConfig = field(default_factory=TextOverlayConfig)
    video_type: VideoTypeConfig = field(default_factory=VideoTypeConfig)

    def __post_init__(self) -> None:
        if self.work_short_side < 16 or self.work_fps <= 0:
            raise ConfigError(f"filters need work_short_side >= 16 and work_fps > 0, got {self.work_short_side} "
                              f"and {self.work_fps}.")


@dataclass
class AnnotateConfig:
    camera: CameraMotionConfig = field(default_factory=CameraMotionConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)


def decode_working(path: str, fps: float, cfg: FilterConfig, info: VideoInfo | None = None) -> tuple[np.ndarray, float]:
    """The clip's frames uint8 (T, H, W, 3) at the working size and rate, and that rate.

    The rate is the clip's own divided by a whole number (24 -> 8, 30 -> 7.5, 12 -> 6 for work_fps=8): resampling
    to a rate that does not divide the clip's would repeat steps unevenly, which looks like camera shake."""
    info = info or probe(path)
    native = info.fps or fps or cfg.work_fps
    rate = native / max(1, math.ceil(native / cfg.work_fps - 1e-6))  # native / k: every k-th frame, no judder
    short = min(info.height, info.width)
    frames = decode(path, fps=rate, size=cfg.work_short_side if short > cfg.work_short_side else None)
    if len(frames) == 0:
        raise VideoError(f"{path} decodes to no frames; the clip is empty or damaged.")
    return frames, rate


def process_clip(
    rec: ClipRecord,
    filters: FilterConfig,
    annotate: AnnotateConfig,
    dedup: Any,
    *,
    type_classifier: VideoTypeClassifier | None = None,
    captioner: Any = None,
) -> ClipRecord:
    """Filter, annotate and sign ``rec`` (in place, also returned). ``type_classifier`` replaces the default
    video-type classifier and ``captioner`` (``(frames, facts) -> str``) the one ``annotate.caption`` names."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # 1. decode once at the working size; one native scan for motion vectors and full-resolution luma
    info = probe(rec.path)
    frames, rate = decode_working(rec.path, rec.fps, filters, info)
    timings["decode"] = time.perf_counter() - start
    need_scan = filters.motion.enabled or filters.quality.enabled or annotate.camera.enabled
    scan = scan_native(rec.path, filters.motion.use_motion_vectors, rotation=info.rotation) if need_scan else None
    timings["scan"] = time.perf_counter() - start - timings["decode"]
    facts: dict[str, Any] = {"duration": rec.duration or len(frames) / rate}
    track = None

    # 2. filters, cheapest first; each stores its scores, the first failure drops the clip
    def run(name: str, enabled: bool, compute, verdict) -> bool:
        if not enabled:
            return True
        t = time.perf_counter()
        scores = compute()
        rec.scores.update({k: float(v) for k, v in scores.items()})
        timings[name] = time.perf_counter() - t
        reason = verdict(scores)
        if reason:
            rec.drop(name, reason)
        return reason is None

    def motion() -> dict[str, float]:
        nonlocal track
        track = clip_motion(scan, frames, rate, filters.motion)
        rec.meta["motion_source"] = track.source
        return motion_scores(track, filters.motion)

    probs: dict[str, float] = {}

    def video_type() -> dict[str, float]:
        probs.update((type_classifier or default_classifier(filters.video_type))(frames))
        return video_type_scores(probs)

    q, m, tx, vt = filters.quality, filters.motion, filters.text, filters.video_type
    ok = (run("quality", q.enabled, lambda: quality_scores(frames, scan.lumas if scan else None, q),
              lambda s: quality_verdict(s, q))
          and run("motion", m.enabled, motion, lambda s: motion_verdict(s, m))
          and run("text_overlay", tx.enabled, lambda: text_scores(frames, tx), lambda s: text_verdict(s, tx))
          and run("video_type", vt.enabled, video_type, lambda s: video_type_verdict(probs, vt)))
    rec.meta["seconds"] = {k: round(v, 4) for k, v in timings.items()}
    if not ok:
        return rec

    # 3. annotate: camera motion, then the caption (a source caption is kept)
    t = time.perf_counter()
    if annotate.camera.enabled:
        track = track or clip_motion(scan, frames, rate, filters.motion)
        rec.tags.update(camera_motion(track, annotate.camera, frames, rate))
    if probs:
        rec.tags["video_type"] = max(probs, key=probs.get)
    facts.update(rec.tags)
    facts.update({k: rec.scores[k] for k in ("motion", "brightness") if k in rec.scores})
    if rec.caption.strip():
        rec.caption_source = "source"
    else:
        caption_clip(rec, frames, facts, annotate.caption, captioner)
    timings["annotate"] = time.perf_counter() - t

    # 4. dedup signature
    t = time.perf_counter()
    phash, embedding = clip_signature(frames, dedup)
    rec.phash, rec.embedding = [int(h) for h in phash], [float(x) for x in embedding]
    timings["signature"] = time.perf_counter() - t
    rec.meta["seconds"] = {k: round(v, 4) for k, v in timings.items()}
    return rec


def caption_clip(rec: ClipRecord, frames: np.ndarray, facts: dict[str, Any], cfg: CaptionConfig,
                 captioner: Any = None) -> None:
    """Set ``rec.caption`` / ``rec.caption_source`` with ``captioner`` or the one ``cfg`` names; on a
    CaptionError either raise (``on_error="fail"``) or fall back to the offline description."""
    if captioner is None and cfg.captioner == "offline":
        rec.caption, rec.caption_source = offline_caption(frames, facts), "offline"
        return
    try:
        rec.caption = (captioner or OpenAICaptioner(cfg))(frames, facts)
        rec.caption_source = "custom" if captioner is not None else "vlm"
    except CaptionError as e:
        if cfg.on_error == "fail":
            raise
        rec.caption, rec.caption_source = offline_caption(frames, facts), "offline"
        rec.tags["caption_error"] = str(e)


__all__ = ["FilterConfig", "AnnotateConfig", "process_clip", "caption_clip", "decode_working"]
