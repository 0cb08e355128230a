"""Contact sheets: a grid of frames for eyeballing videos (one block of rows per video, frames left to right).

Each video contributes up to ``max_frames`` frames sampled evenly from first to last, laid out ``cols`` per row
(a video with more sampled frames than ``cols`` wraps onto further rows). Frames of different sizes are centred
in cells of the largest size. ``scale`` enlarges pixels (nearest neighbour) so tiny model outputs stay readable.
An optional label per video is written above its block with PIL's default font.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from worldsmith.atomic import atomic_open
from worldsmith.errors import VideoError

GAP = 2  # pixels between cells and around the sheet
BACKGROUND = (24, 24, 24)
LABEL_COLOR = (235, 235, 235)


def contact_sheet(
    videos: np.ndarray | list[np.ndarray],
    dest: str | os.PathLike | BinaryIO | None,
    *,
    cols: int = 8,
    max_frames: int = 8,
    labels: list[str] | None = None,
    scale: int = 1,
) -> np.ndarray:
    """Build the sheet, write it as PNG to ``dest`` (atomically for a path; skipped for None), return uint8 (H, W, 3).

    ``videos`` is one uint8 (T, H, W, 3) video, a batch (B, T, H, W, 3) or a list of (T, H, W, 3) videos.
    """
    clips = _as_list(videos)
    if labels is not None and len(labels) != len(clips):
        raise VideoError(f"contact_sheet got {len(labels)} labels for {len(clips)} videos; pass one label per video.")
    for name, value in (("cols", cols), ("max_frames", max_frames), ("scale", scale)):
        if not isinstance(value, int) or value < 1:
            raise VideoError(f"contact_sheet needs {name} >= 1, got {value!r}.")
    samples = [_sample(clip, max_frames) for clip in clips]  # each (n, H, W, 3)
    cell_h = max(s.shape[1] for s in samples) * scale
    cell_w = max(s.shape[2] for s in samples) * scale
    font = ImageFont.load_default()
    label_h = _text_height(font) + 2 * GAP if labels else 0
    grid_cols = min(cols, max(len(s) for s in samples))
    blocks = [_block(s, cols, cell_h, cell_w, scale) for s in samples]

    width = GAP + grid_cols * (cell_w + GAP)
    height = GAP + sum(label_h + b.shape[0] + GAP for b in blocks)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = BACKGROUND
    y, label_rows = GAP, []
    for block in blocks:
        label_rows.append(y)
        y += label_h
        sheet[y : y + block.shape[0], GAP : GAP + block.shape[1]] = block
        y += block.shape[0] + GAP
    if labels:
        sheet = _draw_labels(sheet, labels, label_rows, font)
    if dest is not None:
        _write_png(sheet, dest)
    return sheet


def _as_list(videos: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    if isinstance(videos, np.ndarray):
        videos = [videos] if videos.ndim == 4 else list(videos) if videos.ndim == 5 else [videos]
    clips = list(videos)
    if not clips:
        raise VideoError("contact_sheet got no videos; pass at least one uint8 (T, H, W, 3) video.")
    for i, clip in enumerate(clips):
        ok = isinstance(clip, np.ndarray) and clip.dtype == np.uint8 and clip.ndim == 4 and clip.shape[-1] == 3
        if not ok or clip.shape[0] < 1:
            got = f"{getattr(clip, 'dtype', type(clip).__name__)} {getattr(clip, 'shape', '')}"
            raise VideoError(f"contact_sheet video {i} must be uint8 (T, H, W, 3) with T >= 1, got {got}.")
    return clips


def _sample(clip: np.ndarray, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` frames evenly spaced from the first to the last: (n, H, W, 3)."""
    n = min(max_frames, clip.shape[0])
    return clip[np.linspace(0, clip.shape[0] - 1, n).round().astype(int)]


def _block(frames: np.ndarray, cols: int, cell_h: int, cell_w: int, scale: int) -> np.ndarray:
    """Frames (n, H, W, 3) laid out ``cols`` per row in cells of (cell_h, cell_w), each frame centred."""
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else frames
    n, h, w = frames.shape[:3]
    rows, per_row = -(-n // cols), min(n, cols)
    block = np.empty((rows * (cell_h + GAP) - GAP, per_row * (cell_w + GAP) - GAP, 3), np.uint8)
    block[:] = BACKGROUND
    top, left = (cell_h - h) // 2, (cell_w - w) // 2
    for i, frame in enumerate(frames):
        y, x = (i // cols) * (cell_h + GAP) + top, (i % cols) * (cell_w + GAP) + left
        block[y : y + h, x : x + w] = frame
    return block


def _text_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int(bottom)


def _draw_labels(sheet: np.ndarray, labels: list[str], rows: list[int], font: ImageFont.ImageFont) -> np.ndarray:
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for text, y in zip(labels, rows, strict=True):
        draw.text((GAP + 1, y + GAP // 2), str(text), fill=LABEL_COLOR, font=font)
    return np.asarray(image).copy()


def _write_png(sheet: np.ndarray, dest: str | os.PathLike | BinaryIO) -> None:
    image = Image.fromarray(sheet)
    if isinstance(dest, (str, os.PathLike)):
        with atomic_open(dest, "wb") as f:
            image.save(f, format="PNG")
    else:
        image.save(dest, format="PNG")
