"""Headless MuJoCo rendering and the pinhole camera model shared by every world.

Rendering uses EGL (Mesa's software rasteriser on a CPU machine, the GPU driver where there is one) and falls back
to OSMesa; ``MUJOCO_GL`` is set before ``mujoco`` is imported unless the user already set it. Shadows and
reflections are off by default: on CPU they cost more than the rest of the frame.

Camera convention (OpenCV): x right, y down, z forward; ``c2w`` maps camera coordinates to world coordinates;
pixel ``(u, v)`` has its centre at integer coordinates, so the principal point of a W x H image is
``((W - 1) / 2, (H - 1) / 2)``. MuJoCo cameras look along their -z axis with +y up, hence the axis flip below.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from worldsmith.errors import WorldsmithError  # noqa: E402

_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, -z fwd) -> OpenCV (x right, y down, z fwd)


def make_renderer(model: mujoco.MjModel, height: int, width: int, *, shadows: bool = False) -> mujoco.Renderer:
    """An offscreen renderer; the model's offscreen buffer is enlarged if needed."""
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    try:
        renderer = mujoco.Renderer(model, height, width)
    except Exception as e:  # EGL/OSMesa missing or broken
        raise WorldsmithError(
            f"MuJoCo cannot render headless with MUJOCO_GL={os.environ.get('MUJOCO_GL')} ({type(e).__name__}: {e}); "
            "install Mesa's EGL (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or set MUJOCO_GL=osmesa."
        ) from e
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
    return renderer


def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole K (3, 3) of a MuJoCo camera with vertical field of view ``fovy_deg`` rendered at H x W."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_c2w(data: mujoco.MjData, cam_id: int) -> np.ndarray:
    """OpenCV camera-to-world (4, 4) of camera ``cam_id`` in the current state (after mj_forward/mj_step)."""
    c2w = np.eye(4)
    c2w[:3, :3] = data.cam_xmat[cam_id].reshape(3, 3) @ _MJ_TO_CV
    c2w[:3, 3] = data.cam_xpos[cam_id]
    return c2w


def camera_K(model: mujoco.MjModel, cam_id: int, height: int, width: int) -> np.ndarray:
    return intrinsics(float(model.cam_fovy[cam_id]), height, width)


def project(points_w: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixels (N, 2) (u right, v down) and depths (N,) along the optical axis."""
    w2c = np.linalg.inv(c2w)
    p_c = points_w @ w2c[:3, :3].T + w2c[:3, 3]  # (N, 3) camera coordinates
    z = p_c[:, 2]
    uv = (p_c @ K.T)[:, :2] / z[:, None]
    return uv, z


def relative_to_first(c2w: np.ndarray) -> np.ndarray:
    """Re-express poses (T, 4, 4) so that the first camera is the identity: c2w_t' = inv(c2w_0) @ c2w_t."""
    return np.linalg.inv(c2w[0])[None] @ c2w
