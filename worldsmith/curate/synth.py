"""Synthetic multi-shot videos with known ground truth, for the curation tests and the benchmark.

Each shot is a procedurally drawn scene (a gradient + low-frequency texture + stripes or checks on a large canvas,
a few moving shapes, sensor noise) seen by a camera of one kind:

* ``static``   camera and shapes still (only noise changes): what the motion filter must drop
* ``moving``   camera still, shapes move
* ``pan``      the camera pans across the canvas (``fast_pan``: one to two frame widths per second)
* ``zoom``     the camera zooms in (``fast_zoom``: to 40 % of the field of view within the shot)
* ``shaky``    hand-held jitter of a few percent of the frame per frame

Shots are joined by hard cuts or gradual transitions (``fade`` through black, ``dissolve``), and some shots carry
brightness ``flash`` frames: fast camera motion and flashes are the distractors a shot detector must ignore.

Ground truth (``make_multishot``'s return value, JSON-serialisable) uses output frame indices:
``shots``: ``{"start", "end", "kind"}`` spans ``[start, end)`` of pure shot frames; ``boundaries``: one per shot
change, ``{"kind", "start", "end"}`` where a cut has ``start == end`` = the first frame of the new shot and a
transition spans frames ``[start, end)`` that belong to neither shot. ``boundary_f1`` scores detected spans.

Sizes are written ``(width, height)`` here, like "320x240" (``worldsmith.io.video`` uses ``(H, W)``).
Everything is deterministic for a seed; rendering is numpy/OpenCV, a 320x240 frame costs about a millisecond.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.io.encode import encode_mp4

SHOT_KINDS = ("static", "moving", "pan", "fast_pan", "zoom", "fast_zoom", "shaky")
TRANSITIONS = ("cut", "fade", "dissolve")


@dataclass
class ShotSpec:
    kind: str = "moving"  # one of SHOT_KINDS
    frames: int = 50  # pure shot frames (transition frames come on top)
    flashes: list[int] = field(default_factory=list)  # frame offsets inside the shot that flash bright
    transition: str = "cut"  # how this shot ends: "cut", "fade" or "dissolve" (ignored for the last shot)
    transition_frames: int = 0  # length of a gradual transition (0 for cuts)


# ---------------------------------------------------------------------------------------------------- scenes
def _hsv_color(hue: float, sat: float, val: float) -> np.ndarray:
    """One RGB colour (3,) float32 in [0, 255] from HSV in [0, 1]."""
    hsv = np.array([[[hue * 179.0, sat * 255.0, val * 255.0]]], np.float32).clip(0, [[[179, 255, 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def make_canvas(rng: np.random.Generator, width: int, height: int, hue: float) -> np.ndarray:
    """A textured background uint8 (height, width, 3) with a dominant hue (0..1) that decides its look."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)  # (H, W) each
    # 1. a two-colour gradient along a random direction
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xs * np.cos(angle) + ys * np.sin(angle)) / max(width, height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)  # (H, W) in [0, 1]
    c1 = _hsv_color(hue, rng.uniform(0.5, 1.0), rng.uniform(0.45, 0.95))
    c2 = _hsv_color((hue + rng.uniform(0.05, 0.15)) % 1.0, rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.8))
    img = ramp[..., None] * c1 + (1.0 - ramp[..., None]) * c2  # (H, W, 3)
    # 2. low-frequency colour texture (a small random grid upsampled), so pans and zooms have something to track
    cell = int(rng.integers(12, 40))
    grid = rng.uniform(-1, 1, (max(2, height // cell + 2), max(2, width // cell + 2), 3)).astype(np.float32)
    img += 35.0 * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    # 3. a pattern: stripes at an angle or a checkerboard
    period = rng.uniform(10, 40)
    if rng.random() < 0.5:
        phase = xs * np.cos(angle + 1.0) + ys * np.sin(angle + 1.0)
        pattern = np.sin(2 * np.pi * phase / period)
    else:
        pattern = np.where((xs // period + ys // period) % 2 == 0, 1.0, -1.0).astype(np.float32)
    img += rng.uniform(12, 30) * pattern[..., None]
    return img.clip(0, 255).astype(np.uint8)


class _Shapes:
    """A few circles and rectangles in screen coordinates, bouncing off the frame edges."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, hue: float, speed: float) -> None:
        n = int(rng.integers(3, 7))
        self.size = (width, height)
        self.pos = rng.uniform(0.1, 0.9, (n, 2)) * (width, height)  # (n, 2) x, y
        self.vel = rng.uniform(-1, 1, (n, 2)) * speed * min(width, height)  # px per frame
        self.radius = rng.uniform(0.05, 0.16, n) * min(width, height)
        self.is_rect = rng.random(n) < 0.5
        hues = (hue + 0.5 + rng.uniform(-0.25, 0.25, n)) % 1.0  # shapes contrast with the background
        self.color = [tuple(float(c) for c in _hsv_color(h, rng.uniform(0.6, 1), rng.uniform(0.6, 1))) for h in hues]

    def draw(self, img: np.ndarray) -> None:
        for (x, y), r, rect, color in zip(self.pos, self.radius, self.is_rect, self.color):
            if rect:
                cv2.rectangle(img, (int(x - r), int(y - 0.7 * r)), (int(x + r), int(y + 0.7 * r)), color, -1)
            else:
                cv2.circle(img, (int(x), int(y)), max(1, int(r)), color, -1, lineType=cv2.LINE_AA)

    def step(self) -> None:
        self.pos += self.vel
        for axis, limit in enumerate(self.size):
            out = (self.pos[:, axis] < 0) | (self.pos[:, axis] > limit)
            self.vel[out, axis] *= -1
            self.pos[:, axis] = self.pos[:, axis].clip(0, limit)


def _camera_path(rng: np.random.Generator, kind: str, n: int, width: int, height: int):
    """Canvas size and per-frame crop boxes (n, 4) = x, y, w, h for a camera of the given kind."""
    t = np.arange(n, dtype=np.float64)
    if kind in ("pan", "fast_pan"):
        speed = rng.uniform(0.04, 0.08) if kind == "fast_pan" else rng.uniform(0.006, 0.015)  # frame widths/frame
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction) + 1e-9
        direction[1] *= 0.4  # mostly horizontal
        travel = speed * width * max(n - 1, 1)
        span = min(travel, 6.0 * width)  # longer pans bounce back and forth on a canvas up to 7 widths wide
        cw, ch = int(width + span * abs(direction[0])) + 2, int(height + span * abs(direction[1])) + 2
        dist = speed * width * t
        dist = np.abs((dist + span) % (2 * span) - span) if span > 0 else dist  # triangle wave: bounce
        x = dist * abs(direction[0]) if direction[0] >= 0 else (cw - width - 1) - dist * abs(direction[0])
        y = dist * abs(direction[1]) if direction[1] >= 0 else (ch - height - 1) - dist * abs(direction[1])
        boxes = np.stack([x, y, np.full(n, width), np.full(n, height)], 1)
    elif kind in ("zoom", "fast_zoom"):
        end = rng.uniform(0.35, 0.45) if kind == "fast_zoom" else rng.uniform(0.8, 0.9)
        cw, ch = width, height
        scale = 1.0 + (end - 1.0) * t / max(n - 1, 1)  # fraction of the field of view
        cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
        w, h = scale * width, scale * height
        boxes = np.stack([(cx - w / 2).clip(0, width - w), (cy - h / 2).clip(0, height - h), w, h], 1)
    elif kind == "shaky":
        margin = 0.04
        cw, ch = int(width * (1 + 2 * margin)), int(height * (1 + 2 * margin))
        jitter = rng.uniform(-1, 1, (n, 2)) * margin * np.array([width, height])
        boxes = np.concatenate([jitter + margin * np.array([width, height]), np.tile([width, height], (n, 1))], 1)
    else:
        cw, ch = width, height
        boxes = np.tile([0.0, 0.0, width, height], (n, 1))
    return (cw, ch), boxes


def render_shot(
    kind: str,
    frames: int,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    *,
    hue: float | None = None,
    flashes: Sequence[int] = (),
    noise: float = 4.0,
) -> np.ndarray:
    """One shot as uint8 (frames, H, W, 3) for ``size = (W, H)``; ``flashes`` are frame offsets made bright."""
    if kind not in SHOT_KINDS:
        raise ValueError(f"unknown shot kind {kind!r}; use one of {', '.join(SHOT_KINDS)}")
    width, height = size
    rng = np.random.default_rng(seed)
    hue = rng.random() if hue is None else hue
    # 1. the scene: a canvas as large as the camera path needs, and the shapes (still for a static shot)
    (cw, ch), boxes = _camera_path(rng, kind, frames, width, height)
    canvas = make_canvas(rng, cw, ch, hue)
    shapes = _Shapes(rng, width, height, hue, speed=0.0 if kind == "static" else rng.uniform(0.01, 0.03))
    bank = rng.normal(0.0, noise, (4, height, width, 3)).astype(np.int16)  # (4, H, W, 3) sensor noise
    out = np.empty((frames, height, width, 3), np.uint8)
    flash_set = set(int(f) for f in flashes)
    for i, (x, y, w, h) in enumerate(boxes):
        # 2. camera: crop the canvas (and resize for zooms)
        if (round(w), round(h)) == (width, height):
            xi, yi = min(max(int(round(x)), 0), cw - width), min(max(int(round(y)), 0), ch - height)
            img = canvas[yi : yi + height, xi : xi + width].copy()
        else:
            crop = canvas[int(y) : int(y + h), int(x) : int(x + w)]
            img = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        # 3. objects, noise, flashes
        shapes.draw(img)
        shapes.step()
        frame = img.astype(np.int16) + bank[int(rng.integers(4))]
        if i in flash_set:
            frame = frame * 2 + 90  # a strobe / muzzle flash / headlight: far brighter for one frame
        out[i] = frame.clip(0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------------- videos
def random_plan(
    rng: np.random.Generator,
    shots: int,
    fps: float,
    *,
    shot_s: tuple[float, float] = (1.5, 4.0),
    kinds: Sequence[str] = SHOT_KINDS,
    transitions: Sequence[str] = TRANSITIONS,
    transition_s: tuple[float, float] = (0.3, 0.8),
    flash_p: float = 0.3,
) -> list[ShotSpec]:
    """A random list of shots: kinds, lengths, flashes (kept away from the shot ends) and transitions."""
    plan = []
    for _ in range(shots):
        n = max(2, int(round(rng.uniform(*shot_s) * fps)))
        kind = str(rng.choice(list(kinds)))
        flashes = [int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))] if n >= 12 and rng.random() < flash_p else []
        transition = str(rng.choice(list(transitions)))
        t_frames = 0 if transition == "cut" else max(3, int(round(rng.uniform(*transition_s) * fps)))
        plan.append(ShotSpec(kind, n, flashes, transition, t_frames))
    return plan


def _blend(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """Transition frames (L, H, W, 3) from the tail of shot a and the head of shot b (both (L, H, W, 3))."""
    n = len(a)
    t = ((np.arange(n) + 0.5) / n).reshape(-1, 1, 1, 1).astype(np.float32)  # (L, 1, 1, 1) in (0, 1)
    if kind == "fade":  # through black: a fades out over the first half, b fades in over the second
        wa, wb = np.clip(1 - 2 * t, 0, 1), np.clip(2 * t - 1, 0, 1)
    else:  # cross-dissolve
        wa, wb = 1 - t, t
    return (a.astype(np.float32) * wa + b.astype(np.float32) * wb).round().astype(np.uint8)


def _distinct_hues(rng: np.random.Generator, n: int) -> list[float]:
    """Hues for n shots; neighbours differ by at least 0.15 of the colour wheel so consecutive scenes differ."""
    hues = [float(rng.random())]
    for _ in range(n - 1):
        hues.append(float((hues[-1] + rng.uniform(0.15, 0.85)) % 1.0))
    return hues


def render_plan(plan: Sequence[ShotSpec], size: tuple[int, int], seed: int) -> tuple[Iterator[np.ndarray], dict]:
    """Frames of a multi-shot video (a generator holding at most two shots) and its ground truth."""
    rng = np.random.default_rng(seed)
    hues = _distinct_hues(rng, len(plan))
    seeds = [int(s) for s in rng.integers(0, 2**31, len(plan))]
    # 1. ground truth: each shot is [head transition frames] + pure frames + [tail transition frames]
    truth: dict = {"shots": [], "boundaries": [], "cuts": [], "transitions": [], "distractors": []}
    pos = 0
    for i, spec in enumerate(plan):
        truth["shots"].append({"start": pos, "end": pos + spec.frames, "kind": spec.kind})
        truth["distractors"] += [{"kind": "flash", "frame": pos + f} for f in spec.flashes]
        if spec.kind in ("fast_pan", "fast_zoom"):
            truth["distractors"].append({"kind": spec.kind, "start": pos, "end": pos + spec.frames})
        pos += spec.frames
        if i + 1 < len(plan):
            t = spec.transition_frames if spec.transition != "cut" else 0
            truth["boundaries"].append({"kind": spec.transition, "start": pos, "end": pos + t})
            (truth["transitions"].append([pos, pos + t, spec.transition]) if t else truth["cuts"].append(pos))
            pos += t
    truth["num_frames"] = pos

    # 2. frames, streamed shot by shot
    def frames() -> Iterator[np.ndarray]:
        head = np.empty((0, size[1], size[0], 3), np.uint8)  # incoming transition frames of the current shot
        for i, spec in enumerate(plan):
            t_in = len(head)
            t_out = spec.transition_frames if i + 1 < len(plan) and spec.transition != "cut" else 0
            nxt = plan[i + 1] if i + 1 < len(plan) else None
            flashes = [f + t_in for f in spec.flashes]
            shot = render_shot(spec.kind, t_in + spec.frames + t_out, size, seeds[i], hue=hues[i], flashes=flashes)
            if t_in:
                yield from _blend(head, shot[:t_in], plan[i - 1].transition)
            yield from shot[t_in : t_in + spec.frames]
            head = shot[t_in + spec.frames :]  # the tail, blended with the next shot's head
            if nxt is None:
                return

    return frames(), truth


def render_same_place(
    lengths: Sequence[int], size: tuple[int, int] = (160, 120), seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Hard cuts between shots of one place, the hardest kind (same colours, same texture): each shot is another
    still view of one canvas 4 frames wide (4 frames tall for a portrait ``size``) with its own moving shapes.

    Returns uint8 (T, H, W, 3) frames and their ground truth (``shots``, ``boundaries``, ``cuts``, ``num_frames``).
    """
    width, height = size
    rng = np.random.default_rng(seed)
    hue = float(rng.random())
    wide = width >= height
    canvas = make_canvas(rng, width * (4 if wide else 1), height * (1 if wide else 4), hue)
    frames, truth = [], {"shots": [], "boundaries": [], "cuts": [], "transitions": [], "distractors": []}
    for i, n in enumerate(lengths):
        x, y = int(rng.integers(0, canvas.shape[1] - width + 1)), int(rng.integers(0, canvas.shape[0] - height + 1))
        shapes = _Shapes(rng, width, height, hue, speed=rng.uniform(0.01, 0.03))
        if i:
            truth["boundaries"].append({"kind": "cut", "start": len(frames), "end": len(frames)})
            truth["cuts"].append(len(frames))
        truth["shots"].append({"start": len(frames), "end": len(frames) + n, "kind": "moving"})
        for _ in range(n):
            img = canvas[y : y + height, x : x + width].copy()
            shapes.draw(img)
            shapes.step()
            frames.append((img + rng.normal(0.0, 4.0, img.shape)).clip(0, 255).astype(np.uint8))
    truth["num_frames"] = len(frames)
    return np.stack(frames), truth


def make_multishot(
    path: str | os.PathLike,
    shots: int | Sequence[ShotSpec] = 6,
    size: tuple[int, int] = (160, 120),
    fps: float = 25.0,
    seed: int = 0,
    *,
    crf: int = 20,
    preset: str = "veryfast",
    **plan_kw,
) -> dict:
    """Write a multi-shot H.264 mp4 and return its ground truth (see the module docstring), plus path/fps/size.

    ``shots`` is a count (a random plan from ``seed``; ``plan_kw`` go to ``random_plan``) or explicit ShotSpecs.
    """
    plan = random_plan(np.random.default_rng(seed), shots, fps, **plan_kw) if isinstance(shots, int) else list(shots)
    frames, truth = render_plan(plan, size, seed)
    encode_mp4(frames, path, fps, crf=crf, preset=preset)
    return {"path": os.fspath(path), "fps": fps, "width": size[0], "height": size[1], **truth}


def make_corpus(
    directory: str | os.PathLike,
    minutes: float = 10.0,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    *,
    fps: float = 25.0,
    file_minutes: float = 2.0,
) -> list[dict]:
    """A benchmark corpus: ``minutes`` of multi-shot video in files of about ``file_minutes`` each.

    Shots last 2-12 s, with some short ones (< 2 s, dropped by the split stage) and, in every other file, one
    long shot (65-80 s, cut by stride). Ground truth of every file goes to ``directory/truth.json``.
    Returns the list of ground truths. Files already there are rewritten (generation is deterministic).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_files = max(1, int(np.ceil(minutes / file_minutes)))
    per_file = minutes * 60.0 / n_files
    truths = []
    for k in range(n_files):
        plan: list[ShotSpec] = []
        total = 0.0
        if k % 2 == 1 and per_file > 90:
            plan += random_plan(rng, 1, fps, shot_s=(65.0, 80.0), kinds=("moving", "pan", "shaky"))
            total += plan[-1].frames / fps
        while total < per_file:
            short = rng.random() < 0.1
            plan += random_plan(rng, 1, fps, shot_s=(0.8, 1.8) if short else (2.0, 12.0))
            total += (plan[-1].frames + plan[-1].transition_frames) / fps
        order = rng.permutation(len(plan))
        plan = [plan[i] for i in order]
        truth = make_multishot(directory / f"multishot_{k:03d}.mp4", plan, size, fps, seed + 1000 * k + 1)
        truths.append(truth)
    atomic_write_text(directory / "truth.json", json.dumps(truths, indent=1))
    return truths


# ---------------------------------------------------------------------------------------------------- scoring
def boundary_f1(spans: Sequence[tuple[int, int]], truth: dict, tol: int = 2) -> dict:
    """Precision / recall / F1 of detected shot spans against a ground truth from ``make_multishot``.

    A detected boundary is the gap between consecutive spans, ``[end_i, start_i+1]`` (one frame index for a
    hard cut, a range when the detector left transition frames out). It matches a true boundary when the ranges
    overlap within ``tol`` frames (a gradual transition matches anywhere inside its span). One-to-one, greedy.
    """
    spans = sorted((int(s), int(e)) for s, e in spans)
    found = [(a[1], b[0]) for a, b in zip(spans, spans[1:])]
    true = [(b["start"], b["end"]) for b in truth["boundaries"]]
    used: set[int] = set()
    hits = 0
    for lo, hi in found:
        for j, (tlo, thi) in enumerate(true):
            if j not in used and lo <= thi + tol and hi >= tlo - tol:
                used.add(j)
                hits += 1
                break
    precision = hits / len(found) if found else 1.0
    recall = hits / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "found": len(found), "true": len(true), "hits": hits}
