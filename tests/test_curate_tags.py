"""Camera-motion tags on flat-shaded animation: a pan over flat fills is a pan, not a still camera; a still camera
on objects moving in different directions over a plain gradient sky is still, not a pan that follows some of them."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from worldsmith.curate.dedup import DedupConfig
from worldsmith.curate.process import AnnotateConfig, FilterConfig, process_clip
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.synth_animation import render_cel
from worldsmith.io.encode import encode_mp4

FPS, FRAMES, W, H = 12.0, 36, 320, 240


def cartoon_pan(sign: int, seed: int) -> np.ndarray:
    """uint8 (FRAMES, H, W, 3): the camera pans 4 px a frame over a flat-shaded scene (flat fills, no noise)."""
    rng = np.random.default_rng(seed)
    canvas = np.empty((H, 3 * W, 3), np.uint8)
    canvas[:] = rng.integers(60, 230, 3)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y, r = int(rng.integers(0, 3 * W)), int(rng.integers(0, H)), int(rng.integers(10, 30))
        cv2.circle(canvas, (x, y), r, color, -1)
    start = W + (0 if sign > 0 else W // 2)
    return np.stack([canvas[:, start + sign * 4 * i : start + sign * 4 * i + W] for i in range(FRAMES)])


def discs_over_sky(seed: int) -> np.ndarray:
    return render_cel(FRAMES, (W, H), seed)


def no_filters() -> FilterConfig:
    """Filters off (this is about the tags; shakiness on flat fills is not measured here)."""
    f = FilterConfig()
    off = {name: dataclasses.replace(getattr(f, name), enabled=False) for name in ("quality", "motion", "text",
                                                                                    "video_type")}  # fmt: skip
    return dataclasses.replace(f, **off)


@pytest.mark.parametrize("sign, direction", [(1, "right"), (-1, "left")])
def test_a_pan_over_flat_animation_is_tagged_pan(tmp_path, one_torch_thread, sign, direction):
    path = str(tmp_path / "pan.mp4")
    encode_mp4(cartoon_pan(sign, seed=0), path, fps=FPS)
    rec = ClipRecord("c", path, 0, FRAMES, 0.0, FRAMES / FPS, FPS, W, H, path=path)
    rec = process_clip(rec, no_filters(), AnnotateConfig(), DedupConfig())
    assert rec.kept, rec.reason
    assert (rec.tags["camera_motion"], rec.tags["camera_direction"]) == ("pan", direction), rec.tags


@pytest.mark.parametrize("seed", [0, 1])
def test_a_still_camera_on_objects_moving_both_ways_over_a_plain_sky_is_static(tmp_path, one_torch_thread, seed):
    path = str(tmp_path / "discs.mp4")
    encode_mp4(discs_over_sky(seed), path, fps=FPS)
    rec = ClipRecord("c", path, 0, FRAMES, 0.0, FRAMES / FPS, FPS, W, H, path=path)
    rec = process_clip(rec, no_filters(), AnnotateConfig(), DedupConfig())
    assert rec.kept, rec.reason
    assert (rec.tags["camera_motion"], rec.tags["camera_direction"]) == ("static", ""), rec.tags
