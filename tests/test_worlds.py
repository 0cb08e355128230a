"""The simulated worlds bounce, orbit and drive; dataset generation (``simulate``); the Gymnasium wrapper."""

from __future__ import annotations

import re

import numpy as np
import pytest

import worldsmith  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
from worldsmith.data.manifest import list_shards, read_manifest
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.worlds import captions, generate, mjcf, render
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.bounce import MOVE_THRESHOLD, BounceWorld
from worldsmith.worlds.drive import DriveConfig, DriveWorld
from worldsmith.worlds.generate import episode_key, simulate
from worldsmith.worlds.orbit import OrbitWorld
from worldsmith.worlds.registry import make_world, world_names

G = 9.81


@pytest.fixture
def world(request):
    """A world made from ``request.param`` = (class, WorldConfig kwargs), closed after the test."""
    cls, kwargs = request.param
    w = cls(WorldConfig(**kwargs))
    yield w
    w.close()


def geom_names(model, ids: np.ndarray) -> np.ndarray:
    return np.array([model.geom(int(i)).name if i >= 0 else "" for i in ids.ravel()]).reshape(ids.shape)


# -- scene helpers, config ---------------------------------------------------------------------------------------
def test_scene_helpers_build_every_shape_and_speak_plain_english():
    rng = np.random.default_rng(0)
    picked = mjcf.distinct_colors(rng, 8)
    assert len(mjcf.COLORS) >= 10 and len(set(picked)) == 8 and set(picked) <= set(mjcf.COLORS)
    mj = mjcf.MJCF("t")
    mj.assets += mjcf.ground_assets(rng, "ground")
    mj.worldbody.append('<geom type="plane" size="2 2 1" material="ground"/>')
    mj.worldbody += mjcf.random_lights(rng)
    for i, shape in enumerate(mjcf.SHAPES):
        obj = mjcf.random_object(rng, f"o{i}", shapes=(shape,))
        assert obj.description == f"{obj.color} {shape}"
        mj.assets.append(obj.material_xml(rng))
        mj.worldbody.append(obj.body_xml((i * 0.3, 0, obj.half_height)))
    mj.worldbody.append(mjcf.camera_xml("cam", (1, 1, 1), (0, 0, 0), 45))
    model = mj.compile()
    assert model.nbody == 1 + len(mjcf.SHAPES) and model.ncam == 1
    right, away = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    assert captions.direction_words(np.array([1.0, 0.0]), right, away) == "to the right"
    assert captions.direction_words(np.array([0.0, -1.0]), right, away) == "toward the camera"
    assert captions.direction_words(np.array([-1.0, 1.0]), right, away) == "to the left and away from the camera"
    assert captions.count_phrase(1, "orange cone") == "an orange cone"
    assert captions.count_phrase(2, "red car") == "two red cars"
    assert captions.join_phrases(["a", "b", "c"]) == "a, b and c" and captions.sentence("hi there") == "Hi there."


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"fps": 0.0}, {"views": 0}])
def test_world_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        WorldConfig(**kwargs)


def test_registry_names_and_unknown_world():
    assert world_names() == ["arm", "orbit", "drive", "bounce"]
    with pytest.raises(ConfigError, match="unknown world 'moon'.*bounce"):
        make_world("moon")
    with pytest.raises(ConfigError, match="at most 6 cameras"):
        make_world("drive", WorldConfig(views=7))


# -- every world: determinism, shapes and dtypes -----------------------------------------------------------------
EXPECTED = {  # name -> (world, per-frame array shapes given T, V, N or M), action_dim
    "bounce": ({"size": 32}, 3),
    "orbit": ({"size": 32, "views": 2}, 5),
    "drive": ({"size": 32}, 2),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_episode_is_deterministic_with_documented_shapes(name):
    kwargs, action_dim = EXPECTED[name]
    w = make_world(name, WorldConfig(**kwargs))
    try:
        a, b, c = (record_episode(w, seed, 6) for seed in (11, 11, 12))
    finally:
        w.close()
    assert a.caption == b.caption and np.array_equal(a.frames, b.frames)
    assert a.arrays.keys() == b.arrays.keys() and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    assert all(np.array_equal(x, y) for x, y in zip(a.views, b.views))
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (6, 32, 32, 3) and a.frames.dtype == np.uint8
    assert a.arrays["actions"].shape == (5, action_dim)
    assert all(arr.dtype == np.float32 and arr.shape[0] in (5, 6) for arr in a.arrays.values())
    v = w.num_views
    assert len(a.views) == v - 1 and all(x.shape == a.frames.shape for x in a.views)
    pose_shape = (6, v, 4, 4) if v > 1 else (6, 4, 4)
    assert a.arrays["c2w"].shape == pose_shape and a.arrays["intrinsics"].shape == pose_shape[:-2] + (3, 3)
    assert a.meta["world"] == name and a.meta["seed"] == 11 and a.caption.endswith(".")
    if name == "bounce":
        n = len(a.meta["objects"])
        assert a.arrays["states"].shape == (6, n, 7) and a.arrays["pixels"].shape == (6, n, 2)
    if name == "drive":
        assert a.arrays["ego"].shape == (6, 4) and a.meta["views"] == ["front", "front_left", "front_right"]
    lo, hi = w.action_bounds()
    assert np.all(a.arrays["actions"] >= lo - 1e-6) and np.all(a.arrays["actions"] <= hi + 1e-6)


# -- bounce --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [(BounceWorld, {"size": 32})], indirect=True)
def test_bounce_free_fall_matches_half_g_t_squared(world):
    world.reset(3)
    z0 = 2.5  # far above everything else: no contact during the fall
    world.set_object_pose(1, (0.0, 0.0, z0))
    zs = [world.truth()["states"][1, 2]]
    for _ in range(6):
        world.step(np.zeros(3, np.float32))
        zs.append(world.truth()["states"][1, 2])
    t = np.arange(7) / world.cfg.fps
    fallen, expected = z0 - np.array(zs[1:]), 0.5 * G * t[1:] ** 2
    np.testing.assert_allclose(fallen, expected, rtol=0.02)
    np.testing.assert_allclose(world.truth()["states"][1, :2], [0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("world", [(BounceWorld, {"size": 48, "views": 2})], indirect=True)
def test_bounce_agent_follows_the_force_and_pixels_land_on_objects(world):
    world.reset(5)
    start = world.truth()["states"][0, :3].copy()
    hits, tries = np.zeros(2), np.zeros(2)  # per camera
    for _ in range(4):
        world.step(np.array([0.0, 0.0, 0.0], np.float32))
        truth = world.truth()
        for k in range(2):
            seg = geom_names(world.model, world.render_segmentation(k))
            uv, _ = render.project(truth["states"][:, :3], truth["intrinsics"][k], truth["c2w"][k])
            if k == 0:
                np.testing.assert_allclose(uv, truth["pixels"], atol=1e-3)
            for i, (u, v) in enumerate(uv):
                if 1 <= u <= 46 and 1 <= v <= 46:
                    tries[k] += 1
                    hits[k] += seg[int(round(v)), int(round(u))] == f"obj{i}_geom"
    assert np.all(tries >= 6) and np.all(hits / tries >= 0.8), (hits, tries)
    resting = world.truth()["states"][0, :3].copy()
    np.testing.assert_allclose(resting[:2], start[:2], atol=0.01)  # no force: the agent stays put
    for _ in range(3):
        world.step(np.array([0.6, 0.0, 0.0], np.float32))
    moved = world.truth()["states"][0, :3] - resting
    assert moved[0] > 0.05 and abs(moved[1]) < 0.5 * moved[0]


def test_bounce_caption_names_what_moved_and_what_stayed_still():
    w = BounceWorld(WorldConfig(size=32))
    try:
        seen_still = seen_moved = 0
        for seed in range(4):
            clip = record_episode(w, seed, 20)
            pos = clip.arrays["states"][:, :, :3]
            moved = np.linalg.norm(pos - pos[:1], axis=-1).max(axis=0) > MOVE_THRESHOLD
            sentences = re.split(r"(?<=\.) ", clip.caption)
            for obj, m in zip(clip.meta["objects"], moved):
                desc = f"{obj['color']} {obj['shape']}"
                about = [s for s in sentences if desc in s]
                assert about, f"{desc} missing from {clip.caption!r}"
                if m:
                    seen_moved += 1
                    assert any("still" not in s for s in about), clip.caption
                else:
                    seen_still += 1
                    assert all(s.endswith(("stays still.", "stay still.")) for s in about), clip.caption
        assert seen_moved >= 4 and seen_still >= 1
    finally:
        w.close()


@pytest.mark.parametrize("world", [(BounceWorld, {"size": 32})], indirect=True)
def test_bounce_caption_says_what_a_falling_object_lands_on(world):
    world.reset(3)  # objects: brown ball (agent), black cube, white cube
    assert [o.description for o in world.objects[1:3]] == ["black cube", "white cube"]
    x, y, _ = world.truth()["states"][2, :3]
    world.set_object_pose(2, (x, y, world.objects[2].half_height))
    world.set_object_pose(1, (x, y, 2 * world.objects[2].half_height + world.objects[1].half_height + 0.1))
    for _ in range(5):
        world.step(np.zeros(3, np.float32))
    assert world.resting_on(1) == 2 and world.resting_on(2) is None
    assert "The black cube falls onto the white cube." in world.caption()


# -- orbit ---------------------------------------------------------------------------------------------------------
def unproject(uv: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) at depths (N,) -> world points (N, 3)."""
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * depth
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], 1) @ c2w[:3, :3].T + c2w[:3, 3]


def reprojection_errors(d0, K0, c0, dt, Kt, ct) -> np.ndarray:
    """Pixel errors of the recorded poses: surface points seen in frame 0 (from its depth) are projected into
    frame t; where they land, frame t's rendered inverse depth must equal theirs. A mismatch divided by the
    inverse-depth gradient there is the reprojection error in pixels along that gradient. Only pixels of smooth
    surfaces that frame t sees unoccluded, with a measurable gradient, count."""
    h, w = d0.shape
    v, u = np.mgrid[0:h, 0:w]
    X = unproject(np.stack([u.ravel(), v.ravel()], 1).astype(np.float64), d0.ravel().astype(np.float64), K0, c0)
    uvt, zt = render.project(X, Kt, ct)
    inside = (uvt[:, 0] >= 0) & (uvt[:, 0] < w - 1) & (uvt[:, 1] >= 0) & (uvt[:, 1] < h - 1) & (zt > 0)
    uvt, zt = uvt[inside], zt[inside]
    i, j = np.floor(uvt[:, 1]).astype(int), np.floor(uvt[:, 0]).astype(int)
    fy, fx = uvt[:, 1] - i, uvt[:, 0] - j
    depth = np.stack([dt[i, j], dt[i, j + 1], dt[i + 1, j], dt[i + 1, j + 1]], 1).astype(np.float64)
    c = 1.0 / depth  # inverse depth at the 4 corners: linear in the image on a plane
    inv = c[:, 0] * (1 - fx) * (1 - fy) + c[:, 1] * fx * (1 - fy) + c[:, 2] * (1 - fx) * fy + c[:, 3] * fx * fy
    grad = np.stack([(c[:, 1] - c[:, 0]) * (1 - fy) + (c[:, 3] - c[:, 2]) * fy,
                     (c[:, 2] - c[:, 0]) * (1 - fx) + (c[:, 3] - c[:, 1]) * fx], 1)  # fmt: skip
    gnorm = np.linalg.norm(grad, axis=1)
    smooth = depth.max(1) / depth.min(1) < 1.05
    visible = np.abs(1 / inv - zt) / zt < 0.1  # occluded points are far off
    keep = smooth & visible & (gnorm > 0.002 * inv)
    return np.abs(inv - 1 / zt)[keep] / gnorm[keep]


@pytest.mark.parametrize("world", [(OrbitWorld, {"size": 48})], indirect=True)
def test_orbit_poses_reproject_the_rendered_geometry_within_a_pixel(world):
    for seed in (0, 1, 4):  # a pan, two orbits and a crane among these seeds' moves
        world.reset(seed)
        act = world.policy(np.random.default_rng(seed))
        first = (world.render_depth(0), world.truth())
        for t in range(8):
            world.step(act(t))
        later = (world.render_depth(0), world.truth())
        pose0, poset = first[1]["c2w"].astype(np.float64), later[1]["c2w"].astype(np.float64)
        K0, Kt = first[1]["intrinsics"].astype(np.float64), later[1]["intrinsics"].astype(np.float64)
        assert np.linalg.norm(poset[:3, 3] - pose0[:3, 3]) > 0.2 or world.move == "pan"
        err = reprojection_errors(first[0], K0, pose0, later[0], Kt, poset)
        assert err.size > 0.1 * 48 * 48, (world.move, err.size)
        p90, p99 = np.percentile(err, [90, 99])
        assert p90 < 0.25 and p99 < 1.0, (world.move, p90, p99)
        # the check can fail: a 2-degree error in the recorded rotation (about 1.8 px) is caught
        a = np.deg2rad(2.0)
        tilt = np.eye(4)
        tilt[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        bad = reprojection_errors(first[0], K0, pose0, later[0], Kt, poset @ tilt)
        assert np.percentile(bad, 90) > 1.0, (world.move, np.percentile(bad, [50, 90]))


def test_orbit_first_identity_actions_and_caption():
    w = OrbitWorld(WorldConfig(size=32), first_identity=True)
    ref = OrbitWorld(WorldConfig(size=32))
    try:
        clip, plain = record_episode(w, 7, 10), record_episode(ref, 7, 10)
    finally:
        w.close()
        ref.close()
    c2w, world_c2w = clip.arrays["c2w"], plain.arrays["c2w"].astype(np.float64)
    np.testing.assert_allclose(c2w[0], np.eye(4), atol=1e-5)
    np.testing.assert_allclose(c2w, render.relative_to_first(world_c2w), atol=1e-4)
    np.testing.assert_array_equal(clip.frames, plain.frames)
    # the camera moves by exactly the commanded velocity (forward/right in its heading frame, up = world z)
    pos, fwd = world_c2w[:, :3, 3], world_c2w[:, :3, 2]
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    a, dt = plain.arrays["actions"].astype(np.float64), 1.0 / plain.fps
    forward = np.stack([np.cos(yaw), np.sin(yaw), 0 * yaw], 1)[:-1]
    right = np.stack([np.sin(yaw), -np.cos(yaw), 0 * yaw], 1)[:-1]
    step = dt * (a[:, :1] * forward + a[:, 1:2] * right + a[:, 2:3] * [0, 0, 1])
    np.testing.assert_allclose(pos[1:] - pos[:-1], step, atol=1e-4)
    np.testing.assert_allclose(np.angle(np.exp(1j * (yaw[1:] - yaw[:-1]))), dt * a[:, 3], atol=1e-4)
    verbs = {"orbit": "orbits", "dolly": ("moves in", "pulls back"), "pan": "pans", "crane": ("rises", "descends")}
    assert plain.caption.startswith("The camera ")
    assert any(v in plain.caption for v in np.atleast_1d(verbs[plain.meta["move"]])), plain.caption
    assert all(f"{o['color']} {o['shape']}" in plain.caption for o in plain.meta["objects"])


# -- drive ---------------------------------------------------------------------------------------------------------
def test_drive_trajectory_integrates_the_actions_and_stays_on_the_road():
    w = DriveWorld(WorldConfig(size=32, views=1))
    try:
        clip = record_episode(w, 2, 60)
        road = w.road
    finally:
        w.close()
    c, dt = DriveConfig(), 1.0 / clip.fps
    ego, act = clip.arrays["ego"].astype(np.float64), clip.arrays["actions"].astype(np.float64)
    x, y, yaw, v = ego[:-1].T
    v1 = np.clip(v + act[:, 1] * c.max_accel * dt, 0, c.max_speed)
    expected = np.stack([x + v1 * np.cos(yaw) * dt, y + v1 * np.sin(yaw) * dt,
                         yaw + v1 * np.tan(act[:, 0] * c.max_steer) / c.wheelbase * dt, v1], 1)  # fmt: skip
    np.testing.assert_allclose(ego[1:], expected, atol=2e-4)
    lateral = np.array([road.distance(p[:2]) for p in ego])  # distance to the centre line; lane centre at 1.75
    assert np.all(np.abs(lateral - c.lane_width / 2) < 1.2) and ego[:, 3].min() > 1.0
    assert clip.arrays["c2w"].shape == (60, 4, 4)


@pytest.mark.parametrize("world", [(DriveWorld, {"size": 48})], indirect=True)
def test_drive_views_are_synchronized_and_their_poses_match_the_images(world):
    world.reset(2)  # an episode with cars and obstacles in the front and front-left views
    act = world.policy(np.random.default_rng(0))
    hits = {k: [0, 0] for k in range(3)}  # view -> [hits, tries]
    swapped = [0, 0]
    mounts = None
    for t in range(10):
        views = [world.step(act(t))] + world.render_views()[1:]
        truth = world.truth()
        # the cameras ride on the ego car: a rigid rig (same relative poses at every frame), left view looking left
        rig = np.linalg.inv(truth["c2w"][0])[None] @ truth["c2w"].astype(np.float64)
        mounts = rig if mounts is None else mounts
        np.testing.assert_allclose(rig, mounts, atol=2e-3)
        assert rig[1, 0, 2] < -0.6 and rig[2, 0, 2] > 0.6 and np.allclose(rig[:, :3, 3], 0, atol=1e-3)
        for k in range(3):
            # each returned image is exactly what its camera sees in the current state: synchronized
            np.testing.assert_array_equal(views[k], world._render(k))
            seg = geom_names(world.model, world.render_segmentation(k))
            depth = world.render_depth(k)
            for name, pos in _things(world):
                for pose, tally in ((truth["c2w"][k], hits[k]), (truth["c2w"][3 - k] if k else None, swapped)):
                    if pose is None:
                        continue
                    (u, v), z = (a[0] for a in render.project(pos[None], truth["intrinsics"][k], pose))
                    if not (z > 1 and 2 <= u <= 45 and 2 <= v <= 45):
                        continue
                    r, c = int(round(v)), int(round(u))
                    seen = seg[r, c]
                    hidden = re.match(r"(veh|obs)\d+_", seen) and not seen.startswith(name + "_")
                    if tally is swapped or not (hidden or depth[r, c] < z - 3.0):  # skip things behind others
                        tally[1] += 1
                        tally[0] += seen.startswith(name + "_")
    total = np.array(list(hits.values())).sum(0)
    assert total[1] >= 8 and total[0] / total[1] >= 0.9, hits
    assert sum(t > 0 for _, t in hits.values()) >= 2, hits  # seen through more than one camera
    assert swapped[1] >= 4 and swapped[0] / swapped[1] < 0.3, swapped  # the wrong view's pose does not fit


def _things(world: DriveWorld):
    """(geom name prefix, 3-D point inside it) of every other vehicle and obstacle now."""
    d, m = world.data, world.model
    for i in range(len(world.vehicles)):
        yield f"veh{i}", d.xpos[m.body(f"veh{i}").id] + [0, 0, 0.7]
    for i, o in enumerate(world.obstacles):
        yield f"obs{i}", d.xpos[m.body(f"obs{i}").id] + [0, 0, 0.4 if o["kind"] == "cone" else 0.6]


def test_drive_caption_mentions_the_car_ahead():
    w = DriveWorld(WorldConfig(size=32, views=1))
    try:
        found = 0
        for seed in range(12):
            clip = record_episode(w, seed, 20)
            assert clip.caption.startswith("The ego car ") and "road" in clip.caption
            ego, cars = clip.arrays["ego"], clip.arrays["vehicles"]  # (T, 4), (T, M, 4)
            d = cars[:, :, :2] - ego[:, None, :2]
            c, s = np.cos(ego[:, 2:3]), np.sin(ego[:, 2:3])
            ahead, left = d[..., 0] * c + d[..., 1] * s, d[..., 1] * c - d[..., 0] * s
            lane = np.array([v["lane"] for v in clip.meta["vehicles"]], dtype=int).reshape(-1)
            lead = ((ahead > 0) & (ahead < 40) & (np.abs(left) < 2.5)).all(0) & (lane == 1)
            for i in np.flatnonzero(lead):
                veh = clip.meta["vehicles"][i]
                assert f"behind a {veh['color']} {veh['kind']}" in clip.caption or (
                    f"behind an {veh['color']} {veh['kind']}" in clip.caption
                ), clip.caption
                found += 1
            if found >= 2:
                break
        assert found >= 1
    finally:
        w.close()


# -- dataset generation --------------------------------------------------------------------------------------------
def _read_all(out) -> list:
    return [clip for shard in list_shards(out) for clip in iter_shard(shard)]


def test_simulate_writes_shards_and_resumes(tmp_path):
    out = tmp_path / "drive"
    first = simulate("drive", episodes=2, frames=4, size=32, out=out, seed=5, workers=1, progress=False, shard_size=1)
    assert first["written"] == 2 and first["skipped"] == 0 and first["frames"] == 8 and len(first["shards"]) == 2
    again = simulate("drive", episodes=3, frames=4, size=32, out=out, seed=5, workers=1, progress=False, shard_size=1)
    assert again["written"] == 1 and again["skipped"] == 2
    keys = read_manifest(out).column("key").to_pylist()
    assert keys == [episode_key("drive", 5, i) for i in range(3)]
    assert keys == ["drive-s5-e000000", "drive-s5-e000001", "drive-s5-e000002"]
    clips = _read_all(out)
    c = clips[2]
    assert len(c.views) == 2 and c.meta["views"] == ["front", "front_left", "front_right"] and c.meta["episode"] == 2
    assert c.arrays["ego"].shape == (4, 4) and c.arrays["actions"].shape == (3, 2)
    assert c.arrays["c2w"].shape == (4, 3, 4, 4) and c.arrays["intrinsics"].shape == (4, 3, 3, 3)
    # the resumed episode is the one a fresh run makes
    fresh = simulate("drive", episodes=3, frames=4, size=32, out=tmp_path / "fresh", seed=5, workers=1, progress=False)
    assert _read_all(tmp_path / "fresh")[2].caption == c.caption
    np.testing.assert_array_equal(_read_all(tmp_path / "fresh")[2].arrays["ego"], c.arrays["ego"])
    assert fresh["shards"] == [str(tmp_path / "fresh" / "drive-000000.tar")]


def test_simulate_finishes_an_interrupted_run(tmp_path, monkeypatch):
    real = generate.base.record_episode

    def dies_at_episode_2(world, seed, frames, *, key=None, meta=None, branch=0):
        if key.endswith("e000002"):
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C here
        return real(world, seed, frames, key=key, meta=meta, branch=branch)

    kw = dict(episodes=4, frames=3, size=32, out=tmp_path, seed=2, workers=1, progress=False, shard_size=1)
    monkeypatch.setattr(generate.base, "record_episode", dies_at_episode_2)
    with pytest.raises(KeyboardInterrupt):
        generate.simulate("bounce", **kw)
    assert read_manifest(tmp_path).column("key").to_pylist() == ["bounce-s2-e000000", "bounce-s2-e000001"]
    monkeypatch.setattr(generate.base, "record_episode", real)
    summary = generate.simulate("bounce", **kw)
    assert summary["written"] == 2 and summary["skipped"] == 2
    assert read_manifest(tmp_path).column("key").to_pylist() == [f"bounce-s2-e00000{i}" for i in range(4)]


def test_simulate_does_not_depend_on_the_number_of_workers(tmp_path):
    kw = dict(episodes=3, frames=5, size=32, seed=1, progress=False)
    simulate("bounce", out=tmp_path / "one", workers=1, **kw)
    summary = simulate("bounce", out=tmp_path / "two", workers=2, **kw)
    assert summary["workers"] == 2
    for a, b in zip(_read_all(tmp_path / "one"), _read_all(tmp_path / "two"), strict=True):
        assert a.key == b.key and a.caption == b.caption
        np.testing.assert_array_equal(a.frames, b.frames)
        for name in a.arrays:
            np.testing.assert_array_equal(a.arrays[name], b.arrays[name])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"world": "moon"}, "unknown world 'moon'"),
        ({"episodes": 0}, "episodes must be an integer >= 1"),
        ({"frames": 0}, "frames must be an integer >= 1"),
        ({"size": 4}, "world size must be"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"world": "drive", "views": 9}, "at most 6 cameras"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_simulate_rejects_bad_arguments(tmp_path, kwargs, message):
    args = {"world": "bounce", "episodes": 1, "frames": 2, "out": tmp_path, "progress": False, **kwargs}
    with pytest.raises(ConfigError, match=message):
        simulate(args.pop("world"), **args)
    assert not (tmp_path / "manifest.parquet").exists()


def test_record_episode_by_name():
    clip = generate.record_episode("orbit", 3, 3, size=32, views=3, key="orbit-demo")
    assert clip.key == "orbit-demo" and len(clip.views) == 2 and clip.arrays["c2w"].shape == (3, 3, 4, 4)
    assert clip.meta["views"] == ["main", "yaw+40", "yaw-40"]


# -- gymnasium -----------------------------------------------------------------------------------------------------
def test_gym_env_passes_the_gymnasium_checker():
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    from worldsmith.worlds.gym_env import WorldEnv, register_envs

    env = WorldEnv("bounce", WorldConfig(size=32), max_steps=2)
    try:
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=4)
        assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and info["states"].ndim == 2
        env.step(env.action_space.sample())
        obs, reward, terminated, truncated, info = env.step(np.zeros(3, np.float32))
        assert reward == 0.0 and not terminated and truncated
        with pytest.raises(WorldsmithError, match=r"actions have shape \(3,\)"):
            env.step(np.zeros(2, np.float32))
    finally:
        env.close()
    assert "worldsmith/Drive-v0" in register_envs()
    drive = gym.make("worldsmith/Drive-v0", cfg=WorldConfig(size=32))
    try:
        obs, info = drive.reset(seed=0)
        assert drive.action_space.shape == (2,) and len(info["views"]) == 2 and info["ego"].shape == (4,)
    finally:
        drive.close()


def test_simulate_refuses_to_mix_settings_in_one_directory(tmp_path):
    simulate("bounce", episodes=1, frames=3, size=32, out=tmp_path, seed=0, workers=1, progress=False)
    again = simulate("bounce", episodes=1, frames=3, size=32, out=tmp_path, seed=0, workers=1, progress=False)
    assert again["written"] == 0 and again["skipped"] == 1
    with pytest.raises(ConfigError, match="frames=3; use a new --out directory"):
        simulate("bounce", episodes=1, frames=5, size=32, out=tmp_path, seed=0, workers=1, progress=False)
