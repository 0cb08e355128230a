"""The arm world: determinism, shapes, action semantics seen through the camera model, real grasps, captions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.worlds.arm import MOVED, ArmWorld
from worldsmith.worlds.arm_control import MAX_TRANSLATION, rotvec_to_mat
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.render import project


@pytest.fixture(scope="module")
def world():
    w = ArmWorld(WorldConfig(size=32))
    yield w
    w.close()


@pytest.fixture(scope="module")
def world64():
    w = ArmWorld(WorldConfig(size=64))
    yield w
    w.close()


def run(world: ArmWorld, seed: int, behavior: str, frames: int) -> list[dict[str, np.ndarray]]:
    world.reset(seed)
    act = world.policy(np.random.default_rng(seed), behavior)
    truths = [world.truth()]
    for t in range(frames - 1):
        world.step(act(t))
        truths.append(world.truth())
    return truths


def mentions(caption: str, description: str) -> list[str]:
    """The word before each "the <description>" in the caption (e.g. "up", "on", "above", "pushes")."""
    return re.findall(rf"(\w+) the {description}\b", caption)


def test_shapes_dtypes_and_bounds(world):
    frame = world.reset(3)
    assert frame.dtype == np.uint8 and frame.shape == (32, 32, 3) and frame.std() > 5
    n = len(world.scene.objects)
    assert 1 <= n <= 4
    lo, hi = world.action_bounds()
    assert lo.shape == hi.shape == (7,) and lo.dtype == np.float32 and np.all(lo == -hi)
    nxt = world.step(np.zeros(7, dtype=np.float32))
    assert nxt.dtype == np.uint8 and nxt.shape == (32, 32, 3)
    truth = world.truth()
    shapes = {"states": (n, 7), "grasped": (n,), "ee": (8,), "qpos": (8,), "pixels": (n, 2),
              "intrinsics": (3, 3), "c2w": (4, 4)}
    assert {k: v.shape for k, v in truth.items()} == shapes
    assert all(v.dtype == np.float32 for v in truth.values())
    assert np.allclose(np.linalg.norm(truth["states"][:, 3:], axis=1), 1.0, atol=1e-5)  # unit quaternions
    assert np.all(truth["states"][:, 2] > 0.005)  # resting on the table top (z = 0)
    assert 0.07 < truth["ee"][7] < 0.09  # fingers start open (8.4 cm)


def test_three_views_and_errors():
    w = ArmWorld(WorldConfig(size=16, views=3))
    try:
        with pytest.raises(WorldsmithError, match="call reset"):
            w.step(np.zeros(7))
        w.reset(0)
        views = w.render_views()
        assert len(views) == 3 and all(v.shape == (16, 16, 3) and v.dtype == np.uint8 for v in views)
        assert not np.array_equal(views[0], views[1])
        truth = w.truth()
        assert truth["intrinsics"].shape == (3, 3, 3) and truth["c2w"].shape == (3, 4, 4)
        with pytest.raises(WorldsmithError, match="7-D action"):
            w.step(np.zeros(6))
        with pytest.raises(WorldsmithError, match="NaN"):
            w.step(np.full(7, np.nan))
        with pytest.raises(ConfigError, match="unknown arm behaviour"):
            w.policy(np.random.default_rng(0), "juggle")
        with pytest.raises(ConfigError, match="non-negative integer"):
            w.reset(-1)
    finally:
        w.close()
    with pytest.raises(ConfigError, match="at most 3"):
        ArmWorld(WorldConfig(size=16, views=4))


def test_same_seed_same_clip_different_seed_different(world):
    a = record_episode(world, 11, 10)
    other = ArmWorld(WorldConfig(size=32))
    try:
        b = record_episode(other, 11, 10)  # a fresh world (and GL context) gives the same clip
    finally:
        other.close()
    c = record_episode(world, 12, 10)
    assert np.array_equal(a.frames, b.frames)
    assert a.caption == b.caption and a.meta == b.meta
    assert a.arrays.keys() == b.arrays.keys()
    for k in a.arrays:
        assert np.array_equal(a.arrays[k], b.arrays[k]), k
    assert a.arrays["actions"].shape == (9, 7) and np.abs(a.arrays["actions"]).sum() > 0
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.arrays["actions"], c.arrays["actions"])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gripper_frame_action_moves_ee_in_3d_and_in_the_image(world64, axis):
    world64.reset(5)
    t0 = world64.truth()
    p0 = t0["ee"][:3].astype(np.float64)
    R0 = world64.ctrl.rot.copy()  # gripper axes (columns) in the world
    action = np.zeros(7, dtype=np.float32)
    action[axis] = MAX_TRANSLATION / 2
    for _ in range(3):
        world64.step(action)
    for _ in range(3):  # let the joints settle on their targets
        world64.step(np.zeros(7, dtype=np.float32))
    t1 = world64.truth()
    p1 = t1["ee"][:3].astype(np.float64)
    expected = R0[:, axis] * 3 * MAX_TRANSLATION / 2  # (3,) world displacement commanded
    moved = p1 - p0
    assert np.linalg.norm(moved - expected) < 0.1 * np.linalg.norm(expected), (moved, expected)
    # the same motion through the recorded camera model: the end-effector's pixel shifts the expected way
    K, c2w = t0["intrinsics"].astype(np.float64), t0["c2w"].astype(np.float64)
    uv, _ = project(np.stack([p0, p1, p0 + expected]), K, c2w)
    shift, want = uv[1] - uv[0], uv[2] - uv[0]
    assert np.linalg.norm(want) > 1.5  # a visible motion at 64 px
    assert shift @ want / (np.linalg.norm(shift) * np.linalg.norm(want)) > 0.95
    assert np.linalg.norm(shift - want) < 0.25 * np.linalg.norm(want)


def test_rotation_and_gripper_actions(world):
    world.reset(6)
    R0 = world.ctrl.ee_pose()[1]
    rot = np.array([0.1, 0.0, 0.0])  # roll about the gripper's own x axis (pointing down: a yaw in the world)
    for _ in range(2):
        world.step(np.concatenate([np.zeros(3), rot, [0.0]]))
    for _ in range(3):
        world.step(np.zeros(7))
    R1 = world.ctrl.ee_pose()[1]
    assert np.abs(R0.T @ R1 - rotvec_to_mat(2 * rot)).max() < 0.02
    assert world.truth()["ee"][7] > 0.07
    for _ in range(3):
        world.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    assert world.truth()["ee"][7] < 0.005  # closed on nothing


def test_pick_and_place_lifts_the_object_by_friction(world):
    truths = run(world, 2, "pick_place", 40)
    assert world.model.neq == 0  # no weld or other equality constraint: only contacts hold the object
    z = np.stack([t["states"][:, 2] for t in truths])  # (T, N)
    held = np.stack([t["grasped"] for t in truths]) > 0  # (T, N) both finger pads touch the object
    rise = z - z[0]
    lifted = np.flatnonzero(np.any(held & (rise > 0.02), axis=0))
    assert len(lifted) == 1
    i = int(lifted[0])
    assert rise[:, i].max() > 0.05
    name = world.scene.objects[i].description
    caption = world.caption()
    assert caption.startswith(f"The robot arm picks up the {name} and puts it down"), caption
    assert truths[-1]["states"][i, 2] - z[0, i] < 0.005  # back on the table
    assert np.linalg.norm(truths[-1]["states"][i, :2] - truths[0]["states"][i, :2]) > 0.05


def test_without_friction_the_grasp_slips(world):
    world.reset(2)
    world.model.geom_friction[:, 0] = 0.01  # contact friction is the max of the pair's: make every geom slippery
    act = world.policy(np.random.default_rng(2), "pick_place")
    z0 = world.truth()["states"][:, 2]
    rise = 0.0
    for t in range(30):  # the same episode lifts its object by > 5 cm with normal friction (test above)
        world.step(act(t))
        rise = max(rise, float((world.truth()["states"][:, 2] - z0).max()))
    assert rise < 0.02
    assert "picks up" not in world.caption()


def test_domain_randomisation_per_episode():
    looks = {}
    for randomize in (True, False):
        w = ArmWorld(WorldConfig(size=16, randomize=randomize))
        try:
            looks[randomize] = [(w.reset(s), w.truth()["c2w"], [o.size for o in w.scene.objects]) for s in (0, 1)]
        finally:
            w.close()
    (f0, c0, s0), (f1, c1, s1) = looks[True]
    assert not np.allclose(c0, c1) and s0 != s1 and not np.array_equal(f0, f1)  # camera jitter, sizes, looks
    (_, c0, s0), (_, c1, s1) = looks[False]
    assert np.allclose(c0, c1) and set(s0) == set(s1) == {(0.022, 0.022, 0.022)}


def test_stack_puts_one_object_on_another(world):
    run(world, 7, "stack", 44)
    caption = world.caption()
    m = re.fullmatch(r"The robot arm picks up the (\w+ \w+) and puts it on the (\w+ \w+)\.", caption)
    assert m, caption
    names = [o.description for o in world.scene.objects]
    top, bottom = names.index(m.group(1)), names.index(m.group(2))
    s = world.truth()["states"]
    assert s[top, 2] > s[bottom, 2] + world.scene.objects[bottom].half_height
    assert np.linalg.norm(s[top, :2] - s[bottom, :2]) < world.scene.objects[bottom].radius


@pytest.mark.parametrize("seed,behavior", [(0, "push"), (1, "push"), (4, "reach"), (8, "explore"), (9, "explore"),
                                           (10, "pick_place"), (3, None), (13, None)])
def test_caption_mentions_exactly_the_objects_that_moved(world, seed, behavior):
    clip = record_episode(world, seed, 36) if behavior is None else None
    if clip is None:
        truths = run(world, seed, behavior, 36)
        states, caption = np.stack([t["states"] for t in truths]), world.caption()
    else:
        states, caption = clip.arrays["states"], clip.caption
    assert caption.startswith("The robot arm ") and caption.endswith(".")
    moved = np.linalg.norm(states[:, :, :3] - states[:1, :, :3], axis=-1).max(axis=0) > MOVED  # (N,)
    for i, obj in enumerate(world.scene.objects):
        words = mentions(caption, obj.description)
        if moved[i]:
            assert words and words[0] not in ("on", "above"), (caption, obj.description)
        else:  # an object that did not move is named only as a support or a reach target
            assert all(w in ("on", "above") for w in words), (caption, obj.description)
    if not moved.any():
        assert "moves above" in caption or "without touching anything" in caption
    if behavior == "push":
        assert moved.sum() >= 1 and "pushes" in caption


def test_push_direction_words_match_the_image(world):
    for seed in range(6):
        truths = run(world, seed, "push", 30)
        caption = world.caption()
        for i, obj in enumerate(world.scene.objects):
            m = re.search(rf"pushes the {obj.description} to the (left|right)", caption)
            if m:
                du = truths[-1]["pixels"][i, 0] - truths[0]["pixels"][i, 0]  # image u grows to the right
                assert (du > 0) == (m.group(1) == "right"), (caption, du)
                return
    pytest.fail("no push to the left or right in six episodes")


def test_a_crowded_scene_keeps_the_objects_that_fit():
    """Seed 99 draws four objects too large to all fit; the scene keeps the ones that do (it used to raise)."""
    import numpy as np

    from worldsmith.worlds.arm_model import sample_scene

    scene = sample_scene(np.random.default_rng(99), True)
    assert 1 <= len(scene.objects) < 4 and len(scene.positions) == len(scene.objects) == len(scene.yaws)
    d = np.linalg.norm(scene.positions[:, None] - scene.positions[None], axis=-1) + np.eye(len(scene.objects))
    assert d.min() > 0.05
