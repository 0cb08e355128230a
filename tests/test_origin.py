"""The rollout's origin as a condition (``model.origin``): its latent frame and the actions summed since it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsmith import config as C
from worldsmith.conditioning.origin import (OriginState, accumulate, origin_windows, skew_exp, skew_log, states_from,
                                           with_frames)  # fmt: skip
from worldsmith.config import merge
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import PRESETS
from worldsmith.diffusion.data import CachedLatentBatches
from worldsmith.diffusion.embedders import GUIDED_KEEP
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.losses import extras_of
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.errors import ConfigError
from worldsmith.families import FAMILIES
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
A = 7
NEXT = {"dit": {"anchor_frames": 2, "next_frame_only": True}, "video2world_prob": 1.0, "action_dim": A}


class Words:
    """A stand-in text encoder's output for batches that only need its shape here."""

    def encode(self, captions):
        n = len(captions)
        return type("E", (), {"tokens": torch.zeros(n, 2, 384), "mask": torch.ones(n, 2, dtype=torch.bool)})()


def test_travel_sums_the_actions_since_the_origin_and_counts_the_frames():
    actions = torch.arange(2 * 8 * 2, dtype=torch.float32).view(2, 8, 2)  # 2 clips, 9 frames, 2-D actions
    states = states_from(actions[:, 1:3].sum(1), actions[:, 3:5], 1, "sum")  # origin at frame 1, window from 3
    out = with_frames(states, 2, 1)
    assert out.shape == (2, 3, 3)
    for i in range(3):
        torch.testing.assert_close(out[:, i, :2], actions[:, 1 : 3 + i].sum(1))
        assert (out[:, i, 2] == 2 + i).all()
    by_two = with_frames(states_from(torch.zeros(2, 2), actions[:, :4], 2, "sum"), 0, 2)  # 2 frames per latent
    torch.testing.assert_close(by_two[:, 2, :2], actions[:, :4].sum(1))
    assert by_two[0, :, 2].tolist() == [0.0, 2.0, 4.0]
    starts = torch.tensor([0, 3, 5, 5, 6])
    clips = torch.randn(5, 8, A)
    origins, windows = origin_windows(clips, starts, 3, 4, 1, torch.Generator().manual_seed(0))
    for j in range(5):
        s, o = int(starts[j]), int(origins[j])
        assert max(0, s + 2 - 4) <= o <= s  # the window's last frame at most 4 frames from its origin
        for i in range(3):
            torch.testing.assert_close(windows[j, i, :A], clips[j, o : s + i].sum(0))
            assert windows[j, i, A] == s + i - o


def test_pose_travel_composes_end_effector_deltas_as_the_arm_controller_does():
    turn, ahead = torch.zeros(1, A), torch.zeros(1, A)
    turn[0, 3] = torch.pi / 2  # a quarter turn about the gripper's x axis (down: a turn about the vertical)
    ahead[0, 1] = 0.1  # then 10 cm along the gripper's y axis, which now points along the origin's z
    state = accumulate(accumulate(torch.zeros(1, A), turn, "pose"), ahead, "pose")
    torch.testing.assert_close(state[0, :6], torch.tensor([0.0, 0.0, 0.1, torch.pi / 2, 0.0, 0.0]))
    # against the arm world itself: its commanded pose after random small actions is the origin's pose composed
    world = ArmWorld(WorldConfig(size=32))
    world.reset(seed=3)
    p0, r0 = world.ctrl.pos.copy(), world.ctrl.rot.copy()
    rng, state = np.random.default_rng(0), torch.zeros(1, A, dtype=torch.float64)
    for _ in range(8):
        action = np.concatenate([rng.normal(0, 0.01, 3), rng.normal(0, [0.1, 0.01, 0.01]), [0.0]])  # as grasps turn
        world.step(action)
        state = accumulate(state, torch.from_numpy(action)[None], "pose")
    pos = p0 + r0 @ state[0, :3].numpy()
    rot = r0 @ skew_exp(state[:, 3:6])[0].numpy()
    np.testing.assert_allclose(pos, world.ctrl.pos, atol=2e-3)  # the IK's commanded pose, within 2 mm
    np.testing.assert_allclose(rot, world.ctrl.rot, atol=2e-2)
    summed = clips = torch.randn(3, 6, A) * 0.1
    summed = states_from(torch.zeros(3, A), clips, 1, "sum")[:, -1]
    assert not torch.allclose(states_from(torch.zeros(3, A), clips, 1, "pose")[:, -1, :3], summed[:, :3])
    rotvecs = torch.randn(5, 3)
    torch.testing.assert_close(skew_log(skew_exp(rotvecs * 0.5)), rotvecs * 0.5, atol=1e-5, rtol=1e-4)


def test_a_rollouts_origin_gives_the_travel_of_training_and_moves_after_its_horizon():
    actions = torch.randn(1, 10, A)
    frames = [torch.full((1, 4, 1, 3, 3), 0.0)]
    state = OriginState.start(frames[0], actions[:, :0], 1, 4, "sum")
    for t in range(6):
        k = min(2, t + 1)  # given frames in the step's window
        got = state.window(actions[:, t : t + 1], k, 3)
        origin = 0 if t < 4 else 3  # frame 5 would be 5 from frame 0: the origin moved to the oldest kept frame
        for i in range(k + 1):  # the given frames and the new one
            frame = t + 1 - k + i
            torch.testing.assert_close(got[:, i, :A], actions[:, origin:frame].sum(1))
            assert got[0, i, A] == frame - origin <= 4
        frames.append(torch.full((1, 4, 1, 3, 3), float(t + 1)))
        kept = torch.cat(frames[-2:], 2)
        state.advance(actions[:, t : t + 1], kept, actions[:, t : t + 1])
    assert state.frame.unique().tolist() == [3.0] and state.since == 3
    many = OriginState.start(torch.arange(7.0).view(1, 1, 7, 1, 1), actions[:, :6], 1, 4, "sum")
    assert many.frame.item() == 3.0 and many.since == 3  # more given frames than the horizon: the next is 4 away
    torch.testing.assert_close(many.states[:, -1], actions[:, 3:6].sum(1))


def model(origin: int) -> DiffusionWorldModel:
    torch.manual_seed(0)
    return DiffusionWorldModel(merge(PRESETS["tiny"](), NEXT | {"origin": origin}))


def trained(m: DiffusionWorldModel) -> DiffusionWorldModel:
    """``m`` with its zero-initialised weights made non-zero, as training would."""
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(std=0.05)
    return m


def test_the_origin_embedders_start_as_the_base_and_steer_once_trained():
    base, with_origin = trained(model(0)), model(8)
    missing, unexpected = with_origin.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(".embedders." in k for k in missing)
    x, b = torch.randn(2, 16, 3, 4, 4), 2
    cond = Condition(torch.randn(b, 3, 384), torch.ones(b, 3, dtype=torch.bool),
                     extras={"actions": torch.randn(b, 2, A), "origin": torch.randn(b, 16, 4, 4),
                             "travel": torch.randn(b, 3, A + 1)})  # fmt: skip
    cond = with_condition_frames(cond, x, torch.full((b,), 2), torch.full((b,), 0.05))
    sigma = torch.full((b,), 1.0)
    plain = Condition(cond.text, cond.text_mask, None, cond.mask, cond.frames, cond.frames_in, cond.sigma_cond,
                      {"actions": cond.extras["actions"]})  # fmt: skip
    torch.testing.assert_close(with_origin.denoiser(x, sigma, cond), base.denoiser(x, sigma, plain))
    with torch.no_grad():
        for e in ("origin", "travel"):
            for p in with_origin.embedder(e).parameters():
                p.normal_(std=0.1)
    out = with_origin.denoiser(x, sigma, cond)
    for name in ("origin", "travel"):
        other = Condition(**{**cond.__dict__, "extras": cond.extras | {name: torch.randn_like(cond.extras[name])}})
        assert not torch.allclose(with_origin.denoiser(x, sigma, other), out)
    # travel beyond the range measured on the training windows is clamped to it (a key held for many frames in play)
    travel_embedder = with_origin.embedder("travel")
    travel_embedder.set_scale(torch.rand(64, 3, A + 1))  # a range of [0, 1) per dimension
    far, edge = cond.extras["travel"].clone(), cond.extras["travel"].clone()
    far[..., 6], edge[..., 6] = 40.0, float(travel_embedder.high[6])
    torch.testing.assert_close(travel_embedder(far, (b, 3, 4, 4)), travel_embedder(edge, (b, 3, 4, 4)))
    # condition guidance's "without" branch drops the travel (the actions' sum) but keeps the origin frame
    keep = {GUIDED_KEEP: torch.zeros(b)}
    dropped = Condition(**{**cond.__dict__, "extras": cond.extras | keep})
    no_travel = Condition(**{**cond.__dict__, "extras": cond.extras | keep | {"travel": torch.randn(b, 3, A + 1)}})
    torch.testing.assert_close(with_origin.denoiser(x, sigma, dropped), with_origin.denoiser(x, sigma, no_travel))
    with pytest.raises(ConfigError, match="travel must be"):
        with_origin.denoiser(x, sigma, Condition(**{**cond.__dict__, "extras": cond.extras | {"travel": torch.randn(b, 3, A)}}))
    with pytest.raises(ConfigError, match="model.origin"):
        merge(PRESETS["tiny"](), {"origin": 4, "action_dim": A})  # not next-frame-only
    with pytest.raises(ConfigError, match="reach past the model's context"):
        merge(PRESETS["tiny"](), NEXT | {"origin": 2})
    with pytest.raises(ConfigError, match="model.travel must be one of sum, pose"):
        merge(PRESETS["tiny"](), NEXT | {"origin": 4, "travel": "spin"})
    with pytest.raises(ConfigError, match="pose needs actions of at least 6"):
        merge(PRESETS["tiny"](), NEXT | {"origin": 4, "travel": "pose", "action_dim": 2})


def test_cached_windows_carry_their_origin_frame_and_the_actions_since():
    latents, actions = torch.randn(1, 16, 9, 2, 2), torch.randn(1, 8, A)
    cache = {"latents": latents, "actions": actions, "captions": [""], "fps": torch.tensor([10.0])}
    seen = set()
    for epoch in range(12):
        batches = CachedLatentBatches(cache, 1, seed=3, text_encoder=Words(), window=3, origin=5)
        batches.set_epoch(epoch)
        batch = next(iter(batches))
        s = next(i for i in range(7) if torch.equal(batch["latents"][0], latents[0, :, i : i + 3]))
        o = s - int(batch["travel"][0, 0, A])
        seen.add(s - o)
        assert 0 <= o <= s and s + 2 - o <= 5
        torch.testing.assert_close(batch["origin"][0], latents[0, :, o])
        torch.testing.assert_close(batch["travel"][0, 2, :A], actions[0, o : s + 2].sum(0))
    assert len(seen) > 1  # the origin is drawn, not always the window's first frame
    with pytest.raises(ConfigError, match="data.actions=true"):
        CachedLatentBatches({k: v for k, v in cache.items() if k != "actions"}, 1, 0, Words(), 3, origin=5)
    m = model(5)  # the loss sees the origin in model space, as a rollout hands it over
    torch.testing.assert_close(extras_of(m, batch)["origin"], m.normalize(batch["origin"][:, :, None])[:, :, 0])


def test_an_origin_model_trains_and_rolls_out_past_its_horizon(tmp_path, arm_shards, ci_tokenizer):
    from conftest import QUICK_TRAIN

    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(arm_shards), "tokenizer": str(ci_tokenizer), "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 5, "actions": True},
             "model": NEXT | {"rollout_depth": 2, "origin": 4, "travel": "pose"}, "train": QUICK_TRAIN}  # fmt: skip
    cfg = family.resolve("tiny", flags=flags)
    assert family.train(cfg, tmp_path / "run")["steps"] == 4
    gen = DiffusionGenerator.from_run(tmp_path / "run")
    assert gen.model.cfg.origin == 4 and not torch.equal(gen.model.embedder("travel").scale, torch.ones(A + 1))
    state = gen.start_rollout(torch.zeros(2, 3, 1, 32, 32), ["", ""], seeds=[0, 1])
    for _ in range(7):  # past the horizon: the origin moves and stays at most 4 frames back
        assert gen.step_rollout(state, torch.randn(2, 1, A)).shape == (2, 3, 1, 32, 32)
        assert state.origin.since < 4
    assert state.repeat(3).origin.frame.shape[0] == 6
    video = gen.rollout(torch.zeros(1, 3, 1, 32, 32), torch.randn(1, 8, A), 9, [""])
    assert video.shape == (1, 3, 9, 32, 32) and torch.isfinite(video).all()
    with pytest.raises(ConfigError, match="data.cache_latents"):
        family.train(C.merge(cfg, {"data": {"cache_latents": False, "window": 0}, "model": {"rollout_depth": 0}}),
                     tmp_path / "bad")  # fmt: skip


def test_the_shipped_model_stays_sane_under_play_keys_held_past_its_training_range():
    """Play sends the gripper's "open" (+1) every frame and holds keys: summed, those leave the travel range the
    model was trained on by far (a gripper command of 20); unclamped, the shipped model's frames fell to ~4 dB."""
    from worldsmith.eval.metrics import psnr
    from worldsmith.io.video import to_tensor, to_uint8

    gen = DiffusionGenerator.from_run("arm-action")
    embedder = gen.model.embedder("travel")
    assert torch.isfinite(embedder.low).all() and torch.isfinite(embedder.high).all()
    world = ArmWorld(WorldConfig(size=gen.size))
    first = world.reset(seed=2_000_011)
    key = np.zeros(7, np.float32)
    key[6], key[1] = 1.0, 0.01  # the gripper held open and "right" held for 20 frames
    truth = [world.step(key) for _ in range(20)]
    world.close()
    video = to_tensor(first[None])[None]  # (1, 3, 1, H, W) in [-1, 1]
    out = gen.rollout(video, torch.from_numpy(np.stack([key] * 20))[None], 21, [""])
    frames = to_uint8(out[0])[1:]  # (20, H, W, 3)
    assert float(psnr(frames[-1], truth[-1])) > 15.0
