"""Camera placement maths for the worlds' MJCF cameras: look-at frames, small jitter, multi-view rigs.

MuJoCo cameras look along their -z axis with +y up; ``render.py`` holds the pinhole model (intrinsics, ``c2w``)
used to read the rendered cameras back.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def look_at_xyaxes(pos: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """MuJoCo camera frame (3, 3) whose columns are the camera x, y, z axes for a camera at ``pos`` looking at
    ``target`` (MuJoCo cameras look along -z, +y up). Use ``fmt(R[:, :2].T.ravel())`` as the ``xyaxes`` attribute."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.asarray(up, float))
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: pick any right vector
        right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, fwd)
    return np.stack([right, cam_up, -fwd], axis=1)


def jitter_camera(
    rng: np.random.Generator,
    pos: Sequence[float],
    target: Sequence[float],
    *,
    pos_std: float = 0.03,
    target_std: float = 0.02,
    fovy: float = 45.0,
    fovy_std: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Small random perturbation of a look-at camera: (pos, target, fovy_deg)."""
    p = np.asarray(pos, float) + rng.normal(0.0, pos_std, size=3)
    t = np.asarray(target, float) + rng.normal(0.0, target_std, size=3)
    return p, t, float(np.clip(fovy + rng.normal(0.0, fovy_std), 10.0, 120.0))


def rig_yaws(views: int, step_deg: float) -> list[float]:
    """Yaw offsets (degrees, + = left) of a camera rig: main view first, then alternating left/right:
    ``rig_yaws(3, 50) -> [0, 50, -50]``."""
    return [0.0] + [s * step_deg * (1 + k // 2) for k, s in zip(range(views - 1), [1, -1] * views)]


def yaw_pitch_matrix(yaw: float, pitch: float) -> np.ndarray:
    """MuJoCo camera frame (3, 3) (columns x right, y up, z backward) heading ``yaw`` (radians, from +x toward +y)
    and tilted up by ``pitch``, no roll."""
    fwd = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    return np.stack([right, np.cross(right, fwd), -fwd], axis=1)


def mat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> unit quaternion (w, x, y, z) (MuJoCo's convention)."""
    import mujoco

    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).ravel())
    return q
