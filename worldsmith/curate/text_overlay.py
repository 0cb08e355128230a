"""Burnt-in text (subtitles, tickers, big logos, slides) found with rapidocr's text *detector* only.

rapidocr ships its ONNX models inside the wheel (``rapidocr/models/``). Left to its defaults it resolves the
model through a URL table and would download anything missing; here the detector's ``model_path`` is set to the
shipped file, classification and recognition are off, so nothing is downloaded and only the detection network
(DBNet, PP-OCR det) runs. Its DB post-processing turns the probability map into text boxes.

Scores over ``frames`` sampled frames:

* ``text_area``: mean fraction of the frame covered by text boxes (union of the boxes, over frames that have text);
* ``text_persistence``: fraction of sampled frames with any text box;
* ``text_overlay``: fraction of the frame that is inside a text box in more than ``max_persistence`` of the
  sampled frames: text that stays at the same place.

A clip is dropped when ``text_overlay`` exceeds ``max_area``, i.e. text covers more than ``max_area`` of the frame
at the same place in more than ``max_persistence`` of the frames: subtitles, slides, news tickers, big logos. Small
or brief text (a street sign passing by, a small corner logo) is kept, and so are the text-like blobs the detector
now and then finds in busy texture (stripes, clusters of rectangles): they move with the scene and flicker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worldsmith.errors import ConfigError

DET_MODEL = "PP-OCRv6_det_small.onnx"


@dataclass
class TextOverlayConfig:
    enabled: bool = True
    frames: int = 4  # frames sampled per clip
    max_side: int = 256  # the detector sees frames with the long side at most this (multiple of 32); 256: 48 ms
    # a frame at 320x240 (320: 86 ms), and 10-pixel-high subtitle text in a 240-line frame is still found
    box_thresh: float = 0.6  # DB box score threshold (text lines score 0.6-0.8; texture blobs up to ~0.65)
    max_area: float = 0.03  # drop when the text covers more than this fraction of the frame ...
    max_persistence: float = 0.5  # ... in more than this fraction of the sampled frames
    threads: int = 1  # onnxruntime intra-op threads
    max_line_height: float = 0.4  # boxes thicker than this fraction of the short side are not text lines: DBNet
    # now and then returns one box around a whole (small, flat) frame
    min_aspect: float = 1.5  # boxes less elongated than this (long side / short side) are texture blobs, not lines

    def __post_init__(self) -> None:
        if self.frames < 1 or self.max_side < 32:
            raise ConfigError(f"text needs frames >= 1 and max_side >= 32, got {self.frames} and {self.max_side}.")


def det_model_path() -> Path:
    """The detector ONNX shipped in the rapidocr wheel (ConfigError when rapidocr or the file is missing)."""
    try:
        import rapidocr
    except ImportError:
        raise ConfigError("rapidocr is not installed; install it with `pip install rapidocr onnxruntime`.") from None
    path = Path(rapidocr.__file__).parent / "models" / DET_MODEL
    if not path.is_file():
        raise ConfigError(f"rapidocr's text detector {path} is missing; reinstall rapidocr (it ships the model).")
    return path


@functools.lru_cache(maxsize=4)
def detector(max_side: int, threads: int, box_thresh: float):
    """A rapidocr engine that only detects text, built from the shipped model (cached per process)."""
    from rapidocr import RapidOCR

    params = {
        "Global.use_det": True, "Global.use_cls": False, "Global.use_rec": False,
        "Global.log_level": "error", "Global.use_preprocess_img": False,
        "Det.model_path": str(det_model_path()), "Det.limit_type": "max", "Det.limit_side_len": max_side,
        "Det.box_thresh": box_thresh,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }  # fmt: skip
    return RapidOCR(params=params)


def text_boxes(frame: np.ndarray, cfg: TextOverlayConfig) -> np.ndarray:
    """Text boxes (N, 4, 2) float32 in pixel coordinates of one uint8 (H, W, 3) RGB frame."""
    engine = detector(cfg.max_side, cfg.threads, cfg.box_thresh)
    out = engine(np.ascontiguousarray(frame[..., ::-1]), use_det=True, use_cls=False, use_rec=False)  # BGR in
    boxes = getattr(out, "boxes", None)
    if boxes is None:
        return np.zeros((0, 4, 2), np.float32)
    boxes = np.asarray(boxes, np.float32)  # (N, 4, 2) corners in order
    sides = np.linalg.norm(boxes[:, [1, 2]] - boxes[:, [0, 1]], axis=2)  # (N, 2) the two side lengths
    short, long = sides.min(axis=1), sides.max(axis=1)
    line = (short <= cfg.max_line_height * min(frame.shape[:2])) & (long >= cfg.min_aspect * short)
    return boxes[line]


def text_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (height, width): inside the union of the boxes (N, 4, 2)."""
    mask = np.zeros((height, width), np.uint8)
    if len(boxes):
        cv2.fillPoly(mask, [np.round(b).astype(np.int32) for b in boxes], 1)
    return mask.astype(bool)


def text_scores(frames: np.ndarray, cfg: TextOverlayConfig) -> dict[str, float]:
    """{"text_area", "text_persistence", "text_overlay"} of uint8 (T, H, W, 3) frames (``cfg.frames`` sampled)."""
    idx = np.linspace(0, len(frames) - 1, min(cfg.frames, len(frames))).round().astype(int)
    h, w = frames.shape[1:3]
    masks = np.stack([text_mask(text_boxes(frames[i], cfg), h, w) for i in idx])  # (n, H, W)
    areas = masks.mean(axis=(1, 2))  # (n,)
    with_text = areas[areas > 0]
    return {
        "text_area": float(with_text.mean()) if with_text.size else 0.0,
        "text_persistence": float(with_text.size / len(areas)),
        "text_overlay": float(np.mean(masks.mean(axis=0) > cfg.max_persistence)),
    }


def text_verdict(scores: dict[str, float], cfg: TextOverlayConfig) -> str | None:
    if scores["text_overlay"] > cfg.max_area:
        return (f"burnt-in text: text stays at the same place (in more than max_persistence={cfg.max_persistence} "
                f"of the sampled frames) on text_overlay {scores['text_overlay']:.3f} of the frame, above "
                f"max_area={cfg.max_area}.")
    return None
