"""Video type: animation shaded with gradients (a gradient sky, cel and smooth shading, outlines) is graphics, even
upscaled; camera footage and photos stay natural."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldsmith.curate.process import FilterConfig, decode_working
from worldsmith.curate.synth import render_shot
from worldsmith.curate.synth_animation import render_cel
from worldsmith.curate.video_type import ImageNetTypeClassifier, planar_fraction
from worldsmith.io.encode import encode_mp4

FPS, FRAMES, W, H = 12.0, 12, 320, 240


def cel_animation(seed: int = 0) -> np.ndarray:
    return render_cel(FRAMES, (W, H), seed)


def upscaled_x3(frames: np.ndarray) -> np.ndarray:
    small = [cv2.resize(f, (W // 3, H // 3), interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_CUBIC) for f in small])


def chelsea() -> np.ndarray:
    import skimage.data  # the photo ships in the scikit-image wheel

    return np.stack([cv2.resize(skimage.data.chelsea(), (W, H), interpolation=cv2.INTER_AREA)] * FRAMES)


def video_type(tmp_path, frames: np.ndarray) -> tuple[str, dict[str, float]]:
    path = str(tmp_path / "clip.mp4")
    encode_mp4(frames, path, fps=FPS)
    working, _ = decode_working(path, FPS, FilterConfig())
    probs = ImageNetTypeClassifier()(working)
    return max(probs, key=probs.get), probs


@pytest.mark.parametrize("make, expect", [(cel_animation, "graphics"),
                                          (lambda: upscaled_x3(cel_animation()), "graphics"),
                                          (lambda: render_shot("pan", FRAMES, (W, H), seed=0), "natural"),
                                          (chelsea, "natural")])  # fmt: skip
def test_gradient_shaded_animation_is_graphics_and_footage_natural(tmp_path, one_torch_thread, make, expect):
    kind, probs = video_type(tmp_path, make())
    assert kind == expect, probs


def test_planar_blocks_are_flat_or_smooth_gradients_without_noise():
    ramp = np.broadcast_to(np.linspace(0, 255, W, dtype=np.float32)[None, :, None], (H, W, 3)).astype(np.uint8)
    noisy = np.clip(128 + np.random.default_rng(0).normal(0, 2.0, (H, W, 3)), 0, 255).astype(np.uint8)
    assert planar_fraction(ramp) > 0.95
    assert planar_fraction(np.full((H, W, 3), 90, np.uint8)) == 1.0
    assert planar_fraction(noisy) < 0.05
