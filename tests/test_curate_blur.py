"""The blur verdict scales with resolution and ignores contrast: sharp clips at 64 and 256 pixels and a 64-pixel
clip upscaled x4 are kept; clips blurred (Gaussian sigma 2.5) at their own resolution are dropped as blurry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldsmith.curate.motion import scan_native
from worldsmith.curate.process import FilterConfig, decode_working
from worldsmith.curate.quality import QualityConfig, quality_scores, quality_verdict
from worldsmith.curate.synth import render_shot
from worldsmith.io.encode import encode_mp4

FPS, FRAMES = 12.0, 12


def scaled(frames: np.ndarray, short: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    h, w = frames.shape[1:3]
    size = (round(w * short / min(h, w)), round(h * short / min(h, w)))
    return np.stack([cv2.resize(f, size, interpolation=interpolation) for f in frames])


def blurred(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in frames])


def photo() -> np.ndarray:
    """Chelsea the cat (a photo that ships in scikit-image) as a still clip, short side 256."""
    import skimage.data  # the photo ships in the scikit-image wheel

    return scaled(np.stack([skimage.data.chelsea()] * FRAMES), 256)


def clip(name: str) -> np.ndarray:
    small = render_shot("moving", FRAMES, (85, 64), seed=2)
    large = render_shot("moving", FRAMES, (341, 256), seed=2)
    return {
        "sharp64": lambda: small, "sharp256": lambda: large,
        "upscaled64to256": lambda: scaled(small, 256, cv2.INTER_CUBIC),
        "low_contrast256": lambda: (large * 0.25 + 96).astype(np.uint8),
        "photo256": photo, "photo_upscaled64to256": lambda: scaled(scaled(photo(), 64), 256, cv2.INTER_CUBIC),
        "blurred64": lambda: blurred(small), "blurred256": lambda: blurred(large),
        "photo_blurred256": lambda: blurred(photo()),
    }[name]()  # fmt: skip


def blur_verdict(tmp_path, frames: np.ndarray) -> tuple[str | None, float]:
    path = str(tmp_path / "clip.mp4")
    encode_mp4(frames, path, fps=FPS)
    working, _ = decode_working(path, FPS, FilterConfig())
    cfg = QualityConfig()
    scores = quality_scores(working, scan_native(path).lumas, cfg)
    reason = quality_verdict({**scores, "brightness": 0.5, "clipped": 0.0, "noise": 0.0, "blockiness": 0.0}, cfg)
    return reason, scores["sharpness"]


@pytest.mark.parametrize("name", ["sharp64", "sharp256", "upscaled64to256", "low_contrast256", "photo256",
                                  "photo_upscaled64to256"])
def test_sharp_and_upscaled_clips_are_kept_at_any_resolution(tmp_path, name):
    reason, score = blur_verdict(tmp_path, clip(name))
    assert reason is None, (reason, score)


@pytest.mark.parametrize("name", ["blurred64", "blurred256", "photo_blurred256"])
def test_clips_blurred_at_their_own_resolution_are_dropped(tmp_path, name):
    reason, score = blur_verdict(tmp_path, clip(name))
    assert reason is not None and reason.startswith("blurry: sharpness"), (reason, score)


def test_sharpness_ignores_contrast_and_a_sharp_small_clip_scores_far_above_its_blurred_copy(tmp_path):
    full = blur_verdict(tmp_path, clip("sharp256"))[1]
    assert abs(blur_verdict(tmp_path, clip("low_contrast256"))[1] - full) < 0.25 * full
    assert blur_verdict(tmp_path, clip("sharp64"))[1] > 2 * blur_verdict(tmp_path, clip("blurred64"))[1]
