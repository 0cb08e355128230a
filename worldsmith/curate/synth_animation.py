"""Synthetic cel animation for the curation tests and benchmarks: what camera footage is not.

``render_cel`` draws a still camera on a vertical gradient sky with six outlined discs, some two-tone (cel) shaded,
some shaded by a smooth gradient, every other disc moving right 2 px a frame and the rest left 1 px a frame. The sky
has no texture, so only the discs carry motion: a camera-motion tagger must call it static, a video-type classifier
graphics (gradients and smooth shading are not camera noise).
"""

from __future__ import annotations

import numpy as np


def render_cel(frames: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint8 (frames, H, W, 3) of cel animation; ``size`` is (width, height)."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.integers(60, 250, 3), rng.integers(30, 200, 3)
    sky = top * (1 - yy[..., None] / height) + bottom * (yy[..., None] / height)  # (H, W, 3)
    discs = [(rng.uniform(0.1, 0.9) * width, rng.uniform(0.2, 0.9) * height, rng.uniform(15, 50),
              rng.integers(40, 255, 3)) for _ in range(6)]  # fmt: skip
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        img = sky.copy()
        for k, (x, y, r, colour) in enumerate(discs):
            x = x + (2 * i if k % 2 else -i)
            d, diagonal = np.hypot(xx - x, yy - y), xx - x + yy - y
            shade = 1 - 0.5 * np.clip(diagonal / (2 * r), 0, 1) if k % 3 == 0 else np.where(diagonal > 0.3 * r, 0.7, 1)
            img[d < r] = (colour * shade[..., None])[d < r]
            img[(d >= r) & (d < r + 2.5)] = 20  # the outline
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out
