"""The post-guard's nudity check: NudeNet's detector (its ONNX weights ship in the ``nudenet`` wheel) on sampled frames.

NudeNet 3.4 is a small YOLO-style detector (320 x 320 input) for 18 body-part classes, covered and exposed. A
frame's score is its highest detection score among the ``classes`` that count as nudity (exposed genitalia,
breasts, buttocks, anus by default; an exposed belly, armpit, foot or male chest does not count). NudeNet itself
drops detections under 0.25, so a frame with nothing found scores 0 and thresholds below 0.25 act like 0.25.

``NudeDetector.detect`` takes an array the way ``cv2.imread`` returns one (BGR): it swaps the first and third
channels twice on the way in (once in ``cvtColor(RGBA2BGR)``, once in ``blobFromImage(swapRB=True)``), so frames
(RGB) are handed to it in BGR order, and it sees exactly what it sees for an image file.

The detector is loaded on first use and cached (one per process and thread count); its ONNX session runs on
``threads`` intra-op threads (NudeNet's own default takes every core).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldsmith.errors import ConfigError, VideoError

NUDITY_CLASSES = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
# What a reason calls each class.
PART_WORDS = {
    "FEMALE_GENITALIA_EXPOSED": "exposed female genitalia",
    "MALE_GENITALIA_EXPOSED": "exposed male genitalia",
    "FEMALE_BREAST_EXPOSED": "an exposed female breast",
    "BUTTOCKS_EXPOSED": "exposed buttocks",
    "ANUS_EXPOSED": "an exposed anus",
}
NUDENET_FLOOR = 0.25  # NudeNet's own score cut (cv2.dnn.NMSBoxes score_threshold in nudenet.py)


@dataclass(frozen=True)
class NudityConfig:
    threshold: float = 0.5  # a frame whose score reaches this is nudity
    sample_frames: int = 8  # frames checked per video: evenly spaced, always the first and the last
    classes: tuple[str, ...] = NUDITY_CLASSES  # NudeNet classes that count as nudity
    threads: int = 1  # ONNX Runtime intra-op threads

    def check(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"the nudity threshold must be in (0, 1], got {self.threshold!r}.")
        if not isinstance(self.sample_frames, int) or self.sample_frames < 1:
            raise ConfigError(f"sample_frames must be an integer >= 1, got {self.sample_frames!r}.")
        if not self.classes:
            raise ConfigError("the nudity check needs at least one NudeNet class in classes.")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}.")


@dataclass
class NudityResult:
    frames: list[int]  # the sampled frame indices, in order
    detections: list[list[dict[str, Any]]]  # per sampled frame: NudeNet's {"class", "score", "box"} (every class)
    scores: list[float]  # per sampled frame: the highest score among cfg.classes (0 when none)
    worst: int | None = None  # position in ``frames`` of the highest-scoring frame (None when every score is 0)
    worst_class: str | None = None
    class_scores: dict[str, float] = field(default_factory=dict)  # highest score per counted class seen

    @property
    def max_score(self) -> float:
        return max(self.scores, default=0.0)


def sample_indices(num_frames: int, k: int) -> list[int]:
    """``k`` frame indices evenly spaced over ``[0, num_frames)``, always the first and the last (fewer if short)."""
    if num_frames < 1:
        return []
    if k == 1:
        return [0]
    return sorted({int(i) for i in np.round(np.linspace(0, num_frames - 1, k))})


@functools.cache
def detector(threads: int = 1) -> Any:
    """The process's NudeNet detector on ``threads`` ONNX Runtime threads (loaded once, then cached)."""
    import nudenet
    import onnxruntime

    model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
    if not os.path.isfile(model):
        raise ConfigError(f"NudeNet's model {model} is missing; reinstall the nudenet package (pip install nudenet).")
    found = nudenet.NudeDetector(model_path=model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    found.onnx_session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return found


def detect_frame(frame: np.ndarray, threads: int = 1) -> list[dict[str, Any]]:
    """NudeNet's detections on one uint8 (H, W, 3) RGB frame: [{"class", "score", "box": [x, y, w, h]}]."""
    ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3
    if not ok:
        got = f"{getattr(frame, 'dtype', type(frame).__name__)} {tuple(getattr(frame, 'shape', ()))}"
        raise VideoError(f"the nudity check needs a uint8 (H, W, 3) RGB frame, got {got}.")
    bgr = np.ascontiguousarray(frame[..., ::-1])
    return [{**d, "score": float(d["score"])} for d in detector(threads).detect(bgr)]


def frame_score(
    detections: list[dict[str, Any]], classes: tuple[str, ...] = NUDITY_CLASSES
) -> tuple[float, str | None]:
    """(highest score among ``classes``, its class) in one frame's detections; (0.0, None) when none."""
    best, name = 0.0, None
    for d in detections:
        if d["class"] in classes and d["score"] > best:
            best, name = d["score"], d["class"]
    return best, name


def check_nudity(video: np.ndarray, cfg: NudityConfig | None = None) -> NudityResult:
    """NudeNet on ``cfg.sample_frames`` frames of a uint8 (T, H, W, 3) video, scored per frame."""
    cfg = cfg or NudityConfig()
    cfg.check()
    frames = sample_indices(len(video), cfg.sample_frames)
    detections = [detect_frame(video[i], cfg.threads) for i in frames]
    return summarize(frames, detections, cfg.classes)


def summarize(frames: list[int], detections: list[list[dict[str, Any]]], classes: tuple[str, ...]) -> NudityResult:
    """A NudityResult from per-frame NudeNet detections (the scoring, apart from running the model)."""
    scored = [frame_score(d, classes) for d in detections]
    scores = [s for s, _ in scored]
    class_scores: dict[str, float] = {}
    for found in detections:
        for d in found:
            if d["class"] in classes:
                class_scores[d["class"]] = max(class_scores.get(d["class"], 0.0), d["score"])
    worst = int(np.argmax(scores)) if scores and max(scores) > 0 else None
    worst_class = scored[worst][1] if worst is not None else None
    return NudityResult(frames, detections, scores, worst, worst_class, class_scores)


def describe(part: str) -> str:
    """What a reason calls a NudeNet class ("an exposed female breast"; other classes in lower case)."""
    return PART_WORDS.get(part, part.lower().replace("_", " "))
