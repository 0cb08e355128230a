"""The video post-guard: block nudity, blur every face, and say which and why in one Verdict.

``VideoGuard(cfg).check(video)`` runs two checks on a uint8 (T, H, W, 3) video:

1. nudity (guard/nudity.py): NudeNet on ``sample_frames`` evenly spaced frames (always the first and the last);
   a frame scoring ``nudity_threshold`` or more blocks the video (category "sexual", source "nudity");
2. faces (guard/faces.py): OpenCV's Haar cascades on every frame, each frame's boxes carried to its neighbours,
   plus NudeNet's own FACE_FEMALE / FACE_MALE boxes on the frames it already ran on; every box is pixelated (or
   blurred) and the video is allowed with the redacted copy in ``VideoCheck.video`` (source "faces").

Nothing found: allowed, the input returned unchanged. ``guard_video_file`` does the same for a file and writes
the redacted mp4 atomically only when the video is allowed (a blocked video writes nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.errors import ConfigError, VideoError
from worldsmith.guard.faces import MODES, Box, FaceConfig, carry_boxes, detect_faces, redact
from worldsmith.guard.nudity import NudityConfig, NudityResult, check_nudity, describe
from worldsmith.guard.verdict import Verdict, VideoCheck
from worldsmith.io.video import decode, encode_mp4, probe

FACE_CLASSES = ("FACE_FEMALE", "FACE_MALE")  # NudeNet's face classes, used as a second face detector


@dataclass(frozen=True)
class VideoGuardConfig:
    sample_frames: int = 8  # frames the nudity detector sees (evenly spaced, always the first and the last)
    nudity_threshold: float = 0.5  # a sampled frame scoring this much exposed-part nudity blocks the video
    blur_mode: str = "pixelate"  # how faces are redacted: "pixelate" or "blur"
    faces: bool = True  # detect and redact faces
    nudity: bool = True  # run the nudity check
    nudenet_faces: float = 0.4  # NudeNet FACE_* boxes scoring this much are redacted too (1.0 or more: off)
    face: FaceConfig = field(default_factory=FaceConfig)
    nudity_classes: tuple[str, ...] = NudityConfig().classes
    threads: int = 1  # ONNX Runtime threads for NudeNet

    def check(self) -> None:
        if self.blur_mode not in MODES:
            raise ConfigError(f"unknown blur_mode {self.blur_mode!r}; use one of {', '.join(MODES)}.")
        self.nudity_config().check()
        self.face.check()

    def nudity_config(self) -> NudityConfig:
        return NudityConfig(self.nudity_threshold, self.sample_frames, self.nudity_classes, self.threads)


class VideoGuard:
    def __init__(self, cfg: VideoGuardConfig | None = None) -> None:
        self.cfg = cfg or VideoGuardConfig()
        self.cfg.check()

    def check(self, video: np.ndarray) -> VideoCheck:
        """The verdict on a uint8 (T, H, W, 3) RGB video and the video to write (faces redacted)."""
        check_video(video)
        cfg = self.cfg
        if not cfg.nudity and not cfg.faces:
            return VideoCheck(Verdict(True, reason="the video post-guard is disabled.", source="disabled"), video)
        nude = check_nudity(video, cfg.nudity_config()) if cfg.nudity or cfg.nudenet_faces < 1 else None
        checked = nude.frames if nude is not None and cfg.nudity else []
        if cfg.nudity and nude.max_score >= cfg.nudity_threshold:
            return VideoCheck(blocked_verdict(nude, cfg.nudity_threshold), video, 0, checked)
        if cfg.faces:
            boxes = face_boxes(video, cfg, nude)
            count = sum(len(b) for b in boxes)
            if count:
                frames = sum(1 for b in boxes if b)
                verb = "pixelated" if cfg.blur_mode == "pixelate" else "blurred"
                reason = f"{verb} {_plural(count, 'face')} in {_plural(frames, 'frame')}."
                scores = {"faces": float(count), "frames_with_faces": float(frames)}
                out = redact(video, boxes, cfg.blur_mode, cfg.face)
                return VideoCheck(Verdict(True, reason=reason, source="faces", scores=scores), out, count, checked)
        return VideoCheck(_clean_verdict(video, cfg, nude), video, 0, checked)


def check_video(video: np.ndarray) -> None:
    """Raise one VideoError unless ``video`` is a non-empty uint8 (T, H, W, 3) array."""
    ok = isinstance(video, np.ndarray) and video.dtype == np.uint8 and video.ndim == 4 and video.shape[-1] == 3
    if not ok or min(video.shape[:3]) < 1:
        got = f"{getattr(video, 'dtype', type(video).__name__)} {tuple(getattr(video, 'shape', ()))}"
        raise VideoError(f"the video guard needs a non-empty uint8 (T, H, W, 3) RGB video, got {got}.")


def blocked_verdict(nude: NudityResult, threshold: float) -> Verdict:
    """The blocking Verdict for a nudity result whose worst frame reached ``threshold``."""
    frame, part, score = nude.frames[nude.worst], nude.worst_class, nude.scores[nude.worst]
    reason = (
        f"frame {frame} shows {describe(part)} (NudeNet {part} {score:.2f} >= threshold {threshold:.2f}), "
        "so the video was blocked as sexual content."
    )
    scores = {"nudity": float(score), "frame": float(frame), **{k: float(v) for k, v in nude.class_scores.items()}}
    return Verdict(False, category="sexual", reason=reason, source="nudity", scores=scores)


def face_boxes(video: np.ndarray, cfg: VideoGuardConfig, nude: NudityResult | None = None) -> list[list[Box]]:
    """Per-frame boxes to redact: Haar boxes of every frame (and NudeNet faces above ``cfg.nudenet_faces`` on the
    frames NudeNet saw), each frame's also given to the ``cfg.face.carry`` frames on either side, merged."""
    own = [detect_faces(frame, cfg.face) for frame in video]
    if nude is not None and cfg.nudenet_faces < 1:
        for t, found in zip(nude.frames, nude.detections):
            own[t] += [tuple(d["box"]) for d in found if d["class"] in FACE_CLASSES and d["score"] >= cfg.nudenet_faces]
    return carry_boxes([[b for b in boxes if b[2] > 0 and b[3] > 0] for boxes in own], cfg.face)


def _clean_verdict(video: np.ndarray, cfg: VideoGuardConfig, nude: NudityResult | None) -> Verdict:
    parts = []
    if cfg.nudity:
        parts.append(f"no nudity in {_plural(len(nude.frames), 'sampled frame')}")
    if cfg.faces:
        parts.append(f"no faces in {_plural(len(video), 'frame')}")
    scores = {"nudity": float(nude.max_score)} if cfg.nudity else {"faces": 0.0}
    return Verdict(True, reason=" and ".join(parts) + ".", source="nudity" if cfg.nudity else "faces", scores=scores)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def guard_video_file(
    src: str | os.PathLike, dst: str | os.PathLike | None, cfg: VideoGuardConfig | None = None
) -> dict[str, Any]:
    """Check a video or image file; when allowed, write the redacted video to ``dst`` as H.264 mp4 (atomically).

    A blocked video writes nothing (``dst`` is left as it was). Returns a JSON-able summary: the verdict, faces
    redacted, frames, frames checked for nudity, and the path written (None when blocked or ``dst`` is None).
    """
    guard = VideoGuard(cfg)
    info = probe(src)
    video = decode(src)
    result = guard.check(video)
    written = None
    if result.verdict.allowed and dst is not None:
        encode_mp4(result.video, dst, fps=info.fps)
        written = str(Path(dst))
    return {
        "src": str(src),
        "verdict": result.verdict.to_json(),
        "faces": result.faces,
        "frames": len(video),
        "frames_checked": list(result.frames_checked),
        "size": [int(video.shape[1]), int(video.shape[2])],
        "fps": float(info.fps),
        "out": written,
    }

