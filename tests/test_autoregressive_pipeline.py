"""The autoregressive pipeline end to end on tiny arm-world clips with a briefly trained DV tokenizer.

One module fixture simulates 4 arm episodes, trains a dv4x8x8 tokenizer for a few seconds, tokenizes the clips and
overfits a narrowed tiny GPT on them through ``worldsmith train autoregressive``; the tests then regenerate the clips from
their first frame, swap prompts, reload the weights, generate videos from files and score rollouts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fit, run_cli
from typer.testing import CliRunner

from worldsmith import cli

from worldsmith.autoregressive.config import PRESETS, SamplingConfig
from worldsmith.autoregressive.data import TokenBatches, load_token_set
from worldsmith.autoregressive.evaluation import score_rollouts
from worldsmith.autoregressive.generate import ARGenerator, encode_prompts
from worldsmith.autoregressive.losses import next_token_loss
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.autoregressive.rollout import generate_tokens, stream_video
from worldsmith.conditioning.text import TextEmbedding
from worldsmith.config import load_yaml
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import CheckpointError, DataError
from worldsmith.nn.lora import is_adapter
from worldsmith.family import GenerationRequest
from worldsmith.io.video import decode, encode_mp4, probe, to_tensor
from worldsmith.tokenizer.config import PRESETS as TOKENIZER_PRESETS
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.train.progress import read_logs
from worldsmith.weights import load_tensors
from worldsmith.worlds.generate import simulate

ROOT = Path(__file__).resolve().parents[1]
GREEDY = SamplingConfig(temperature=0.0)
TRAIN_ARGS = ["--preset", "tiny", "--set", "model.dim=64", "--set", "model.depth=2", "--set", "model.max_frames=5",
              "--set", "train.steps=150", "--set", "train.batch_size=4", "--set", "train.lr=5e-3",
              "--set", "train.warmup_steps=10", "--set", "train.weight_decay=0", "--set", "train.ema_decay=0",
              "--set", "train.log_every=50", "--set", "train.ckpt_every=1000", "--set", "train.progress=false",
              "--set", "train.tensorboard=false", "--set", "data.caption_dropout=0"]  # fmt: skip


@pytest.fixture
def run(capsys):
    """``worldsmith ARGS`` in-process: its stdout; a failure raises its one-line error as an AssertionError."""

    def call(*args) -> str:
        code, out, err = run_cli(capsys, *(str(a) for a in args))
        assert code == 0, err
        return out

    return call


def cli_error(capsys, *args) -> str:
    code, _, err = run_cli(capsys, *(str(a) for a in args))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def train_tokenizer(shards: Path, out: Path, steps: int = 40) -> None:
    """A dv4x8x8-tiny tokenizer fitted to the clips for a few seconds (pixel L1 only): distinct, stable tokens.
    Fitted to their first 9 frames (of 17), which is faster and tokenizes them as well (all tokens regenerated)."""
    torch.manual_seed(0)
    model = CausalVideoTokenizer(TOKENIZER_PRESETS["dv4x8x8-tiny"]())
    video = torch.stack([to_tensor(c.frames[:9]) for s in list_shards(str(shards)) for c in iter_shard(s)])
    fit(model, TokenizerLoss(TokenizerLossConfig(perceptual=0.0)), {"video": video}, steps=steps, lr=3e-3)
    model.save_pretrained(out)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is fastest and leaves the other core to the rest
    root = tmp_path_factory.mktemp("ar")
    simulate("arm", episodes=4, frames=17, size=64, fps=5.0, out=root / "shards", seed=0, workers=1, progress=False)
    train_tokenizer(root / "shards", root / "tok")
    output = CliRunner().invoke(cli.app, ["train", "autoregressive", "--out", str(root / "run"), "--data",
                                          str(root / "shards"), "--tokenizer", str(root / "tok"), *TRAIN_ARGS])
    assert output.exit_code == 0, output.output
    summary = json.loads(output.stdout)
    yield {"root": root, "shards": root / "shards", "tok": root / "tok", "run": root / "run", "summary": summary}
    torch.set_num_threads(threads)


def clips_and_tokens(world) -> list:
    return load_token_set(world["run"] / "tokens")[1]


def test_training_run_layout_and_resume(world, run):
    run_dir, summary = world["run"], world["summary"]
    assert summary["steps"] == 150 and summary["clips"] == 4
    config = load_yaml(run_dir / "config.yaml")
    assert config["model_class"] == "worldsmith.autoregressive.model:VideoGPT"
    assert config["model"]["vocab_size"] == 1000 and config["model"]["grid"] == [8, 8]  # from the DV tokenizer
    assert Path(config["tokenizer"]) == world["tok"].resolve() and config["data"]["size"] == 64
    logs = read_logs(run_dir / "logs.jsonl")
    assert logs[-1]["step"] == 150 and logs[-1]["ce"] < 0.2 * logs[0]["ce"] and "z_loss" in logs[-1]
    index = json.loads((run_dir / "tokens" / "tokens.json").read_text())
    assert index["tokenizer_name"] == "dv4x8x8" and index["clips"] == 4
    again = run("train", "autoregressive", "--out", run_dir, "--data", world["shards"], "--tokenizer", world["tok"], *TRAIN_ARGS)
    assert "already complete" in again and json.loads(again[again.index("{") :])["already_complete"]


def test_overfit_model_regenerates_clips_from_their_first_frame(world):
    model = VideoGPT.from_pretrained(world["run"])
    total = correct = moved = moved_correct = 0
    for clip in clips_and_tokens(world):
        truth = clip.tokens.long()[None]  # (1, 5, 8, 8)
        text, mask = encode_prompts([clip.caption])
        out = generate_tokens(model, truth[:, :1], truth.shape[1] - 1, text=text, text_mask=mask, sampling=GREEDY)
        generated = torch.stack(list(out), dim=1)
        hit = generated == truth[:, 1:]
        changed = truth[:, 1:] != truth[:, :-1]  # tokens that differ from the frame before: copying cannot win
        total, correct = total + hit.numel(), correct + int(hit.sum())
        moved, moved_correct = moved + int(changed.sum()), moved_correct + int(hit[changed].sum())
    print(f"token accuracy {correct / total:.3f}, on the {moved} tokens that change {moved_correct / moved:.3f}")
    assert correct / total >= 0.95
    assert moved >= 20 and moved_correct / moved >= 0.9


def test_prompt_changes_the_rollout(world):
    model = VideoGPT.from_pretrained(world["run"])
    clips = clips_and_tokens(world)
    first = clips[0].tokens.long()[None, :1]
    outputs = []
    for caption in {c.caption for c in clips} | {""}:
        text, mask = encode_prompts([caption])
        g = torch.Generator().manual_seed(0)
        outputs.append(torch.stack(list(generate_tokens(model, first, 2, text=text, text_mask=mask, generator=g)), 1))
    assert len({tuple(o.flatten().tolist()) for o in outputs}) > 1
    # and at the level of logits: every prompt gives its own next-token distribution
    logits, bos = [], torch.full((1, 1), model.bos)
    for caption in sorted({c.caption for c in clips}):
        text, mask = encode_prompts([caption])
        with torch.no_grad():
            logits.append(model(bos, model.context(text, mask)))
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(logits, logits[1:]))


def test_save_load_round_trip(world, tmp_path):
    model = VideoGPT.from_pretrained(world["run"])
    model.save_pretrained(tmp_path / "copy")
    again = VideoGPT.from_pretrained(tmp_path / "copy")
    tokens = clips_and_tokens(world)[1].tokens.long()[None]
    batch = {"tokens": tokens}
    torch.testing.assert_close(next_token_loss(model, batch)[0], next_token_loss(again, batch)[0], rtol=0, atol=0)
    raw = VideoGPT.from_pretrained(world["run"], ema=False)  # train_state/ weights (no EMA in this run: the same)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), raw.state_dict().values()))
    with pytest.raises(CheckpointError, match="no config.yaml"):
        VideoGPT.from_pretrained(tmp_path / "nowhere")
    wrong = PRESETS["tiny"]()  # other widths than the saved run
    VideoGPT(dataclasses.replace(wrong, vocab_size=1000)).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").replace(tmp_path / "copy" / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not fit"):
        VideoGPT.from_pretrained(tmp_path / "copy")


def test_stream_video_yields_decoded_frames_as_they_come(world):
    loaded = ARGenerator.from_run(world["run"])
    clip = clips_and_tokens(world)[0]
    frames = next(iter_shard(list_shards(str(world["shards"]))[0])).frames
    context = to_tensor(frames[:1])[None]  # (1, 3, 1, 64, 64)
    text, mask = encode_prompts([clip.caption])
    stream = stream_video(loaded.model, loaded.tokenizer, context, 6, text=text, text_mask=mask, sampling=GREEDY)
    first = next(stream)  # decoded before the rest is sampled
    rest = list(stream)
    assert first.shape == (1, 3, 64, 64) and len(rest) == 5
    # the frames decode the regenerated tokens: equal to decoding the true tokens (the model has memorised them)
    truth = loaded.tokenizer.decode(clip.tokens.long()[None, :3])[:, :, 1:7]  # (1, 3, 6, 64, 64)
    got = torch.stack([first, *rest], dim=2)
    assert (got - truth.clamp(-1, 1)).abs().mean() < 0.02


def test_generator_and_cli_write_context_and_rollout(world, tmp_path, run, capsys):
    frames = next(iter_shard(list_shards(str(world["shards"]))[0])).frames
    gen = ARGenerator.from_run(world["run"])
    request = GenerationRequest(prompt="The robot arm moves.", video=frames[:7], frames=11, seed=1)
    sampling = SamplingConfig(top_k=20, top_p=0.9, temperature=0.9)
    video = gen.generate(request, sampling)
    assert video.shape == (5 + 6, 64, 64, 3)  # context cut to 1 + 4k = 5 frames, then 6 new ones
    assert np.array_equal(video, gen.generate(request, sampling))  # a seed gives one video
    encode_mp4(frames[:1], tmp_path / "in.mp4", fps=5.0)
    out_cli = tmp_path / "cli.mp4"
    printed = run("generate", "--model", world["run"], "--input", tmp_path / "in.mp4", "--out", out_cli, "--frames",
                  "4", "--temperature", "0")  # fmt: skip
    assert Path(printed.strip()) == out_cli and decode(out_cli).shape == (4, 64, 64, 3)
    assert probe(out_cli).fps == pytest.approx(5.0)  # the input's frame rate
    assert "top_p must be in (0, 1]" in cli_error(capsys, "generate", "--model", world["run"], "--input",
                                                  tmp_path / "in.mp4", "--top-p", "0", "--out", tmp_path / "x.mp4")
    assert "continues a video" in cli_error(capsys, "generate", "--model", world["run"], "--out", tmp_path / "x.mp4")


def test_score_rollouts_against_the_true_continuation(world, run):
    result = score_rollouts(world["run"], world["tok"], world["shards"], context_frames=1, frames=8,
                            sampling=GREEDY, max_clips=4)  # fmt: skip
    assert result["clips"] == 4 and len(result["psnr_per_step"]) == 8
    assert np.isfinite(result["psnr"]) and 0 < result["ssim"] <= 1 and result["fd"] >= 0
    assert set(result["copy_last"]) >= {"psnr", "ssim", "fd"}
    assert result["psnr"] > 15  # memorised clips come back close to the truth (tokenizer quality bounds it)
    with pytest.raises(DataError, match="no clip"):
        score_rollouts(world["run"], None, world["shards"], context_frames=10, frames=10)
    printed = json.loads(run("autoregressive", "score", world["run"], world["shards"], "--frames", "4", "--max-clips", "2", "--top-k", "5"))
    assert printed["clips"] == 2 and printed["frames"] == 4 and printed["ssim"] > 0


def test_batches_split_across_ranks_and_drop_captions(world):
    clips = clips_and_tokens(world)
    seen = []
    for rank in (0, 1):
        data = TokenBatches(clips, 3, 2, seed=0, rank=rank, world=2)
        batches = list(data(0))
        assert len(batches) == 1 and batches[0]["tokens"].shape == (2, 3, 8, 8)
        seen += [b["tokens"] for b in batches]
    assert not torch.equal(seen[0], seen[1])
    encoder = type("Encoder", (), {"encode": lambda self, p: _embedding(len(p))})()
    dropped = next(iter(TokenBatches(clips, 3, 4, seed=0, caption_dropout=1.0, text_encoder=encoder)(0)))
    assert not dropped["text_mask"].any()
    with pytest.raises(DataError, match="latent frames"):
        TokenBatches(clips, 9, 2)


def _embedding(n: int):
    return TextEmbedding(torch.zeros(n, 3, 384), torch.ones(n, 3, dtype=torch.bool), torch.zeros(n, 384))


def test_tokenize_command_writes_a_token_set(world, tmp_path, run):
    printed = json.loads(run("autoregressive", "tokenize", world["tok"], world["shards"], "--out", tmp_path / "tokens", "--size", "32"))
    assert printed["clips"] == 4 and printed["grid"] == [4, 4] and printed["vocab_size"] == 1000
    index, clips = load_token_set(tmp_path / "tokens")
    assert clips[0].tokens.shape == (5, 4, 4) and clips[0].tokens.dtype == torch.int32 and clips[0].caption
    before = (tmp_path / "tokens" / index["files"][0]).stat().st_mtime_ns
    run("autoregressive", "tokenize", world["tok"], world["shards"], "--out", tmp_path / "tokens", "--size", "32")  # resumes: no rewrite
    assert (tmp_path / "tokens" / index["files"][0]).stat().st_mtime_ns == before


def test_user_errors_are_one_sentence(world, tmp_path, capsys):
    assert "no training data" in cli_error(capsys, "train", "autoregressive", "--out", tmp_path / "r")
    assert "tokenizer" in cli_error(capsys, "train", "autoregressive", "--out", tmp_path / "r", "--data", world["shards"])
    assert "not a token set" in cli_error(capsys, "train", "autoregressive", "--out", tmp_path / "r", "--tokens", tmp_path)
    torch.manual_seed(0)
    CausalVideoTokenizer(TOKENIZER_PRESETS["cv4x8x8-tiny"]()).save_pretrained(tmp_path / "cv")
    assert "continuous" in cli_error(capsys, "autoregressive", "tokenize", tmp_path / "cv", world["shards"], "--out",
                                     tmp_path / "t")  # fmt: skip
    assert "other settings" in cli_error(capsys, "autoregressive", "tokenize", world["tok"], world["shards"], "--out",
                                         world["run"] / "tokens", "--size", "32")  # fmt: skip


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")  # fmt: skip
@pytest.mark.slow
def test_two_process_ddp_training(world, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "worldsmith.cli", "train", "autoregressive", "--out", str(tmp_path / "ddp"), "--data", str(world["shards"]),
           "--tokenizer", str(world["tok"]), "--set", "train.steps=2", "--set", "train.batch_size=2", "--set",
           "data.caption_dropout=1", "--set", "model.dim=48", "--set", "model.depth=1", "--set", "model.max_frames=5",
           "--set", "train.progress=false", "--set", "train.tensorboard=false", "--set",
           "train.log_every=1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = read_logs(tmp_path / "ddp" / "logs.jsonl")
    assert [r["step"] for r in logs] == [1, 2] and all(np.isfinite(r["loss"]) for r in logs)
    assert json.loads((tmp_path / "ddp" / "train_state" / "state.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "ddp" / "tokens" / "tokens.json").read_text())["clips"] == 4  # rank 0 tokenized


def test_lora_action_posttraining_of_a_gpt_saves_only_adapters_and_loads_on_its_base(world, run, tmp_path):
    out = tmp_path / "lora"
    run("posttrain", "action", "--from", world["run"], "--data", world["shards"], "--out", out, "--lora", "2",
        "--set", "train.steps=3", "--set", "train.progress=false",
        "--set", "train.tensorboard=false", "--set", "train.log_every=1")  # fmt: skip
    base, model = VideoGPT.from_pretrained(world["run"]), VideoGPT.from_pretrained(out)
    assert model.cfg.lora.rank == 2 and model.cfg.action_dim == 7
    saved = set(load_tensors(out / "model.safetensors"))
    assert saved and all(is_adapter(k) or k.startswith("embedders.") for k in saved)  # no base weight
    trained = {n for n, p in VideoGPT(model.cfg).named_parameters() if p.requires_grad}
    assert saved == trained | {"embedders.0.scale"}
    for name, p in base.state_dict().items():  # the base's weights, frozen, under the adapters
        torch.testing.assert_close(model.state_dict()[name], p)
    assert any(model.state_dict()[k].abs().sum() > 0 for k in saved if k.endswith(".lora_b"))  # the adapters trained
    clip = next(iter_shard(list_shards(str(world["shards"]))[0]))
    video = ARGenerator.from_run(out).generate(GenerationRequest(video=clip.frames[:1], actions=clip.arrays["actions"][:3]),
                                               GREEDY)  # fmt: skip
    assert video.shape == (4, 64, 64, 3)
