"""Drive manoeuvres (worldsmith.worlds.manoeuvres) and the drive camera rigs: named actions turn, hold speed and
stop; ``integrate`` is the world's own bicycle model; the "overlap" rig's neighbouring views share content."""

from __future__ import annotations

import json

import numpy as np
import pytest

import worldsmith  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
from worldsmith.cli import main
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.drive import RIGS, DriveConfig, DriveWorld
from worldsmith.worlds.generate import simulate
from worldsmith.worlds.manoeuvres import (
    MANOEUVRES,
    RAMP_FRAMES,
    drive_actions,
    integrate,
    load_trajectory,
    manoeuvre_actions,
    relative_to_first,
)


# -- named manoeuvres ------------------------------------------------------------------------------------------
def test_turns_are_smooth_keep_the_speed_and_go_their_way():
    left, right = manoeuvre_actions("left", 17), manoeuvre_actions("right", 17)
    assert left.shape == (16, 2) and left.dtype == np.float32 and MANOEUVRES == ("straight", "left", "right", "stop")
    steer = left[:, 0]
    assert np.all(np.diff(steer[:RAMP_FRAMES]) > 0) and np.allclose(steer[RAMP_FRAMES - 1 :], 0.6)  # ramps in
    assert np.abs(np.diff(steer)).max() <= 0.6 / RAMP_FRAMES + 1e-6
    np.testing.assert_array_equal(right, left * [-1, 1])
    ego_l, ego_r = integrate(left, 8.0), integrate(right, 8.0)
    assert ego_l.shape == (17, 4) and ego_l.dtype == np.float32
    np.testing.assert_array_equal(ego_l[0], [0, 0, 0, 8])
    assert np.all(np.diff(ego_l[:, 2]) > 0) and ego_l[-1, 2] > np.deg2rad(45) and ego_l[-1, 1] > 2  # left: yaw +
    np.testing.assert_allclose(ego_r, ego_l * [1, -1, -1, 1], atol=1e-6)  # right mirrors left
    np.testing.assert_allclose(ego_l[:, 3], 8.0)  # no drag: the speed holds through the turn
    gentle = integrate(manoeuvre_actions("left", 17, amount=0.2), 8.0)
    assert 0 < gentle[-1, 2] < ego_l[-1, 2] / 2


def test_straight_goes_straight_and_stop_stops():
    ego = integrate(manoeuvre_actions("straight", 11), 6.0, fps=5.0)
    np.testing.assert_allclose(ego[:, 0], 6.0 * np.arange(11) / 5.0, atol=1e-5)
    assert np.all(ego[:, 1:3] == 0) and np.all(ego[:, 3] == 6.0)
    faster = integrate(manoeuvre_actions("straight", 11, amount=0.5), 6.0)
    assert np.all(np.diff(faster[:, 3]) > 0)
    stop = integrate(manoeuvre_actions("stop", 26), 8.0)  # 4 m/s^2: stands after 2 s
    assert np.all(np.diff(stop[:, 3]) <= 0) and stop[-1, 3] == 0.0
    still = stop[:, 3] == 0
    assert still.sum() >= 5 and np.all(stop[still, 0] == stop[-1, 0])  # stands still once stopped
    assert np.all(stop[:, 1:3] == 0)


# -- the world's own bicycle model, the simulator's truth ------------------------------------------------------
def test_integrate_is_the_worlds_ego_and_drive_actions_plays_the_commands():
    rng = np.random.default_rng(0)
    actions = np.concatenate([manoeuvre_actions("left", 5), rng.uniform(-1.2, 1.2, (4, 2)),
                              manoeuvre_actions("stop", 3)]).astype(np.float32)  # fmt: skip
    w = DriveWorld(WorldConfig(size=16, views=2))
    try:
        first = w.reset(4)
        for a in actions:
            w.step(a)
        history = np.stack(w.history)  # float64, the world's own states
        start = history[0]
        # the same function, the same arithmetic: bit for bit
        same = integrate(actions, start[3], start=tuple(start[:3]))
        np.testing.assert_array_equal(same, history.astype(np.float32))
        np.testing.assert_allclose(integrate(actions, start[3]), relative_to_first(history), atol=1e-4)
        truth = drive_actions(w, 4, actions)
    finally:
        w.close()
    T = len(actions) + 1
    assert truth["views"].shape == (2, T, 16, 16, 3) and truth["views"].dtype == np.uint8
    np.testing.assert_array_equal(truth["views"][0, 0], first)
    np.testing.assert_array_equal(truth["ego"], history.astype(np.float32))
    assert truth["c2w"].shape == (T, 2, 4, 4) and truth["intrinsics"].shape == (2, 3, 3)
    np.testing.assert_allclose(truth["c2w"][:, 0, :2, 3], history[:, :2] + 1.5 * np.stack(
        [np.cos(history[:, 2]), np.sin(history[:, 2])], 1), atol=1e-3)  # fmt: skip  (front camera 1.5 m ahead)
    with pytest.raises(ConfigError, match="shape"):
        drive_actions(DriveWorld(WorldConfig(size=16, views=1)), 0, np.zeros((3, 3)))


# -- camera rigs -----------------------------------------------------------------------------------------------
def _warp(src, K_src, c2w_src, K_dst, c2w_dst):
    """``src`` seen from the camera ``c2w_dst`` (same centre, other rotation; nearest pixel) and where it is valid."""
    H, W = src.shape[:2]
    v, u = np.mgrid[0:H, 0:W]
    rays = np.stack([u + 0.5, v + 0.5, np.ones((H, W))], -1) @ np.linalg.inv(K_dst).T
    p = rays @ (c2w_src[:3, :3].T @ c2w_dst[:3, :3]).T @ K_src.T
    z = np.where(p[..., 2] > 0, p[..., 2], 1.0)
    us, vs = p[..., 0] / z - 0.5, p[..., 1] / z - 0.5
    ok = (p[..., 2] > 0) & (us >= 0) & (us <= W - 1) & (vs >= 0) & (vs <= H - 1)
    return src[np.clip(np.round(vs).astype(int), 0, H - 1), np.clip(np.round(us).astype(int), 0, W - 1)], ok


@pytest.mark.parametrize("rig, yaw, shared", [("overlap", 30.0, (0.4, 0.55)), ("wide", 50.0, (0.1, 0.25))])
def test_rig_yaws_and_neighbouring_views_share_content(rig, yaw, shared):
    w = DriveWorld(WorldConfig(size=48, views=3), DriveConfig(rig=rig))
    try:
        truth = drive_actions(w, 1, manoeuvre_actions("left", 3))
        assert w.episode_meta()["rig"] == rig and w.view_names == ["front", "front_left", "front_right"]
    finally:
        w.close()
    views, K, c2w = truth["views"].astype(np.float64), truth["intrinsics"], truth["c2w"].astype(np.float64)
    forward = c2w[..., :3, 2]  # optical axes in the world, (T, V, 3)
    rel = np.degrees(np.arctan2(forward[..., 1], forward[..., 0]) - np.arctan2(forward[:, :1, 1], forward[:, :1, 0]))
    np.testing.assert_allclose(rel, np.broadcast_to([0.0, yaw, -yaw], rel.shape), atol=1e-3)
    for t in range(views.shape[1]):
        for k in (1, 2):  # a side view rotated into the front camera matches the front image where they overlap
            warped, ok = _warp(views[k, t], K[k], c2w[t, k], K[0], c2w[t, 0])
            wrong, ok_wrong = _warp(views[3 - k, t], K[k], c2w[t, k], K[0], c2w[t, 0])
            err = np.abs(warped - views[0, t]).mean(-1)[ok].mean()
            err_wrong = np.abs(wrong - views[0, t]).mean(-1)[ok_wrong].mean()
            assert shared[0] < ok.mean() < shared[1] and err < 8.0 and err_wrong > 2 * err, (t, k, err, err_wrong)


def test_rig_choices_and_the_sim_settings(tmp_path, capsys):
    assert list(RIGS) == ["wide", "overlap"] and DriveConfig().rig == "wide"
    with pytest.raises(ConfigError, match="unknown drive camera rig 'fisheye'; choose one of: wide, overlap"):
        DriveConfig(rig="fisheye")
    kw = dict(episodes=1, frames=2, size=16, views=1, workers=1, progress=False)
    with pytest.raises(ConfigError, match="drive world only"):
        simulate("bounce", out=tmp_path / "b", rig="overlap", **kw)
    with pytest.raises(SystemExit) as e:
        main(["sim", "bounce", "--rig", "overlap", "--out", str(tmp_path / "b"), "-n", "1"])
    assert e.value.code == 1 and "drive world only" in capsys.readouterr().err
    out = tmp_path / "overlap"
    simulate("drive", out=out, rig="overlap", **kw)
    assert json.loads((out / "sim.json").read_text())["rig"] == "overlap"
    assert [c.meta["rig"] for c in iter_shard(list_shards(out)[0])] == ["overlap"]
    with pytest.raises(ConfigError, match="rig='overlap'"):  # not mistaken for a folder of the default rig
        simulate("drive", out=out, **kw)
    old = tmp_path / "old"  # a folder written before rigs existed resumes with the default rig
    old.mkdir()
    settings = {"world": "drive", "frames": 2, "size": 16, "fps": 10.0, "views": 1, "seed": 0}
    (old / "sim.json").write_text(json.dumps(settings))
    assert simulate("drive", out=old, **kw)["written"] == 1
    with pytest.raises(ConfigError, match="rig='wide'"):
        simulate("drive", out=old, rig="overlap", **kw)


# -- trajectories ----------------------------------------------------------------------------------------------
def test_load_trajectory_from_names_and_files(tmp_path):
    np.testing.assert_array_equal(load_trajectory("left", 9), integrate(manoeuvre_actions("left", 9), 8.0))
    right = load_trajectory(" right:0.8 ", 9, speed0=5.0)
    np.testing.assert_array_equal(right, integrate(manoeuvre_actions("right", 9, amount=0.8), 5.0))
    assert load_trajectory("stop", 1).shape == (1, 4)
    ego = [[10.0, 2.0, 0.5 + 0.1 * t, 7.0] for t in range(6)]
    (tmp_path / "ego.json").write_text(json.dumps({"ego": ego}))
    np.testing.assert_allclose(load_trajectory(str(tmp_path / "ego.json"), 4), np.array(ego[:4]), atol=1e-6)
    actions = manoeuvre_actions("left", 6).tolist()
    (tmp_path / "act.json").write_text(json.dumps({"actions": actions, "speed": 6.0}))
    got = load_trajectory(tmp_path / "act.json", 6)
    np.testing.assert_array_equal(got, integrate(np.array(actions), 6.0))
    assert got.dtype == np.float32 and got.shape == (6, 4)


@pytest.mark.parametrize(
    "spec, doc, frames, message",
    [
        ("reverse", None, 5, "unknown trajectory 'reverse'; use one of straight, left, right, stop"),
        ("left:hard", None, 5, "the amount after ':' must be a number in \\[0, 1\\]"),
        ("left:1.5", None, 5, "must be a number in \\[0, 1\\], got 1.5"),
        ("left", None, 0, "frames >= 1"),
        ("missing.json", None, 5, "does not exist"),
        ("t.json", "{not json", 5, "is not valid JSON"),
        ("t.json", {"ego": [], "actions": []}, 5, "exactly one of the keys"),
        ("t.json", {"ego": [[0, 0, 0, 1]] * 3}, 5, "has 3 states in \"ego\" but 5 frames"),
        ("t.json", {"ego": [[0, 0, 1]] * 5}, 5, "shape \\(N, 4\\)"),
        ("t.json", {"ego": [[0, 0, 0, -1]] * 5}, 5, "must be >= 0"),
        ("t.json", {"actions": [[0, 0]] * 2}, 5, "has 2 actions but 5 frames need 4"),
        ("t.json", {"actions": [[0, 2]] * 4}, 5, "within \\[-1, 1\\]"),
        ("t.json", {"actions": [[0, "x"]] * 4}, 5, "not numeric"),
        ("t.json", {"actions": [[0, 0]] * 4, "speed": "fast"}, 5, "\"speed\" must be a number"),
        ("t.json", {"actions": [[0, 0]] * 4, "speed": 99}, 5, "start speed must be in \\[0, 20\\]"),
    ],
)
def test_load_trajectory_errors_say_what_is_wrong(tmp_path, spec, doc, frames, message):
    if doc is not None:
        (tmp_path / spec).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    path = str(tmp_path / spec) if spec.endswith(".json") else spec
    with pytest.raises(ConfigError, match=message):
        load_trajectory(path, frames)


def test_mixed_behaviour_turns_both_ways_and_lane_keeps_its_clips():
    """The mixed driver turns left and right (the loop roads bend only left); the lane driver's episodes are those
    of the default config, action for action."""
    turns = []
    mixed = DriveWorld(WorldConfig(size=16, views=1), DriveConfig(behaviour="mixed"))
    lane = DriveWorld(WorldConfig(size=16, views=1), DriveConfig(behaviour="lane"))
    default = DriveWorld(WorldConfig(size=16, views=1))
    try:
        for seed in range(12):
            ego = record_episode(mixed, seed, 17).arrays["ego"]
            turns.append(float(np.degrees(ego[-1, 2] - ego[0, 2])))
        a, b = record_episode(lane, 3, 9), record_episode(default, 3, 9)
        assert np.array_equal(a.arrays["actions"], b.arrays["actions"]) and np.array_equal(a.frames, b.frames)
    finally:
        for w in (mixed, lane, default):
            w.close()
    assert min(turns) < -10 and max(turns) > 10
    with pytest.raises(ConfigError, match="unknown drive behaviour 'wild'"):
        DriveConfig(behaviour="wild")
    with pytest.raises(ConfigError, match="behaviour option applies to the drive world only"):
        simulate("orbit", episodes=1, frames=2, size=16, out="unused", behaviour="mixed")
