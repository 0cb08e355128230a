"""The plane-and-infinity warp (worldsmith/conditioning/warp.py) on hand-made cameras, and the eval's warp floor."""

import math

import cv2
import numpy as np
import pytest
import torch

from worldsmith.conditioning.warp import place_path, plane_warp, start_pose, typical_start
from worldsmith.errors import ConfigError
from worldsmith.eval.views import warp_floor
from worldsmith.io.frames import pinhole_intrinsics
from worldsmith.worlds.render import project

H = W = 48
K = pinhole_intrinsics(60.0, H, W)


def car_camera(x: float, y: float, yaw_deg: float, height: float = 1.4, pitch_deg: float = -10.0) -> np.ndarray:
    """OpenCV camera-to-world of a camera at (x, y, height) looking along ``yaw`` (0: +x), pitched down."""
    yaw, pitch = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    fwd = np.array([cy * cp, sy * cp, sp])
    left = np.array([-sy, cy, 0.0])
    up = np.cross(fwd, left)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([-left, -up, fwd], axis=1)  # camera x right, y down, z forward
    c2w[:3, 3] = (x, y, height)
    return c2w


def ramp() -> torch.Tensor:
    """(1, 2, H, W): channel 0 is the pixel's u, channel 1 its v (bilinear sampling of it is exact)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    return torch.stack([u, v])[None]


def test_the_same_pose_gives_the_same_image():
    img = torch.rand(2, 3, H, W, dtype=torch.float64)
    c2w = torch.from_numpy(np.stack([car_camera(0, 0, 10), car_camera(3, -2, -40)]))
    assert torch.allclose(plane_warp(img, K, c2w, c2w), img, atol=1e-9)


def test_a_pure_rotation_is_the_rotation_homography():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (5, 5), 1.5)
    src, dst = car_camera(5, 1, 30), car_camera(5, 1, 21)  # one centre, the camera turned 9 degrees
    R = np.linalg.inv(src[:3, :3]) @ dst[:3, :3]  # dst camera axes in the src camera
    Hm = K @ R @ np.linalg.inv(K)  # x_src ~ H x_dst
    ref = cv2.warpPerspective(img, Hm, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    out = plane_warp(torch.from_numpy(img).permute(2, 0, 1)[None].double(), K, src, dst)[0].permute(1, 2, 0).numpy()
    inside = cv2.warpPerspective(np.ones((H, W), np.uint8), Hm, (W, H), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    assert inside.mean() > 0.6
    assert np.abs(out[inside] - ref[inside]).max() < 1.0


def test_ground_points_land_where_the_source_camera_sees_them():
    src, dst = car_camera(0, 0, 0), car_camera(2.0, 0.3, 6)  # the car drove 2 m and turned 6 degrees
    uv = plane_warp(ramp(), K, src, dst)[0]  # (2, H, W): the source pixel each new pixel was taken from
    checked = 0
    for v in range(H // 2 + 6, H, 5):  # rows below the horizon: the road
        for u in range(4, W - 4, 5):
            ray = dst[:3, :3] @ np.linalg.inv(K) @ np.array([u, v, 1.0])
            point = dst[:3, 3] + ray * (-dst[2, 3] / ray[2])  # where the new camera's ray meets z = 0
            (pix,), (depth,) = project(point[None], K, src)
            if depth > 0 and 0 <= pix[0] <= W - 1 and 0 <= pix[1] <= H - 1:
                assert np.allclose(uv[:, v, u].numpy(), pix, atol=1e-6)
                checked += 1
    assert checked > 20


def test_far_points_move_with_the_rotation_only():
    src, dst = car_camera(0, 0, 0, pitch_deg=0), car_camera(3.0, 0, 0, pitch_deg=0)  # straight ahead, 3 m
    uv = plane_warp(ramp(), K, src, dst)[0]
    sky = uv[:, : H // 2 - 2]  # above the horizon: at infinity, unmoved by a translation
    v, u = torch.meshgrid(torch.arange(H // 2 - 2, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")  # fmt: skip
    assert torch.allclose(sky, torch.stack([u, v]), atol=1e-6)
    road = uv[:, H - 1, W // 2]  # the bottom row: near road, seen from 3 m further back nearer the image centre
    assert road[1] < H - 1 - 2


def test_bad_shapes_are_refused():
    with pytest.raises(ConfigError, match="images \\(N, C, H, W\\)"):
        plane_warp(torch.zeros(3, H, W), K, np.eye(4), np.eye(4))


def test_the_warp_floor_starts_at_the_first_frame_and_follows_the_path():
    rng = np.random.default_rng(1)
    first = rng.integers(0, 256, (2, 3, H, W, 3), dtype=np.uint8)
    yaws = (0.0, 30.0, -30.0)
    c2w = np.stack([[[car_camera(1.5 * t, 0, y + 3 * t) for y in yaws] for t in range(4)] for _ in range(2)])
    Ks = np.broadcast_to(K, (2, 3, 3, 3))
    video = warp_floor(first, Ks, c2w)
    assert video.shape == (2, 3, 4, H, W, 3) and video.dtype == np.uint8
    assert np.abs(video[:, :, 0].astype(int) - first).max() <= 1  # frame 0: the identity warp
    assert np.abs(video[:, :, 3].astype(int) - first).mean() > 10  # later frames moved


def test_a_relative_path_is_placed_at_the_training_cameras_height_and_pitch():
    start = start_pose(1.5, -20.0)
    assert torch.allclose(start[:3, :3].T @ start[:3, :3], torch.eye(3, dtype=torch.float64)) and start[2, 3] == 1.5
    assert math.isclose(math.degrees(math.asin(float(start[2, 2]))), -20.0)  # the optical axis points 20 degrees down
    packed = torch.cat([start.flatten(), torch.zeros(9, dtype=torch.float64)]).expand(3, 2, 25)
    assert np.allclose(typical_start(packed), (1.5, -20.0))
    rel = torch.eye(4, dtype=torch.float64).repeat(1, 3, 1, 1)
    rel[0, 1, 0, 3] = 0.2  # 20 cm to the right
    placed = place_path(rel, 1.5, -20.0)
    assert torch.allclose(placed[0, 0], start) and torch.allclose(placed[0, 1, :3, 3], start[:3, 3] + start[:3, 0] * 0.2)
    assert torch.equal(place_path(placed, 1.5, -20.0), placed)  # already in world space
    assert torch.equal(place_path(rel, 0.0, 0.0), rel)  # height unknown
    # from the placed start, the ground is where the warp expects it: its bottom rows see the floor (not the sky)
    uv = plane_warp(ramp(), K, placed[0, 0], placed[0, 1])[0]
    assert (uv[0, H - 1] - torch.arange(W)).abs().mean() > 0.5  # the floor moved under the sideways step
