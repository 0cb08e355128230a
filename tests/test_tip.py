"""The commanded fingertip as a condition (conditioning/tip.py): the pixel it computes, its embedding, its rollouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsmith.conditioning.origin import OriginState, states_from
from worldsmith.conditioning.tip import TipEmbedder, body_of, tips, world_body
from worldsmith.config import merge
from worldsmith.diffusion.config import PRESETS, SamplingConfig
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.envs.world_model import BatchedWorldModelEnv
from worldsmith.errors import ConfigError
from worldsmith.eval.rollouts import evaluate_rollouts
from worldsmith.eval.state_reader import arm_truth
from worldsmith.families import FAMILIES
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
A = 7
TIP = {"dit": {"anchor_frames": 2, "next_frame_only": True}, "video2world_prob": 1.0, "action_dim": A,
       "origin": 4, "travel": "pose", "tip": 0.03}  # fmt: skip


def episode(frames: int = 12, seed: int = 5) -> dict[str, np.ndarray]:
    """An arm episode under its scripted policy: per-frame truth arrays and the actions between the frames."""
    world = ArmWorld(WorldConfig(size=64))
    world.reset(seed=seed)
    policy = world.policy(np.random.default_rng(seed))
    truth, actions = [world.truth()], []
    for t in range(frames - 1):
        actions.append(policy(t))
        world.step(actions[-1])
        truth.append(world.truth())
    out = {k: np.stack([t[k] for t in truth]) for k in ("ee", "intrinsics", "c2w", "pixels")}
    return out | {"actions": np.stack(actions).astype(np.float32)}


def test_the_commanded_fingertip_lands_on_the_simulated_one():
    ep = episode()
    body = body_of(*(torch.from_numpy(ep[k][0]) for k in ("ee", "intrinsics", "c2w")))[None]
    travel = states_from(torch.zeros(1, A), torch.from_numpy(ep["actions"])[None], 1, "pose")  # (1, T, A)
    got = tips(body, travel[..., :6], 0.03)[0]  # (T, 3)
    truth_px, _ = arm_truth(ep)
    px = ((got[:, :2] + 1) / 2 * 64 - 0.5).numpy()  # back to pixel indices
    np.testing.assert_allclose(px[0], truth_px[0], atol=1e-3)  # the first frame is the recorded pose itself
    assert np.linalg.norm(px - truth_px, axis=1).max() < 1.0  # later ones are commanded: within a pixel
    assert float((got[:, :2].diff(dim=0)).abs().sum()) > 0.05  # the episode moves the gripper


def test_a_moved_origin_keeps_the_fingertip_where_the_whole_travel_puts_it():
    ep = episode(frames=10)
    body = body_of(*(torch.from_numpy(ep[k][0]) for k in ("ee", "intrinsics", "c2w")))[None]
    actions = torch.from_numpy(ep["actions"])[None]
    whole = tips(body, states_from(torch.zeros(1, A), actions, 1, "pose")[..., :6], 0.03)[0]
    state = OriginState.start(torch.zeros(1, 4, 1, 2, 2), actions[:, :0], 1, 4, "pose", body)
    for t in range(actions.shape[1]):
        got = tips(state.body, state.window(actions[:, t : t + 1], 1, 2)[..., :6], 0.03)[0, -1]
        torch.testing.assert_close(got, whole[t + 1], atol=1e-4, rtol=1e-4)  # the new frame's tip
        state.advance(actions[:, t : t + 1], torch.zeros(1, 4, 2, 2, 2), actions[:, t : t + 1])
    assert state.since < 4  # the origin moved, with its body


def test_the_tip_embedding_starts_at_zero_is_local_and_ignores_unknown_tips():
    emb = TipEmbedder(width=8, patch=1)
    tip = torch.tensor([[[0.6, -0.6, 0.1], [float("nan")] * 3]])  # (1, 2 frames, 3)
    assert not emb(tip, (1, 2, 8, 8)).any()  # zero-initialised: a base post-trained with it starts as the base
    torch.nn.init.normal_(emb.fc2.weight)
    out = emb(tip, (1, 2, 32, 32)).view(2, 32, 32, 8)
    assert not out[1].any()  # NaN: no robot state, no embedding
    change = (out[0] - out[0, 31, 0]).norm(dim=-1)  # against a token far from the tip
    rows, cols = torch.nonzero(change > 1e-4 * change.max(), as_tuple=True)
    # u 0.6 -> column 25.1, v -0.6 -> row 5.9: the embedding differs around there and nowhere far from it
    assert change[6, 25] > 0 and ((rows - 5.9).square() + (cols - 25.1).square()).sqrt().max() < 10
    with pytest.raises(ConfigError, match="tip must be"):
        emb(tip[:, :1], (1, 2, 8, 8))


def test_the_tip_needs_the_pose_travel_of_an_origin():
    with pytest.raises(ConfigError, match="model.tip"):
        merge(PRESETS["tiny"](), TIP | {"travel": "sum"})
    with pytest.raises(ConfigError, match="model.tip"):
        merge(PRESETS["tiny"](), TIP | {"origin": 0, "rollout_depth": 0})


def test_a_tip_model_trains_from_recorded_robot_states_and_rolls_out_with_and_without_one(
        tmp_path, arm_shards, ci_tokenizer):  # fmt: skip
    from conftest import QUICK_TRAIN

    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(arm_shards), "tokenizer": str(ci_tokenizer), "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 5, "actions": True},
             "model": TIP | {"rollout_depth": 2}, "train": QUICK_TRAIN}  # fmt: skip
    assert family.train(family.resolve("tiny", flags=flags), tmp_path / "run")["steps"] == 4
    gen = DiffusionGenerator.from_run(tmp_path / "run")
    emb = gen.model.embedder("tip")
    assert gen.model.cfg.tip == 0.03 and float(emb.height[1]) != 1.0  # the heights' scale, measured on the data
    torch.nn.init.normal_(emb.fc2.weight)  # as more training would make it
    ep = episode(frames=6)
    body = body_of(*(torch.from_numpy(ep[k][0]) for k in ("ee", "intrinsics", "c2w")))[None]
    video, actions = torch.zeros(1, 3, 1, 32, 32), torch.from_numpy(ep["actions"])[None]
    steered = gen.rollout(video, actions, 6, [""], body=body)
    blind = gen.rollout(video, actions, 6, [""])
    assert steered.shape == blind.shape == (1, 3, 6, 32, 32) and not torch.allclose(steered, blind)
    torch.testing.assert_close(gen.rollout(video, actions, 6, [""], body=body), steered)  # deterministic
    with pytest.raises(ConfigError, match="body must be"):
        gen.start_rollout(video, [""], seeds=[0], body=body[:, :8])
    clips = [c for s in list_shards(str(arm_shards)) for c in iter_shard(s)][:2]
    report = evaluate_rollouts(gen, clips, frames=4, sampling=merge(gen.Sampling(), {"steps": 1}))
    assert {"model", "no_state", "no_action"} <= set(report) and report["floor_no_state_psnr"] != report["psnr"]
    envs = BatchedWorldModelEnv(gen, task=None, reader=None, sampling=SamplingConfig(steps=1, sampler="euler"))
    envs.reset(seeds=[7])  # a simulator start: the robot's measured state at that frame, as training reads it
    world = ArmWorld(WorldConfig(size=32))
    world.reset(7)
    torch.testing.assert_close(envs.state.origin.body, world_body(world)[None])
