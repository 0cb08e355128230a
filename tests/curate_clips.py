"""Small synthetic clips for the curation filter and annotation tests: each one is made to pass or fail one check.

A clip is a window moving over a large textured canvas (smooth colour noise + shapes), so camera motion is exact:
``pan``/``tilt`` translate the window, ``zoom`` shrinks it about the centre, ``shaky`` jitters it randomly per
frame, ``static`` keeps it still (with a little sensor noise), ``orbit`` pans the background while a textured
subject stays in the centre and drifts the other way (parallax). Quality variants degrade a moving clip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldsmith.io.video import encode_mp4


def canvas(seed: int, height: int, width: int) -> np.ndarray:
    """A natural-looking texture uint8 (height, width, 3): blurred colour noise at two scales plus ellipses."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((height // 24 + 2, width // 24 + 2, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    img = np.clip(40 + 150 * coarse + 120 * (fine - 0.5), 0, 255).astype(np.uint8)
    for _ in range(max(6, height * width // 6000)):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, 30)), int(rng.integers(4, 30)))
        cv2.ellipse(img, c, axes, float(rng.integers(0, 180)), 0, 360, tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    return img


def camera_clip(kind: str, size: tuple[int, int] = (120, 160), frames: int = 48, seed: int = 0,
                speed: float = 2.0, noise: float = 2.0) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) of a camera move ``kind`` over a canvas; ``speed`` in pixels per frame."""
    h, w = size
    rng = np.random.default_rng(seed + 1)
    big = canvas(seed, h + 2 * (int(abs(speed) * frames) + 24), w + 2 * (int(abs(speed) * frames) + 24))
    cy, cx = big.shape[0] / 2, big.shape[1] / 2
    subject = canvas(seed + 7, h // 3, w // 3)
    out = []
    for t in range(frames):
        dx = dy = 0.0
        zoom = 1.0
        if kind == "pan_right":  # the camera turns right: the scene moves left
            dx = speed * (t - frames / 2)
        elif kind == "pan_left":
            dx = -speed * (t - frames / 2)
        elif kind == "tilt_up":  # the camera turns up: the scene moves down
            dy = -speed * (t - frames / 2)
        elif kind == "tilt_down":
            dy = speed * (t - frames / 2)
        elif kind == "zoom_in":
            zoom = 1.0 + 0.012 * speed * t
        elif kind == "zoom_out":
            zoom = 1.0 + 0.012 * speed * (frames - t)
        elif kind == "shaky":
            dx, dy = rng.normal(0, 3.0 * speed / 2, 2)
        elif kind == "orbit":  # the camera circles right around the subject: background left, subject kept
            dx = speed * (t - frames / 2)
        elif kind != "static":
            raise ValueError(kind)
        ch, cw = h / zoom, w / zoom
        m = np.float32([[cw / w, 0, cx + dx - cw / 2], [0, ch / h, cy + dy - ch / 2]])
        frame = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if kind == "orbit":
            sh, sw = subject.shape[:2]
            ox = int(w / 2 - sw / 2 - 0.5 * speed * (t - frames / 2) * 0.3)
            frame[h // 2 - sh // 2 : h // 2 - sh // 2 + sh, ox : ox + sw] = subject
        out.append(frame)
    clip = np.stack(out).astype(np.float32)
    clip += rng.normal(0, noise, clip.shape)
    return np.clip(clip, 0, 255).astype(np.uint8)


def write(frames: np.ndarray, path: Path, fps: float = 12.0, crf: int = 20, preset: str = "veryfast") -> str:
    encode_mp4(frames, path, fps, crf=crf, preset=preset)
    return str(path)
