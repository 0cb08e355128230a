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
from helpers import fit
from typer.testing import CliRunner

from worldsmith.config import load_yaml, preset
from worldsmith.data.clip import Clip
from worldsmith.data.shards import ShardWriter
from worldsmith.diffusion.cli import app
from worldsmith.diffusion.generation import WorldGenerator, read_jobs
from worldsmith.diffusion.pipeline import resolve_run_config, train_diffusion
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.eval.metrics import psnr
from worldsmith.io.video import decode, encode_mp4, to_tensor, to_uint8
from worldsmith.tokenizer import CausalVideoTokenizer
from worldsmith.tokenizer import presets as _tok_presets  # noqa: F401
from worldsmith.train import read_logs

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
    """4 clips as shards and a tiny tokenizer trained on them (~30 dB)."""
    root = tmp_path_factory.mktemp("diffusion")
    clips = blob_clips()
    with ShardWriter(root / "shards") as writer:
        for i, frames in enumerate(clips):
            writer.write(Clip(key=f"clip-{i}", frames=frames, fps=8.0, caption=f"a blob drifts, clip {i}"))
    torch.manual_seed(0)
    cfg = preset("tokenizer", "cv4x8x8-tiny")
    tok = CausalVideoTokenizer(dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, perceptual=0.0)))
    video = to_tensor(clips)  # (4, 3, T, H, W)
    fit(tok, {"video": video}, steps=250, lr=3e-3)
    tok.eval().save_pretrained(root / "tokenizer")
    return {"root": root, "clips": clips, "shards": root / "shards", "tokenizer": root / "tokenizer",
            "recon_psnr": float(psnr(tok.decode(tok.encode(video)), video))}  # fmt: skip


def run_config(world: dict, steps: int, **model):
    cfg = resolve_run_config("tiny", data=str(world["shards"]), tokenizer=str(world["tokenizer"]))
    from worldsmith.config import merge

    changes = {"model": model, "data": {"frames": FRAMES, "size": SIZE, "cache_latents": True, "cache_crops": 1},
               "train": {**QUIET["train"], "steps": steps, "batch_size": 4, "lr": 4e-3, "warmup_steps": 0,
                         "ema_decay": 0.0, "ckpt_every": steps}}  # fmt: skip
    return merge(cfg, changes)


@pytest.fixture(scope="module")
def overfit(world) -> Path:
    run_dir = world["root"] / "overfit"
    cfg = run_config(world, 800, video2world_prob=1.0, max_cond_latents=1, caption_dropout=0.0)
    train_diffusion(cfg, run_dir, progress=False)
    return run_dir


def test_tiny_model_overfits_four_clips_video2world_above_25_db(world, overfit):
    gen = WorldGenerator.from_run(overfit)
    truth = world["clips"]
    scores = []
    for i in range(4):
        out = gen.video2world(truth[i, :1], f"a blob drifts, clip {i}", steps=10, seed=i)  # from the first frame
        assert out.shape == truth[i].shape and out.dtype == np.uint8
        assert np.array_equal(out[0], truth[i, 0])  # the given frame comes back unchanged
        scores.append(float(psnr(out[1:], truth[i, 1:])))
    print(f"Video2World PSNR per clip {[round(v, 2) for v in scores]} dB; tokenizer alone {world['recon_psnr']:.2f} dB")
    assert min(scores) >= 25.0, f"Video2World PSNR per clip {scores} (tokenizer alone: {world['recon_psnr']:.1f} dB)"
    info = json.loads((overfit / "generation.json").read_text())
    assert info["frames"] == FRAMES and info["size"] == SIZE and info["fps"] == 8.0


def test_long_videos_unseen_sizes_text2world_and_determinism(world, overfit):
    gen = WorldGenerator.from_run(overfit)
    first = world["clips"][0, :1]
    long = gen.video2world(first, "a blob drifts", frames=13, steps=4, seed=1)  # 3 chunks of 5 frames
    assert long.shape == (13, SIZE, SIZE, 3) and np.array_equal(long[0], first[0])
    assert np.array_equal(long, gen.video2world(first, "a blob drifts", frames=13, steps=4, seed=1))
    wide = gen.text2world("a blob drifts", size=(48, 64), steps=3, guidance=2.0, negative_prompt="static", seed=0)
    assert wide.shape == (FRAMES, 48, 64, 3)  # a size the model never saw
    with pytest.raises(ConfigError, match="multiple of 16"):
        gen.text2world("x", size=(40, 40), steps=2)


def test_uncached_training_resumes_and_the_run_is_complete(world, tmp_path):
    cfg = run_config(world, 2)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache_latents=False, stats_batches=1),
                              train=dataclasses.replace(cfg.train, sample_every=2, log_every=1))  # fmt: skip
    first = train_diffusion(cfg, tmp_path / "run", progress=False)
    assert first["steps"] == 2 and first["resumed_from"] is None and "sample/latent_mse" in first["last"]
    assert decode(tmp_path / "run" / "samples" / "step_00000002" / "preview.mp4").shape == (FRAMES, SIZE, 4 * 2 * SIZE, 3)
    more = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=3, ckpt_every=3))
    again = train_diffusion(more, tmp_path / "run", progress=False)
    assert again["resumed_from"] == 2 and [r["step"] for r in read_logs(tmp_path / "run" / "logs.jsonl")][-1] == 3
    saved = load_yaml(tmp_path / "run" / "config.yaml")
    assert saved["model"]["dit"]["latent_channels"] == 16 and saved["model_class"].endswith("DiffusionWorldModel")
    assert train_diffusion(more, tmp_path / "run", progress=False)["already_complete"]


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_generate_and_batch_from_jsonl(world, overfit, tmp_path):
    dry = invoke("train", "--out", tmp_path / "r", "--data", world["shards"], "--tokenizer", world["tokenizer"],
                 "--preset", "tiny", "--set", "train.steps=7", "--dry-run")  # fmt: skip
    assert "steps: 7" in dry and "tokenizer:" in dry
    image = tmp_path / "first.png"
    encode_mp4(world["clips"][1, :1], tmp_path / "first.mp4", fps=8.0)
    from PIL import Image

    Image.fromarray(world["clips"][1, 0]).save(image)
    out = tmp_path / "v2w.mp4"
    invoke("generate", "--model", overfit, "--prompt", "a blob drifts, clip 1", "--input", image, "--frames", "9",
           "--steps", "4", "--seed", "3", "--out", out)  # fmt: skip
    frames = decode(out)
    assert frames.shape == (9, SIZE, SIZE, 3)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a blob", "name": "t2w", "seed": 1}) + "\n\n"
                    + json.dumps({"prompt": "a blob", "input": str(tmp_path / "first.mp4"), "frames": 9}) + "\n")  # fmt: skip
    lines = invoke("batch", jobs, "--model", overfit, "--out", tmp_path / "batch", "--steps", "3").splitlines()
    names = [json.loads(line)["name"] for line in lines]
    assert names == ["t2w", "00001"] and decode(tmp_path / "batch" / "00001.mp4").shape[0] == 9
    stamp = (tmp_path / "batch" / "t2w.mp4").stat().st_mtime_ns
    invoke("batch", jobs, "--model", overfit, "--out", tmp_path / "batch", "--steps", "3")  # resumes: nothing redone
    assert (tmp_path / "batch" / "t2w.mp4").stat().st_mtime_ns == stamp


def test_clear_errors(world, overfit, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "temperature": 1}\n')
    with pytest.raises(DataError, match="line 2 has unknown keys"):
        read_jobs(bad)
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1 is not valid JSON"):
        read_jobs(bad)
    with pytest.raises(CheckpointError, match="not a finished diffusion run"):
        WorldGenerator.from_run(world["tokenizer"])
    with pytest.raises(ConfigError, match="data.frames must be 1 \\+ k\\*4"):
        train_diffusion(dataclasses.replace(run_config(world, 1), data=dataclasses.replace(run_config(world, 1).data, frames=6)),
                        tmp_path / "r", progress=False)  # fmt: skip
    dv = tmp_path / "dv"
    CausalVideoTokenizer(preset("tokenizer", "dv4x8x8-tiny")).save_pretrained(dv)
    with pytest.raises(ConfigError, match="needs a continuous tokenizer"):
        train_diffusion(run_config(world, 1), tmp_path / "r", tokenizer=dv, progress=False)
    with pytest.raises(ConfigError, match="no training data"):
        train_diffusion(resolve_run_config("tiny", tokenizer=str(world["tokenizer"])), tmp_path / "r")


def test_latent_cache_is_reused_and_rebuilt_when_settings_change(world, overfit):
    from worldsmith.diffusion.pipeline import CACHE_FILE, build_latent_cache, load_tokenizer

    data = run_config(world, 1).data
    cached = build_latent_cache(data, None, overfit / CACHE_FILE)  # valid: read back without the tokenizer
    assert cached["latents"].shape == (4, 16, 2, 4, 4) and sorted(cached["captions"])[0] == "a blob drifts, clip 0"
    assert torch.allclose(cached["fps"], torch.full((4,), 2.0))  # 8 fps / 4 frames per latent
    more = dataclasses.replace(data, cache_crops=2)
    rebuilt = build_latent_cache(more, load_tokenizer(world["tokenizer"]), overfit / CACHE_FILE)
    assert rebuilt["latents"].shape[0] == 8 and torch.equal(rebuilt["latents"][:4], cached["latents"])
