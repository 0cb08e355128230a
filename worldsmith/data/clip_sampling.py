"""One training sample from one raw clip: which frames and array rows to take, and decoding them.

Time sampling. Frames ``idx[k] = start + floor(k * stride + 1/2)`` for k < ``frames`` with ``stride = source fps /
fps`` (1 without resampling; a stride < 1 repeats frames). ``start`` is random, 0 or centred
(``temporal_crop``). A clip spanning fewer source frames than needed is skipped (``drop_short``) or padded by
repeating its last frame. Arrays follow the alignment rule of ``worldsmith.data.clip``: a per-frame array gives
rows ``arr[idx]`` (T rows); a per-transition array gives T - 1 rows, row k covering the source transitions from
frame ``idx[k]`` to frame ``idx[k + 1]``. Over a stride > 1 they are combined by ``transition_reduce``:
``"sum"`` (displacement-like actions: the sum is the change between the kept frames), ``"mean"`` (rates or held
commands) or ``"stack"`` (lossless: shape (T - 1, stride, ...)). A stride that is not a whole number has no such
meaning, so resampling a clip with per-transition arrays requested to such an fps raises ``DataError``.
Transitions added by padding (between repeated frames) are zero.

Samples are dicts: ``video`` float32 (3, T, H, W) in [-1, 1], ``views`` float32 (V - 1, 3, T, H, W) when
``views``, one float32 tensor per requested array under its own name, ``caption`` str, ``key`` str, ``fps``
float (after resampling) and ``start`` int (source index of the first frame). Frames are decoded at the size
that covers ``size`` = (H, W) and centre-cropped (an int resizes the short side and keeps the aspect ratio).
An array named ``intrinsics`` (pinhole K (..., 3, 3) in the stored video's pixels, OpenCV) follows the frames: it
is rescaled and shifted by the same resize and crop, so it stays true for the pixels the sample holds.

Caching (``cache_mb``): each reader process may keep the clips it decoded, whole, as uint8 at the training size,
until the budget is used up; later epochs then only index frames. The sample stream does not change.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worldsmith.data.dataset_config import RESERVED_FIELDS, DatasetConfig
from worldsmith.data.shards import Sample, decode_video_member, load_array
from worldsmith.errors import DataError
from worldsmith.io import video
from worldsmith.io.frames import scale_intrinsics


def seeded_rng(*words: int) -> np.random.Generator:
    """A generator seeded by ``words`` alone (never by global state): the source of every random choice here."""
    return np.random.default_rng([w % 2**64 for w in words])


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@dataclass
class Plan:
    """What to take from one clip: source frame indices (T,), the stride and the arrays to load."""

    indices: np.ndarray
    start: int
    stride: float
    arrays: list[str]


def plan_clip(header: dict[str, Any], cfg: DatasetConfig, epoch: int) -> Plan | None:
    """Choose frames and arrays for a clip from its header; None when it is too short and ``drop_short``."""
    t, key = header["num_frames"], header["key"]
    stride = 1.0 if cfg.fps is None else header["fps"] / cfg.fps
    span = math.floor((cfg.frames - 1) * stride + 0.5) + 1  # source frames covered
    if span > t and cfg.drop_short:
        return None
    names = sorted(header["arrays"]) if cfg.arrays is None else list(cfg.arrays)
    lacking, clash = [n for n in names if n not in header["arrays"]], sorted(set(names) & set(RESERVED_FIELDS))
    if lacking or clash:
        why = f"has no array {lacking}" if lacking else f"has arrays {clash} named like sample fields"
        raise DataError(f"clip {key} {why} (it has {sorted(header['arrays'])}); set arrays= to the names to load.")
    per_transition = [n for n in names if header["arrays"][n]["shape"][0] == t - 1]
    whole = round(stride) >= 1 and abs(stride - round(stride)) <= 1e-6 * stride
    if per_transition and not whole:
        raise DataError(f"clip {key}: {header['fps']} -> {cfg.fps} fps is a stride of {stride:.4g} frames, but "
                        f"per-transition arrays {per_transition} need a whole stride; choose an fps that divides "
                        f"{header['fps']} or leave them out of arrays=.")  # fmt: skip
    if cfg.views and cfg.size is None and any((v["height"], v["width"]) != (header["height"], header["width"])
                                              for v in header["views"]):  # fmt: skip
        raise DataError(f"clip {key} has views of another size than its main view; set size= to batch them.")
    room = max(t - span, 0)
    start = {"random": int(seeded_rng(cfg.seed, epoch, _key_hash(key)).integers(room + 1)), "start": 0,
             "center": room // 2}[cfg.temporal_crop]  # fmt: skip
    indices = start + np.floor(np.arange(cfg.frames) * stride + 0.5).astype(np.int64)
    return Plan(np.minimum(indices, t - 1), start, stride, names)


def take_transitions(arr: np.ndarray, indices: np.ndarray, stride: int, reduce: str) -> np.ndarray:
    """Rows of a per-transition array for the transitions between consecutive chosen frames."""
    rows = indices[:-1, None] + np.arange(stride)  # (T-1, k) source transitions per new transition
    valid = rows < indices[1:, None]  # (T-1, k): none where padding repeats a frame
    if arr.shape[0] == 0:
        parts = np.zeros(rows.shape + arr.shape[1:], np.float32)
    else:
        mask = valid.reshape(valid.shape + (1,) * (arr.ndim - 1))
        parts = arr[np.minimum(rows, arr.shape[0] - 1)].astype(np.float32) * mask  # (T-1, k, ...)
    if reduce == "stack":
        return parts
    total = parts.sum(axis=1)  # (T-1, ...)
    if reduce == "mean":
        total /= np.maximum(valid.sum(axis=1), 1).reshape((-1,) + (1,) * (arr.ndim - 1))
    return total


HW = tuple[int, int]


def _resize_plan(h: int, w: int, size: HW | int | None) -> tuple[HW | None, HW | None]:
    """(size to decode at, centre crop) for a stored h x w video; computed from the true size, so the row or
    column an encoder pads odd sizes with never changes the scale."""
    if size is None:
        return None, None
    if isinstance(size, int):
        scale = size / min(h, w)
        return (max(1, round(h * scale)), max(1, round(w * scale))), None
    scale = max(size[0] / h, size[1] / w)
    return (max(size[0], round(h * scale)), max(size[1], round(w * scale))), size  # covers (H, W)


class FrameCache:
    """Decoded clips (whole, uint8, resized and cropped) kept in memory up to ``budget_mb``; then no more are added."""

    def __init__(self, budget_mb: int) -> None:
        self.budget, self.used, self.clips = budget_mb * 2**20, 0, {}

    def get(self, key: tuple, decode: Any) -> np.ndarray:
        frames = self.clips.get(key)
        if frames is None:
            frames = decode()
            if self.used + frames.nbytes <= self.budget:
                self.clips[key] = frames
                self.used += frames.nbytes
        return frames


def _decode_view(raw: Sample, ext: str, h: int, w: int, plan: Plan, cfg: DatasetConfig,
                 cache: FrameCache | None = None) -> torch.Tensor:  # fmt: skip
    """Frames ``plan.indices`` of one video member as float32 (3, T, H, W) in [-1, 1]."""
    size, crop = _resize_plan(h, w, cfg.size)

    def decode(first: int, end: int | None) -> np.ndarray:
        frames = decode_video_member(raw, ext, h, w, start=first, end=end, size=size)  # (end - first, H', W', 3)
        if crop is not None:
            top, left = (frames.shape[1] - crop[0]) // 2, (frames.shape[2] - crop[1]) // 2
            frames = frames[:, top : top + crop[0], left : left + crop[1]]
        return np.ascontiguousarray(frames)

    if cache is not None:  # the whole clip, once
        frames = cache.get((raw["__url__"], raw["__key__"], ext), lambda: decode(0, None))[plan.indices]
    else:
        first, end = int(plan.indices.min()), int(plan.indices.max()) + 1  # decode only the span used (seeks)
        frames = decode(first, end)[plan.indices - first]  # (T, H', W', 3)
    return video.to_tensor(np.ascontiguousarray(frames))  # (3, T, H, W)


def fit_intrinsics(K: np.ndarray, h: int, w: int, size: HW | int | None) -> np.ndarray:
    """Pinhole intrinsics (..., 3, 3) of an ``h`` x ``w`` video -> those of the same video resized and centre-cropped
    as ``_resize_plan(h, w, size)`` does."""
    decode_at, crop = _resize_plan(h, w, size)
    if decode_at is None:
        return K
    top, left = (0, 0) if crop is None else ((decode_at[0] - crop[0]) // 2, (decode_at[1] - crop[1]) // 2)
    return scale_intrinsics(K, (decode_at[0] / h, decode_at[1] / w), (top, left))


def load_sample(raw: Sample, plan: Plan, cfg: DatasetConfig, cache: FrameCache | None = None) -> dict[str, Any]:
    """Decode one planned raw sample into the training sample dict (see the module docstring)."""
    h = raw["__header__"]
    t = h["num_frames"]
    out: dict[str, Any] = {"video": _decode_view(raw, "mp4", h["height"], h["width"], plan, cfg, cache)}
    if cfg.views:
        views = [_decode_view(raw, f"view{i}.mp4", v["height"], v["width"], plan, cfg, cache)
                 for i, v in enumerate(h["views"], 1)]  # fmt: skip
        out["views"] = torch.stack(views) if views else out["video"].new_zeros((0, *out["video"].shape))
    for name in plan.arrays:
        arr = load_array(raw, name)
        if arr.shape[0] == t - 1:
            arr = take_transitions(arr, plan.indices, round(plan.stride), cfg.transition_reduce)
        else:
            arr = arr[plan.indices]
        if name == "intrinsics":  # K follows the frames' resize and crop (of the main view: views share its size)
            arr = fit_intrinsics(arr, h["height"], h["width"], cfg.size)
        out[name] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    fps = float(cfg.fps) if cfg.fps is not None else float(h["fps"])
    out.update(caption=h["caption"], key=h["key"], fps=fps, start=plan.start)
    return out
