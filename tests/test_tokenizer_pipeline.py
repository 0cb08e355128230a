"""`worldsmith tokenizer train|encode|decode|eval` on tiny synthetic shards and videos (the CLI sub-app)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from worldsmith.config import load_yaml
from worldsmith.data.clip import Clip
from worldsmith.data.shards import ShardWriter
from worldsmith.errors import ConfigError, DataError
from worldsmith.io.video import encode_mp4, probe
from worldsmith.tokenizer import CausalVideoTokenizer
from worldsmith.tokenizer.cli import app
from worldsmith.train import read_logs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "train.log_every=1"]


def blob_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (t, h, w, 3): a bright square moving over a colour gradient."""
    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.float32)
    base[..., 0] = np.linspace(0, 200, w)[None]
    base[..., 1] = np.linspace(0, 150, h)[:, None]
    base[..., 2] = rng.uniform(0, 255)
    frames = np.repeat(base[None], t, axis=0)
    y, x = rng.integers(0, h - 8), rng.integers(0, w - 8 - t)
    for k in range(t):
        frames[k, y : y + 8, x + k : x + k + 8] = 255
    return frames.astype(np.uint8)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    with ShardWriter(out) as writer:
        for i in range(4):
            writer.write(Clip(key=f"clip-{i}", frames=blob_frames(9, 32, 32, i), fps=8.0))
    return out


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def train_tiny(run_dir: Path, shards: Path, *extra: str) -> str:
    args = ["train", "--out", run_dir, "--data", shards, "--preset", "cv4x8x8-tiny", "--set", "train.steps=3",
            "--set", "train.batch_size=2", "--set", "data.frames=9", "--set", "data.size=32", *QUIET, *extra]
    return run(*args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shards) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    train_tiny(run_dir, shards, "--set", f"data.eval_shards={shards}", "--set", "train.eval_every=3")
    return run_dir


def test_train_writes_a_loadable_resumable_run(trained, shards):
    config = load_yaml(trained / "config.yaml")
    assert config["model"]["channels"] == [16, 32] and config["data"]["frames"] == 9
    logs = [r for r in read_logs(trained / "logs.jsonl") if "loss" in r]
    assert [r["step"] for r in logs] == [1, 2, 3] and all(np.isfinite(r["l1"]) for r in logs)
    assert "eval/psnr" in read_logs(trained / "logs.jsonl")[-1]
    model = CausalVideoTokenizer.from_pretrained(trained)
    assert model.cfg.name == "cv4x8x8" and not model.training
    assert "already complete" in train_tiny(trained, shards)  # the same command again: nothing left to do


def test_dry_run_and_config_errors(tmp_path, shards):
    out = run("train", "--out", tmp_path / "r", "--data", shards, "--preset", "dv8x8x8-tiny", "--dry-run")
    assert "kind: discrete" in out and f"shards: {shards}" in out and not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="data.frames must be 1 \\+ k\\*8"):
        run("train", "--out", tmp_path / "r", "--data", shards, "--preset", "dv8x8x8-tiny", "--set", "data.frames=13")
    with pytest.raises(ConfigError, match="no training data"):
        run("train", "--out", tmp_path / "r", "--preset", "cv4x8x8-tiny")


def test_adversarial_fine_tuning_starts_from_a_trained_run(tmp_path, trained, shards):
    train_tiny(tmp_path, shards, "--init-from", trained, "--set", "model.loss.adversarial=0.1",
               "--set", "model.loss.disc_channels=16")  # fmt: skip
    logs = [r for r in read_logs(tmp_path / "logs.jsonl") if "loss" in r]
    assert all("gan_d" in r and "gan_g" in r for r in logs)
    start = CausalVideoTokenizer.from_pretrained(trained).state_dict()
    tuned = CausalVideoTokenizer.from_pretrained(tmp_path)
    assert tuned.discriminator is not None
    # initialized from the trained run: after three small steps the weights are close to it, not to a fresh init
    w0, w1 = start["encoder.conv_in.spatial.conv.weight"], tuned.state_dict()["encoder.conv_in.spatial.conv.weight"]
    assert (w1 - w0).abs().max() < 0.05


def test_encode_decode_video_files_round_trip(tmp_path, trained):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(blob_frames(11, 40, 48, 7), videos / "a.mp4", fps=8.0)  # 11 frames: the tail is padded
    out = run("encode", trained, videos, "--out", tmp_path / "lat", "--chunk", "3")
    info = json.loads(out.splitlines()[0])
    assert info["frames"] == 11 and info["latent_shape"] == [16, 4, 5, 6]  # 1 + ceil(10/4) latent frames
    run("decode", trained, tmp_path / "lat" / "a.safetensors", "--out", tmp_path / "dec")
    meta = probe(tmp_path / "dec" / "a.mp4")
    assert (meta.num_frames, meta.height, meta.width, meta.fps) == (11, 40, 48, 8.0)
    with pytest.raises(DataError, match="no videos found"):
        run("encode", trained, tmp_path / "lat", "--out", tmp_path / "x")


def test_eval_prints_a_table_and_writes_the_side_by_side_video(tmp_path, trained, shards):
    out = run("eval", trained, shards, "--size", "32", "--frames", "9", "--video", tmp_path / "cmp.mp4")
    assert "PSNR (dB)" in out and "SSIM" in out and "Fréchet distance" in out
    meta = probe(tmp_path / "cmp.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (96, 32, 4 * 9)  # input | recon | error, 4 clips
    result = json.loads(run("eval", trained, shards, "--size", "32", "--frames", "9", "--json", "-n", "2"))
    assert result["clips"] == 2 and result["frames"] == 18 and result["fd"] >= 0 and 0 < result["ssim"] <= 1
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(blob_frames(9, 32, 32, 1), videos / "b.mp4", fps=8.0)
    result = json.loads(run("eval", trained, videos, "--json"))
    assert result["clips"] == 1 and result["frames"] == 9
    with pytest.raises(DataError, match="--size"):
        run("eval", trained, shards)


def test_reconstruction_metrics_match_direct_computation(trained, shards):
    from worldsmith.eval.metrics import psnr
    from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches
    from worldsmith.tokenizer.pipeline import TokenizerDataConfig

    model = CausalVideoTokenizer.from_pretrained(trained)
    batches = list(shard_batches(str(shards), TokenizerDataConfig(frames=9, size=32), 2))
    x = torch.cat([b["video"] for b in batches])
    expected = float(psnr(model.decode(model.encode(x)).clamp(-1, 1), x))
    assert evaluate_batches(model, batches, features=False)["psnr"] == pytest.approx(expected, abs=1e-4)
