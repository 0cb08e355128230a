"""The record that flows through the curation stages: one candidate clip cut from a source video."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class ClipRecord:
    key: str  # stable id: ``clip_key(source, start_frame, end_frame)``; letters, digits, '_' and '-' only
    source: str  # absolute path of the source video (never modified)
    start_frame: int  # span in the source, frames [start_frame, end_frame) in decode order
    end_frame: int
    start_s: float  # the same span in seconds
    end_s: float
    fps: float
    width: int
    height: int
    path: str = ""  # the clip's own mp4, written by the split stage
    shot: int = 0  # index of the shot in the source the clip was cut from
    scores: dict[str, float] = field(default_factory=dict)  # filter name -> score (e.g. "motion", "sharpness")
    tags: dict[str, Any] = field(default_factory=dict)  # annotations, e.g. {"camera_motion": "pan"}
    caption: str = ""
    caption_source: str = ""  # "source" (kept from the input), "vlm", "offline", ...
    dropped_by: str = ""  # stage or filter that dropped the clip ("" = kept)
    reason: str = ""  # one sentence: why it was dropped
    phash: list[int] = field(default_factory=list)  # per-sampled-frame 64-bit perceptual hashes
    embedding: list[float] = field(default_factory=list)  # clip embedding (unit norm) for semantic dedup
    meta: dict[str, Any] = field(default_factory=dict)  # anything else JSON-serialisable (codec, copied, ...)

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        return self.end_s - self.start_s

    @property
    def kept(self) -> bool:
        return not self.dropped_by

    def drop(self, stage: str, reason: str) -> "ClipRecord":
        self.dropped_by, self.reason = stage, reason
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ClipRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def clip_key(source: str, start_frame: int, end_frame: int) -> str:
    """A key that depends only on the source path and the span, so a rerun finds the same keys."""
    digest = hashlib.sha1(f"{source}\0{start_frame}\0{end_frame}".encode()).hexdigest()[:16]
    return f"c{digest}"
