"""Multi-view driving models: views stacked and attended jointly, the ego trajectory as a condition, view count from
the data, `worldsmith posttrain views`, generation with --input-views/--trajectory and `worldsmith eval multiview`
(tiny models, real simulated drive clips)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import run_cli

from worldsmith.conditioning.views import (TrajectoryEmbedder, ViewEmbedder, mirror_clips, mirror_order,
                                           relative_trajectory, split_views, stack_views, swap_left_right,
                                           trajectory_per_latent_frame)  # fmt: skip
from worldsmith.conditioning.warp import rig_path, typical_rig, warp_views
from worldsmith.config import merge
from worldsmith.data.dataset import make_loader
from worldsmith.diffusion import losses
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import PRESETS
from worldsmith.diffusion.data import (DiffusionDataConfig, clip_cameras, dataset_config, read_latent_cache, rig_of,
                                       rig_views)
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.diffusion.multiview import rig_cameras, rollout_views
from worldsmith.errors import ConfigError, DataError
from worldsmith.families import FAMILIES
from worldsmith.io.video import decode, encode_mp4, to_tensor
from worldsmith.posttrain import posttrain_config
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.drive import DriveConfig, DriveWorld
from worldsmith.worlds.generate import simulate
from worldsmith.worlds.manoeuvres import drive_actions, load_trajectory, manoeuvre_actions

pytestmark = pytest.mark.usefixtures("one_torch_thread")
QUICK = {"steps": 12, "batch_size": 4, "warmup_steps": 0, "log_every": 4, "progress": False, "tensorboard": False}
OVERRIDES = [f"train.{k}={v}" for k, v in QUICK.items()]
TRAIN = [x for o in OVERRIDES for x in ("--set", o)]


@pytest.fixture(scope="module")
def drive_runs(tmp_path_factory):
    """Drive clips (3 overlapping views, 32 px, 9 frames) and one-view drive clips; a tiny single-view base trained
    on the first's front views (the shipped arm tokenizer) and its `posttrain views` run ``mv``."""
    root = tmp_path_factory.mktemp("multiview")
    simulate("drive", episodes=6, frames=9, size=32, out=root / "drive", seed=0, rig="overlap", behaviour="mixed",
             workers=1, progress=False)  # fmt: skip
    simulate("drive", episodes=4, frames=9, size=32, out=root / "drive1", seed=1, views=1, workers=1, progress=False)
    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(root / "drive"), "tokenizer": "arm-tokenizer", "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 3}, "train": QUICK}  # fmt: skip
    family.train(family.resolve("tiny", flags=flags), root / "base")
    _, cfg = posttrain_config("views", root / "base", str(root / "drive"), overrides=OVERRIDES)
    family.train(cfg, root / "mv")
    return root


def test_stack_and_split_views_round_trip():
    parts = [torch.randn(2, 4, 3, 5, 6) for _ in range(3)]
    z = stack_views(parts)
    assert z.shape == (2, 4, 3, 15, 6)
    assert all(torch.equal(a, b) for a, b in zip(split_views(z, 3), parts))
    with pytest.raises(ConfigError, match="does not split into 4 views"):
        split_views(z, 4)


def test_trajectory_relative_to_the_window_and_per_latent_frame():
    t = torch.arange(9.0)
    ego = torch.stack([t, torch.zeros(9), 0.05 * t, torch.full((9,), 8.0)], dim=-1)[None]  # (1, 9, 4)
    rel = relative_trajectory(ego)
    # the same drive elsewhere and rotated: the same relative trajectory
    a = 0.7
    moved = ego.clone()
    moved[..., 0] = 5 + math.cos(a) * ego[..., 0] - math.sin(a) * ego[..., 1]
    moved[..., 1] = -3 + math.sin(a) * ego[..., 0] + math.cos(a) * ego[..., 1]
    moved[..., 2] = ego[..., 2] + a
    assert torch.allclose(relative_trajectory(moved), rel, atol=1e-5)
    assert torch.allclose(rel[0, :, 0], t) and torch.allclose(rel[0, :, 2], 0.05 * t)
    # 4 video frames per latent frame: latent 0 = frame 0 repeated, latent 1 = frames 1..4, latent 2 = frames 5..8
    per = trajectory_per_latent_frame(rel, 3, 4)
    assert per.shape == (1, 3, 16)
    assert per[0, 0, 0::4].tolist() == [0, 0, 0, 0] and per[0, 2, 0::4].tolist() == [5, 6, 7, 8]
    # relative to the previous frame: each step, in the heading of the frame before it
    a, b = relative_trajectory(ego, "previous"), relative_trajectory(moved, "previous")
    assert torch.allclose(a, b, atol=1e-5) and a[0, 0, :3].tolist() == [0, 0, 0]
    step = torch.tensor([math.cos(0.05 * i) for i in range(8)])  # a unit step along x seen from heading 0.05 (i)
    assert torch.allclose(a[0, 1:, 0], step, atol=1e-5) and torch.allclose(a[0, 1:, 2], torch.full((8,), 0.05))
    assert torch.allclose(a[0, :, 3], torch.full((9,), 8.0))
    wrap = torch.tensor([[[0.0, 0, 3.1, 1], [0, 0, -3.1, 1]]])  # a small turn across +-pi
    assert relative_trajectory(wrap, "previous")[0, 1, 2].item() == pytest.approx(2 * math.pi - 6.2, abs=1e-5)
    with pytest.raises(ConfigError, match="trajectory_reference"):
        relative_trajectory(ego, "last")
    emb = TrajectoryEmbedder(width=32, chunk=4)
    out = emb(ego, (1, 3, 4, 4))
    assert out.shape == (1, 3, 32) and not out.any()  # zero last layer: starts as the base
    with pytest.raises(ConfigError, match=r"\(x, y, yaw, speed\) per frame"):
        emb(ego[..., :3], (1, 3, 4, 4))


def tiny_views_model(views: int = 3) -> DiffusionWorldModel:
    torch.manual_seed(0)
    cfg = merge(PRESETS["tiny"](), {"views": views, "trajectory": True, "video2world_prob": 1.0,
                                    "dit": {"latent_channels": 4}})  # fmt: skip
    model = DiffusionWorldModel(cfg).eval()
    for p in model.parameters():  # random everywhere (the zero inits would hide what reaches what)
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_view_embedder_and_joint_attention_across_views():
    model = tiny_views_model()
    b, t, h = 1, 3, 4
    x = torch.randn(b, 4, t, 3 * h, h)
    ids = torch.tensor([[0, 1, 2]])
    ego = torch.zeros(b, t, 4)
    cond = Condition(torch.zeros(b, 1, 384), torch.ones(b, 1, dtype=torch.bool), fps=torch.ones(b) * 2,
                     extras={"views": ids, "trajectory": ego})  # fmt: skip
    emb = model.embedder("views")(ids, (b, t, 3 * h, h))
    assert emb.shape == (b, t, 3 * (h // 2) ** 2, model.cfg.dit.width)
    c_noise = torch.zeros(b, 1)
    with torch.no_grad():
        out = model.net(x, c_noise, cond)
        other = x.clone()
        other[:, :, :, 2 * h :] += 1.0  # change only view 2
        out2 = model.net(other, c_noise, cond)
        # each view alone (one view at a time) differs from the joint output: views attend to each other
        alone = model.net(x[:, :, :, :h], c_noise, Condition(cond.text, cond.text_mask, cond.fps,
                                                             extras={"views": ids[:, :1], "trajectory": ego}))  # fmt: skip
    assert out.shape == x.shape
    assert (out2 - out)[:, :, :, :h].abs().max() > 1e-4  # view 0 saw view 2's change
    assert (alone - out[:, :, :, :h]).abs().max() > 1e-4
    with pytest.raises(ConfigError, match="knows views 0..2"):
        ViewEmbedder(3, 8, 2)(torch.tensor([[0, 3]]), (1, 3, 8, 4))
    with pytest.raises(ConfigError, match="multiple of V"):
        model.net(x[:, :, :, :5], c_noise, cond)


def test_posttrain_views_takes_the_view_count_from_the_data_and_generates(drive_runs, capsys, tmp_path):
    run = drive_runs / "mv"
    cfg = DiffusionWorldModel.from_pretrained(run).cfg
    assert cfg.views == 3 and cfg.trajectory and cfg.action_chunk == 1
    gen = DiffusionGenerator.from_run(run)
    first = torch.rand(2, 3, 3, 1, 32, 32) * 2 - 1
    ego = torch.zeros(2, 9, 4)
    ego[..., 0], ego[..., 3] = torch.arange(9.0), 10.0
    a = rollout_views(gen, first, ego, 6, ["", ""], seed=3)
    assert a.shape == (2, 3, 3, 6, 32, 32) and torch.equal(a[:, :, :, :1], first)
    assert torch.equal(a, rollout_views(gen, first, ego, 6, ["", ""], seed=3))  # deterministic for a seed
    with pytest.raises(ConfigError, match="follows an ego trajectory"):
        rollout_views(gen, first, None, 6, ["", ""])
    # the CLI: three first frames and a named manoeuvre -> a tiled mp4 and one per view
    inputs = []
    for i in range(3):
        encode_mp4(np.full((1, 32, 32, 3), 40 * i, np.uint8), tmp_path / f"v{i}.mp4", fps=10)
        inputs.append(str(tmp_path / f"v{i}.mp4"))
    out = tmp_path / "gen.mp4"
    code, _, err = run_cli(capsys, "generate", "--model", str(run), "--input-views", ",".join(inputs),
                           "--trajectory", "left", "--frames", "5", "--out", str(out), "--no-guardrail")  # fmt: skip
    assert code == 0, err
    assert decode(out).shape == (5, 32, 96, 3)
    assert [decode(tmp_path / f"gen.view{i}.mp4").shape for i in range(3)] == [(5, 32, 32, 3)] * 3
    code, _, err = run_cli(capsys, "generate", "--model", str(run), "--input-views", ",".join(inputs),
                           "--trajectory", "sideways", "--out", str(out), "--no-guardrail")  # fmt: skip
    assert code != 0 and "unknown trajectory 'sideways'" in err


def test_eval_multiview_reports_every_figure(drive_runs, capsys, tmp_path):
    run = drive_runs / "mv"
    report = tmp_path / "mv.json"
    code, out, err = run_cli(capsys, "eval", "multiview", "--model", str(run), "--data", str(drive_runs / "drive"),
                             "--frames", "5", "--episodes", "2", "--manoeuvre", "left", "--manoeuvre", "right",
                             "--json", str(report))  # fmt: skip
    assert code == 0, err
    r = json.loads(report.read_text())
    assert r["episodes"] == 2 and r["views"] == 3
    for key in ("cse", "cse_truth", "cse_independent", "tse", "tse_truth", "psnr", "psnr_copy_first",
                "yaw_rate_err", "left_right", "left_right_truth", "left_right_pixels", "psnr_warp", "cse_warp",
                "left_right_warp"):  # fmt: skip
        assert key in r
    assert 0 <= r["left_right_pixels"] <= 1 and 0 <= r["left_right_warp"] <= 1
    assert len(r["psnr_warp"]) == 3 and all(10 < p < 60 for p in r["psnr_warp"])
    assert "own / warp" in out and "left / warp" in out
    assert len(r["psnr"]) == 3 and all(10 < p < 60 for p in r["psnr"])
    assert "told apart" in out and "own / independent" in out


def test_one_view_data_still_trains(drive_runs, capsys):
    code, _, err = run_cli(capsys, "posttrain", "views", "--from", str(drive_runs / "base"), "--data",
                           str(drive_runs / "drive1"), "--out", str(drive_runs / "mv1"), *TRAIN)  # fmt: skip
    assert code == 0, err
    cfg = DiffusionWorldModel.from_pretrained(drive_runs / "mv1").cfg
    assert cfg.views == 1 and cfg.trajectory


def test_the_shipped_drive_views_model_follows_left_and_right_turns():
    gen = DiffusionGenerator.from_run("drive-views")
    m = gen.model.cfg
    assert m.views == 3 and m.trajectory and m.warp and len(m.rig_mounts) == 3 and gen.size == 64
    world = DriveWorld(WorldConfig(size=64, fps=10, views=3), DriveConfig(rig="overlap"))
    try:  # the simulator's left and right turns from one held-out start
        truth = {n: drive_actions(world, 900003, manoeuvre_actions(n, 9)) for n in ("left", "right")}
    finally:
        world.close()
    first = to_tensor(truth["left"]["views"][:, :1])  # (V, 3, 1, H, W): the same first frames
    out = {n: rollout_views(gen, first[None], torch.from_numpy(t["ego"])[None], 9, [""], seed=0)[0]
           for n, t in truth.items()}  # fmt: skip
    assert out["left"].shape == (3, 3, 9, 64, 64) and out["left"].abs().max() <= 1
    for n, other in (("left", "right"), ("right", "left")):  # each front view nearer its own turn's truth
        front = out[n][0, :, 4:]
        own, wrong = (((front - to_tensor(truth[k]["views"][0])[:, 4:]) ** 2).mean() for k in (n, other))
        assert own < 0.75 * wrong, (n, float(own), float(wrong))  # seed 900003: 0.54x and 0.06x


def test_rollout_training_windows_carry_their_own_trajectory_and_cameras():
    b = 2
    batch = {"latents": torch.randn(b, 16, 6, 4, 4), "views": torch.arange(3).expand(b, 3),
             "trajectory": torch.arange(11.0)[None, :, None].expand(b, 11, 4),
             "camera": torch.arange(6.0)[None, :, None].expand(b, 6, 25)}  # fmt: skip
    w = losses.window_batch(batch, batch["latents"][:, :, 2:5], 2, 2)  # 2 video frames per latent frame
    assert torch.equal(w["trajectory"][0, :, 0], torch.arange(4.0, 9.0))  # video frames 4..8 of latent frames 2..4
    assert torch.equal(w["camera"][0, :, 0], torch.arange(2.0, 5.0)) and torch.equal(w["views"], batch["views"])
    w = losses.window_batch(batch, batch["latents"][:, :, 1:4], 1, 1)
    assert torch.equal(w["trajectory"][0, :, 0], torch.arange(1.0, 4.0))


@pytest.fixture(scope="module")
def stacked_base(drive_runs):
    """A tiny base with frame stacking on the drive clips' front views: its views post-training is next-frame-only."""
    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(drive_runs / "drive"), "tokenizer": "arm-tokenizer", "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 3}, "train": QUICK,
             "model": {"dit": {"anchor_frames": 2}, "video2world_prob": 1.0}}  # fmt: skip
    family.train(family.resolve("tiny", flags=flags), drive_runs / "stacked")
    return drive_runs / "stacked"


def test_posttrain_views_with_rollout_training(drive_runs, stacked_base):
    family = FAMILIES["diffusion"]
    _, cfg = posttrain_config("views", stacked_base, str(drive_runs / "drive"),
                              overrides=[*OVERRIDES, "model.rollout_depth=2", "data.window=5"])  # fmt: skip
    assert cfg.model.dit.next_frame_only and cfg.model.trajectory_reference == "previous"
    summary = family.train(cfg, drive_runs / "mv-rollout")
    assert summary["steps"] == QUICK["steps"] and "rollout_depth" in summary["last"]
    gen = DiffusionGenerator.from_run(drive_runs / "mv-rollout")
    assert gen.model.cfg.rollout_depth == 2 and gen.model.cfg.views == 3
    ego = torch.zeros(1, 9, 4)
    ego[..., 0], ego[..., 3] = torch.arange(9.0), 10.0
    out = rollout_views(gen, torch.rand(1, 3, 3, 1, 32, 32) * 2 - 1, ego, 4, [""], seed=0)
    assert out.shape == (1, 3, 3, 4, 32, 32) and torch.isfinite(out).all()


def test_mirrored_clips_are_the_rig_reflected(drive_runs):
    data = DiffusionDataConfig(shards=str(drive_runs / "drive"), frames=9, size=32, views=True, trajectory=True)
    names = rig_views(data.shards)
    assert names == ["front", "front_left", "front_right"] and mirror_order(names) == [0, 2, 1]
    batch = next(iter(make_loader(dataset_config(data, 0, loop=False, shuffle=False), 4, 0)))
    m = mirror_clips(batch, [0, 2, 1])
    assert torch.equal(m["video"], batch["video"].flip(-1))  # front stays front, flipped
    assert torch.equal(m["views"][:, 0], batch["views"][:, 1].flip(-1))  # the new front_left: front_right flipped
    assert torch.equal(m["views"][:, 1], batch["views"][:, 0].flip(-1))
    rel, mrel = relative_trajectory(batch["ego"]), relative_trajectory(m["ego"])
    assert torch.allclose(mrel[..., [0, 3]], rel[..., [0, 3]], atol=1e-4)  # as far ahead, as fast
    assert torch.allclose(mrel[..., [1, 2]], -rel[..., [1, 2]], atol=1e-4)  # the other side, turning the other way
    back = mirror_clips(m, [0, 2, 1])
    assert all(torch.equal(back[k], batch[k]) for k in ("video", "views", "ego")) and back["caption"] == batch["caption"]
    assert swap_left_right("A road curving to the Left, a cone on the right; front_left") == \
        "A road curving to the Right, a cone on the left; front_right"
    assert swap_left_right("bright lights left") == "bright lights right"
    with pytest.raises(ConfigError, match="no mirror camera"):
        mirror_order(["front", "front_left"])
    with pytest.raises(ConfigError, match="not \\['actions'\\]"):
        mirror_clips(batch | {"actions": torch.zeros(4, 8, 2)}, [0, 2, 1])
    with pytest.raises(ConfigError, match="data.cache_latents=true"):
        DiffusionDataConfig(mirror=True)
    with pytest.raises(DataError, match="does not exist"):
        rig_views(str(drive_runs / "nowhere.tar"))


def test_posttrain_views_caches_every_clip_and_its_mirror_image(drive_runs):
    _, cfg = posttrain_config("views", drive_runs / "base", str(drive_runs / "drive"),
                              overrides=[*OVERRIDES, "data.mirror=true"])  # fmt: skip
    FAMILIES["diffusion"].train(cfg, drive_runs / "mv-mirror")
    cache = read_latent_cache(drive_runs / "mv-mirror" / "latent_cache.safetensors")
    n = len(cache["latents"]) // 2
    assert n == 6 and cache["views"].shape == (12, 3)  # 6 clips, each followed (in a batch of them) by its mirror
    ego, sign = cache["trajectory"], torch.tensor([1.0, -1.0, -1.0, 1.0])
    assert torch.equal(ego[n:], ego[:n] * sign)
    assert cache["captions"][n:] == [swap_left_right(c) for c in cache["captions"][:n]]
    assert not torch.allclose(cache["latents"][n:], cache["latents"][:n])
    assert DiffusionWorldModel.from_pretrained(drive_runs / "mv-mirror").cfg.views == 3


def test_the_ego_trajectory_places_every_camera_of_the_rig(drive_runs):
    data = DiffusionDataConfig(shards=str(drive_runs / "drive"), frames=9, size=32, views=True, trajectory=True,
                               cache_latents=True, warp=True)  # fmt: skip
    batch = next(iter(make_loader(dataset_config(data, 0, loop=False, shuffle=False), 4, 0)))
    clips, c2w, K = clip_cameras(batch)
    assert len(clips) == 3 and c2w.shape == (4, 9, 3, 4, 4) and K.shape == (4, 3, 3, 3)
    mounts, Ks = rig_of(batch)  # each camera's pose on the car, measured at the clips' first frames
    assert torch.allclose(mounts, mounts[:1].expand_as(mounts), atol=1e-4)  # one rig for every clip
    assert torch.allclose(mounts[0, :, 2, 3], torch.full((3,), 1.4), atol=1e-4)  # 1.4 m above the road
    # the simulator's cameras at every frame, from the ego states alone
    assert torch.allclose(rig_path(batch["ego"].double(), mounts[0].double()), c2w.double(), atol=1e-3)
    fitted = typical_rig(mounts, Ks)
    assert len(fitted["rig_mounts"]) == 3 and len(fitted["rig_mounts"][0]) == 16 and len(fitted["rig_intrinsics"][2]) == 9
    # the warp of each view: frame 0 is the frame itself; a moving car's later frames are not
    warped = warp_views([c.double() for c in clips], c2w.double(), K.double())
    assert torch.allclose(warped[1][:, :, 0], clips[1][:, :, 0].double(), atol=1e-4)
    assert not torch.allclose(warped[1][:, :, -1], clips[1][:, :, 0].double(), atol=1e-2)
    with pytest.raises(ConfigError, match="warp_views takes 2 views"):
        warp_views(clips[:2], c2w, K)
    with pytest.raises(ConfigError, match="data.warp caches"):
        DiffusionDataConfig(views=True, warp=True)  # not cached


def test_posttrain_views_anchored_at_the_warp(drive_runs, stacked_base):
    _, cfg = posttrain_config("views", stacked_base, str(drive_runs / "drive"),
                              overrides=[*OVERRIDES, "model.residual=true", "model.warp=true"])  # fmt: skip
    FAMILIES["diffusion"].train(cfg, drive_runs / "mv-warp")
    cache = read_latent_cache(drive_runs / "mv-warp" / "latent_cache.safetensors")
    assert cache["warped"].shape == cache["latents"].shape and cache["rig"].shape == (6, 3, 4, 4)
    assert torch.allclose(cache["warped"][:, :, 0], cache["latents"][:, :, 0], atol=1e-4)  # frame 0 of every view
    gen = DiffusionGenerator.from_run(drive_runs / "mv-warp")
    m = gen.model.cfg
    assert m.warp and m.views == 3 and len(m.rig_mounts) == 3 and gen.default_sampling().steps == 1
    assert gen.default_sampling().sigma_max == 0  # multi-view: from the model's own sigma_max (RESULTS.md)
    first = torch.rand(1, 3, 3, 1, 32, 32) * 2 - 1
    left, right = (torch.from_numpy(load_trajectory(n, 9))[None] for n in ("left", "right"))
    a = rollout_views(gen, first, left, 9, [""], seed=0)
    assert a.shape == (1, 3, 3, 9, 32, 32) and torch.equal(a, rollout_views(gen, first, left, 9, [""], seed=0))
    b = rollout_views(gen, first, right, 9, [""], seed=0)
    assert not torch.allclose(a[:, :, :, 1:], b[:, :, :, 1:], atol=1e-3)  # the warp follows the trajectory
    alone = rollout_views(gen, first[:, 2:], left, 5, [""], seed=0, view_ids=[2])  # one view: its own camera
    assert alone.shape == (1, 1, 3, 5, 32, 32)
    with pytest.raises(ConfigError, match="model.warp carries each view"):
        merge(PRESETS["tiny"](), {"views": 3, "residual": True, "warp": True, "dit": {"next_frame_only": True,
                                  "anchor_frames": 1}, "video2world_prob": 1.0})  # fmt: skip
    with pytest.raises(ConfigError, match="knows the rig of 3 views"):
        rig_cameras(m, [0, 3])
