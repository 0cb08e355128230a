"""Diffusion training and generation end to end, through a real (tiny, quickly trained) tokenizer: a tiny model
overfits 4 clips so Video2World from their first frames matches the true continuation; long videos, unseen sizes,
caching, resume, the CLI, batch generation and clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fit, run_cli
from PIL import Image

from worldsmith.config import load_yaml, merge
from worldsmith.data.clip import Clip
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.diffusion.data import build_latent_cache, read_latent_cache
from worldsmith.diffusion.generate import DiffusionGenerator, load_tokenizer
from worldsmith.diffusion.train import CACHE_FILE, train
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.eval.metrics import psnr
from worldsmith.families import FAMILIES
from worldsmith.family import GenerationRequest
from worldsmith.io.video import decode, encode_mp4, to_tensor, to_uint8
from worldsmith.jobs import read_jobs, run_jobs
from worldsmith.tokenizer.config import PRESETS as TOKENIZER_PRESETS
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.train.progress import read_logs

FRAMES, SIZE = 5, 32
QUIET = {"train": {"progress": False, "tensorboard": False, "log_every": 50}}


def blob_clips(n: int = 4) -> np.ndarray:
    """uint8 (n, FRAMES, SIZE, SIZE, 3): a coloured Gaussian blob moving fast over a colour gradient."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    clips = []
    for _ in range(n):
        tint, colour = torch.rand(3, generator=g) * 2 - 1, torch.rand(3, generator=g) * 2 - 1
        start, velocity = torch.rand(2, generator=g) - 0.5, (torch.rand(2, generator=g) - 0.5) * 0.3
        background = torch.stack([0.5 * xx * tint[0], 0.5 * yy * tint[1], 0.3 * (xx + yy) * tint[2]])
        frames = []
        for k in range(FRAMES):
            px, py = start + velocity * k
            blob = torch.exp(-((xx - px) ** 2 + (yy - py) ** 2) / 0.08)
            frames.append(background * (1 - blob) + colour[:, None, None] * blob)
        clips.append(to_uint8(torch.stack(frames, dim=1).clamp(-1, 1)))
    return np.stack(clips)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_torch_thread) -> dict:
    """4 clips as shards and a tiny tokenizer trained on them (~34 dB; 150 steps: 250 gave 38.6 dB, not needed)."""
    root = tmp_path_factory.mktemp("diffusion")
    clips = blob_clips()
    with ShardWriter(root / "shards") as writer:
        for i, frames in enumerate(clips):
            writer.write(Clip(key=f"clip-{i}", frames=frames, fps=8.0, caption=f"a blob drifts, clip {i}"))
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(TOKENIZER_PRESETS["cv4x8x8-tiny"]())
    video = to_tensor(clips)  # (4, 3, T, H, W)
    fit(tok, TokenizerLoss(TokenizerLossConfig(perceptual=0.0)), {"video": video}, steps=150, lr=3e-3)
    tok.eval().save_pretrained(root / "tokenizer")
    return {"root": root, "clips": clips, "shards": root / "shards", "tokenizer": root / "tokenizer",
            "recon_psnr": float(psnr(tok.decode(tok.encode(video)), video))}  # fmt: skip


def run_config(world: dict, steps: int, **model):
    cfg = FAMILIES["diffusion"].resolve("tiny", flags={"data": {"shards": str(world["shards"]),
                                                                "tokenizer": str(world["tokenizer"])}})
    changes = {"model": model, "data": {"frames": FRAMES, "size": SIZE, "cache_latents": True, "cache_crops": 1},
               "train": {**QUIET["train"], "steps": steps, "batch_size": 4, "lr": 4e-3, "warmup_steps": 0,
                         "ema_decay": 0.0, "ckpt_every": steps}}  # fmt: skip
    return merge(cfg, changes)


@pytest.fixture(scope="module")
def overfit(world) -> Path:
    run_dir = world["root"] / "overfit"
    # 500 steps give 27.5-29.6 dB per clip (800 steps: 30.0-32.6); the test needs 25
    cfg = run_config(world, 500, video2world_prob=1.0, max_cond_latents=1, caption_dropout=0.0)
    train(cfg, run_dir)
    return run_dir


def v2w(gen: DiffusionGenerator, first: np.ndarray, prompt: str, seed: int = 0, frames: int | None = None,
        **sampling) -> np.ndarray:
    request = GenerationRequest(prompt=prompt, video=first, frames=frames, seed=seed)
    return gen.generate(request, SamplingConfig(**sampling))


def test_tiny_model_overfits_four_clips_video2world_above_25_db(world, overfit):
    gen = DiffusionGenerator.from_run(overfit)
    truth = world["clips"]
    scores = []
    for i in range(4):
        out = v2w(gen, truth[i, :1], f"a blob drifts, clip {i}", seed=i, steps=10)  # from the first frame
        assert out.shape == truth[i].shape and out.dtype == np.uint8
        assert np.array_equal(out[0], truth[i, 0])  # the given frame comes back unchanged
        scores.append(float(psnr(out[1:], truth[i, 1:])))
    print(f"Video2World PSNR per clip {[round(v, 2) for v in scores]} dB; tokenizer alone {world['recon_psnr']:.2f} dB")
    assert min(scores) >= 25.0, f"Video2World PSNR per clip {scores} (tokenizer alone: {world['recon_psnr']:.1f} dB)"
    info = json.loads((overfit / "generation.json").read_text())
    assert info["frames"] == FRAMES and info["size"] == SIZE and info["fps"] == 8.0


def test_long_videos_unseen_sizes_text2world_and_determinism(world, overfit):
    gen = DiffusionGenerator.from_run(overfit)
    first = world["clips"][0, :1]
    long = v2w(gen, first, "a blob drifts", seed=1, frames=13, steps=4)  # 3 chunks of 5 frames
    assert long.shape == (13, SIZE, SIZE, 3) and np.array_equal(long[0], first[0])
    assert np.array_equal(long, v2w(gen, first, "a blob drifts", seed=1, frames=13, steps=4))
    noisier = v2w(gen, first, "a blob drifts", seed=1, frames=13, steps=4, context_sigma=2.0)  # the flag is used
    assert np.array_equal(noisier[0], first[0]) and np.abs(noisier[1:].astype(int) - long[1:]).mean() > 0.5
    sampling = SamplingConfig(steps=3, guidance=2.0, negative_prompt="static")
    wide = gen.generate_videos(["a blob drifts"], size=(48, 64), sampling=sampling)
    assert wide.shape == (1, 3, FRAMES, 48, 64)  # a size the model never saw
    with pytest.raises(ConfigError, match="multiple of 16"):
        gen.generate_videos(["x"], size=(40, 40), sampling=SamplingConfig(steps=2))


def test_uncached_training_resumes_and_the_run_is_complete(world, tmp_path):
    cfg = run_config(world, 2)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache_latents=False, stats_batches=1),
                              train=dataclasses.replace(cfg.train, sample_every=2, log_every=1))  # fmt: skip
    first = train(cfg, tmp_path / "run")
    assert first["steps"] == 2 and first["resumed_from"] is None and "sample/latent_mse" in first["last"]
    assert decode(tmp_path / "run" / "samples" / "step_00000002" / "preview.mp4").shape == (FRAMES, SIZE, 4 * 2 * SIZE, 3)
    more = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=3, ckpt_every=3))
    again = train(more, tmp_path / "run")
    assert again["resumed_from"] == 2 and [r["step"] for r in read_logs(tmp_path / "run" / "logs.jsonl")][-1] == 3
    saved = load_yaml(tmp_path / "run" / "config.yaml")
    assert saved["model"]["dit"]["latent_channels"] == 16 and saved["model_class"].endswith("DiffusionWorldModel")
    assert train(more, tmp_path / "run")["already_complete"]


def test_cli_train_dry_run_generate_and_batch_from_jsonl(world, overfit, tmp_path, capsys):
    code, dry, _ = run_cli(capsys, "train", "diffusion", "--out", str(tmp_path / "r"), "--data", str(world["shards"]),
                           "--tokenizer", str(world["tokenizer"]), "--preset", "tiny", "--set", "train.steps=7",
                           "--dry-run")  # fmt: skip
    assert code == 0 and "steps: 7" in dry and "tokenizer:" in dry
    image = tmp_path / "first.png"
    encode_mp4(world["clips"][1, :1], tmp_path / "first.mp4", fps=8.0)
    Image.fromarray(world["clips"][1, 0]).save(image)
    out = tmp_path / "v2w.mp4"
    code, _, err = run_cli(capsys, "generate", "--model", str(overfit), "--prompt", "a blob drifts, clip 1", "--input",
                           str(image), "--frames", "9", "--steps", "4", "--seed", "3", "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert decode(out).shape == (9, SIZE, SIZE, 3)
    code, _, err = run_cli(capsys, "generate", "--model", str(overfit), "--temperature", "0.5", "--out", str(out))
    assert code == 1 and err.count("\n") == 1 and "'temperature' is not a sampling setting of Diffusion models" in err
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a coloured blob drifts over a gradient", "name": "t2w", "seed": 1}) + "\n\n"
                    + json.dumps({"prompt": "a coloured blob drifts over a gradient", "input": str(tmp_path / "first.mp4"),
                                 "frames": 9}) + "\n")  # fmt: skip
    code, printed, err = run_cli(capsys, "batch", str(jobs), "--model", str(overfit), "--out", str(tmp_path / "batch"),
                                 "--set", "steps=3")  # fmt: skip
    assert code == 0, err
    results = [json.loads(line) for line in printed.splitlines()]
    assert [r["name"] for r in results] == ["t2w", "00001"] and all("file" in r for r in results), printed
    assert decode(tmp_path / "batch" / "00001.mp4").shape[0] == 9
    stamp = (tmp_path / "batch" / "t2w.mp4").stat().st_mtime_ns
    gen = DiffusionGenerator.from_run(overfit)
    run_jobs(gen, jobs, tmp_path / "batch", {"steps": 3})  # resumes: nothing redone
    assert (tmp_path / "batch" / "t2w.mp4").stat().st_mtime_ns == stamp


def test_clear_errors(world, overfit, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "temperature": 1}\n')
    with pytest.raises(DataError, match="line 2: 'temperature' is not a sampling setting"):
        run_jobs(DiffusionGenerator.from_run(overfit), bad, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()  # every job is checked before any runs
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1 is not valid JSON"):
        read_jobs(bad)
    with pytest.raises(CheckpointError, match="not a finished diffusion run"):
        DiffusionGenerator.from_run(world["tokenizer"])
    with pytest.raises(ConfigError, match="data.frames must be 1 \\+ k\\*4"):
        train(merge(run_config(world, 1), {"data": {"frames": 6}}), tmp_path / "r")
    dv = tmp_path / "dv"
    CausalVideoTokenizer(TOKENIZER_PRESETS["dv4x8x8-tiny"]()).save_pretrained(dv)
    with pytest.raises(ConfigError, match="needs a continuous tokenizer"):
        train(merge(run_config(world, 1), {"data": {"tokenizer": str(dv)}}), tmp_path / "r")
    with pytest.raises(ConfigError, match="no training data"):
        train(merge(run_config(world, 1), {"data": {"shards": ""}}), tmp_path / "r")


def test_latent_cache_is_reused_and_rebuilt_when_settings_change(world, overfit):
    data = run_config(world, 1).data
    build_latent_cache(data, None, overfit / CACHE_FILE)  # valid: kept as it is (no tokenizer needed)
    cached = read_latent_cache(overfit / CACHE_FILE)
    assert cached["latents"].shape == (4, 16, 2, 4, 4) and sorted(cached["captions"])[0] == "a blob drifts, clip 0"
    assert torch.allclose(cached["fps"], torch.full((4,), 2.0))  # 8 fps / 4 frames per latent
    more = dataclasses.replace(data, cache_crops=2)
    build_latent_cache(more, load_tokenizer(world["tokenizer"]), overfit / CACHE_FILE)
    rebuilt = read_latent_cache(overfit / CACHE_FILE)
    assert rebuilt["latents"].shape[0] == 8 and torch.equal(rebuilt["latents"][:4], cached["latents"])
