"""Fitting frames to a model: resize the short side, centre-crop to what the model's grid accepts."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from worldsmith.errors import VideoError


def pinhole_intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole K (3, 3) (OpenCV, integer pixel centres) of an H x W frame with vertical field of view ``fovy_deg``."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def scale_intrinsics(K: np.ndarray, scale: tuple[float, float], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Pinhole intrinsics (..., 3, 3) (OpenCV, integer pixel centres) of frames resized by ``scale`` = (sy, sx) and
    then cropped at ``offset`` = (top, left): x' = (x + 0.5) * s - 0.5 - offset."""
    (sy, sx), (top, left) = scale, offset
    out = np.array(K, dtype=np.float64, copy=True)
    out[..., 0, :] *= sx
    out[..., 1, :] *= sy
    out[..., 0, 2] += 0.5 * sx - 0.5 - left
    out[..., 1, 2] += 0.5 * sy - 0.5 - top
    return out


def fit_intrinsics(K: np.ndarray, h: int, w: int, size: int, multiple: int = 1, square: bool = False) -> np.ndarray:
    """The intrinsics of ``h`` x ``w`` frames after ``fit_frames(frames, size, multiple, square)``."""
    rh, rw = (h, w) if min(h, w) == size else (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
    ch, cw = (size, size) if square else (rh // multiple * multiple, rw // multiple * multiple)
    return scale_intrinsics(K, (rh / h, rw / w), ((rh - ch) // 2, (rw - cw) // 2))


def fit_frames(frames: np.ndarray, size: int, multiple: int = 1, square: bool = False) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, h, w, 3): the short side resized to ``size`` (antialiased bilinear, skipped
    when it is already ``size``), then a centre crop to ``size x size`` (``square``) or to multiples of ``multiple``."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}.")
    t, h, w, _ = frames.shape
    if min(h, w) != size:
        scale = size / min(h, w)
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear",
                          antialias=True, align_corners=False)  # fmt: skip
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        h, w = frames.shape[1:3]
    ch, cw = (size, size) if square else (h // multiple * multiple, w // multiple * multiple)
    if ch == 0 or cw == 0:
        raise VideoError(f"frames of {h}x{w} are smaller than {multiple} pixels after resizing; use larger ones.")
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(frames[:, top : top + ch, left : left + cw])
