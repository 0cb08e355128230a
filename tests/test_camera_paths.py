"""Camera paths (``worldsmith.worlds.camera_paths``) and rendering a commanded path in the orbit world."""

from __future__ import annotations

import json

import numpy as np
import pytest

import worldsmith  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
from worldsmith.errors import ConfigError
from worldsmith.worlds import camera_paths as cp
from worldsmith.worlds import render
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.orbit import OrbitWorld

FRAMES = 9


def world_pose() -> np.ndarray:
    """Some rigid pose far from the identity (a frame of reference for keyframes and files)."""
    pose = cp.named_path("tilt_up", 2, amount=50)[-1] @ cp.named_path("pan_left", 2, amount=70)[-1]
    pose[:3, 3] = [2.0, -1.0, 0.7]
    return pose


def angle_deg(pose: np.ndarray) -> float:
    return float(np.rad2deg(cp.rotation_angle(pose)))


def assert_rigid_relative(path: np.ndarray, frames: int) -> None:
    assert path.shape == (frames, 4, 4) and path.dtype == np.float64
    np.testing.assert_array_equal(path[0], np.eye(4))
    R = path[:, :3, :3]
    np.testing.assert_allclose(np.swapaxes(R, 1, 2) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    np.testing.assert_array_equal(path[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (frames, 4)))


# -- named paths ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", cp.NAMED)
def test_named_paths_are_rigid_relative_and_move_the_right_way(name):
    path = cp.named_path(name, FRAMES)
    assert_rigid_relative(path, FRAMES)
    last = path[-1]
    pos, axis = last[:3, 3], last[:3, 2]  # position and optical axis in the first camera's frame
    a = cp.DEFAULT_AMOUNTS[name]
    if name == "static":
        np.testing.assert_array_equal(path, np.broadcast_to(np.eye(4), path.shape))
        return
    sign = 1 if name.endswith(("left", "in", "up")) else -1
    if name.startswith("orbit"):
        assert sign * pos[0] < -0.5 and pos[2] > 0  # left: toward -x (and closer along z, on the circle)
        assert np.isclose(angle_deg(last), a)
        for pose in path:  # the centre stays centred and at the same distance
            centre = np.linalg.inv(pose) @ [0.0, 0.0, 2.5, 1.0]
            np.testing.assert_allclose(centre[:3], [0.0, 0.0, 2.5], atol=1e-9)
    elif name.startswith("dolly"):
        np.testing.assert_allclose(pos, [0, 0, sign * a], atol=1e-12)
        np.testing.assert_array_equal(last[:3, :3], np.eye(3))
    elif name.startswith("pan"):
        assert sign * axis[0] < -0.3 and abs(axis[1]) < 1e-12 and np.isclose(angle_deg(last), a)
        np.testing.assert_array_equal(pos, 0)
    elif name.startswith("tilt"):
        assert sign * axis[1] < -0.2 and abs(axis[0]) < 1e-12 and np.isclose(angle_deg(last), a)
        np.testing.assert_array_equal(pos, 0)
    else:  # crane: up is -y
        np.testing.assert_allclose(pos, [0, -sign * a, 0], atol=1e-12)
        np.testing.assert_array_equal(last[:3, :3], np.eye(3))


def test_named_paths_honour_amounts_distance_and_ease_in_and_out():
    assert np.isclose(angle_deg(cp.named_path("orbit_left", 5, amount=45)[-1]), 45.0)
    assert np.isclose(angle_deg(cp.named_path("pan_right", 5, amount=10)[-1]), 10.0)
    np.testing.assert_allclose(cp.named_path("dolly_out", 5, amount=1.5)[-1, :3, 3], [0, 0, -1.5])
    orbit = cp.named_path("orbit_right", 7, amount=90, distance=1.0)[-1]
    np.testing.assert_allclose(orbit[:3, 3], [1.0, 0.0, 1.0], atol=1e-12)  # a quarter circle round (0, 0, 1)
    np.testing.assert_allclose(orbit[:3, 2], [-1.0, 0.0, 0.0], atol=1e-12)  # looking back at the centre
    z = cp.named_path("dolly_in", 11, amount=1.0)[:, 2, 3]
    steps = np.diff(z)
    assert (steps > 0).all() and steps[0] < 0.2 * steps[5] and steps[-1] < 0.2 * steps[5]  # slow, fast, slow
    assert np.isclose(z[5], 0.5)
    assert cp.named_path("crane_up", 1).shape == (1, 4, 4)
    with pytest.raises(ConfigError, match="orbit_left, orbit_right.*static"):
        cp.named_path("zoom_in", 5)
    with pytest.raises(ConfigError, match="frames"):
        cp.named_path("dolly_in", 0)


# -- splines and transforms -----------------------------------------------------------------------------------------
def test_spline_passes_through_keyframes_in_any_frame_of_reference():
    orbit = cp.named_path("orbit_left", 9, amount=40)
    spline = cp.spline_path([orbit[0], orbit[-1]], 9)
    assert_rigid_relative(spline, 9)
    np.testing.assert_allclose(spline[-1], orbit[-1], atol=1e-12)
    # three keyframes, given in a world frame: the middle one is hit at frame 4 of 9, the result is relative
    world = world_pose()
    keys = world[None] @ orbit[[0, 4, 8]]
    spline = cp.spline_path(keys, 9)
    assert_rigid_relative(spline, 9)
    np.testing.assert_allclose(spline[[0, 4, 8]], orbit[[0, 4, 8]], atol=1e-12)
    for pose in spline:  # between the keyframes it stays close to the circle and looks near its centre
        assert abs(np.linalg.norm(pose[:3, 3] - [0, 0, 2.5]) - 2.5) < 0.05
        centre = np.linalg.inv(pose) @ [0.0, 0.0, 2.5, 1.0]
        assert np.abs(centre[:2]).max() < 0.05 * centre[2]
    with pytest.raises(ConfigError, match="at least 2 keyframe"):
        cp.spline_path([np.eye(4)], 5)


def test_reverse_and_speed_up():
    orbit = cp.named_path("orbit_left", 7, amount=30)
    back = cp.reverse_path(orbit)
    assert_rigid_relative(back, 7)
    np.testing.assert_allclose(back[-1], np.linalg.inv(orbit[-1]), atol=1e-12)
    np.testing.assert_allclose(cp.reverse_path(back), orbit, atol=1e-12)
    fast = cp.speed_up(orbit, 2)
    assert_rigid_relative(fast, 7)
    assert np.isclose(angle_deg(fast[-1]), 2 * angle_deg(orbit[-1]))
    np.testing.assert_allclose(fast, cp.named_path("orbit_left", 7, amount=60), atol=1e-9)  # still an orbit
    np.testing.assert_allclose(cp.speed_up(fast, 0.5), orbit, atol=1e-9)
    dolly = cp.named_path("dolly_in", 5)
    np.testing.assert_allclose(cp.speed_up(dolly, 3, screw=False), cp.named_path("dolly_in", 5, amount=2.4))
    np.testing.assert_allclose(cp.speed_up(dolly, 3), cp.named_path("dolly_in", 5, amount=2.4), atol=1e-12)
    pan = cp.named_path("pan_left", 9, amount=120)  # 120 deg x 2 = 240 deg: the angle unwraps past 180
    turned = cp.speed_up(pan, 2)[:, :3, 2]
    heading = np.unwrap(np.arctan2(turned[:, 0], turned[:, 2]))
    assert np.all(np.diff(heading) < 0) and np.isclose(np.rad2deg(heading[-1]), -240)
    np.testing.assert_array_equal(cp.relative(orbit), orbit)
    np.testing.assert_allclose(cp.relative(orbit[2:]), np.linalg.inv(orbit[2])[None] @ orbit[2:], atol=1e-12)


# -- load_path ------------------------------------------------------------------------------------------------------
def write(tmp_path, name, doc) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_load_path_names_amounts_and_files(tmp_path):
    np.testing.assert_array_equal(cp.load_path("tilt_down", 6), cp.named_path("tilt_down", 6))
    np.testing.assert_array_equal(cp.load_path(" orbit_left:45 ", 6), cp.named_path("orbit_left", 6, amount=45))
    world = world_pose()
    poses = world[None] @ cp.named_path("crane_up", 8)
    loaded = cp.load_path(write(tmp_path, "c2w.json", {"c2w": np.round(poses, 6).tolist()}), 5)
    assert_rigid_relative(loaded, 5)
    np.testing.assert_allclose(loaded, cp.named_path("crane_up", 8)[:5], atol=1e-5)  # cut to 5, made relative
    keys = world[None] @ cp.named_path("pan_right", 9)[[0, 8]]
    loaded = cp.load_path(write(tmp_path, "keys.json", {"keyframes": keys.tolist()}), 9)
    assert_rigid_relative(loaded, 9)
    np.testing.assert_allclose(loaded[-1], cp.named_path("pan_right", 9)[-1], atol=1e-12)
    assert loaded.shape == (9, 4, 4)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ("{not json", ["not valid JSON"]),
        ({"poses": []}, ["exactly one of", "c2w", "keyframes"]),
        ([1, 2], ["exactly one of"]),
        ({"c2w": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]] * 6}, ["4 x 4 matrices", "(6, 3, 3)"]),
        ({"c2w": [[[1, 0, 0, 0], [0, 1, 0, 0]], [[1]]]}, ["4 x 4 numeric"]),
        ({"c2w": [(np.diag([1.1, 1, 1, 1])).tolist()] * 6}, ["pose 0", "not a rigid transform", "orthonormal"]),
        ({"c2w": [np.diag([1.0, 1, -1, 1]).tolist()] * 6}, ["not a rigid transform", "mirror"]),
        ({"c2w": [[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]]] * 6}, ["last row", "0 0 0 1"]),
        ({"c2w": [np.eye(4).tolist()] * 3}, ["has 3 poses", "needs at", "least 5 poses"]),
        ({"keyframes": [np.eye(4).tolist()]}, ["at least 2 poses"]),
    ],
)
def test_load_path_rejects_bad_files_with_a_clear_sentence(tmp_path, doc, words):
    path = write(tmp_path, "bad.json", doc)
    with pytest.raises(ConfigError) as err:
        cp.load_path(path, 5)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_load_path_rejects_unknown_names_amounts_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown camera path 'spin'.*orbit_left.*crane_down.*JSON"):
        cp.load_path("spin", 5)
    with pytest.raises(ConfigError, match="must be a number of degrees, e.g. orbit_left:30"):
        cp.load_path("orbit_left:far", 5)
    with pytest.raises(ConfigError, match="does not exist"):
        cp.load_path(str(tmp_path / "nowhere.json"), 5)
    with pytest.raises(ConfigError, match="does not exist"):
        cp.load_path(tmp_path / "nowhere", 5)


# -- rendering a commanded path ---------------------------------------------------------------------------------------
def test_orbit_world_renders_a_commanded_path():
    w, ref = OrbitWorld(WorldConfig(size=32)), OrbitWorld(WorldConfig(size=32))
    try:
        first = ref.reset(5)
        ref_c2w = ref.c2w_world(0)
        static, info = w.render_path(5, cp.named_path("static", 3))
        np.testing.assert_array_equal(static[0], first)
        assert static.shape == (3, 32, 32, 3) and static.dtype == np.uint8
        assert (static == first).all()
        np.testing.assert_allclose(info["c2w_world"][0], ref_c2w, atol=1e-9)
        np.testing.assert_allclose(info["intrinsics"], ref.truth()["intrinsics"])
        path = cp.named_path("orbit_left", 4, amount=40, distance=2.0) @ cp.named_path("tilt_up", 4)  # roll, too
        frames, info = w.render_path(5, path)
        seg = w.render_segmentation(0)  # the last pose: the objects' centres project onto the objects
        geoms = w._object_geoms()
        centres = np.array([w.data.geom_xpos[g] for g in geoms])
    finally:
        w.close()
        ref.close()
    assert info["c2w"].dtype == np.float32 and info["intrinsics"].shape == (3, 3)
    np.testing.assert_allclose(info["c2w"], path, atol=1e-4)  # the rendered camera is the commanded one
    np.testing.assert_allclose(info["c2w_world"], ref_c2w[None] @ path, atol=1e-9)
    np.testing.assert_array_equal(frames[0], first)
    assert all(np.abs(frames[i].astype(int) - first).mean() > 2 for i in (2, 3))
    uv, z = render.project(centres, info["intrinsics"].astype(np.float64), info["c2w_world"][-1])
    px = np.rint(uv).astype(int)
    seen = [seg[v, u] == g for g, (u, v), d in zip(geoms, px, z) if d > 0 and 0 <= min(u, v) and max(u, v) < 32]
    assert len(seen) >= 2 and np.mean(seen) >= 0.75, seen
