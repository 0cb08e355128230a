"""`worldsmith train tokenizer` and `worldsmith tokenizer encode|decode|eval` on tiny synthetic shards and videos
(the family's commands mounted on a local typer app, as worldsmith/cli.py mounts them); the discriminator's place
in a run; resume after a crash; the generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from worldsmith.config import load_yaml, save_yaml
from worldsmith.data.clip import Clip
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.eval.metrics import psnr
from worldsmith.family import GenerationRequest
from worldsmith.io.video import encode_mp4, probe, to_tensor, to_uint8
from worldsmith.tokenizer import CausalVideoTokenizer, TokenizerInputError
from worldsmith.tokenizer.cli import FAMILY
from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches
from worldsmith.tokenizer.generate import TokenizerGenerator
from worldsmith.tokenizer.losses import TokenizerLoss
from worldsmith.train.progress import read_logs
from worldsmith.weights import load_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

app = typer.Typer()  # `worldsmith train tokenizer` and `worldsmith tokenizer ...`, as the root CLI mounts them
train_app = typer.Typer()
train_app.command(FAMILY.name)(FAMILY.train_command)
app.add_typer(train_app, name="train")
app.add_typer(FAMILY.commands, name=FAMILY.name)

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
    args = ["train", "tokenizer", "--out", run_dir, "--data", shards, "--preset", "cv4x8x8-tiny", "--set", "train.steps=3",
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
    assert "loss" not in config["model"] and config["loss"]["l1"] == 1.0  # the objective is its own section
    logs = [r for r in read_logs(trained / "logs.jsonl") if "loss" in r]
    assert [r["step"] for r in logs] == [1, 2, 3] and all(np.isfinite(r["l1"]) for r in logs)
    assert "eval/psnr" in read_logs(trained / "logs.jsonl")[-1]
    model = CausalVideoTokenizer.from_pretrained(trained)
    assert model.cfg.name == "cv4x8x8" and not model.training
    assert "already complete" in train_tiny(trained, shards)  # the same command again: nothing left to do


def test_dry_run_and_config_errors(tmp_path, shards):
    out = run("train", "tokenizer", "--out", tmp_path / "r", "--data", shards, "--preset", "dv8x8x8-tiny", "--dry-run",
              "--set", "loss.l2=1")  # fmt: skip
    assert "kind: discrete" in out and f"shards: {shards}" in out and not (tmp_path / "r").exists()
    assert yaml.safe_load(out)["loss"]["l2"] == 1.0
    out = run("train", "tokenizer", "--out", tmp_path / "r", "--data", shards, "--dry-run")
    assert "channels: [32, 64]" in out  # the default preset, cv4x8x8-small
    with pytest.raises(ConfigError, match="data.frames must be 1 \\+ k\\*8"):
        run("train", "tokenizer", "--out", tmp_path / "r", "--data", shards, "--preset", "dv8x8x8-tiny",
            "--set", "data.frames=13")  # fmt: skip
    with pytest.raises(ConfigError, match="no training data"):
        run("train", "tokenizer", "--out", tmp_path / "r", "--preset", "cv4x8x8-tiny")
    with pytest.raises(ConfigError, match="unknown tokenizer preset 'cv5'"):
        run("train", "tokenizer", "--out", tmp_path / "r", "--data", shards, "--preset", "cv5")
    with pytest.raises(ConfigError, match="unknown config key 'model.loss'"):  # the loss left the model section
        run("train", "tokenizer", "--out", tmp_path / "r", "--data", shards, "--set", "model.loss.l2=1")


ADVERSARIAL = ("--set", "loss.adversarial=0.1", "--set", "loss.disc_channels=16")


def test_adversarial_fine_tuning_keeps_the_discriminator_out_of_the_model(tmp_path, trained, shards):
    train_tiny(tmp_path, shards, "--init-from", trained, *ADVERSARIAL)
    logs = [r for r in read_logs(tmp_path / "logs.jsonl") if "loss" in r]
    assert all("gan_d" in r and "gan_g" in r for r in logs)
    start = CausalVideoTokenizer.from_pretrained(trained).state_dict()
    tuned = CausalVideoTokenizer.from_pretrained(tmp_path)
    # initialized from the trained run: after three small steps the weights are close to it, not to a fresh init
    w0, w1 = start["encoder.conv_in.spatial.conv.weight"], tuned.state_dict()["encoder.conv_in.spatial.conv.weight"]
    assert (w1 - w0).abs().max() < 0.05
    # the discriminator is the loss's: not in the weights, the raw weights, the EMA or the tokenizer's optimizer...
    state = tmp_path / "train_state"
    for name in ("model.safetensors", "train_state/model.safetensors", "train_state/ema.safetensors",
                 "train_state/optimizer.safetensors"):  # fmt: skip
        keys = load_tensors(tmp_path / name).keys()
        assert keys and not any("discriminator" in k for k in keys), name
    assert load_tensors(tmp_path / "model.safetensors").keys() == tuned.state_dict().keys()
    # ...but in train_state/ with its own optimizer (and the frozen perceptual net nowhere)
    disc = TokenizerLoss(FAMILY.resolve("cv4x8x8-tiny", overrides=ADVERSARIAL[1::2]).loss).discriminator
    saved = load_tensors(state / "loss.safetensors")
    assert sorted(saved) == sorted(f"discriminator.{k}" for k in disc.state_dict())
    moments = load_tensors(state / "loss_optimizer.safetensors")
    assert moments and all("discriminator." in k for k in moments)
    assert (state / "loss_optimizer.json").is_file()


def test_a_crashed_adversarial_run_resumes_bit_exactly(tmp_path, shards, monkeypatch):
    """The run crashes in step 4 (last checkpoint: step 3, in the middle of an epoch of two batches) and is resumed
    by the same command; every weight, EMA, optimizer moment (the discriminator's included) and log line equals an
    uninterrupted run's."""
    # with the perceptual term, whose random frame choice draws from the global RNG: the ClipLoader's workers'
    # base seed comes from its own generator, so resuming leaves the global RNG where the uninterrupted run had it
    args = (*ADVERSARIAL, "--set", "loss.perceptual=0.1", "--set", "loss.perceptual_frames=2", "--set", "loss.l2=1",
            "--set", "train.steps=5", "--set", "train.ckpt_every=3")
    train_tiny(tmp_path / "whole", shards, *args)
    calls, forward = [0], TokenizerLoss.forward

    def crash_in_step_4(self, model, batch):
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("power cut")
        return forward(self, model, batch)

    monkeypatch.setattr(TokenizerLoss, "forward", crash_in_step_4)
    with pytest.raises(RuntimeError, match="power cut"):
        train_tiny(tmp_path / "crashed", shards, *args)
    monkeypatch.setattr(TokenizerLoss, "forward", forward)
    assert json.loads((tmp_path / "crashed" / "train_state" / "state.json").read_text())["step"] == 3
    train_tiny(tmp_path / "crashed", shards, *args)
    keys = ("step", "loss", "l1", "gan_g", "gan_d", "grad_norm")
    logs = [[{k: r[k] for k in keys} for r in read_logs(d / "logs.jsonl") if "loss" in r]
            for d in (tmp_path / "whole", tmp_path / "crashed")]  # fmt: skip
    assert [r["step"] for r in logs[0]] == [1, 2, 3, 4, 5] and logs[0] == logs[1]  # ==, not approx
    for name in ("model.safetensors", "train_state/model.safetensors", "train_state/ema.safetensors",
                 "train_state/optimizer.safetensors", "train_state/loss.safetensors",
                 "train_state/loss_optimizer.safetensors"):  # fmt: skip
        a, b = load_tensors(tmp_path / "whole" / name), load_tensors(tmp_path / "crashed" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_an_old_run_is_not_continued_in_place_but_seeds_a_new_one(tmp_path, trained, shards):
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    config = load_yaml(old / "config.yaml")
    config["model"]["loss"] = config.pop("loss")  # the layout of runs written before the loss left the model
    save_yaml(config, old / "config.yaml")
    with pytest.raises(ConfigError, match="older worldsmith .* --init-from") as info:
        train_tiny(old, shards)
    assert str(info.value).count(". ") == 0  # one sentence
    assert CausalVideoTokenizer.from_pretrained(old).cfg == CausalVideoTokenizer.from_pretrained(trained).cfg
    train_tiny(tmp_path / "new", shards, "--init-from", old)
    with pytest.raises(CheckpointError, match="--init-from needs a run of the same architecture"):
        train_tiny(tmp_path / "other", shards, "--init-from", old, "--set", "model.latent_channels=8")


def test_encode_decode_video_files_round_trip(tmp_path, trained):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(blob_frames(11, 40, 48, 7), videos / "a.mp4", fps=8.0)  # 11 frames: the tail is padded
    out = run("tokenizer", "encode", trained, videos, "--out", tmp_path / "lat", "--chunk", "3")
    info = json.loads(out.splitlines()[0])
    assert info["frames"] == 11 and info["latent_shape"] == [16, 4, 5, 6]  # 1 + ceil(10/4) latent frames
    run("tokenizer", "decode", trained, tmp_path / "lat" / "a.safetensors", "--out", tmp_path / "dec")
    meta = probe(tmp_path / "dec" / "a.mp4")
    assert (meta.num_frames, meta.height, meta.width, meta.fps) == (11, 40, 48, 8.0)
    with pytest.raises(DataError, match="no videos found"):
        run("tokenizer", "encode", trained, tmp_path / "lat", "--out", tmp_path / "x")


def test_bf16_encoding_stores_float32_latents_close_to_fp32_and_a_bad_precision_is_refused(tmp_path, trained):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(blob_frames(9, 32, 32, 3), videos / "a.mp4", fps=8.0)
    latents = {}
    for precision in ("fp32", "bf16"):
        run("tokenizer", "encode", trained, videos, "--out", tmp_path / precision, "--precision", precision)
        latents[precision] = load_tensors(tmp_path / precision / "a.safetensors")["latents"]
        run("tokenizer", "decode", trained, tmp_path / precision / "a.safetensors", "--out", tmp_path / f"{precision}-dec",
            "--precision", precision)  # fmt: skip
        assert probe(tmp_path / f"{precision}-dec" / "a.mp4").num_frames == 9
    a, b = latents["fp32"], latents["bf16"]
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
    assert 0 < (a - b).abs().max() < 0.05 * a.abs().max()  # bf16 arithmetic really ran, and stays close
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16"):
        run("tokenizer", "encode", trained, videos, "--out", tmp_path / "x", "--precision", "fp16")


def test_a_loaded_tokenizer_has_channels_last_conv_weights_and_codes_exactly_as_before(tmp_path, trained):
    loaded = CausalVideoTokenizer.from_pretrained(trained)
    plain = CausalVideoTokenizer(loaded.cfg).eval()
    plain.load_state_dict(load_tensors(trained / "model.safetensors"))
    spatial = loaded.encoder.conv_in.spatial.conv.weight
    temporal = loaded.encoder.conv_in.temporal.weight  # (Cout, Cin, k) stored as (Cout, k, Cin)
    assert spatial.is_contiguous(memory_format=torch.channels_last) and not spatial.is_contiguous()
    assert temporal.stride(1) == 1 and not plain.encoder.conv_in.temporal.weight.stride(1) == 1
    x = to_tensor(blob_frames(9, 32, 32, 5))[None]
    z = loaded.encode(x)
    assert torch.allclose(z, plain.encode(x), atol=1e-5) and torch.allclose(loaded.decode(z), plain.decode(z), atol=1e-5)
    loaded.save_pretrained(tmp_path / "again")  # checkpoints are written contiguous
    again = load_tensors(tmp_path / "again" / "model.safetensors")
    assert all(torch.equal(again[k], v) for k, v in plain.state_dict().items())


def test_eval_prints_a_table_and_writes_the_side_by_side_video(tmp_path, trained, shards):
    out = run("tokenizer", "eval", trained, shards, "--size", "32", "--frames", "9", "--video", tmp_path / "cmp.mp4")
    assert "PSNR (dB)" in out and "SSIM" in out and "Fréchet distance" in out
    meta = probe(tmp_path / "cmp.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (96, 32, 4 * 9)  # input | recon | error, 4 clips
    result = json.loads(run("tokenizer", "eval", trained, shards, "--size", "32", "--frames", "9", "--json", "-n", "2"))
    assert result["clips"] == 2 and result["frames"] == 18 and result["fd"] >= 0 and 0 < result["ssim"] <= 1
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(blob_frames(9, 32, 32, 1), videos / "b.mp4", fps=8.0)
    result = json.loads(run("tokenizer", "eval", trained, videos, "--json"))
    assert result["clips"] == 1 and result["frames"] == 9
    with pytest.raises(DataError, match="--size"):
        run("tokenizer", "eval", trained, shards)


def test_reconstruction_metrics_match_direct_computation(trained, shards):
    model = CausalVideoTokenizer.from_pretrained(trained)
    batches = list(shard_batches(str(shards), 9, 32, 2))
    x = torch.cat([b["video"] for b in batches])
    expected = float(psnr(model.decode(model.encode(x)).clamp(-1, 1), x))
    assert evaluate_batches(model, batches, features=False)["psnr"] == pytest.approx(expected, abs=1e-4)


def test_generator_returns_the_reconstruction_of_any_number_of_frames(trained):
    generator = TokenizerGenerator.from_run(trained)
    assert generator.fps is None and generator.Sampling() is not None
    model = CausalVideoTokenizer.from_pretrained(trained)
    frames = blob_frames(9, 32, 32, 3)
    out = generator.generate(GenerationRequest(video=frames), generator.Sampling())
    expected = to_uint8(model.decode(model.encode(to_tensor(frames)[None]))[0])
    assert out.dtype == np.uint8 and out.shape == frames.shape and np.array_equal(out, expected)
    odd = generator.generate(GenerationRequest(video=frames[:7]))  # 7 frames: padded inside the stream, trimmed
    assert odd.shape == (7, 32, 32, 3) and np.array_equal(odd[:5], out[:5])  # causal: frames 0..4 unchanged
    with pytest.raises(TokenizerInputError, match="pass one") as info:
        generator.generate(GenerationRequest(prompt="a robot arm"))
    assert str(info.value).count(". ") == 0
    with pytest.raises(TokenizerInputError, match="not divisible by"):
        generator.generate(GenerationRequest(video=blob_frames(9, 36, 32, 3)))
