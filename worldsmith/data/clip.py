"""The clip: the unit of data every part of worldsmith exchanges.

A clip is frames + fps + caption + metadata, with optional aligned arrays and extra synchronized views.

Array alignment rule (used by shards, the dataset's temporal crop and every model):
  * an array whose leading dimension is ``T`` is *per frame*  (``arr[t]`` describes frame ``t``);
  * an array whose leading dimension is ``T - 1`` is *per transition* (``arr[t]`` happens between frame ``t``
    and frame ``t + 1``, e.g. the action taken after seeing frame ``t``).
Cropping frames ``[s, s + n)`` takes ``arr[s:s + n]`` for per-frame arrays and ``arr[s:s + n - 1]`` for
per-transition arrays.

Standard array names (others are allowed; names match ``[a-z0-9_]+``):
  ``actions``     (T-1, A) float32  action applied between frames
  ``intrinsics``  (T, 3, 3) float32 pinhole intrinsics in pixels (OpenCV), or (T, V, 3, 3) per view
  ``c2w``         (T, 4, 4) float32 camera-to-world (OpenCV: x right, y down, z forward), or (T, V, 4, 4)
  ``states``      (T, N, D) float32 object states (e.g. position + quaternion per object)
  ``ego``         (T, 4)    float32 ego trajectory (x, y, yaw, speed)
  ``pixels``      (T, N, 2) float32 projected pixel positions (u, v) of tracked objects
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldsmith.errors import DataError

KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")  # no dots: WebDataset splits a member name at its first dot
ARRAY_NAME_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass
class Clip:
    key: str
    frames: np.ndarray  # uint8 (T, H, W, 3): the main view
    fps: float
    caption: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable (source, world, seed, view names ...)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # leading dim T (per frame) or T-1 (transition)
    views: list[np.ndarray] = field(default_factory=list)  # extra synchronized views, each uint8 (T, H', W', 3)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not KEY_RE.match(self.key):
            raise DataError(f"clip key {self.key!r} is invalid: use letters, digits, '_' and '-' only (no dots).")
        f = self.frames
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 1:
            shape = getattr(f, "shape", None)
            dtype = getattr(f, "dtype", type(f).__name__)
            raise DataError(f"clip {self.key}: frames must be uint8 (T, H, W, 3) with T >= 1, got {dtype} {shape}.")
        if not (self.fps > 0):
            raise DataError(f"clip {self.key}: fps must be positive, got {self.fps}.")
        t = self.num_frames
        for name, arr in self.arrays.items():
            if not ARRAY_NAME_RE.match(name):
                raise DataError(f"clip {self.key}: array name {name!r} is invalid: use [a-z0-9_]+.")
            if not isinstance(arr, np.ndarray) or arr.ndim < 1 or arr.shape[0] not in (t, t - 1):
                raise DataError(
                    f"clip {self.key}: array {name!r} has shape {getattr(arr, 'shape', None)}; its leading "
                    f"dimension must be T={t} (per frame) or T-1={t - 1} (per transition)."
                )
        for i, v in enumerate(self.views):
            if not isinstance(v, np.ndarray) or v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] != t:
                raise DataError(
                    f"clip {self.key}: view {i + 1} must be uint8 ({t}, H, W, 3) like the main view, "
                    f"got {getattr(v, 'dtype', None)} {getattr(v, 'shape', None)}."
                )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def is_per_transition(self, name: str) -> bool:
        return self.arrays[name].shape[0] == self.num_frames - 1

    def crop(self, start: int, length: int) -> "Clip":
        """Frames ``[start, start + length)`` with every array and view cut to match (see module docstring)."""
        t = self.num_frames
        if length < 1 or start < 0 or start + length > t:
            raise DataError(f"clip {self.key}: cannot crop [{start}, {start + length}) from {t} frames.")
        arrays = {}
        for name, arr in self.arrays.items():
            n = length - 1 if self.is_per_transition(name) else length
            arrays[name] = arr[start : start + n]
        return Clip(
            key=self.key,
            frames=self.frames[start : start + length],
            fps=self.fps,
            caption=self.caption,
            meta=dict(self.meta),
            arrays=arrays,
            views=[v[start : start + length] for v in self.views],
        )
