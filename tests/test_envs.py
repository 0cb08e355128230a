"""Tasks, the world-model environment, policies, policy evaluation, planning and synthetic data."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn

from helpers import run_cli
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.envs.evaluate import evaluate_policies, kendall_tau, pearson, run_simulator, scatter_svg
from worldsmith.envs.plan import CEMConfig, plan_episodes
from worldsmith.envs.policies import BCPolicy, ScriptedTaskPolicy, make_policy, train_bc
from worldsmith.envs.world_model import BatchedWorldModelEnv, WorldModelEnv, load_reader, ray_to_plane, track
from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.io.video import to_tensor
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import Goal, Streak, TaskState, make_task

gymnasium = pytest.importorskip("gymnasium")


@pytest.fixture(scope="module")
def generator(one_torch_thread):
    return DiffusionGenerator.from_run("arm-action")


@pytest.fixture(scope="module")
def reader():
    return load_reader("arm-reader", "cpu")


def goal(task="reach", pixel=(30.0, 20.0), obj=0, size=64):
    return Goal(task, obj, np.zeros(3), np.array(pixel), size)


# -- tasks ----------------------------------------------------------------------------------------------------------
def test_task_distances_and_success_on_hand_made_states():
    reach = make_task("reach")
    g = goal()
    near = TaskState(np.array([31.0, 22.0]), np.zeros((1, 2)))
    far = TaskState(np.array([40.0, 20.0]), np.zeros((1, 2)))
    assert reach.distance(near, g) == pytest.approx(np.sqrt(5))
    assert reach.at_goal(near, g) and not reach.at_goal(far, g)
    # the same state in a frame twice as large is the same distance in 64-px units
    big = TaskState(np.array([62.0, 44.0]), np.zeros((1, 2)), size=128)
    assert reach.distance(big, g) == pytest.approx(np.sqrt(5))
    # a reach must hold for `hold` steps; a miss restarts the count
    streak = Streak(reach)
    oks = [streak.update(s, g)[0] for s in (near, near, far, near, near, near)]
    assert oks == [False, False, False, False, False, True]
    assert streak.update(near, g)[1]["reward"] == pytest.approx(1 - np.sqrt(5) / 64)
    # push and pick_place read the target object; pick_place also needs it lifted when the state knows
    push, place = make_task("push"), make_task("pick_place")
    objs = np.array([[0.0, 0.0], [30.0, 21.0]])
    state = TaskState(np.zeros(2), objs)
    assert push.at_goal(state, goal("push", obj=1)) and not push.at_goal(state, goal("push", obj=0))
    assert place.at_goal(state, goal("pick_place", obj=1))
    state.lifted = np.array([True, False])
    assert not place.at_goal(state, goal("pick_place", obj=1))
    with pytest.raises(ConfigError, match="unknown task"):
        make_task("fly")


def test_simulator_env_with_a_task_and_the_scripted_policy():
    env = WorldEnv("arm", WorldConfig(size=64), task="reach")
    frame, info = env.reset(seed=11)
    assert {"goal_px", "gripper_px", "objects_px", "distance_px", "success"} <= set(info)
    far = [env.reset(seed=s)[1]["distance_px"] >= 2 * make_task("reach").radius for s in range(10)]
    assert sum(far) >= 8  # goals are not reached at the start (unless every object is near the gripper)
    frame, info = env.reset(seed=12)
    policy = make_policy("scripted", "reach")
    policy.reset(env.world, env.goal, np.random.default_rng(0))
    for _ in range(30):
        frame, reward, done, trunc, info = env.step(policy.act(env.world))
        if done or trunc:
            break
    assert done and info["success"] and reward > 0.5 and not trunc
    with pytest.raises(WorldsmithError, match="arm world"):
        WorldEnv("bounce", task="reach")


def test_goals_are_the_same_in_the_simulator_and_the_world_model_env(generator, reader):
    sim = WorldEnv("arm", WorldConfig(size=64), task="push")
    envs = BatchedWorldModelEnv(generator, "push", reader=reader)
    for seed in (3, 4):
        _, info = sim.reset(seed=seed)
        first, infos = envs.reset(seeds=[seed])
        np.testing.assert_allclose(infos[0]["goal_px"], info["goal_px"])
        np.testing.assert_allclose(infos[0]["objects_px"], info["objects_px"], atol=1e-4)
        np.testing.assert_array_equal(first[0], sim.render())


# -- the world-model environment -------------------------------------------------------------------------------------
def test_world_model_env_passes_gymnasiums_checker(generator, reader):
    from gymnasium.utils.env_checker import check_env

    env = WorldModelEnv(generator, task="reach", reader=reader)
    check_env(env, skip_render_check=True)
    frame, info = env.reset(seed=5)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    frame, reward, done, trunc, info = env.step(np.zeros(7, np.float32))
    assert frame.shape == (64, 64, 3) and np.isfinite(reward) and "distance_px" in info
    assert env.view is not None and env.goal is not None
    with pytest.raises(ConfigError, match="shape"):
        env.step(np.zeros(6, np.float32))


def test_batched_rollouts_equal_unbatched_ones(generator, reader):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.03, 0.03, (4, 3, 7)).astype(np.float32)
    envs = BatchedWorldModelEnv(generator, "reach", reader=reader)
    envs.reset(seeds=[21, 22, 23])
    batched = [envs.step(actions[t])[0] for t in range(4)]
    single = WorldModelEnv(generator, task="reach", reader=reader)
    single.reset(seed=22)
    alone = [single.step(actions[t, 1])[0] for t in range(4)]
    for t in range(4):
        assert np.abs(batched[t][1].astype(int) - alone[t].astype(int)).max() <= 1
    # and the actions matter: another action sequence gives other frames
    single.reset(seed=22)
    other = [single.step(-actions[t, 1])[0] for t in range(4)]
    assert np.abs(other[-1].astype(float) - alone[-1]).mean() > 0.5


def test_step_by_step_rollout_equals_the_whole_rollout(generator):
    video = torch.rand(2, 3, 1, 64, 64) * 2 - 1
    actions = torch.rand(2, 5, 7) * 0.04 - 0.02
    whole = generator.rollout(video, actions, 6, ["", ""], seed=3)
    state = generator.start_rollout(video, ["", ""], seeds=[3, 4])
    steps = [generator.step_rollout(state, actions[:, t : t + 1]) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=2), whole[:, :, 1:], atol=1e-4, rtol=0)
    assert state.latents.shape[2] <= state.context  # memory stays bounded
    with pytest.raises(ConfigError, match="a rollout step takes actions"):
        generator.step_rollout(state, actions[:, :2])


def test_a_rollout_from_several_frames_puts_the_new_action_at_the_new_frame(generator):
    sim = WorldEnv("arm", WorldConfig(size=64))
    first = sim.reset(seed=31)[0]
    taken = np.array([0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)
    second = sim.step(taken)[0]
    video = torch.stack([to_tensor(np.stack([first, second]))])  # (1, 3, 2, 64, 64)
    past = torch.from_numpy(taken)[None, None]  # (1, 1, 7): the action between the two given frames
    frames = {}
    for name, sign in (("left", 1.0), ("right", -1.0)):
        state = generator.start_rollout(video, [""], seeds=[5], actions=past)
        new = torch.tensor([[[0.0, sign * 0.04, 0.0, 0.0, 0.0, 0.0, 0.0]]])
        frames[name] = generator.step_rollout(state, new)
    # the next-frame-only model sees the new frame's action alone: had the window put it at the last given frame
    # (and zero at the new one), both frames would be the same
    assert (frames["left"] - frames["right"]).abs().mean() > 0.01
    # a whole rollout from the two frames takes the action between them from its actions, as the steps do
    actions = torch.cat([past, torch.rand(1, 3, 7) * 0.04 - 0.02], dim=1)
    whole = generator.rollout(video, actions, 5, [""], seed=5)
    state = generator.start_rollout(video, [""], seeds=[5], actions=past)
    steps = [generator.step_rollout(state, actions[:, t : t + 1]) for t in range(1, 4)]
    torch.testing.assert_close(torch.cat(steps, dim=2), whole[:, :, 2:], atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="2 given frames need the 1 actions between them"):
        generator.start_rollout(video, [""], actions=torch.zeros(1, 2, 7))


def test_world_model_env_from_an_image_without_a_task(generator, reader):
    env = WorldModelEnv(generator, task=None, reader=reader)
    image = WorldEnv("arm", WorldConfig(size=64)).reset(seed=9)[0]
    frame, info = env.reset(seed=0, options={"image": image})
    assert len(info["objects_px"]) >= 1 and "success" not in info
    env.step(np.zeros(7, np.float32))
    with pytest.raises(ConfigError, match="uint8"):
        env.reset(options={"image": image.astype(np.float32)})
    with pytest.raises(ConfigError, match="simulator start"):
        WorldModelEnv(generator, task="reach", reader=reader).reset(options={"image": image})


def test_tracking_and_ray_casting():
    prev = np.array([[10.0, 10.0], [30.0, 30.0]])
    cands = np.array([[31.0, 30.0], [11.0, 9.0], [50.0, 50.0]])
    out = track(prev, cands, np.array([0.9, 0.9, 0.9]), radius=8)
    np.testing.assert_allclose(out, [[11, 9], [31, 30]])
    out = track(prev, cands, np.array([0.9, 0.01, 0.9]), radius=8)  # an unconfident peak is ignored
    np.testing.assert_allclose(out[0], prev[0])
    K = np.array([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = [0, 0, -1]  # camera looking along +z from z = -1
    np.testing.assert_allclose(ray_to_plane(np.array([32.0, 32.0]), K, c2w, 1.0), [0, 0, 1], atol=1e-9)
    assert ray_to_plane(np.array([32.0, 32.0]), K, c2w, -2.0) is None  # behind the camera


# -- policies --------------------------------------------------------------------------------------------------------
def test_policy_specs_and_delay():
    assert isinstance(make_policy("scripted:noise=0.5,delay=2", "reach"), ScriptedTaskPolicy)
    for bad in ("scripted:speed=2", "scripted:noise=x", "teleport", "bc:"):
        with pytest.raises(ConfigError):
            make_policy(bad, "reach")
    env = WorldEnv("arm", WorldConfig(size=64), task="reach")
    env.reset(seed=2)
    late, now = make_policy("scripted:delay=2", "reach"), make_policy("scripted", "reach")
    late.reset(env.world, env.goal, np.random.default_rng(1))
    now.reset(env.world, env.goal, np.random.default_rng(1))
    first = [late.act(env.world) for _ in range(3)]
    assert not first[0].any() and not first[1].any()
    np.testing.assert_allclose(first[2], now.act(env.world))


def test_behaviour_cloning_learns_the_reach(tmp_path):
    summary = train_bc("reach", tmp_path / "bc", episodes=80, steps=1500, progress=False)
    assert summary["samples"] > 300 and summary["final_mse"] < 0.05  # it fits its demonstrations
    policy = BCPolicy(tmp_path / "bc")
    seeds = list(range(900, 910))
    cloned = run_simulator(make_task("reach"), f"bc:{tmp_path / 'bc'}", seeds)
    rand = run_simulator(make_task("reach"), "random", seeds)
    assert cloned["success"].mean() > rand["success"].mean()
    assert cloned["distance"].mean() < rand["distance"].mean()
    assert policy.name.startswith("bc:")
    with pytest.raises(ConfigError, match="not a policy run"):
        BCPolicy(tmp_path)


# -- evaluation ------------------------------------------------------------------------------------------------------
def test_rank_statistics():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    assert pearson([0, 1, 2], [0, 2, 4]) == pytest.approx(1.0)


def test_evaluate_policies_report(generator, reader):
    envs = BatchedWorldModelEnv(generator, "reach", reader=reader, max_steps=6)
    report = evaluate_policies(envs, ["scripted", "random"], 2)
    assert [r["policy"] for r in report["policies"]] == ["scripted", "random"]
    for row in report["policies"]:
        assert 0 <= row["sim_success"] <= 1 and 0 <= row["wm_success"] <= 1 and 0 <= row["episode_agreement"] <= 1
    assert {"pearson_r", "kendall_tau", "mean_abs_diff_points", "episode_agreement"} <= set(report)
    ET.fromstring(scatter_svg(report))  # a well-formed SVG


# -- planning: a toy world model whose dynamics are learnt in a second -------------------------------------------------
class ToyState:
    def __init__(self, px: np.ndarray) -> None:
        self.px = px

    def repeat(self, n: int) -> "ToyState":
        return ToyState(np.repeat(self.px, n, axis=0))


class ToyGenerator:
    """Imagines only the fingertip: its pixel moves by a linear map of the translation, fitted by least squares
    to random simulator transitions; frames are a bright dot there. The step-by-step interface of both families' generators."""

    size = 64

    def __init__(self, reader) -> None:
        self.reader = reader
        env = WorldEnv("arm", WorldConfig(size=64), task="reach")
        rng, xs, ys = np.random.default_rng(0), [], []
        for seed in range(700, 706):
            _, info = env.reset(seed=seed)
            for _ in range(15):
                a = rng.uniform(-1, 1, 7).astype(np.float32) * np.array([0.04] * 3 + [0] * 4, np.float32)
                before = info["gripper_px"]
                _, _, _, _, info = env.step(a)
                xs.append(a[:3])
                ys.append(info["gripper_px"] - before)
        self.W = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)[0]  # (3, 2)

    def planning_sampling(self) -> None:
        return None  # the toy draws nothing

    def start_rollout(self, video, prompts, sampling, seeds, actions=None) -> ToyState:
        grip = self.reader.read(video[:, :, -1])[0].numpy().astype(np.float64)
        return ToyState(grip)

    def step_rollout(self, state: ToyState, actions: torch.Tensor) -> torch.Tensor:
        state.px = state.px + actions[:, 0, :3].numpy() @ self.W
        frames = -torch.ones(len(state.px), 3, 1, 64, 64)
        for i, (u, v) in enumerate(np.clip(state.px, 0, 63).astype(int)):
            frames[i, :, 0, v, u] = 1.0
        return frames


class ToyReader(nn.Module):
    def __init__(self, real) -> None:
        super().__init__()
        self.real, self.dummy = real, nn.Parameter(torch.zeros(1))

    def read(self, x: torch.Tensor):
        if (x > -1).flatten(1).sum(1).max() <= 3:  # a toy frame: black but for the dot (one pixel, 3 channels)
            idx = x[:, 0].flatten(1).argmax(1)
            grip = torch.stack([idx % 64 + 0.5, idx // 64 + 0.5], dim=-1).float()
            return grip, torch.zeros(len(x), 8, 2), torch.zeros(len(x), 8)
        return self.real.read(x)


def test_planner_beats_random_with_a_learnt_toy_model(reader):
    toy = ToyGenerator(reader)
    report = plan_episodes(toy, ToyReader(reader), "reach", 3, cfg=CEMConfig(samples=16, horizon=2), base_seed=77)
    from worldsmith.worlds.generate import episode_seed

    rand = run_simulator(make_task("reach"), "random", [episode_seed(77, e) for e in range(3)])
    assert report["success"] >= 2 / 3 and report["success"] > rand["success"].mean()
    assert report["final_distance_px"] < rand["distance"].mean()
    assert report["seconds_per_decision"] > 0
    with pytest.raises(ConfigError, match="reach and push"):
        plan_episodes(toy, ToyReader(reader), "pick_place", 1)


# -- the commands ----------------------------------------------------------------------------------------------------
def test_eval_policies_plan_and_synth_commands(tmp_path, capsys, one_torch_thread):
    code, out, _ = run_cli(capsys, "eval", "policies", "--task", "reach", "-p", "scripted", "-p", "random", "-n", "2",
                           "--json", str(tmp_path / "p.json"), "--svg", str(tmp_path / "p.svg"), "--set", "steps=1")
    report = json.loads((tmp_path / "p.json").read_text())
    assert code == 0 and len(report["policies"]) == 2 and (tmp_path / "p.svg").is_file() and "Kendall tau" in out
    code, out, _ = run_cli(capsys, "plan", "--task", "reach", "-n", "1", "--samples", "4", "--elites", "2", "--iterations", "1",
                           "--json", str(tmp_path / "plan.json"), "--set", "steps=1")  # fmt: skip
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert code == 0 and 0 <= plan["success"] <= 1 and "random_success" in plan and plan["seconds_per_decision"] > 0
    code, _, _ = run_cli(capsys, "synth", "--out", str(tmp_path / "synth"), "-n", "3", "-t", "4", "--batch", "2",
                         "--set", "steps=1")  # fmt: skip
    from worldsmith.data.manifest import list_shards
    from worldsmith.data.shards import iter_shard

    clips = [c for s in list_shards(tmp_path / "synth") for c in iter_shard(s)]
    assert code == 0 and len(clips) == 3 and clips[0].frames.shape == (4, 64, 64, 3)
    assert clips[0].arrays["actions"].shape == (3, 7) and clips[0].meta["synthetic"]
    code, _, err = run_cli(capsys, "eval", "policies", "-p", "teleport")
    assert code == 1 and "unknown policy" in err
    code, _, err = run_cli(capsys, "plan", "-n", "1", "--set", "stepz=3")
    assert code == 1 and "not a sampling setting" in err
    code, _, err = run_cli(capsys, "plan", "-n", "1", "--compile")
    assert code == 1 and "has none to compile" in err
