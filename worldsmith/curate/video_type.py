"""What kind of video a clip is: natural footage, screen content (slides, web pages, games' menus) or synthetic
graphics (animation, renders). A pluggable classifier with a working offline default.

A classifier is any callable ``frames uint8 (T, H, W, 3) -> {type: probability}``; ``video_type_scores`` records
every probability as a score ``type_<name>`` and the filter allows/denies types by name.

The default, ``ImageNetTypeClassifier``, needs no training and downloads nothing:

* ``screen_content``: the summed ImageNet probability (EfficientNet-lite0 from ``worldsmith.eval.features``,
  averaged over sampled frames) of the classes that are screens or printed/rendered text: web site, menu,
  crossword puzzle, comic book, book jacket, scoreboard, monitor, screen, television, laptop, desktop computer,
  notebook, hand-held computer. (Envelope and binder were left out: flat cartoons score high on them.) It can
  tell a screen recording, a slide deck or a document scan from camera footage; it cannot tell a filmed monitor
  from a screen capture, and it is weak on screen content that looks like nothing in ImageNet (a full-screen
  game). Measured at the default 160x160 input: a scrolling text page scores 0.79 (160x120 frames) to 0.84
  (320x240), camera-like texture 0.003, a flat cartoon 0.06, MuJoCo renders of the four worlds
  0.001-0.20; hence ``min_prob`` 0.5.
* ``graphics``: a hand-made cue, not a learned class: flat-shaded renders and animation are made of regions that
  are locally planar and noise-free (flat fills, but also gradients: a sky, cel or smooth shading), camera
  footage has sensor noise and texture everywhere. The cue is the fraction of 8x8 blocks whose mean absolute
  residual of Immerkaer's 3x3 kernel (which cancels planes and linear ramps; ``quality.noise_sigma`` uses it too)
  is below ``PLANAR_RESIDUAL`` grey levels, mapped linearly from 0.2 (natural) to 0.6 (graphics). (The cue used
  to be blocks whose luma range is under 2 grey levels; it called cel-shaded animation on a gradient sky
  natural: 0.17-0.51 of such blocks, against 0.73-0.80 planar ones.) Measured after H.264 (crf 18) on
  benchmarks/curate_tags.py's clips: generated footage with sensor noise 0.00-0.07, photos 0.00-0.21, flat
  cartoons 0.85-0.91, cel-shaded animation on gradients 0.73-0.80 (0.66-0.76 upscaled from 80 pixels), MuJoCo
  renders upscaled x4 0.42-0.78. It cannot tell a photo-realistic render from footage, it calls animation with
  film grain natural (grain 2 grey levels: 0.03-0.08), and it calls very flat real scenes (a white wall, a clear
  sky in heavily compressed footage) graphics, so the default config denies no graphics: simulated worlds are
  wanted data.
* ``natural``: what remains, ``max(0, 1 - screen_content - graphics)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from worldsmith.errors import ConfigError
from worldsmith.eval.features import efficientnet_lite0

# ImageNet-1k class indices of screens and printed or rendered text (names in the module docstring)
SCREEN_CLASSES = (916, 922, 918, 917, 921, 781, 664, 782, 851, 620, 527, 681, 590)
PLANAR_RESIDUAL = 1.0  # grey levels: an 8x8 block whose mean |plane-cancelling residual| is below this is planar
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # cancels planes and linear ramps


@dataclass
class VideoTypeConfig:
    enabled: bool = True
    classifier: str = "imagenet"  # "imagenet": the default below; others can be passed to process_clip
    frames: int = 4  # frames sampled per clip
    input_size: int = 160  # frames are resized to input_size^2 for the network (160: screens score higher than at
    # the native 224, and it is twice as fast)
    denied: list[str] = field(default_factory=lambda: ["screen_content"])  # drop when one of these wins
    allowed: list[str] = field(default_factory=list)  # if not empty: drop unless the winning type is listed
    min_prob: float = 0.5  # a denied type counts when its probability is at least this

    def __post_init__(self) -> None:
        if self.frames < 1 or self.input_size < 32:
            raise ConfigError(f"video_type needs frames >= 1 and input_size >= 32, got {self.frames} and "
                              f"{self.input_size}.")


class VideoTypeClassifier(Protocol):
    def __call__(self, frames: np.ndarray) -> dict[str, float]: ...


def imagenet_probs(frames: np.ndarray, n: int = 4, input_size: int = 160) -> torch.Tensor:
    """Mean ImageNet class probabilities (1000,) of ``n`` evenly spaced uint8 (T, H, W, 3) frames, each resized to
    ``input_size`` squared (EfficientNet-lite0, float32 torch tensor)."""
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    x = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2).float() / 127.5 - 1  # (n, 3, H, W)
    x = F.interpolate(x, size=(input_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return efficientnet_lite0("cpu")(x).softmax(dim=1).mean(dim=0)  # (1000,)


def planar_fraction(frame: np.ndarray) -> float:
    """Fraction of 8x8 blocks of a uint8 (H, W, 3) frame that are locally planar and noise-free: flat or a smooth
    gradient, mean |Immerkaer residual| of the luma below ``PLANAR_RESIDUAL`` grey levels."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = (grey.shape[0] // 8) * 8, (grey.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return 0.0
    residual = np.abs(cv2.filter2D(grey, cv2.CV_32F, _IMMERKAER))[:h, :w]  # (h, w)
    blocks = residual.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))  # (h/8, w/8)
    return float(np.mean(blocks < PLANAR_RESIDUAL))


class ImageNetTypeClassifier:
    """screen_content from ImageNet classes, graphics from planar regions, natural for the rest (see module doc)."""

    def __init__(self, frames: int = 4, input_size: int = 160) -> None:
        self.frames, self.input_size = frames, input_size

    def __call__(self, frames: np.ndarray) -> dict[str, float]:
        probs = imagenet_probs(frames, self.frames, self.input_size)
        screen = float(probs[list(SCREEN_CLASSES)].sum())
        planar = float(np.median([planar_fraction(f) for f in frames[:: max(1, len(frames) // self.frames)]]))
        graphics = float(np.clip((planar - 0.2) / 0.4, 0.0, 1.0)) * (1.0 - screen)
        return {"screen_content": screen, "graphics": graphics, "natural": max(0.0, 1.0 - screen - graphics)}


def default_classifier(cfg: VideoTypeConfig) -> VideoTypeClassifier:
    if cfg.classifier != "imagenet":
        raise ConfigError(f"unknown video-type classifier {cfg.classifier!r}; use 'imagenet' or pass your own.")
    return ImageNetTypeClassifier(cfg.frames, cfg.input_size)


def video_type_scores(probs: dict[str, float]) -> dict[str, float]:
    """Classifier output -> scores named ``type_<name>``."""
    return {f"type_{name}": float(p) for name, p in probs.items()}


def video_type_verdict(probs: dict[str, float], cfg: VideoTypeConfig) -> str | None:
    best = max(probs, key=probs.get)
    for name in cfg.denied:
        if probs.get(name, 0.0) >= cfg.min_prob:
            return f"video type {name}: type_{name} {probs[name]:.2f} is at least min_prob={cfg.min_prob} (denied)."
    if cfg.allowed and best not in cfg.allowed:
        return f"video type {best} (type_{best} {probs[best]:.2f}) is not in allowed={cfg.allowed}."
    return None
