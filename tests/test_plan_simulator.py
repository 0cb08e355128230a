"""Snapshots of the arm world, and planning with the simulator itself as the world model (the planner's ceiling)."""

import json

import numpy as np
import pytest
import torch

from helpers import run_cli
from worldsmith.envs.oracle import SimulatorStepper
from worldsmith.envs.plan import CEMConfig, plan_episodes
from worldsmith.envs.world_model import load_reader
from worldsmith.errors import WorldsmithError
from worldsmith.io.video import to_tensor
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv

ACTIONS = np.array([[0.03, 0.02, -0.01, 0, 0, 0.1, -0.5], [0.04, -0.03, 0.02, 0.05, 0, 0, 0.3],
                    [-0.02, 0.04, 0.03, 0, -0.1, 0, -1.0]], np.float32)  # fmt: skip


def test_a_restored_snapshot_repeats_the_steps_bit_for_bit():
    world = ArmWorld(WorldConfig(size=64))
    try:
        world.reset(11)
        world.step(ACTIONS[0])
        snap = world.snapshot()
        frames = [world.step(a) for a in ACTIONS[1:]]
        truth = world.truth()
        world.restore(snap)
        assert np.array_equal(world.render_views()[0], snap.frames[0]) and len(world._positions) == 2
        again = [world.step(a) for a in ACTIONS[1:]]
        for a, b in zip(frames, again):
            assert np.array_equal(a, b)
        for key in ("states", "ee", "qpos"):
            assert np.array_equal(truth[key], world.truth()[key])
        world.reset(12)
        with pytest.raises(WorldsmithError, match="another episode"):
            world.restore(snap)
    finally:
        world.close()


def test_the_simulator_stepper_imagines_the_real_future_and_leaves_the_episode_alone():
    env = WorldEnv("arm", WorldConfig(size=64), task="reach")
    try:
        frame, _ = env.reset(seed=5)
        stepper = SimulatorStepper()
        with pytest.raises(WorldsmithError, match="attach"):
            stepper.start_rollout(torch.zeros(1, 3, 1, 64, 64), [""])
        stepper.attach(env)
        before = env.world.truth()["states"]
        state = stepper.start_rollout(to_tensor(frame[None])[None], [""]).repeat(2)
        acts = torch.from_numpy(np.stack([ACTIONS[:2], ACTIONS[1:]]))  # (2, 2, 7): two different futures
        imagined = [stepper.step_rollout(state, acts[:, h : h + 1]) for h in range(2)]
        assert imagined[0].shape == (2, 3, 1, 64, 64) and not torch.equal(imagined[1][0], imagined[1][1])
        assert np.array_equal(env.world.truth()["states"], before) and np.array_equal(env.render(), frame)
        for h, a in enumerate(ACTIONS[:2]):  # the first future, lived for real
            real, *_ = env.step(a)
            assert torch.equal(imagined[h][0, :, 0], to_tensor(real[None])[:, 0])
    finally:
        env.close()


def test_planning_with_the_simulator_reaches(tmp_path, capsys):
    reader = load_reader("arm-reader", "cpu")
    report = plan_episodes(SimulatorStepper(), reader, "reach", 2, cfg=CEMConfig(samples=16, horizon=2))
    assert report["success"] == 1.0 and report["final_distance_px"] < 3.0
    code, out, _ = run_cli(capsys, "plan", "--model", "simulator", "--task", "reach", "-n", "1", "--samples", "8",
                           "--elites", "2", "--no-baselines", "--json", str(tmp_path / "plan.json"))  # fmt: skip
    assert code == 0 and json.loads((tmp_path / "plan.json").read_text())["model"] == "simulator"
    assert "reach: planner" in out
    code, _, err = run_cli(capsys, "plan", "--model", "simulator", "-n", "1", "--set", "steps=3")
    assert code == 1 and "no sampling settings" in err


def test_the_push_cost_in_3d_wants_the_gripper_low_on_the_pushing_line_and_high_elsewhere():
    from worldsmith.envs.plan import PUSH_GAP, PUSH_HOVER, Body, CEMPlanner
    from worldsmith.envs.world_model import CommandedPose
    from worldsmith.worlds.arm_model import EE_TO_TIP
    from worldsmith.worlds.render import project
    from worldsmith.worlds.tasks import goal_rng, make_task

    world = ArmWorld(WorldConfig(size=64))
    try:
        world.reset(21)
        goal = make_task("push").sample_goal(world, goal_rng(21))
        body = Body.of(world, goal)
        obj, _ = world.object_pose(goal.object)
    finally:
        world.close()
    u = (goal.point[:2] - obj[:2]) / np.linalg.norm(goal.point[:2] - obj[:2])
    side = np.array([-u[1], u[0]])

    def cost(tip_xy, tip_z, obj_xyz=obj):
        pose = CommandedPose(np.append(tip_xy, tip_z + EE_TO_TIP), body.rot)  # gripper pointing down
        px, _ = project(np.asarray(obj_xyz)[None], body.K, body.c2w)
        return CEMPlanner.push_cost_3d([pose], np.zeros((1, 7)), px, goal, body)[0]

    start, contact = obj[:2] - u * (body.radius + PUSH_GAP), obj[:2] - u * body.radius
    low = 0.007
    assert cost(start, low) == pytest.approx(cost(contact, low), abs=0.1)  # anywhere on the pushing line
    assert cost(start, PUSH_HOVER) - cost(start, low) == pytest.approx(50 * (PUSH_HOVER - low), abs=0.2)
    far = obj[:2] + side * 0.08  # beside the object, 8 cm off the line: travel high
    assert cost(far, PUSH_HOVER) < cost(far, low) - 2
    nearer = np.append(obj[:2] + u * 0.03, obj[2])  # pushed 3 cm nearer its goal, the gripper still touching it
    assert cost(contact + u * 0.03, low, nearer) == pytest.approx(cost(contact, low) - 3, abs=0.3)
