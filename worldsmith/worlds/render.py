"""Headless MuJoCo rendering and the pinhole camera model shared by every world.

Rendering uses EGL (Mesa's software rasteriser on a CPU machine, the GPU driver where there is one) and falls back
to OSMesa; ``MUJOCO_GL`` is set before ``mujoco`` is imported unless the user already set it. Shadows and
reflections are off by default: on CPU they cost more than the rest of the frame. (A MuJoCo plane's third size
value is the spacing of its render grid: a large plane with a fine grid can make rendering several times slower.)

Camera convention (OpenCV): x right, y down, z forward; ``c2w`` maps camera coordinates to world coordinates;
pixel ``(u, v)`` has its centre at integer coordinates, so the principal point of a W x H image is
``((W - 1) / 2, (H - 1) / 2)``. MuJoCo cameras look along their -z axis with +y up, hence the axis flip below.
"""

from __future__ import annotations

import atexit
import os
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")
# Mesa's llvmpipe renders small frames fastest in the calling thread (no worker threads to wake); it reads this
# when the first GL context is made. One rendering thread per process also makes "frames/s per core" honest.
os.environ.setdefault("LP_NUM_THREADS", "0")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from worldsmith.errors import WorldsmithError  # noqa: E402
from worldsmith.io.frames import pinhole_intrinsics  # noqa: E402

_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, -z fwd) -> OpenCV (x right, y down, z fwd)


_LIVE_RENDERERS: "weakref.WeakSet[SceneRenderer]" = weakref.WeakSet()


def _close_live_renderers() -> None:
    """Free live GL contexts at exit. Registered when the first renderer is made, i.e. after MuJoCo's EGL module
    registered its own exit hook, so this runs first (exit hooks run last-in first-out) while EGL still works."""
    for r in list(_LIVE_RENDERERS):
        r.close()


class SceneRenderer:
    """An offscreen renderer whose GL context outlives the model: ``load(model)`` per episode costs ~3 ms.

    (``mujoco.Renderer`` binds a new GL context to one model; creating it and compiling its shaders costs ~0.4 s
    with Mesa on a CPU, more than a short episode.) Renders RGB, depth (metres along the optical axis) and
    per-pixel geom ids, each as a fresh array.
    """

    def __init__(self, height: int, width: int, *, shadows: bool = False) -> None:
        self._gl = self._context = None
        self.height, self.width, self.shadows = height, width, shadows
        self._mj = mujoco
        try:
            self._gl = mujoco.GLContext(width, height)
            self._gl.make_current()
        except Exception as e:  # EGL/OSMesa missing or broken
            raise WorldsmithError(
                f"MuJoCo cannot render headless with MUJOCO_GL={os.environ.get('MUJOCO_GL')} "
                f"({type(e).__name__}: {e}); install Mesa's EGL (apt-get install libegl1 libegl-mesa0 "
                "libgl1-mesa-dri) or set MUJOCO_GL=osmesa."
            ) from e
        if not _LIVE_RENDERERS:
            atexit.unregister(_close_live_renderers)
            atexit.register(_close_live_renderers)
        _LIVE_RENDERERS.add(self)
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.model = self._scene = None

    def load(self, model) -> None:
        """Bind ``model`` (uploads its meshes and textures; the offscreen buffer is enlarged if needed)."""
        mj = self._mj
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.height)
        self._gl.make_current()
        if self._context is not None:
            self._context.free()
        self.model = model
        self._context = mj.MjrContext(model, mj.mjtFontScale.mjFONTSCALE_100.value)
        mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._scene = mj.MjvScene(model, maxgeom=max(256, 2 * model.ngeom + 64))
        flags = self._scene.flags
        flags[mj.mjtRndFlag.mjRND_SHADOW] = self.shadows
        flags[mj.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mj.mjtRndFlag.mjRND_SKYBOX] = bool((model.tex_type == mj.mjtTexture.mjTEXTURE_SKYBOX).any())  # if any

    def _draw(self, data, camera: int, segment: bool = False) -> None:
        mj = self._mj
        self._gl.make_current()
        self._camera.fixedcamid = camera
        everything = mj.mjtCatBit.mjCAT_ALL.value
        mj.mjv_updateScene(self.model, data, self._option, None, self._camera, everything, self._scene)
        self._scene.flags[mj.mjtRndFlag.mjRND_SEGMENT] = segment
        self._scene.flags[mj.mjtRndFlag.mjRND_IDCOLOR] = segment
        mj.mjr_render(self._rect, self._scene, self._context)

    def rgb(self, data, camera: int) -> np.ndarray:
        """uint8 (H, W, 3) image of fixed camera ``camera``."""
        self._draw(data, camera)
        out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._mj.mjr_readPixels(out, None, self._rect, self._context)
        return out[::-1].copy()  # OpenGL rows go bottom-up

    def depth(self, data, camera: int) -> np.ndarray:
        """float32 (H, W) depth along the optical axis in metres (the far plane where nothing is seen)."""
        self._draw(data, camera)
        buf = np.empty((self.height, self.width), dtype=np.float32)
        self._mj.mjr_readPixels(None, buf, self._rect, self._context)
        extent = self.model.stat.extent
        near, far = self.model.vis.map.znear * extent, self.model.vis.map.zfar * extent
        z = near * far / (far - buf.astype(np.float64) * (far - near))  # invert the perspective depth mapping
        return z[::-1].astype(np.float32)

    def segmentation(self, data, camera: int) -> np.ndarray:
        """int32 (H, W) id of the geom seen at each pixel, -1 where no geom is seen."""
        self._draw(data, camera, segment=True)
        out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._mj.mjr_readPixels(out, None, self._rect, self._context)
        self._scene.flags[self._mj.mjtRndFlag.mjRND_SEGMENT] = False
        self._scene.flags[self._mj.mjtRndFlag.mjRND_IDCOLOR] = False
        seg = out[::-1].astype(np.int64)
        segid = seg[..., 0] + (seg[..., 1] << 8) + (seg[..., 2] << 16)  # segid + 1 of the drawn geom, 0 = none
        lut = np.full(self._scene.ngeom + 2, -1, dtype=np.int32)
        geom_type = int(self._mj.mjtObj.mjOBJ_GEOM)
        for g in self._scene.geoms[: self._scene.ngeom]:
            if g.segid >= 0 and g.objtype == geom_type:
                lut[g.segid + 1] = g.objid
        return lut[np.clip(segid, 0, len(lut) - 1)]

    def close(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
        _LIVE_RENDERERS.discard(self)



def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole K (3, 3) of a MuJoCo camera with vertical field of view ``fovy_deg`` rendered at H x W."""
    return pinhole_intrinsics(fovy_deg, height, width)


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
