"""Post-training an action model from a base run, and scoring rollouts against the simulator (tiny, real clips)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import run_cli

from worldsmith.config import merge
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.errors import ConfigError
from worldsmith.eval.cli import format_report
from worldsmith.eval.rollouts import evaluate_rollouts
from worldsmith.eval.state_reader import StateReader, StateReaderConfig
from worldsmith.families import FAMILIES
from worldsmith.posttrain import posttrain_config
from worldsmith.worlds.generate import simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KEYS = ("psnr", "ssim", "fd", "gripper_error_px", "object_error_px", "floor_copy_first_psnr", "floor_no_action_psnr",
        "ceiling_tokenizer_psnr", "episodes", "frames")  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, arm_shards, diffusion_base) -> dict[str, Path]:
    """A tiny base (no actions) on per-frame latents, and an action model post-trained from it."""
    root = tmp_path_factory.mktemp("posttrain")
    _, cfg = posttrain_config("action", diffusion_base, str(arm_shards), overrides=["train.steps=4", "train.log_every=1"])
    FAMILIES["diffusion"].train(cfg, root / "action")
    return {"base": diffusion_base, "action": root / "action"}


def test_posttraining_starts_from_the_base_and_adds_actions(runs):
    config = yaml.safe_load((runs["action"] / "config.yaml").read_text())
    base = yaml.safe_load((runs["base"] / "config.yaml").read_text())
    assert config["model"]["action_dim"] == 7 and config["data"]["actions"] is True
    assert config["init_from"] == str(runs["base"]) and config["model"]["dit"] == base["model"]["dit"]
    assert config["data"]["tokenizer"] == base["data"]["tokenizer"] and config["data"]["window"] == 3


def test_an_action_model_samples_with_few_euler_steps_by_default_and_flags_override_them(runs):
    from worldsmith.diffusion.generate import ACTION_SAMPLING
    from worldsmith.jobs import sampling_config

    gen, base = DiffusionGenerator.from_run(runs["action"]), DiffusionGenerator.from_run(runs["base"])
    s = sampling_config(gen, {})
    assert (s.steps, s.sampler) == (ACTION_SAMPLING["steps"], ACTION_SAMPLING["sampler"])
    assert (base.default_sampling().steps, base.default_sampling().sampler) == (10, "dpm++2m")
    s = sampling_config(gen, {"steps": 7})
    assert (s.steps, s.sampler) == (7, ACTION_SAMPLING["sampler"])


def test_posttrain_cli_dry_run_lora_and_errors(runs, capsys, tmp_path):
    code, out, err = run_cli(capsys, "posttrain", "action", "--from", str(runs["base"]), "--data", "x", "--out",
                             str(tmp_path / "r"), "--lora", "4", "--dry-run")  # fmt: skip
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["model"]["lora"] == {"rank": 4, "alpha": 0.0, "base": str(runs["base"])}
    stacked = tmp_path / "stacked"  # a base with frame stacking is post-trained next-frame-only (user may override)
    stacked.mkdir()
    config = yaml.safe_load((runs["base"] / "config.yaml").read_text())
    config["model"]["dit"]["anchor_frames"] = 2
    (stacked / "config.yaml").write_text(yaml.safe_dump(config))
    for extra, expected in (((), True), (("--set", "model.dit.next_frame_only=false"), False)):
        code, out, err = run_cli(capsys, "posttrain", "action", "--from", str(stacked), "--data", "x", "--out",
                                 str(tmp_path / "r"), "--dry-run", *extra)  # fmt: skip
        assert code == 0, err
        assert yaml.safe_load(out)["model"]["dit"]["next_frame_only"] is expected
    assert yaml.safe_load((runs["action"] / "config.yaml").read_text())["model"]["dit"]["next_frame_only"] is False
    code, out, err = run_cli(capsys, "posttrain", "camera", "--from", str(stacked), "--data", "x", "--out",
                             str(tmp_path / "r"), "--dry-run")  # fmt: skip
    assert code == 0, err
    model = yaml.safe_load(out)["model"]
    assert model["dit"]["next_frame_only"] is True and model["camera_reference"] == "previous"
    code, out, err = run_cli(capsys, "posttrain", "views", "--from", str(stacked), "--data", "x", "--out",
                             str(tmp_path / "r"), "--dry-run")  # fmt: skip
    assert code == 0, err
    model = yaml.safe_load(out)["model"]
    assert model["dit"]["next_frame_only"] is True and model["trajectory_reference"] == "previous"
    code, out, err = run_cli(capsys, "posttrain", "instruction", "--from", str(stacked), "--data", "x", "--out",
                             str(tmp_path / "r"), "--dry-run")  # fmt: skip
    assert code == 0, err  # captions alone, stepping frame by frame as the action models do
    model = yaml.safe_load(out)["model"]
    assert model["dit"]["next_frame_only"] is True and model["action_dim"] == 0 and model["caption_dropout"] == 0.1
    code, out, err = run_cli(capsys, "posttrain", "camera", "--from", str(runs["base"]), "--data", "x", "--out",
                             str(tmp_path / "r"), "--dry-run")  # fmt: skip
    assert code == 0, err  # no frame stacking: the whole window, poses relative to its first frame
    assert yaml.safe_load(out)["model"]["camera_reference"] == "first"
    code, _, err = run_cli(capsys, "posttrain", "dance", "--from", str(runs["base"]), "--out", str(tmp_path / "r"))
    assert code == 1 and "unknown post-training 'dance'; choose one of: action, instruction" in err
    code, _, err = run_cli(capsys, "posttrain", "action", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path))
    assert code == 1 and "neither a run directory nor a shipped model" in err


def test_rollout_report_has_every_figure_and_action_discrimination(runs, tmp_path):
    pairs = tmp_path / "pairs"
    simulate("arm", episodes=2, frames=7, size=32, out=pairs, seed=99, branches=2, workers=1, progress=False)
    clips = [c for s in list_shards(str(pairs)) for c in iter_shard(s)]
    assert len(clips) == 4 and clips[0].frames[0].tobytes() == clips[1].frames[0].tobytes()  # same scene, 2 policies
    reader = StateReader(StateReaderConfig(width=8, levels=1))
    gen = DiffusionGenerator.from_run(runs["action"])
    report = evaluate_rollouts(gen, clips, frames=4, reader=reader, sampling=merge(gen.Sampling(), {"steps": 2}),
                               base=DiffusionGenerator.from_run(runs["base"]))  # fmt: skip
    for key in KEYS:
        assert key in report, key
    assert report["episodes"] == 4 and report["frames"] == 4 and len(report["model"]["psnr_per_step"]) == 4
    assert report["discrimination_pairs"] == 4 and 0 <= report["action_discrimination"] <= 1
    assert report["tokenizer"]["psnr"] > report["copy_first"]["psnr"] - 10 and "floor_base_psnr" in report
    json.dumps(report)  # plain JSON all the way down
    # one step ahead of the true frames: frame 1 is the rollout's own (the same first frame, action and seed);
    # later frames start from the truth, not from the model's frames
    videos: dict = {}
    report = evaluate_rollouts(gen, clips, frames=4, reader=reader, sampling=merge(gen.Sampling(), {"steps": 2}),
                               videos_out=videos, one_step=True)  # fmt: skip
    assert len(report["one_step"]["gripper_error_px_per_step"]) == 4 and videos["one_step"].shape == (4, 5, 32, 32, 3)
    assert videos["one_step"][:, :2].tobytes() == videos["model"][:, :2].tobytes()
    assert videos["one_step"][:, 2:].tobytes() != videos["model"][:, 2:].tobytes()
    assert "one step from the true frames" in format_report(report)
    with pytest.raises(ConfigError, match="one-step scores need a step-by-step action model"):
        evaluate_rollouts(DiffusionGenerator.from_run(runs["base"]), clips, frames=4, one_step=True)
    # a model without actions is steered by the caption: its floor is the same model with an empty one
    report = evaluate_rollouts(DiffusionGenerator.from_run(runs["base"]), clips, frames=2, reader=reader,
                               sampling=merge(gen.Sampling(), {"steps": 2}))  # fmt: skip
    assert "no_action" not in report and report["floor_no_instruction_psnr"] == report["no_instruction"]["psnr"]
    assert "no instruction (empty caption)" in format_report(report)


def test_instruction_posttraining_steps_frame_by_frame_on_the_caption_alone(runs, arm_shards, tmp_path):
    _, cfg = posttrain_config("instruction", runs["base"], str(arm_shards), overrides=["train.steps=2"])
    assert cfg.data.actions is False and cfg.model.action_dim == 0 and cfg.model.caption_dropout == 0.1
    assert cfg.model.dit.next_frame_only == bool(cfg.model.dit.anchor_frames)  # step by step over frame stacking
    assert cfg.model.video2world_prob == 1.0 and cfg.init_from == str(runs["base"])
    FAMILIES["diffusion"].train(cfg, tmp_path / "instruction")
    gen = DiffusionGenerator.from_run(tmp_path / "instruction")
    clips = [c for s in list_shards(str(arm_shards)) for c in iter_shard(s)][:2]
    videos: dict = {}
    gen.model.cfg.dit.next_frame_only = True  # a model that steps one frame at a time samples as the action models
    assert (gen.default_sampling().steps, gen.default_sampling().sampler) == (3, "euler")
    gen.model.cfg.dit.next_frame_only = cfg.model.dit.next_frame_only
    report = evaluate_rollouts(gen, clips, frames=3, sampling=merge(gen.Sampling(), {"steps": 1}), videos_out=videos)
    assert videos["model"].shape == videos["no_instruction"].shape == (2, 4, 32, 32, 3)
    first = torch.from_numpy(clips[0].frames[:1]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, 1, S, S)
    steered, blind = (gen.generate_videos([text], video=first, frames=3, sampling=merge(gen.Sampling(), {"steps": 1}),
                                          seed=0)[0] for text in (clips[0].caption, ""))  # fmt: skip
    assert steered.shape == blind.shape and not torch.equal(steered, blind)  # the caption reaches the model
    assert "floor_no_instruction_psnr" in report and "action_discrimination" not in report
