"""Multi-view consistency metrics (worldsmith/eval/multiview.py): exact geometry on synthetic points, then true
64 px renders of the drive world's overlapping rig against views that do not belong together."""

import math

import cv2
import numpy as np
import pytest

from worldsmith.errors import ConfigError
from worldsmith.eval.geometry import fundamental_from_pose, homography_sampson, known_pose_error, sampson_distance
from worldsmith.eval.multiview import (
    cross_view_sampson,
    cross_view_warp,
    ego_yaw,
    multiview_metrics,
    temporal_sampson,
    true_yaw_rate,
    turn_direction,
    turn_sign,
    yaw_rate,
)
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.drive import DriveConfig, DriveWorld

FPS = 10.0


def drive(seed: int, frames: int, steer: float | None = None, views: int = 3) -> tuple:
    """views uint8 (V, T, 64, 64, 3), K (V, 3, 3), c2w (T, V, 4, 4) of an overlap-rig episode: the scripted driver,
    or a constant ``steer`` at throttle 0."""
    world = DriveWorld(WorldConfig(size=64, fps=FPS, views=views), DriveConfig(rig="overlap"))
    world.reset(seed)
    act = world.policy(np.random.default_rng(seed))
    shots, poses = [world.render_views()], [world.truth()["c2w"].reshape(views, 4, 4)]
    for t in range(frames - 1):
        world.step(act(t) if steer is None else np.array([steer, 0.0]))
        shots.append(world.render_views())
        poses.append(world.truth()["c2w"].reshape(views, 4, 4))
    K = world.truth()["intrinsics"].reshape(views, 3, 3).astype(np.float64)
    return np.stack(shots, 1), K, np.stack(poses).astype(np.float64)


@pytest.fixture(scope="module")
def rig():
    return drive(0, 12)


@pytest.fixture(scope="module")
def turns():
    """views, K and c2w of a commanded left (steer +0.6) and right (-0.6) turn from one start (turning right off
    the loop road, the front view of most starts soon sees too little for a pose: episode 6 keeps some)."""
    return {name: drive(6, 12, steer=steer) for name, steer in (("left", 0.6), ("right", -0.6))}


def rot(axis, deg: float) -> np.ndarray:
    R, _ = cv2.Rodrigues(np.asarray(axis, np.float64) / np.linalg.norm(axis) * math.radians(deg))
    return R


def pose(R: np.ndarray, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def test_known_pose_error_for_a_rotating_rig_and_for_a_baseline_with_two_intrinsics():
    K_a = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
    K_b = np.array([[80.0, 0, 40.0], [0, 78.0, 30.0], [0, 0, 1]])
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-2, 2, 50), rng.uniform(-1, 1, 50), rng.uniform(5, 20, 50)])  # camera a
    c2w_a = pose(np.eye(3))

    def project(K, c2w_b):
        x = (X - c2w_b[:3, 3]) @ c2w_b[:3, :3]  # camera b coordinates: R_b^T (X - o_b)
        return (x @ K.T)[:, :2] / (x @ K.T)[:, 2:]

    pa = project(K_a, c2w_a)
    # one centre (a rig): point to point under K_b R K_a^-1, any depth; 2 px off in b: sqrt(r^T (I + AA^T)^-1 r)
    c2w_b = pose(rot([0, 1, 0], -30))
    pb = project(K_b, c2w_b)
    assert known_pose_error(pa, pb, K_a, K_b, c2w_a, c2w_b).max() < 1e-6
    moved = pb.copy()
    moved[0, 0] += 2.0
    err = known_pose_error(pa, moved, K_a, K_b, c2w_a, c2w_b)
    assert err[1:].max() < 1e-6 and 0.8 < err[0] < 2.0  # the 2 px shared by both points (b is ~1.3x a's scale)
    H = np.eye(3)
    assert homography_sampson(pa[:1], pa[:1] + [2.0, 0.0], H)[0] == pytest.approx(2.0 / math.sqrt(2))
    # a baseline: point to epipolar line under F = K_b^-T [t]x R K_a^-1
    c2w_b = pose(rot([0, 1, 0], 10), (0.5, 0.1, 0.3))
    pb = project(K_b, c2w_b)
    assert known_pose_error(pa, pb, K_a, K_b, c2w_a, c2w_b).max() < 1e-6
    R, t = np.linalg.inv(c2w_b)[:3, :3], np.linalg.inv(c2w_b)[:3, 3]
    F = fundamental_from_pose(K_a, R, t, K_b)
    assert sampson_distance(pa, pb, F).max() < 1e-6
    assert sampson_distance(pa, pb, fundamental_from_pose(K_a, R, t)).max() > 1.0  # one K for both is wrong here


def test_cse_small_on_the_true_rig_large_for_views_that_do_not_belong(rig):
    views, K, c2w = rig
    args = (K[0], K[1], c2w[:, 0], c2w[:, 1])
    truth = cross_view_sampson(views[0], views[1], *args)
    assert truth["cse"] < 1.5 and truth["matches"] >= 5 and truth["frames"] == 12
    other = drive(100, 12)[0]
    for wrong in (other[1], views[1][:, :, ::-1], views[2]):  # another episode's view, mirrored, the other side's
        assert cross_view_sampson(views[0], wrong, *args)["cse"] > 8.0
    late = cross_view_sampson(views[0][:-4], views[1][4:], K[0], K[1], c2w[:-4, 0], c2w[:-4, 1])  # 4 frames late
    assert late["cse"] > 2 * truth["cse"]
    # the dense check: the true overlap agrees to ~28 dB, a view of another episode to ~16
    warp = cross_view_warp(views[0], views[1], *args)
    assert warp["psnr"] > 24.0 and 0.3 < warp["overlap"] < 0.6
    assert cross_view_warp(views[0], other[1], *args)["psnr"] < warp["psnr"] - 8.0
    shifted = pose(np.eye(3), (1.0, 0.0, 0.0))  # cameras apart: a homography does not relate them
    assert math.isnan(cross_view_warp(views[0], views[1], K[0], K[1], c2w[:, 0], c2w[:, 0] @ shifted)["psnr"])


def test_tse_small_under_the_own_motion_larger_under_another_trajectory(turns):
    (left, K, c2w), right_c2w = turns["left"], turns["right"][2]
    own = temporal_sampson(left[0], K[0], c2w[:, 0])
    assert own["tse"] < 2.0 and own["pairs"] == 10 and own["matches"] > 10
    assert temporal_sampson(left[0], K[0], right_c2w[:, 0])["tse"] > 2 * own["tse"]


def test_ego_yaw_sign_follows_the_commanded_turn(turns):
    for name, sign in (("left", 1), ("right", -1)):
        views, K, c2w = turns[name]
        truth = true_yaw_rate(c2w[:, 0], FPS)
        assert np.sign(truth) == sign and abs(truth) > 30  # + = left: the car's world yaw increases
        yaws = ego_yaw(views[0], K[0])
        assert yaws.shape == (10,) and np.isfinite(yaws).sum() >= 4
        rate = yaw_rate(views[0], K[0], FPS)
        assert np.sign(rate) == sign and 0.5 * abs(truth) < abs(rate) < 2 * abs(truth)
        assert turn_direction(views[0], K[0], FPS) == sign
        r = multiview_metrics(views, K, c2w, FPS)
        assert r["turn"] == r["turn_true"] == sign and np.sign(r["yaw_rate_rig"]) == sign
    assert (turn_sign(5.0), turn_sign(-40.0), turn_sign(float("nan"))) == (0, -1, 0)


def test_multiview_metrics_over_the_overlapping_pairs(rig):
    views, K, c2w = rig
    r = multiview_metrics(views, K, c2w, FPS)
    assert set(r["cse_pairs"]) == {"0-1", "0-2"} == set(r["warp_psnr_pairs"])
    assert r["cse"] == pytest.approx(np.mean(list(r["cse_pairs"].values())))
    assert r["cse"] < 4.0 and r["warp_psnr"] > 22.0 and r["cse_matches"] > 3
    assert len(r["tse"]) == 3 and r["tse_mean"] < 2.0
    assert np.isfinite(r["yaw_rate"]) and abs(r["yaw_rate"] - r["yaw_rate_true"]) < 25.0
    assert r["turn"] in (-1, 0, 1) and r["turn_true"] in (-1, 0, 1)
    # a shared (3, 3) K and a clip's (T, V, 3, 3) are accepted; one pair only
    one = multiview_metrics(views[:2], K[0], c2w[:, :2], FPS, pairs=[(0, 1)])
    assert set(one["cse_pairs"]) == {"0-1"} and one["cse_pairs"]["0-1"] == r["cse_pairs"]["0-1"]
    clip_K = multiview_metrics(views[:2], np.repeat(K[None, :2], 12, 0), c2w[:, :2], FPS)
    assert clip_K["cse"] == one["cse"] and clip_K["tse"] == one["tse"]


def test_clear_errors_for_bad_shapes(rig):
    views, K, c2w = rig
    cases = [
        (lambda: multiview_metrics(views[0], K, c2w, FPS), "views must be uint8 \\(V, T, H, W, 3\\)"),
        (lambda: multiview_metrics(views.astype(np.float32), K, c2w, FPS), "views must be uint8"),
        (lambda: multiview_metrics(views, K[:2], c2w, FPS), "K must have shape \\(3, 3, 3\\)"),
        (lambda: multiview_metrics(views, K, c2w[:5], FPS), "c2w must have shape \\(12, 3, 4, 4\\)"),
        (lambda: multiview_metrics(views, K, c2w, 0.0), "fps must be positive"),
        (lambda: multiview_metrics(views, K, c2w, FPS, pairs=[(0, 3)]), "two different views among 0..2"),
        (lambda: cross_view_sampson(views[0], views[1][:5], K[0], K[1], c2w[:, 0], c2w[:, 1]), "as many frames"),
        (lambda: temporal_sampson(views[0], K[0], c2w[:, 0], step=0), "at least 1 frame"),
        (lambda: ego_yaw(views[0][..., 0], K[0]), "front must be uint8 frames"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message):
            call()
