"""Visual quality of a clip: sharpness, exposure, noise and compression blockiness.

All scores are medians over a few sampled frames, so one flash or one blurred frame does not decide:

* ``sharpness``: 1 / the blur radius (Gaussian sigma, in pixels) of the frame's strongest edges, measured on the
  frame as stored, or shrunk to ``short_side`` when larger (never enlarged). The radius comes from how much
  an extra Gaussian blur of ``REBLUR`` pixels weakens the edges (Crete et al. 2007, "The blur effect"): a step
  edge of blur sigma_b has peak gradient A / (sqrt(2 pi) sigma_b), so the ratio r of the gradient before and
  after the reblur gives sigma_b = REBLUR / sqrt(r^2 - 1), whatever the edge's contrast A. So the score does not
  depend on contrast, and the threshold is in the clip's own pixels: it scales with resolution (a sharp 64x64
  clip scores as high as a sharp 256x256 one). Gradients are those of the colour channel that changes most, so
  an edge between two colours of equal luma counts. Measured (benchmarks/curate_tags.py): sharp footage, photos
  and renders 0.84-1.9; upscaled x4 (bicubic) 0.53-0.66; blurred with sigma 2.5 at its own resolution
  0.35-0.45. A frame with no edges at all scores 0. Periodic texture (stripes) reads sharper than it is: only the
  strongest 10 % of edges are used, which are mostly object outlines.
* ``brightness``: mean luma in [0, 1]; ``clipped``: fraction of pixels crushed to black (luma <= 8/255) or blown
  to white (>= 247/255). Too dark, too bright or mostly clipped clips are dropped.
* ``noise``: sensor-noise standard deviation in grey levels (0..255), estimated from the high-pass residual of a
  3x3 kernel that cancels planes and linear ramps (Immerkaer 1996, "Fast noise variance estimation"), taken only
  on pixels away from edges (Sobel magnitude below its 70th percentile) so texture is not mistaken for noise.
* ``blockiness``: how much stronger luma steps are across the codec's 8x8 block grid than inside blocks, on
  native-resolution luma (the grid only exists there): mean |step| on grid columns/rows over mean |step| elsewhere,
  minus 1, counting only steps below 10 grey levels (block edges are subtle; larger steps are content edges).
  About 0 for clean video (x264 crf 35: 0.02), 0.3+ for visibly blocky, heavily compressed video (crf 45: 0.33,
  crf 51: 0.7-0.8). Not measured on frames smaller than 96 pixels: with fewer than 12 grid lines, a few object
  edges that fall on the grid decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worldsmith.errors import ConfigError

EDGE_STEP = 10.0  # luma steps this large are content edges, left out of blockiness (block edges are subtle)
BLOCKINESS_CROP = 512  # blockiness looks at most at the central 512x512 pixels of a frame
MIN_BLOCKINESS_SIDE = 96  # below this, a few object edges on the 8x8 grid decide: blockiness is not measured
REBLUR = 3.0  # sigma (pixels) of the extra blur that sharpness compares the edges against
MIN_EDGE = 0.5  # grey levels per pixel: weaker gradients (after the reblur) are not edges
MIN_EDGES = 8  # a frame with fewer edge points than this scores sharpness 0 (nothing in it is sharp)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass
class QualityConfig:
    enabled: bool = True
    frames: int = 6  # frames sampled per clip
    short_side: int = 240  # sharpness is measured on grey frames shrunk to this short side when larger
    min_sharpness: float = 0.5  # drop below: 1 / the blur radius of the strongest edges (0.5 = a 2-pixel blur)
    min_brightness: float = 0.08  # drop below: mean luma in [0, 1]
    max_brightness: float = 0.92  # drop above
    max_clipped: float = 0.6  # drop above: fraction of pixels crushed to black or blown to white
    max_noise: float = 12.0  # drop above: noise standard deviation in grey levels
    max_blockiness: float = 0.3  # drop above: relative strength of 8x8 block edges (x264 crf 45: 0.33, crf 35: 0.02)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.short_side < 8:
            raise ConfigError(
                f"quality needs frames >= 1 and short_side >= 8, got {self.frames} and {self.short_side}.")


def luma(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (H, W) luma 0..255 (BT.601 weights, what the codecs' Y plane holds)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


def sample(frames: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced frames of (T, ...) (all of them when T <= n)."""
    if len(frames) <= n:
        return frames
    return frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]


def _gradient(image: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) -> (H, W): gradient magnitude of the channel that changes most, in levels per pixel
    (Sobel, divided by its gain of 8)."""
    return (np.hypot(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1)) / 8.0).max(axis=2)


def sharpness(frame: np.ndarray, short_side: int) -> float:
    """1 / the blur sigma (pixels) of the strongest edges of a uint8 (H, W, 3) frame (see module doc)."""
    h, w = frame.shape[:2]
    if min(h, w) > short_side:
        scale = short_side / min(h, w)
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    image = frame.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    fine = cv2.dilate(_gradient(image), kernel)  # the edge's peak gradient, wherever within a pixel it lies
    coarse = _gradient(cv2.GaussianBlur(image, (0, 0), REBLUR))
    peaks = (coarse >= cv2.dilate(coarse, kernel)) & (coarse > MIN_EDGE)  # edge centres after the reblur
    border = int(2 * REBLUR)
    peaks[:border], peaks[-border:], peaks[:, :border], peaks[:, -border:] = False, False, False, False
    if peaks.sum() < MIN_EDGES:
        return 0.0
    strongest = peaks & (coarse >= np.percentile(coarse[peaks], 90))  # object outlines rather than texture
    ratio = float(np.median(fine[strongest] / coarse[strongest]))
    return float(np.sqrt(max(ratio * ratio - 1.0, 0.0)) / REBLUR)


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkaer's estimate sigma = sqrt(pi/2) / 6 * mean|I * N| on flat pixels (N cancels planes and ramps)."""
    if min(grey.shape) < 8:
        return 0.0
    residual = np.abs(cv2.filter2D(grey, cv2.CV_32F, _IMMERKAER))[1:-1, 1:-1]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)[1:-1, 1:-1]
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)[1:-1, 1:-1]
    edges = np.hypot(gx, gy)
    flat = edges <= np.percentile(edges, 70)
    return float(np.sqrt(np.pi / 2) / 6 * residual[flat].mean())


def blockiness(y: np.ndarray) -> float:
    """Mean |luma step| across the 8x8 grid over the mean step elsewhere, minus 1 (native-resolution luma).
    Steps of ``EDGE_STEP`` grey levels or more are left out on both sides: a synthetic checkerboard whose squares
    happen to line up with the grid would otherwise look like blocking."""
    h, w = y.shape
    top = max(0, (h - BLOCKINESS_CROP) // 16 * 8)  # a centre crop whose offsets stay on the 8x8 grid
    left = max(0, (w - BLOCKINESS_CROP) // 16 * 8)
    y = y[top : top + BLOCKINESS_CROP, left : left + BLOCKINESS_CROP].astype(np.float32)
    ratios = []
    for steps in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):  # (rows, cols - 1) each
        cols = np.arange(steps.shape[1])
        on_grid = cols % 8 == 7  # the step between column 8k + 7 and 8k + 8
        grid, inside = steps[:, on_grid], steps[:, ~on_grid]
        grid, inside = grid[grid < EDGE_STEP], inside[inside < EDGE_STEP]  # content edges are not block edges
        if grid.size == 0 or inside.size == 0:
            continue
        ratios.append(grid.mean() / max(inside.mean(), 0.5))
    if not ratios:
        return 0.0
    return float(max(0.0, np.mean(ratios) - 1.0))


def quality_scores(frames: np.ndarray, lumas: list[np.ndarray] | None, cfg: QualityConfig) -> dict[str, float]:
    """Scores of uint8 (T, H, W, 3) working frames; ``lumas`` (native-resolution luma planes) feed blockiness."""
    picked = sample(frames, cfg.frames)
    greys = [luma(f) for f in picked]
    stack = np.stack(greys)  # (n, H, W)
    scores = {
        "sharpness": float(np.median([sharpness(f, cfg.short_side) for f in picked])),
        "brightness": float(stack.mean() / 255.0),
        "clipped": float(np.mean((stack <= 8) | (stack >= 247))),
        "noise": float(np.median([noise_sigma(g) for g in greys])),
    }
    lumas = [y for y in lumas or [] if min(y.shape) >= MIN_BLOCKINESS_SIDE]
    if lumas:
        scores["blockiness"] = float(np.median([blockiness(y) for y in lumas]))
    return scores


def quality_verdict(scores: dict[str, float], cfg: QualityConfig) -> str | None:
    """None when the clip passes, else one sentence naming the failing score and its threshold."""
    checks = [
        ("brightness", scores["brightness"] < cfg.min_brightness, "too dark", "below min_brightness",
         cfg.min_brightness),
        ("brightness", scores["brightness"] > cfg.max_brightness, "over-exposed", "above max_brightness",
         cfg.max_brightness),
        ("clipped", scores["clipped"] > cfg.max_clipped, "badly exposed", "above max_clipped", cfg.max_clipped),
        ("noise", scores["noise"] > cfg.max_noise, "noisy", "above max_noise", cfg.max_noise),
        ("blockiness", scores.get("blockiness", 0.0) > cfg.max_blockiness, "compression artefacts",
         "above max_blockiness", cfg.max_blockiness),
        ("sharpness", scores["sharpness"] < cfg.min_sharpness, "blurry", "below min_sharpness", cfg.min_sharpness),
    ]
    for name, failed, what, rule, threshold in checks:
        if failed:
            return f"{what}: {name} {scores[name]:.3f} is {rule}={threshold}."
    return None
