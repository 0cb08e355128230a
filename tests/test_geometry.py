"""3D-consistency metrics: epipolar geometry on exact synthetic points, then SIFT on a ray-cast textured room."""

import math

import cv2
import numpy as np
import pytest

from worldsmith.eval.geometry import (
    MAX_ROT_ERR_DEG,
    MIN_BASELINE,
    default_pairs,
    estimate_pose,
    fundamental_from_pose,
    match_sift,
    pair_from_matches,
    pair_metrics,
    relative_pose,
    rotation_error_deg,
    sampson_distance,
    translation_error_deg,
    video_metrics,
)
from worldsmith.eval.rotation_only import estimate_rotation

K = np.array([[100.0, 0.0, 63.5], [0.0, 100.0, 63.5], [0.0, 0.0, 1.0]])  # 128x128 frames, 65 degrees wide


def rot(axis, deg: float) -> np.ndarray:
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    R, _ = cv2.Rodrigues(axis * math.radians(deg))
    return R


def pose(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    x = X @ K.T
    return x[:, :2] / x[:, 2:]


def scene_points(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(4, 9, n)])


# --- a textured room (back wall, floor, ceiling, side walls), ray-cast per pixel -------------------------------
def _texture(seed: int, size: int = 256) -> np.ndarray:
    """Periodic multi-scale blurred noise in [0, 255] (SIFT needs blobs at several scales)."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size), np.float32)
    for sigma in (1.0, 3.0, 8.0):
        pad = int(4 * sigma) + 1
        noise = np.pad(rng.standard_normal((size, size)).astype(np.float32), pad, mode="wrap")
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)[pad:-pad, pad:-pad]
        tex += noise / noise.std()
    return (tex - tex.min()) / (tex.max() - tex.min()) * 255


X_AXIS, Y_AXIS, Z_AXIS = np.eye(3)
ROOM = [  # (normal n, offset c: the plane n . X = c, texture axes e1, e2), world = camera 0 (x right, y down)
    (Z_AXIS, 6.0, X_AXIS, Y_AXIS),
    (Y_AXIS, 1.5, X_AXIS, Z_AXIS),
    (Y_AXIS, -2.0, X_AXIS, Z_AXIS),
    (X_AXIS, -2.5, Z_AXIS, Y_AXIS),
    (X_AXIS, 2.5, Z_AXIS, Y_AXIS),
]
TEXTURES = [_texture(seed) for seed in range(len(ROOM))]


def render(c2w: np.ndarray, size: int = 128, texels: float = 24.0) -> np.ndarray:
    """uint8 RGB (size, size, 3) view of ROOM from the camera ``c2w`` with intrinsics K."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T @ c2w[:3, :3].T
    origin = c2w[:3, 3]
    depth = np.full((size, size), np.inf)
    grey = np.zeros((size, size), np.float32)
    for (n, c, e1, e2), tex in zip(ROOM, TEXTURES):
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (c - origin @ n) / (rays @ n)
        hit = (s > 0) & (s < depth)
        X = origin + np.nan_to_num(s, posinf=0, neginf=0)[..., None] * rays
        map_x, map_y = ((X @ e1) * texels).astype(np.float32), ((X @ e2) * texels).astype(np.float32)
        values = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        grey[hit], depth[hit] = values[hit], s[hit]
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


# --- exact geometry -------------------------------------------------------------------------------------------
def test_relative_pose_hand_built():
    c2w_a = pose(rot([1, 2, 3], 40), [0.3, -1.0, 2.0])
    c2w_b = c2w_a @ pose(np.eye(3), [1.0, 0.0, 0.0])  # camera b: a moved +1 along a's own x axis
    R, t = relative_pose(c2w_a, c2w_b)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t, [-1.0, 0.0, 0.0], atol=1e-12)
    # general case: the same world points expressed in either camera satisfy x_b = R x_a + t
    c2w_b = pose(rot([0, 1, 0.2], -25), [1.0, 0.5, -0.3])
    R, t = relative_pose(c2w_a, c2w_b)
    X = np.column_stack([scene_points(10), np.ones(10)])
    x_a, x_b = (X @ np.linalg.inv(c2w_a).T)[:, :3], (X @ np.linalg.inv(c2w_b).T)[:, :3]
    np.testing.assert_allclose(x_a @ R.T + t, x_b, atol=1e-12)


def test_estimate_pose_recovers_a_known_pose_from_exact_projections():
    R, t = rot([0, 1, 0], 10), np.array([0.6, 0.1, 0.2])
    X_a = scene_points()
    pa, pb = project(K, X_a), project(K, X_a @ R.T + t)
    est = estimate_pose(pa, pb, K)
    assert est is not None
    assert rotation_error_deg(est.R, R) < 0.1
    assert translation_error_deg(est.t, t) < 0.5
    assert np.linalg.norm(est.t) == pytest.approx(1.0)
    assert est.inliers == len(pa) and est.mask.shape == (len(pa),) and est.mask.all()
    assert estimate_pose(pa[:7], pb[:7], K) is None  # too few matches


def test_sampson_distance_is_zero_on_epipolar_lines_and_measures_an_offset():
    R, t = rot([0, 1, 0], 10), np.array([0.6, 0.1, 0.2])
    X_a = scene_points()
    pa, pb = project(K, X_a), project(K, X_a @ R.T + t)
    F = fundamental_from_pose(K, R, t)
    assert sampson_distance(pa, pb, F).max() < 1e-6
    np.testing.assert_allclose(sampson_distance(pa, pb, 7.0 * F), sampson_distance(pa, pb, F), atol=1e-12)
    # move point 0 of frame b 2 px perpendicular to its epipolar line: its distance to that line becomes 2 px
    line_b = F @ np.append(pa[0], 1.0)
    moved = pb.copy()
    moved[0] += 2.0 * line_b[:2] / np.linalg.norm(line_b[:2])
    assert abs(line_b @ np.append(moved[0], 1.0)) / np.linalg.norm(line_b[:2]) == pytest.approx(2.0)
    d = sampson_distance(pa, moved, F)
    assert d[1:].max() < 1e-6
    # Sampson spreads the 2 px over both points: 1/S^2 = 1/d_a^2 + 1/d_b^2 with d_b = 2 and d_a the distance of
    # pa[0] from the epipolar line of the moved point in frame a (about 2 px too here, so S ~ 2 / sqrt(2))
    line_a = F.T @ np.append(moved[0], 1.0)
    d_a = abs(line_a @ np.append(pa[0], 1.0)) / np.linalg.norm(line_a[:2])
    assert d[0] == pytest.approx(1.0 / math.sqrt(1.0 / d_a**2 + 1.0 / 4.0), rel=1e-9)
    assert 1.2 < d[0] < 1.6
    # a rectified pair (pure sideways motion, epipolar lines are rows): the constraint is linear, v_b = v_a, and a
    # 2 px vertical offset is met exactly by moving each point 1 px, a joint displacement of sqrt(2) px
    R0, t0 = np.eye(3), np.array([-1.0, 0.0, 0.0])
    pa, pb = project(K, X_a), project(K, X_a + t0)
    pb[:, 1] += 2.0
    np.testing.assert_allclose(sampson_distance(pa, pb, fundamental_from_pose(K, R0, t0)), math.sqrt(2), rtol=1e-9)


def test_rotation_and_translation_errors():
    R = rot([1, 2, 3], 17)
    assert rotation_error_deg(R, R) == 0.0
    assert rotation_error_deg(rot([0.3, -1, 0.5], 30) @ R, R) == pytest.approx(30.0, abs=1e-9)
    assert rotation_error_deg(rot([0, 0, 1], 179), np.eye(3)) == pytest.approx(179.0, abs=1e-9)
    assert translation_error_deg([1, 2, 3], [-2, -4, -6]) == pytest.approx(180.0)
    assert translation_error_deg([1, 0, 0], [0, 0, 5]) == pytest.approx(90.0)
    assert translation_error_deg([1, 0, 0], [3, 0, 0]) == 0.0
    assert math.isnan(translation_error_deg([1, 0, 0], [0.5 * MIN_BASELINE, 0, 0]))


# --- rendered frames --------------------------------------------------------------------------------------------
C2W_A = np.eye(4)
C2W_B = pose(rot([0, 1, 0], 4), [0.4, 0.05, 0.2])


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray]:
    return render(C2W_A), render(C2W_B)


def test_match_sift_coordinates_are_in_original_pixels(frames):
    a, _ = frames
    big = cv2.resize(a, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # pixel centres: x_big = 2 x + 0.5
    for upscale in (1, 2):
        pa, pb = match_sift(a, big, upscale=upscale)
        assert len(pa) > 100 and pa.dtype == np.float64
        np.testing.assert_allclose(np.median(pb - 2 * pa, axis=0), [0.5, 0.5], atol=0.05)
    wide = render(C2W_A)
    pa, pb = match_sift(wide[10:110, 10:110], wide[13:113, 5:105])  # frame b = frame a moved 5 px right, 3 up
    np.testing.assert_allclose(np.median(pb - pa, axis=0), [5.0, -3.0], atol=0.05)


def test_match_sift_blank_frame_gives_empty_arrays(frames):
    blank = np.full((128, 128, 3), 128, np.uint8)
    for a, b in ((blank, frames[0]), (frames[0], blank), (blank, blank)):
        pa, pb = match_sift(a, b)
        assert pa.shape == (0, 2) and pb.shape == (0, 2)
    m = pair_metrics(blank, frames[1], K, C2W_A, C2W_B)
    assert m["matches"] == 0 and m["inliers"] == 0 and not m["success"]
    assert math.isnan(m["sampson"]) and math.isnan(m["rot_err_deg"]) and math.isnan(m["sampson_true"])


def test_pair_metrics_consistent_pair_unrelated_frame_and_wrong_command(frames):
    a, b = frames
    good = pair_metrics(a, b, K, C2W_A, C2W_B)
    assert good["success"] is True and good["match"] is True
    assert good["matches"] > 200 and good["inliers"] > 0.9 * good["matches"]
    assert good["rot_err_deg"] < 3.0 and good["trans_err_deg"] < 15.0
    assert good["sampson"] < 1.5 and good["sampson_true"] < 1.5
    noise = np.random.default_rng(0).integers(0, 256, a.shape, dtype=np.uint8)
    bad = pair_metrics(a, noise, K, C2W_A, C2W_B)
    assert bad["success"] is False and bad["match"] is False and bad["matches"] < 20
    # the right frames but a commanded pose 20 degrees off: the pixels still agree with each other, not with it
    wrong = pair_metrics(a, b, K, C2W_A, pose(rot([0, 1, 0], 24), C2W_B[:3, 3]))
    # the pose is still recovered (success) but does not match the command
    assert wrong["success"] is True and wrong["match"] is False and wrong["sampson"] == good["sampson"]
    assert wrong["rot_err_deg"] == pytest.approx(20.0, abs=3.0) and wrong["rot_err_deg"] > MAX_ROT_ERR_DEG
    assert wrong["sampson_true"] > 2 * good["sampson_true"] + 2.0
    # a pure rotation: no baseline, so no translation direction and no true F
    still = pair_metrics(a, render(pose(rot([0, 1, 0], 4), [0, 0, 0])), K, C2W_A, pose(rot([0, 1, 0], 4), [0, 0, 0]))
    assert math.isnan(still["trans_err_deg"]) and math.isnan(still["sampson_true"])


def test_video_metrics_default_pairs_and_wrong_trajectory():
    assert default_pairs(9) == [(0, 4), (0, 8), (1, 5), (2, 6), (3, 7), (4, 8)]
    assert default_pairs(13)[:3] == [(0, 4), (0, 8), (0, 12)] and len(default_pairs(13)) == 3 + 9 - 1
    assert default_pairs(3) == [(0, 2)] and default_pairs(1) == []
    c2w = np.stack([pose(rot([0, 1, 0], 0.8 * i), [0.08 * i, 0.0, 0.05 * i]) for i in range(9)])
    video = np.stack([render(p) for p in c2w])
    m = video_metrics(video, K, c2w)
    assert m["pairs"] == 6 and m["estimated"] == 1.0 and m["pose_success"] == 1.0 and m["pose_match"] == 1.0
    assert m["rot_err_deg"] < 3.0 and m["sampson_true"] < 1.5 and m["inliers"] >= 15
    assert set(m) == {"sampson", "sampson_true", "pose_success", "pose_match", "rot_err_deg", "trans_err_deg",
                      "matches", "inliers", "pairs", "estimated"}  # fmt: skip
    backwards = c2w.copy()
    backwards[:, :3, 3] *= -1  # the commanded path goes the other way: translation directions are ~180 deg off
    m = video_metrics(video, K, backwards, pairs=[(0, 4), (0, 8)])
    assert m["pairs"] == 2 and m["pose_success"] == 1.0 and m["pose_match"] == 0.0 and m["trans_err_deg"] > 90
    with pytest.raises(ValueError, match="one pose per frame"):
        video_metrics(video, K, c2w[:5])


def test_estimate_pose_takes_the_rotation_only_model_for_a_pan():
    """A camera turning about its centre: no parallax, so the essential matrix is degenerate; the rotation-only
    model recovers the rotation (t = 0) and the pair counts as a success and a match (no baseline to compare)."""
    R = rot([0.1, 1, 0.05], 8)
    X_a = scene_points(300, seed=1)
    pa, pb = project(K, X_a), project(K, X_a @ R.T)
    est = estimate_pose(pa, pb, K, panoramic=True)
    assert est is not None and est.rotation_only
    assert rotation_error_deg(est.R, R) < 0.01
    assert not est.t.any() and est.inliers == len(pa) and est.mask.all()
    c2w_b = pose(R.T, np.zeros(3))  # x_b = R x_a for points in camera a's frame (world = camera a)
    m = pair_from_matches(pa, pb, K, np.eye(4), c2w_b)
    assert m["success"] and m["match"] and m["sampson"] < 1e-6 and math.isnan(m["trans_err_deg"])
    # a frozen video fits the rotation-only model too (the identity), so where the command has a baseline the pair
    # needs a two-view geometry whose points triangulate, and a frozen pair fails it
    frozen = pair_from_matches(pa, pa, K, np.eye(4), pose(np.eye(3), [0.5, 0.0, 0.0]))
    assert not frozen["success"] and not frozen["match"]
    assert pair_from_matches(pa, pa, K, np.eye(4), c2w_b)["success"]  # (a pan commanded: recovered, the identity,
    assert not pair_from_matches(pa, pa, K, np.eye(4), c2w_b)["match"]  # which is not the commanded rotation)


def test_estimate_rotation_ignores_outliers_and_translated_pairs_keep_the_essential_matrix():
    R = rot([0, 1, 0], -6)
    X_a = scene_points(200, seed=2)
    pa, pb = project(K, X_a), project(K, X_a @ R.T)
    rng = np.random.default_rng(3)
    pb[:40] = rng.uniform(0, 127, (40, 2))  # 20 % wrong matches
    found = estimate_rotation(pa, pb, K)
    assert found is not None
    R_est, inliers = found
    assert rotation_error_deg(R_est, R) < 0.05 and inliers[40:].all() and inliers[:40].sum() <= 2
    # with a real baseline the rotation-only model explains few matches: the essential matrix is kept
    t = np.array([0.8, 0.0, 0.1])
    est = estimate_pose(project(K, X_a), project(K, X_a @ R.T + t), K, panoramic=True)
    assert est is not None and not est.rotation_only and translation_error_deg(est.t, t) < 1.0
