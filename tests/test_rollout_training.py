"""Rollout training (``model.rollout_depth``): the context of a training window is the model's own rollout."""

from __future__ import annotations

import json

import pytest
import torch

from worldsmith import config as C
from worldsmith.config import merge
from worldsmith.diffusion import losses
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import PRESETS, SamplingConfig
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.errors import ConfigError
from worldsmith.families import FAMILIES
from worldsmith.tokenizer.config import PRESETS as TOKENIZERS
from worldsmith.tokenizer.model import CausalVideoTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
A = 7
NEXT = {"dit": {"anchor_frames": 2, "next_frame_only": True}, "video2world_prob": 1.0, "action_dim": A}


def model_with(depth: int) -> DiffusionWorldModel:
    """A tiny next-frame-only action model whose zero-initialised weights are made non-zero, as training would."""
    torch.manual_seed(0)
    m = DiffusionWorldModel(merge(PRESETS["tiny"](), NEXT | {"rollout_depth": depth}))
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(std=0.05)
    return m


def batch_of(frames: int, b: int = 2) -> dict:
    torch.manual_seed(1)
    return {"latents": torch.randn(b, 16, frames, 4, 4), "text": torch.randn(b, 3, 384),
            "text_mask": torch.ones(b, 3, dtype=torch.bool), "actions": torch.randn(b, frames - 1, A)}  # fmt: skip


def test_the_context_is_what_a_rollout_generates_and_the_target_stays_true(monkeypatch):
    model, batch = model_with(2), batch_of(5)  # a 3-frame model, windows of 3 + 2
    seen = []
    real = losses.world_model_loss
    monkeypatch.setattr(losses, "world_model_loss", lambda m, b, given=0: seen.append((b, given)) or real(m, b, given))
    depths = {}
    for seed in range(20):
        torch.manual_seed(seed)
        loss, logs = losses.rollout_world_model_loss(model, batch)
        assert torch.isfinite(loss) and loss.requires_grad
        depths.setdefault(int(logs["rollout_depth"]), (seed, *seen[-1]))
    assert set(depths) == {0, 1, 2}  # every depth is drawn
    true = batch["latents"]
    _, window, given = depths[0]  # depth 0: the plain loss on the true first window
    assert given == 0 and torch.equal(window["latents"], true[:, :, :3])
    assert torch.equal(window["actions"], batch["actions"][:, :2])
    seed, window, given = depths[2]  # depth 2: frames 2 and 3 generated, frame 4 the true target
    assert given == 2 and torch.equal(window["latents"][:, :, 2], true[:, :, 4])
    assert torch.equal(window["actions"], batch["actions"][:, 2:4])
    assert not torch.allclose(window["latents"][:, :, :2], true[:, :, 2:4])
    # the first generated frame is exactly a rollout step of the generator (1 Euler step, same noise)
    torch.manual_seed(seed)
    torch.randint(0, 3, ())  # the depth draw
    first = losses.next_frame(model, losses.window_batch(batch, true[:, :, :3], 0, 1))
    assert torch.equal(window["latents"][:, :, 0], first)
    gen = DiffusionGenerator(model, CausalVideoTokenizer(TOKENIZERS["ci8x8-tiny"]()), None, frames=3, size=32, fps=10)
    one = losses.window_batch({k: v[:1] for k, v in batch.items()}, batch["latents"][:1, :, :3], 0, 1)
    torch.manual_seed(5)
    mine = losses.next_frame(model, one)
    cond = Condition(one["text"], one["text_mask"], extras={"actions": one["actions"]})
    rollout = gen.window_step(model.normalize(one["latents"][:, :, :2]), 3, cond.extras, cond, None,
                              SamplingConfig(steps=1, sampler="euler", guidance=1.0),
                              [torch.Generator().manual_seed(5)])  # fmt: skip
    torch.testing.assert_close(mine, model.denormalize(rollout)[:, :, 0])


def test_rollout_steps_generate_the_context_as_a_rollout_with_that_many_steps():
    model, batch = model_with(2), batch_of(5)
    gen = DiffusionGenerator(model, CausalVideoTokenizer(TOKENIZERS["ci8x8-tiny"]()), None, frames=3, size=32, fps=10)
    one = losses.window_batch({k: v[:1] for k, v in batch.items()}, batch["latents"][:1, :, :3], 0, 1)
    cond = Condition(one["text"], one["text_mask"], extras={"actions": one["actions"]})
    frames = {}
    for steps in (1, 3):
        model.cfg.rollout_steps = steps
        torch.manual_seed(5)
        frames[steps] = losses.next_frame(model, one)
        rollout = gen.window_step(model.normalize(one["latents"][:, :, :2]), 3, cond.extras, cond, None,
                                  SamplingConfig(steps=steps, sampler="euler", guidance=1.0),
                                  [torch.Generator().manual_seed(5)])  # fmt: skip
        torch.testing.assert_close(frames[steps], model.denormalize(rollout)[:, :, 0])
    assert not torch.allclose(frames[1], frames[3])
    with pytest.raises(ConfigError, match="rollout_steps must be >= 1"):
        merge(PRESETS["tiny"](), NEXT | {"rollout_steps": 0})


def test_rollout_training_runs_end_to_end_and_generation_keeps_the_models_window(tmp_path, arm_shards, ci_tokenizer,
                                                                                  dv_tokenizer):  # fmt: skip
    from conftest import QUICK_TRAIN

    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(arm_shards), "tokenizer": str(ci_tokenizer), "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 5, "actions": True},
             "model": NEXT | {"rollout_depth": 2}, "train": QUICK_TRAIN}  # fmt: skip
    cfg = family.resolve("tiny", flags=flags)
    summary = family.train(cfg, tmp_path / "run")
    assert summary["steps"] == 4 and "rollout_depth" in summary["last"]
    assert json.loads((tmp_path / "run" / "generation.json").read_text())["frames"] == 3  # the model's window
    gen = DiffusionGenerator.from_run(tmp_path / "run")
    state = gen.start_rollout(torch.zeros(1, 3, 1, 32, 32), [""])
    assert state.window == 3 and gen.step_rollout(state, torch.zeros(1, 1, A)).shape == (1, 3, 1, 32, 32)
    with pytest.raises(ConfigError, match="data.window = the model's window"):
        family.train(C.merge(cfg, {"data": {"window": 3}, "model": {"rollout_depth": 2}}), tmp_path / "bad")
    with pytest.raises(ConfigError, match="a diffusion decoder"):
        family.train(C.merge(cfg, {"data": {"token_tokenizer": str(dv_tokenizer)}}), tmp_path / "decoder")
    with pytest.raises(ConfigError, match="needs model.dit.next_frame_only"):
        merge(PRESETS["tiny"](), {"rollout_depth": 1})
