"""A frame re-seen from another camera pose, by geometry alone: the plane-and-infinity warp.

A known camera motion moves the picture in a known way only for points of known depth. Two cases cover most of a
driving view: the road (a plane, whose depth along every ray the calibration gives) and what is far away (the sky,
the horizon, distant buildings: depth ~infinity, moved by the rotation alone). ``plane_warp`` renders a frame seen
by camera ``c2w_src`` as camera ``c2w_dst`` would see it under that assumption: for each pixel of the new view its
ray is cut with the world plane ``n . X = d`` (the ground, ``n = (0, 0, 1)``, ``d = 0`` in the drive world); where
it meets the plane in front of the camera within ``far`` metres the point is re-projected into the source camera,
elsewhere the ray's direction is (the point at infinity). The source is sampled bilinearly there, its border
repeated where the new view sees what the old one did not.

For a pure rotation (cameras of one rig, or a car turning on the spot) the warp is exact for every pixel (the
homography ``K R K^-1``, eval/multiview.py's cross-view warp); for the road it is exact for the road surface;
objects standing on the road (cars, trees, cones) are drawn as if painted on it or at infinity, i.e. slid by the
wrong amount, in proportion to how near they are.

Conventions: OpenCV intrinsics ``K`` (integer pixel centres) and camera-to-world poses (camera x right, y down,
z forward), as the simulated worlds record them. Used by ``worldsmith eval multiview`` and ``eval camera`` as a
floor that needs no learning (the first frame of each view carried along the commanded path), and by warp-anchored
models (``model.warp``, ``WarpEmbedder``) as the condition and the residual's anchor.

A rig on a car (multi-view warp models): each camera's pose on the car (``rig_mounts``, camera-to-car, measured on
the training clips from their c2w and ego states) composed with the car's pose on the ground (``ego_pose``: the ego
state (x, y, yaw, speed) at (x, y, 0), turned yaw about the vertical, as the drive world moves it) gives every
camera at every frame of a commanded trajectory (``rig_path``), so generation needs only the trajectory.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from worldsmith.errors import ConfigError
from worldsmith.nn.embeddings import LatentTokens

GROUND = (0.0, 0.0, 1.0, 0.0)  # the plane z = 0: (n_x, n_y, n_z, d) with n . X = d


def _as(x, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64, device=like.device)


def plane_warp(images: torch.Tensor, K, c2w_src, c2w_dst, *, plane=GROUND, far: float = 60.0,
               K_dst=None) -> torch.Tensor:  # fmt: skip
    """images (N, C, H, W) float seen by cameras ``c2w_src`` (N, 4, 4) with intrinsics ``K`` (N, 3, 3) or (3, 3) ->
    (N, C, H, W) as seen by ``c2w_dst`` (intrinsics ``K_dst``, default ``K``), every pixel assumed on the world
    plane ``plane`` = (n_x, n_y, n_z, d) where its ray meets it within ``far`` metres, at infinity elsewhere."""
    if images.ndim != 4:
        raise ConfigError(f"plane_warp takes images (N, C, H, W), got shape {tuple(images.shape)}.")
    n, _, h, w = images.shape
    K = _as(K, images).expand(n, 3, 3)
    K_dst = K if K_dst is None else _as(K_dst, images).expand(n, 3, 3)
    src, dst = _as(c2w_src, images).expand(n, 4, 4), _as(c2w_dst, images).expand(n, 4, 4)
    normal, offset = _as(plane[:3], images), float(plane[3])
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=images.device),
                          torch.arange(w, dtype=torch.float64, device=images.device), indexing="ij")  # fmt: skip
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, -1, 3)  # (1, HW, 3)
    rays = pix @ torch.linalg.inv(K_dst).transpose(1, 2) @ dst[:, :3, :3].transpose(1, 2)  # (N, HW, 3) world dirs
    origin = dst[:, None, :3, 3]  # (N, 1, 3)
    along = rays @ normal  # (N, HW)
    lam = (offset - origin @ normal) / torch.where(along.abs() > 1e-9, along, torch.full_like(along, 1e-9))
    on_plane = (lam > 0) & (lam * rays.norm(dim=-1) <= far)
    point = origin + lam.clamp_min(0)[..., None] * rays  # (N, HW, 3)
    rot_src = src[:, :3, :3]  # camera -> world; its transpose maps world to camera
    cam = torch.where(on_plane[..., None], (point - src[:, None, :3, 3]) @ rot_src, rays @ rot_src)  # (N, HW, 3)
    proj = cam @ K.transpose(1, 2)
    z = proj[..., 2].clamp_min(1e-9)
    x, y = proj[..., 0] / z, proj[..., 1] / z
    behind = cam[..., 2] <= 1e-9  # a direction behind the source camera: no source pixel; take the nearest border
    x, y = torch.where(behind, torch.full_like(x, -1e6), x), torch.where(behind, torch.full_like(y, -1e6), y)
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], -1).clamp(-2, 2)  # integer pixel centres
    grid = grid.reshape(n, h, w, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_video(first: np.ndarray, K: np.ndarray, c2w: np.ndarray, *, plane=GROUND, far: float = 60.0) -> np.ndarray:
    """uint8 (N, T, H, W, 3): each first frame (N, H, W, 3) uint8 warped from its camera at c2w[:, 0] to the same
    camera at every pose of c2w (N, T, 4, 4), intrinsics K (N, 3, 3) (``plane_warp``)."""
    n, t = c2w.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(first)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    Ks = torch.from_numpy(np.ascontiguousarray(K, np.float64)).reshape(n, 3, 3)
    poses = torch.from_numpy(np.ascontiguousarray(c2w, np.float64))
    out = [plane_warp(src, Ks, poses[:, 0], poses[:, k], plane=plane, far=far) for k in range(t)]
    return torch.stack(out, 1).round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


def warp_clip(video: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, *, plane=GROUND, far: float = 60.0) -> torch.Tensor:
    """video (B, 3, T, H, W) (any range) with cameras c2w (B, T, 4, 4) and intrinsics K (B, 3, 3) or (B, T, 3, 3) ->
    (B, 3, T, H, W): its first frame warped to every frame's camera (the model's warped condition, ``WarpEmbedder``)."""
    if video.ndim != 5 or c2w.ndim != 4 or c2w.shape[:2] != (video.shape[0], video.shape[2]):
        raise ConfigError(f"warp_clip takes video (B, 3, T, H, W) and c2w (B, T, 4, 4), got {tuple(video.shape)} and "
                          f"{tuple(c2w.shape)}.")  # fmt: skip
    return warp_first(video[:, :, 0], K[:, 0] if K.ndim == 4 else K, c2w[:, 0], c2w, plane=plane, far=far)


def warp_first(first: torch.Tensor, K: torch.Tensor, c2w_src: torch.Tensor, c2w_dst: torch.Tensor, *, plane=GROUND,
               far: float = 60.0) -> torch.Tensor:  # fmt: skip
    """A frame (B, 3, H, W) seen by cameras c2w_src (B, 4, 4), intrinsics K (B, 3, 3) -> (B, 3, N, H, W): as seen
    by each of the cameras c2w_dst (B, N, 4, 4) (``plane_warp``; a rollout's first frame carried to a window's poses)."""
    src = first.double()
    out = [plane_warp(src, K, c2w_src, c2w_dst[:, t], plane=plane, far=far) for t in range(c2w_dst.shape[1])]
    return torch.stack(out, 2).to(first.dtype)


def warp_views(views: list[torch.Tensor], c2w: torch.Tensor, K: torch.Tensor) -> list[torch.Tensor]:
    """Synchronized views, V clips (B, 3, T, H, W) with cameras c2w (B, T, V, 4, 4) and intrinsics K (B, V, 3, 3) ->
    V clips: each view's first frame warped to its own camera at every frame (``warp_clip`` per view)."""
    if c2w.ndim != 5 or c2w.shape[2] != len(views) or K.shape[1] != len(views):
        raise ConfigError(f"warp_views takes {len(views)} views with cameras (B, T, {len(views)}, 4, 4) and intrinsics "
                          f"(B, {len(views)}, 3, 3), got {tuple(c2w.shape)} and {tuple(K.shape)}.")  # fmt: skip
    return [warp_clip(clip, c2w[:, :, i], K[:, i]) for i, clip in enumerate(views)]


def ego_pose(ego: torch.Tensor) -> torch.Tensor:
    """Ego states (..., 4) = (x, y, yaw, speed) -> the car's pose on the ground plane (..., 4, 4) float64 (the drive
    world's ego body: at (x, y, 0), turned ``yaw`` about the vertical)."""
    ego = ego.double()
    c, s = torch.cos(ego[..., 2]), torch.sin(ego[..., 2])
    pose = torch.zeros(*ego.shape[:-1], 4, 4, dtype=torch.float64, device=ego.device)
    pose[..., 0, 0], pose[..., 0, 1], pose[..., 1, 0], pose[..., 1, 1] = c, -s, s, c
    pose[..., 2, 2], pose[..., 3, 3] = 1.0, 1.0
    pose[..., 0, 3], pose[..., 1, 3] = ego[..., 0], ego[..., 1]
    return pose


def rig_mounts(ego: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """Where each camera sits on the car: ego states (N, 4) and the cameras' c2w (N, V, 4, 4) of the same frames ->
    camera-to-car poses (N, V, 4, 4) float64."""
    return torch.linalg.inv(ego_pose(ego))[:, None] @ c2w.double()


def rig_path(trajectory: torch.Tensor, mounts: torch.Tensor) -> torch.Tensor:
    """Every camera of a rig ``mounts`` (V, 4, 4) (camera-to-car) along ego states (B, T, 4) -> c2w (B, T, V, 4, 4)."""
    return ego_pose(trajectory)[:, :, None] @ mounts.to(trajectory.device, torch.float64)


def typical_rig(mounts: torch.Tensor, K: torch.Tensor) -> dict[str, list]:
    """The medians over clips of cached rigs (N, V, 4, 4) and intrinsics (N, V, 3, 3): a warp model's
    ``rig_mounts`` (V lists of 16) and ``rig_intrinsics`` (V lists of 9)."""
    return {"rig_mounts": mounts.double().median(0).values.flatten(1).tolist(),
            "rig_intrinsics": K.double().median(0).values.flatten(1).tolist()}  # fmt: skip


class WarpEmbedder(LatentTokens):
    """The warped first frame as a condition (``model.warp``): its tokenizer latent at every latent frame, normalised
    as the latents are, ``warped`` (B, C, T', H', W') -> (B, T', h*w, D) added to the DiT's tokens (patches through a
    zero-initialised projection, so a base post-trained with it starts as the base). With ``model.warp`` the same
    latent is also the anchor of the residual the model generates (model.py): each new frame is predicted as its
    difference from what geometry alone says it shows, so the camera's motion no longer has to be learnt, only
    what the warp gets wrong (what the first frame did not see, what stands off the plane)."""

    name = "warped"  # its value's key in the batch / Condition.extras

    def forward(self, warped: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        b, t, hh, ww = latent_shape
        if tuple(warped.shape) != (b, self.latent_channels, t, hh, ww):
            raise ConfigError(f"this model takes the warped first frame's latents (B={b}, C={self.latent_channels}, "
                              f"T'={t}, {hh}, {ww}), got shape {tuple(warped.shape)}.")  # fmt: skip
        return self.tokens(warped)


def start_pose(height: float, pitch_deg: float, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """OpenCV camera-to-world (4, 4) of a camera ``height`` metres above the ground plane, pitched ``pitch_deg``
    (negative: looking down), no roll, looking along +y (a floor is the same whichever way the camera faces)."""
    p = torch.deg2rad(torch.tensor(float(pitch_deg), dtype=torch.float64))
    forward = torch.stack([torch.zeros(()), torch.cos(p), torch.sin(p)]).double()
    right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = torch.stack([right, torch.linalg.cross(forward, right), forward], dim=1)
    pose[2, 3] = height
    return pose if like is None else pose.to(like)


def place_path(c2w: torch.Tensor, height: float, pitch_deg: float) -> torch.Tensor:
    """A path (B, N, 4, 4) that starts at the identity (relative to its first camera, as named paths and loaded
    JSON paths are) placed in the world at ``start_pose(height, pitch_deg)`` (the camera height and pitch a warp model
    measured on its training clips), so the warp knows where the ground is; a path already in world space (its first
    pose not the identity) or ``height`` 0 (unknown: the warp is then the rotation alone) is returned as it is."""
    eye = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
    if height <= 0 or not torch.allclose(c2w[:, 0], eye.expand_as(c2w[:, 0]), atol=1e-6):
        return c2w
    return start_pose(height, pitch_deg, like=c2w) @ c2w


def typical_start(camera: torch.Tensor) -> tuple[float, float]:
    """(height m, pitch degrees) medians of the first poses of packed training cameras (N, T', 25) (c2w first)."""
    c2w = camera[:, 0, :16].double().reshape(-1, 4, 4)
    pitch = torch.rad2deg(torch.asin(c2w[:, 2, 2].clamp(-1, 1)))  # the optical axis' z component
    return float(c2w[:, 2, 3].median()), float(pitch.median())
