"""Face detection and redaction for the video post-guard: every face in the output is pixelated or blurred.

The detector is OpenCV's Haar cascades, whose weights ship in ``opencv-python-headless`` (``cv2.data``): the
frontal ``default`` and ``alt2`` cascades, and the profile cascade on the frame and on its mirror image (the
shipped profile cascade only sees faces turned one way). Their boxes are merged into one box per face.

worldsmith videos are small (64 or 128 px): the cascades' windows are 20-24 px, so a frame whose short side is
under ``min_side`` is upscaled to it before detection (a 10 px face in a 64 px frame becomes 40 px).

In a video every frame is searched (a 128 px frame costs a few ms) and each frame's boxes are also redacted in
the ``carry`` frames on either side, so a face the cascades miss in one frame of a run is still covered.

The parameters were chosen by measurement (``python benchmarks/guard_video.py``; a face counts as covered when
the redaction covers 80 % of its true box). With these defaults: 94.8 % of 400 LFW faces of 24-64 px pasted into
simulated-world frames of 64-256 px covered (88 % at 24 px, 95-98 % from 32 px), both face photographs at 128, 256
and 512 px covered; frames with any box: 2.8 % of world frames, 3-6 % of pasted LFW non-faces, 13 % of textured
photographs (retina, hubble, ...); 64-75 CPU ms per world frame on one thread. Measured alternatives (25 faces per
size): histogram equalisation cost recall (0.93 -> 0.82); without the profile cascade the cameraman (a profile)
was missed and detection took a third of the time; min_neighbors 3 / 5 traded +4 % / -1 % recall for +2.4 / -1.7
points of false boxes; min_side 320 gained recall on 24 px faces at 1.35x the time and more false boxes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import cv2
import numpy as np

from worldsmith.errors import ConfigError, VideoError

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
MODES = ("pixelate", "blur")


@dataclass(frozen=True)
class FaceConfig:
    frontal: tuple[str, ...] = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
    profile: tuple[str, ...] = ("haarcascade_profileface.xml",)  # run on the frame and on its mirror image
    min_side: int = 256  # frames whose short side is smaller are upscaled to this before detection
    scale_factor: float = 1.1  # step between the cascade's window sizes
    min_neighbors: int = 4  # overlapping raw hits a detection needs (higher: fewer false boxes, lower recall)
    min_size: int = 24  # smallest face searched, in pixels of the (upscaled) detection image
    equalize: bool = False  # histogram-equalise the gray frame first (measured: costs recall, 0.93 -> 0.82)
    merge_overlap: float = 0.3  # boxes overlapping by more than this (intersection over the smaller) merge
    margin: float = 0.25  # each redacted box grows by this fraction of its side on every side
    blocks: int = 6  # pixelate: cells across a face (fewer: coarser)
    carry: int = 1  # each frame's boxes are redacted in this many frames before and after it too

    def check(self) -> None:
        if not self.frontal and not self.profile:
            raise ConfigError("FaceConfig needs at least one cascade in frontal or profile.")
        if self.scale_factor <= 1.0 or self.min_neighbors < 0 or self.min_size < 8 or self.min_side < 1:
            raise ConfigError(
                "FaceConfig needs scale_factor > 1, min_neighbors >= 0, min_size >= 8 and min_side >= 1, got "
                f"{self.scale_factor}, {self.min_neighbors}, {self.min_size} and {self.min_side}."
            )
        if self.margin < 0 or self.blocks < 1 or self.carry < 0 or not 0 < self.merge_overlap <= 1:
            raise ConfigError(
                "FaceConfig needs margin >= 0, blocks >= 1, carry >= 0 and 0 < merge_overlap <= 1, got "
                f"{self.margin}, {self.blocks}, {self.carry} and {self.merge_overlap}."
            )


@functools.cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, name)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ConfigError(f"cannot load the Haar cascade {path}; reinstall opencv-python-headless or fix the name.")
    return cascade


def _frame(frame: np.ndarray) -> None:
    ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3
    if not ok or min(frame.shape[:2]) < 1:
        got = f"{getattr(frame, 'dtype', type(frame).__name__)} {tuple(getattr(frame, 'shape', ()))}"
        raise VideoError(f"face detection needs a uint8 (H, W, 3) RGB frame, got {got}.")


def detect_faces(frame: np.ndarray, cfg: FaceConfig | None = None) -> list[Box]:
    """Face boxes (x, y, w, h) in ``frame`` (uint8 H x W x 3 RGB), merged, sorted, without margin."""
    cfg = cfg or FaceConfig()
    _frame(frame)
    height, width = frame.shape[:2]
    scale = max(1.0, cfg.min_side / min(height, width))
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if scale > 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)
    if cfg.equalize:
        gray = cv2.equalizeHist(gray)
    boxes = [b for name in cfg.frontal for b in _run(_cascade(name), gray, cfg)]
    if cfg.profile:
        mirror = np.ascontiguousarray(gray[:, ::-1])
        side = gray.shape[1]
        for name in cfg.profile:
            boxes += _run(_cascade(name), gray, cfg)
            boxes += [(side - x - w, y, w, h) for x, y, w, h in _run(_cascade(name), mirror, cfg)]
    merged = merge_boxes(boxes, cfg.merge_overlap)
    return sorted(_unscale(b, scale, width, height) for b in merged)


def _run(cascade: cv2.CascadeClassifier, gray: np.ndarray, cfg: FaceConfig) -> list[Box]:
    found = cascade.detectMultiScale(
        gray, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors, minSize=(cfg.min_size, cfg.min_size)
    )
    return [tuple(int(v) for v in b) for b in np.asarray(found).reshape(-1, 4)]


def _unscale(box: Box, scale: float, width: int, height: int) -> Box:
    x0, y0 = int(np.floor(box[0] / scale)), int(np.floor(box[1] / scale))
    x1 = min(width, int(np.ceil((box[0] + box[2]) / scale)))
    y1 = min(height, int(np.ceil((box[1] + box[3]) / scale)))
    return max(0, x0), max(0, y0), max(1, x1 - max(0, x0)), max(1, y1 - max(0, y0))


def merge_boxes(boxes: list[Box], overlap: float = 0.3) -> list[Box]:
    """Union of boxes that overlap by more than ``overlap`` of the smaller one, repeated until none do."""
    merged = [tuple(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if _overlap(merged[i], merged[j]) > overlap:
                    merged[i] = _union(merged[i], merged[j])
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _overlap(a: Box, b: Box) -> float:
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


def carry_boxes(own: list[list[Box]], cfg: FaceConfig) -> list[list[Box]]:
    """Each frame's boxes plus those of the ``cfg.carry`` frames on either side, merged."""
    out = []
    for t in range(len(own)):
        near = [b for s in range(max(0, t - cfg.carry), min(len(own), t + cfg.carry + 1)) for b in own[s]]
        out.append(sorted(merge_boxes(near, cfg.merge_overlap)))
    return out


def grow(box: Box, margin: float, width: int, height: int) -> Box:
    """``box`` grown by ``margin`` of its side on every side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = int(np.ceil(w * margin)), int(np.ceil(h * margin))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def redact(
    video: np.ndarray, boxes_per_frame: list[list[Box]], mode: str = "pixelate", cfg: FaceConfig | None = None
) -> np.ndarray:
    """A copy of ``video`` (uint8 T, H, W, 3) with every box (grown by ``cfg.margin``) pixelated or blurred."""
    cfg = cfg or FaceConfig()
    if mode not in MODES:
        raise ConfigError(f"unknown face redaction mode {mode!r}; use one of {', '.join(MODES)}.")
    if len(boxes_per_frame) != len(video):
        raise VideoError(f"redact needs one box list per frame: {len(boxes_per_frame)} lists for {len(video)} frames.")
    out = video.copy()
    height, width = video.shape[1:3]
    for t, boxes in enumerate(boxes_per_frame):
        for box in boxes:
            x, y, w, h = grow(box, cfg.margin, width, height)
            if w > 0 and h > 0:
                region = out[t, y : y + h, x : x + w]
                region[...] = _pixelate(region, cfg.blocks) if mode == "pixelate" else _blur(region)
    return out


def _pixelate(region: np.ndarray, blocks: int) -> np.ndarray:
    h, w = region.shape[:2]
    cells = max(1, min(blocks, min(h, w)))
    small = cv2.resize(region, (max(1, round(cells * w / max(h, w))), max(1, round(cells * h / max(h, w)))),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _blur(region: np.ndarray) -> np.ndarray:
    """A Gaussian blur with sigma a quarter of the box side: features gone, the box still reads as a face."""
    sigma = max(1.0, min(region.shape[:2]) / 4)
    blurred = cv2.GaussianBlur(np.ascontiguousarray(region), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    return blurred
