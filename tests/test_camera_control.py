"""Camera control: Plücker rays, the camera embedder in the DiT's slot, intrinsics that follow resizing, camera
post-training, generation along a path and the camera evaluation (tiny models, real simulated orbit clips)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from helpers import run_cli

from worldsmith.conditioning.camera import CameraEmbedder, pack_camera, per_latent_frame, plucker_rays
from worldsmith.config import merge
from worldsmith.data.clip_sampling import fit_intrinsics as fit_sample_intrinsics
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import PRESETS
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.data import read_latent_cache
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.diffusion.train import CACHE_FILE
from worldsmith.errors import ConfigError
from worldsmith.eval.camera import left_right, nearest_path
from worldsmith.family import GenerationRequest
from worldsmith.io.frames import fit_frames, fit_intrinsics
from worldsmith.jobs import request_for
from worldsmith.train.checkpoint import check_resumable
from worldsmith.worlds.camera_paths import named_path
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.generate import simulate
from worldsmith.worlds.orbit import OrbitWorld
from worldsmith.zoo import resolve

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def test_plucker_rays_of_a_hand_computed_camera():
    K = torch.tensor([[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]])[None, None]  # 3x3 grid, principal point at (1, 1)
    c2w = torch.from_numpy(pose(np.eye(3), [1.0, 0, 0])).float()[None, None]
    r = plucker_rays(c2w, K, 3, 3)[0, 0]  # (6, 3, 3)
    assert torch.allclose(r[3:, 1, 1], torch.tensor([0.0, 0, 1]))  # the centre ray looks along +z
    assert torch.allclose(r[:3, 1, 1], torch.tensor([0.0, -1, 0]))  # o x d = (1, 0, 0) x (0, 0, 1)
    d = torch.tensor([0.5, 0, 1]) / math.sqrt(1.25)  # pixel (2, 1): K^-1 (2, 1, 1) = (0.5, 0, 1)
    assert torch.allclose(r[3:, 1, 2], d, atol=1e-6)
    assert torch.allclose(r[:3, 1, 2], torch.linalg.cross(torch.tensor([1.0, 0, 0]), d), atol=1e-6)
    # a rotated camera: directions rotate with it; stride maps latent cells to image pixel centres
    c2w = torch.from_numpy(pose(rot_y(90), [0, 0, 0])).float()[None, None]
    r = plucker_rays(c2w, K, 3, 3)[0, 0]
    assert torch.allclose(r[3:, 1, 1], torch.tensor([1.0, 0, 0]), atol=1e-6)
    K8 = torch.tensor([[8.0, 0, 11.5], [0, 8.0, 11.5], [0, 0, 1]])[None, None]  # 24 px frame, 8 px cells
    assert torch.allclose(plucker_rays(torch.eye(4)[None, None], K8, 3, 3, stride=8)[0, 0, 3:, 1, 1],
                          torch.tensor([0.0, 0, 1]))  # fmt: skip


def test_camera_embedder_sees_poses_relative_to_the_first_and_starts_at_zero():
    emb = CameraEmbedder(width=16, patch=2, stride=8)
    K = torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]])
    path = torch.from_numpy(named_path("orbit_left", 3)).float()[None]  # (1, 3, 4, 4)
    cam = pack_camera(path, K)
    assert cam.shape == (1, 3, 25) and not emb(cam, (1, 3, 4, 4)).any()  # zero projection: the base's output
    moved = pack_camera(torch.from_numpy(pose(rot_y(40), [3.0, -1, 2])).float() @ path, K)  # same path elsewhere
    assert torch.allclose(emb.rays(cam, (1, 3, 4, 4)), emb.rays(moved, (1, 3, 4, 4)), atol=1e-5)
    other = pack_camera(torch.from_numpy(named_path("orbit_right", 3)).float()[None], K)
    assert not torch.allclose(emb.rays(cam, (1, 3, 4, 4)), emb.rays(other, (1, 3, 4, 4)), atol=1e-3)
    with pytest.raises(ConfigError, match="one camera per latent frame"):
        emb(cam[:, :2], (1, 3, 4, 4))
    # per latent frame: frame 0, then the last frame of each group of 4
    frames = torch.arange(9.0)[None, :, None].expand(1, 9, 25)
    assert per_latent_frame(frames, 4)[0, :, 0].tolist() == [0, 4, 8]


def test_camera_embedder_relative_to_the_previous_frame_sees_each_step_motion():
    emb = CameraEmbedder(width=16, patch=2, stride=8, reference="previous")
    K = torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]])
    step = torch.from_numpy(pose(rot_y(5), [0.1, 0, 0])).float()
    steady = torch.stack([torch.linalg.matrix_power(step, i) for i in range(4)])[None]  # the same motion each frame
    rays = emb.rays(pack_camera(steady, K), (1, 4, 4, 4))  # (1, 4, 6, 4, 4)
    assert not rays[:, 0].any()  # frame 0 is its own reference: the unmoved camera embeds to zero
    assert rays[:, 1:].abs().amax() > 0.05
    assert torch.allclose(rays[:, 1], rays[:, 2], atol=1e-5) and torch.allclose(rays[:, 1], rays[:, 3], atol=1e-5)
    # anywhere in the world, the same motion embeds the same; a still camera embeds to zero
    moved = torch.from_numpy(pose(rot_y(40), [3.0, -1, 2])).float() @ steady
    assert torch.allclose(emb.rays(pack_camera(moved, K), (1, 4, 4, 4)), rays, atol=1e-5)
    assert not emb.rays(pack_camera(torch.eye(4).expand(1, 4, 4, 4), K), (1, 4, 4, 4)).abs().gt(1e-6).any()
    # the frame's rays relative to the previous camera = the Plücker rays of the relative pose minus the still ones
    still = plucker_rays(torch.eye(4)[None, None], K[None, None], 4, 4, 8)
    assert torch.allclose(rays[:, 2:3], plucker_rays(step[None, None], K[None, None], 4, 4, 8) - still, atol=1e-5)
    # a left step and a right step differ
    back = torch.stack([torch.linalg.matrix_power(torch.linalg.inv(step), i) for i in range(4)])[None]
    assert not torch.allclose(emb.rays(pack_camera(back, K), (1, 4, 4, 4)), rays, atol=1e-3)
    with pytest.raises(ConfigError, match="camera_reference"):
        CameraEmbedder(width=16, patch=2, stride=8, reference="last")
    with pytest.raises(ConfigError, match="camera_reference"):
        merge(PRESETS["tiny"](), {"camera": True, "camera_reference": "world"})


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_camera_embedder_scales_its_rays_to_unit_std_and_loads_runs_saved_without_a_scale(reference):
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]])
    steps = [torch.from_numpy(pose(rot_y(float(a)), [float(x), 0, float(z)])).float()
             for a, x, z in (torch.randn(3, 12, generator=g) * torch.tensor([[1.0], [0.02], [0.02]])).T]  # fmt: skip
    paths = torch.stack([torch.eye(4), *[torch.linalg.multi_dot([torch.eye(4), *steps[i : i + 2]]) for i in (0, 3, 6)]])
    cam = pack_camera(torch.stack([paths, paths.flip(0)]), K)  # (2, 4, 25): centimetres and a degree a frame
    emb = CameraEmbedder(width=16, patch=2, stride=8, reference=reference)
    raw = emb.rays(cam, (2, 4, 4, 4))
    emb.set_scale(cam, (4, 4))
    scaled = emb.rays(cam, (2, 4, 4, 4))
    moving = raw.transpose(0, 2).reshape(6, -1).std(1) > 1e-3  # (turns about y only leave a step's d_y still)
    assert moving.sum() >= 5
    assert torch.allclose(scaled.transpose(0, 2).reshape(6, -1).std(1)[moving], torch.ones(int(moving.sum())), atol=1e-4)
    assert torch.allclose(scaled * emb.scale.view(6, 1, 1), raw, atol=1e-6)
    if reference == "previous":
        assert raw.abs().mean() < 0.05 < scaled.abs().mean()  # a step's motion, lifted to the scale of the tokens
    fresh = CameraEmbedder(width=16, patch=2, stride=8, reference=reference)
    old = {k: v for k, v in emb.state_dict().items() if k != "scale"}  # a run saved before the scale existed
    fresh.load_state_dict(old)
    assert torch.equal(fresh.scale, torch.ones(6)) and torch.equal(fresh.proj.weight, emb.proj.weight)
    fresh.load_state_dict(emb.state_dict())
    assert torch.equal(fresh.scale, emb.scale)


def tiny_camera_model(camera: bool, every_block: bool = False, reference: str = "first") -> DiffusionWorldModel:
    torch.manual_seed(0)
    cfg = {"camera": camera, "camera_stride": 8, "camera_every_block": every_block, "camera_reference": reference}
    m = DiffusionWorldModel(merge(PRESETS["tiny"](), cfg)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if ".embedders." not in name and not p.any():
                p.normal_(std=0.05)
    return m


@pytest.mark.parametrize("every_block,reference", [(False, "first"), (True, "first"), (False, "previous")])
def test_a_fresh_camera_model_is_its_base_and_a_trained_one_follows_the_path(every_block, reference):
    base, model = tiny_camera_model(False), tiny_camera_model(True, every_block, reference)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert all(".embedders." in k for k in missing) and not unexpected
    K = torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]])
    left, right = (pack_camera(torch.from_numpy(named_path(n, 3)).float()[None], K).expand(2, 3, 25)
                   for n in ("orbit_left", "orbit_right"))  # fmt: skip
    x, sigma = torch.randn(2, 16, 3, 4, 4), torch.full((2,), 1.0)
    text, mask = torch.randn(2, 3, 384), torch.ones(2, 3, dtype=torch.bool)
    out = lambda m, cam: m.denoiser(x, sigma, Condition(text, mask, extras={} if cam is None else {"camera": cam}))  # noqa: E731
    assert torch.equal(out(model, left), out(base, None))
    with torch.no_grad():
        model.net.embedders[0].proj.weight.normal_(std=0.1)
    assert not torch.allclose(out(model, left), out(model, right), atol=1e-4)
    with pytest.raises(ConfigError, match="conditioned on 'camera'"):
        out(model, None)


def test_intrinsics_follow_resizing_and_cropping():
    K = np.array([[50.0, 0, 63.5], [0, 50.0, 47.5], [0, 0, 1]])  # a 96 x 128 frame
    p = np.array([0.3, -0.2, 2.0])
    uv = (K @ p)[:2] / p[2]
    for got, (s, top, left) in ((fit_intrinsics(K, 96, 128, 48, square=True), (0.5, 0, 8)),
                                (fit_sample_intrinsics(K, 96, 128, (48, 48)), (0.5, 0, 8)),
                                (fit_sample_intrinsics(K, 96, 128, 48), (0.5, 0, 0))):  # fmt: skip
        want = (uv + 0.5) * s - 0.5 - np.array([left, top])
        assert np.allclose((got @ p)[:2] / p[2], want)
    frames = np.zeros((1, 96, 128, 3), np.uint8)
    assert fit_frames(frames, 48, square=True).shape[1:3] == (48, 48)


@pytest.fixture(scope="module")
def orbit_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("orbit")
    simulate("orbit", episodes=4, frames=9, size=32, fps=10.0, out=root / "train", seed=0, workers=1, progress=False)
    simulate("orbit", episodes=2, frames=9, size=32, fps=10.0, out=root / "held", seed=99, workers=1, progress=False)
    return root


def test_posttrain_camera_generates_along_a_path_and_is_evaluated(tmp_path, capsys, orbit_shards, diffusion_base):
    run = tmp_path / "cam"
    quick = ["--set", "train.steps=3", "--set", "train.batch_size=2", "--set", "train.progress=false",
             "--set", "train.lr=0.05", "--set", "train.warmup_steps=0"]  # fmt: skip
    code, _, err = run_cli(capsys, "posttrain", "camera", "--from", str(diffusion_base), "--data",
                           str(orbit_shards / "train"), "--out", str(run), *quick)  # fmt: skip
    assert code == 0, err
    cfg = DiffusionGenerator.from_run(run).model.cfg
    assert cfg.camera and cfg.camera_stride == 8 and cfg.action_dim == 0
    gen = DiffusionGenerator.from_run(run)
    first = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    videos = {n: gen.generate(GenerationRequest(video=first, camera=named_path(n, 5))) for n in ("orbit_left", "orbit_right")}
    assert videos["orbit_left"].shape == (5, 32, 32, 3)
    assert np.array_equal(videos["orbit_left"][0], first[0])  # the given frame comes back unchanged
    assert not np.array_equal(videos["orbit_left"], videos["orbit_right"])
    with pytest.raises(ConfigError, match="camera path"):
        gen.generate(GenerationRequest(video=first))
    report = tmp_path / "cam.json"
    code, out, err = run_cli(capsys, "eval", "camera", "--model", str(run), "--data", str(orbit_shards / "held"),
                             "--frames", "5", "-n", "2", "--path", "own", "--path", "orbit_left", "--path",
                             "orbit_right", "--json", str(report))  # fmt: skip
    assert code == 0, err
    assert "pose success" in out and "told apart" in out
    r = json.loads(report.read_text())
    for key in ("sampson", "sampson_truth", "pose_success", "pose_success_truth", "rot_err_deg", "trans_err_deg",
                "psnr", "floor_psnr", "floor_copy_first_psnr", "left_right", "left_right_pixels", "episodes",
                "frames", "warp_psnr", "warp_pose_success", "left_right_warp", "left_right_yaw", "left_right_yaw_truth"):  # fmt: skip
        assert key in r, key
    assert r["episodes"] == 2 and set(r["paths"]) == {"own", "orbit_left", "orbit_right"}
    assert "own / warp" in out and 10 < r["warp_psnr"] < 60


def test_camera_requests_and_errors(tmp_path, capsys, diffusion_base):
    img = tmp_path / "first.png"
    cv2.imwrite(str(img), np.full((48, 64, 3), 90, np.uint8))
    path = tmp_path / "path.json"
    path.write_text(json.dumps({"c2w": named_path("dolly_in", 6).tolist()}))
    r = request_for(input_path=img, frames=6, camera=str(path), fov=60.0)
    assert r.camera.shape == (6, 4, 4) and np.allclose(r.camera[0], np.eye(4))
    assert np.isclose(r.intrinsics[1, 1], 24 / math.tan(math.radians(30)))
    assert request_for(input_path=img, camera="orbit_left:45").camera.shape == (17, 4, 4)
    with pytest.raises(ConfigError, match="--fov"):
        request_for(camera="orbit_left", fov=60.0)
    with pytest.raises(ConfigError, match="orbit_left"):
        request_for(input_path=img, camera="orbit_sideways")
    code, out, err = run_cli(capsys, "generate", "--model", str(diffusion_base), "--input", str(img), "--camera",
                             "orbit_left", "--out", str(tmp_path / "x.mp4"), "--no-guardrail")  # fmt: skip
    assert code != 0 and "not camera-controlled" in out + err


def test_a_run_saved_before_an_option_existed_resumes_when_the_option_is_off():
    saved = {"model": {"dit": {"width": 8}}, "train": {"lr": 1.0}}
    check_resumable(saved, {"model": {"dit": {"width": 8}, "camera_every_block": False, "camera_stride": 0},
                            "train": {"lr": 1.0}}, {})  # fmt: skip
    with pytest.raises(ConfigError, match="camera_every_block"):
        check_resumable(saved, {"model": {"dit": {"width": 8}, "camera_every_block": True}, "train": {"lr": 1.0}}, {})
    with pytest.raises(ConfigError, match="width"):
        check_resumable(saved, {"model": {"dit": {"width": 16}}, "train": {"lr": 1.0}}, {})


def test_a_warp_model_anchors_its_residual_at_the_warped_first_frame():
    model = DiffusionWorldModel(merge(PRESETS["tiny"](), {
        "camera": True, "camera_stride": 8, "residual": True, "warp": True, "video2world_prob": 1.0,
        "dit": {"anchor_frames": 2, "next_frame_only": True}})).eval()  # fmt: skip
    assert model.embedder("warped") is not None and not model.embedder("warped").proj.weight.any()  # starts at zero
    x, warped = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    cond = with_condition_frames(Condition(torch.randn(2, 3, 384), torch.ones(2, 3, dtype=torch.bool),
                                           extras={"warped": warped}), x, torch.tensor([2, 1]), torch.zeros(2))  # fmt: skip
    res = model.to_residual(x, cond)
    scale = model.residual_scale
    assert torch.allclose(res[0, :, 2], (x[0, :, 2] - warped[0, :, 2]) * scale)  # frame 2 of a 2-frame context
    assert torch.allclose(res[1, :, 1:], (x[1, :, 1:] - warped[1, :, 1:]) * scale)
    assert torch.equal(res[0, :, :2], x[0, :, :2])  # given frames unchanged
    assert torch.allclose(model.from_residual(res, cond), x, atol=1e-6)
    with pytest.raises(ConfigError, match="no 'warped' was given"):
        model.to_residual(x, replace(cond, extras={}))
    with pytest.raises(ConfigError, match="model.warp anchors"):
        merge(PRESETS["tiny"](), {"camera": True, "residual": True, "warp": True})


def test_a_warp_model_trains_on_cached_warps_and_generates_along_a_path(tmp_path, capsys, orbit_shards, ci_tokenizer):
    run = tmp_path / "warp"
    sets = {"data.shards": orbit_shards / "train", "data.tokenizer": ci_tokenizer, "data.frames": 9, "data.size": 32,
            "data.cache_latents": "true", "data.cache_crops": 1, "data.window": 3, "data.camera": "true",
            "model.camera": "true", "model.residual": "true", "model.warp": "true", "model.video2world_prob": 1.0,
            "model.max_cond_latents": 2, "model.dit.anchor_frames": 2, "model.dit.next_frame_only": "true",
            "train.steps": 3, "train.batch_size": 2, "train.progress": "false"}  # fmt: skip
    code, _, err = run_cli(capsys, "train", "diffusion", "--preset", "tiny", "--out", str(run),
                           *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")])  # fmt: skip
    assert code == 0, err
    cache = read_latent_cache(run / CACHE_FILE)
    assert cache["warped"].shape == cache["latents"].shape
    assert torch.allclose(cache["warped"][:, :, 0], cache["latents"][:, :, 0], atol=1e-4)  # frame 0: the identity
    assert not torch.allclose(cache["warped"][:, :, -1], cache["latents"][:, :, 0], atol=1e-3)  # later: moved
    gen = DiffusionGenerator.from_run(run)
    first = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    at = np.eye(4)
    at[:3, 3] = (0.0, -2.0, 1.5)  # a world pose (floor z = 0 below the camera), then the named path from there
    at[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # looking along +y, level
    videos = {n: gen.generate(GenerationRequest(video=first, camera=at @ named_path(n, 5))) for n in ("orbit_left", "orbit_right")}
    assert videos["orbit_left"].shape == (5, 32, 32, 3) and np.array_equal(videos["orbit_left"][0], first[0])
    assert not np.array_equal(videos["orbit_left"], videos["orbit_right"])
    cfg = gen.model.cfg  # a path relative to its first camera starts where the training clips' cameras did
    assert 0.3 < cfg.warp_height < 5 and -90 < cfg.warp_pitch < 0
    assert gen.generate(GenerationRequest(video=first, camera=named_path("dolly_in", 5))).shape == (5, 32, 32, 3)


def test_the_shipped_orbit_camera_model_follows_named_paths_from_its_warp():
    gen = DiffusionGenerator.from_run(resolve("orbit-camera"))
    assert gen.model.cfg.warp and gen.model.cfg.warp_height > 0 and gen.size == 128
    sampling = gen.default_sampling()  # the correction's mean, one step from sigma 1 (a level training saw)
    assert (sampling.steps, sampling.sampler, sampling.sigma_max) == (1, "euler", 1.0)
    v, u = np.mgrid[0:128, 0:128]
    first = np.stack([(u * 2) % 256, (v * 2) % 256, ((u + v) * 3) % 256], -1).astype(np.uint8)[None]  # a texture
    left, right = (gen.generate(GenerationRequest(video=first, camera=named_path(n, 4)), sampling)
                   for n in ("orbit_left", "orbit_right"))  # fmt: skip
    assert left.shape == (4, 128, 128, 3) and np.array_equal(left[0], first[0])
    assert np.abs(left[-1].astype(int) - right[-1]).mean() > 5  # the two orbits end in different views


def test_left_and_right_orbits_are_told_apart_by_their_estimated_poses():
    names = ("orbit_left", "orbit_right")
    paths = [named_path(n, 17) for n in names]
    world = OrbitWorld(WorldConfig(size=64, fps=10.0, views=1))
    try:  # the simulator's true renders of both orbits from one scene's first camera
        (left, info), (right, _) = (world.render_path(1402720682, p) for p in paths)
    finally:
        world.close()
    K = info["intrinsics"].astype(np.float64)
    assert nearest_path(left, K, paths) == 0 and nearest_path(right, K, paths) == 1
    assert nearest_path(right, K, paths[::-1]) == 0  # the index is into the paths given
    assert nearest_path(np.repeat(left[:1], 17, 0), K, paths) == -1  # a frozen video is as far from both
    videos, c2w = {"orbit_left": left[None], "orbit_right": right[None]}, {n: p[None] for n, p in zip(names, paths)}
    assert left_right(videos, K[None], c2w) == 1.0
    assert left_right({"orbit_left": right[None], "orbit_right": left[None]}, K[None], c2w) == 0.0


def test_a_next_frame_only_model_continues_in_latent_space_row_by_row():
    gen = DiffusionGenerator.from_run(resolve("orbit-camera"))  # next-frame-only: stepwise.continue_video
    rng = np.random.default_rng(0)
    first = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 1, 128, 128)).astype(np.float32))
    K = torch.tensor([[110.0, 0, 64], [0, 110.0, 64], [0, 0, 1]], dtype=torch.float64)
    paths = np.stack([named_path("orbit_left", 4), named_path("dolly_in", 4)])
    camera = pack_camera(torch.from_numpy(paths), K.expand(2, 1, 3, 3))
    sampling = merge(gen.Sampling(), {"steps": 1})
    both = gen.generate_videos(["", ""], video=first, frames=4, sampling=sampling, seed=3, camera=camera)
    alone = gen.generate_videos([""], video=first[1:], frames=4, sampling=sampling, seed=4, camera=camera[1:])
    assert both.shape == (2, 3, 4, 128, 128) and torch.equal(both[:, :, :1], first)  # the given frame unchanged
    assert torch.allclose(both[1], alone[0], atol=1e-4)  # row i draws from seed + i: no dependence on the batch
    again = gen.generate_videos([""], video=first[1:], frames=4, sampling=sampling, seed=4, camera=camera[1:])
    assert torch.equal(alone, again) and (both[0, :, 1:] - both[1, :, 1:]).abs().mean() > 0.05


def test_a_camera_model_post_trained_further_is_scored_against_the_first_base_without_camera(
        tmp_path, capsys, orbit_shards, diffusion_base):  # fmt: skip
    quick = ["--set", "train.steps=2", "--set", "train.batch_size=2", "--set", "train.progress=false",
             "--set", "train.warmup_steps=0"]  # fmt: skip
    for src, out in ((diffusion_base, tmp_path / "cam"), (tmp_path / "cam", tmp_path / "cam2")):
        code, _, err = run_cli(capsys, "posttrain", "camera", "--from", str(src), "--data", str(orbit_shards / "train"),
                               "--out", str(out), *quick)  # fmt: skip
        assert code == 0, err
    report = tmp_path / "cam2.json"
    code, _, err = run_cli(capsys, "eval", "camera", "--model", str(tmp_path / "cam2"), "--data",
                           str(orbit_shards / "held"), "--frames", "5", "-n", "1", "--path", "own", "--json",
                           str(report))  # fmt: skip
    assert code == 0, err
    assert "floor_psnr" in json.loads(report.read_text())  # the floor is diffusion_base, not the camera model cam
