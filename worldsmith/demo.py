"""``worldsmith demo``: the platform end to end on built-in data, in about 8 minutes on a 2-core CPU.

1. simulate arm-world episodes (training and held-out) as shards;
2. inspect the data (statistics + contact sheet);
3. train a continuous causal video tokenizer (CV4x8x8) on the training episodes;
4. train a diffusion world model (latent DiT, Text2World + Video2World) on the tokenizer's latents;
5. Video2World on held-out episodes: from each episode's first frame and caption, generate the continuation and
   score it (PSNR/SSIM per frame) against the simulator's truth, next to the tokenizer's own reconstruction of the
   truth (the ceiling any latent model has) and to copying the first frame (the floor of a mostly static scene);
6. write an HTML report with truth | generation | error side by side, the metrics and the training curves.

Every step resumes: run the same command again after an interruption and it continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsmith import config as C
from worldsmith.atomic import atomic_write_text
from worldsmith.data.inspect import format_stats, inspect
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.demo_report import write_report
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.train import DiffusionRunConfig
from worldsmith.errors import ConfigError
from worldsmith.eval.metrics import psnr, ssim
from worldsmith.family import GenerationRequest
from worldsmith.families import FAMILIES
from worldsmith.io.video import to_tensor
from worldsmith.tokenizer.train import TokenizerRunConfig
from worldsmith.train.train_config import TrainConfig
from worldsmith.worlds.generate import simulate

TOKENIZER, DIFFUSION = FAMILIES["tokenizer"], FAMILIES["diffusion"]


def _tokenizer_run(preset: str, **train: Any) -> TokenizerRunConfig:
    cfg = TOKENIZER.run_config(model=TOKENIZER.preset(preset), train=TrainConfig(**train))
    # L2 only: PSNR's own measure; on arm-world clips ~1 dB above L1 at equal steps, and no perceptual network to run
    return C.merge(cfg, {"loss": {"l1": 0.0, "l2": 1.0, "perceptual": 0.0}})


def _diffusion_run(preset: str, **train: Any) -> DiffusionRunConfig:
    cfg = DIFFUSION.run_config(model=DIFFUSION.preset(preset), train=TrainConfig(**train))
    return C.merge(cfg, {"model": {"video2world_prob": 0.9}})  # the demo scores Video2World: train mostly on it


@dataclass
class DemoConfig:
    world: str = "arm"
    episodes: int = 48  # training episodes
    heldout: int = 4  # held-out episodes for the rollouts
    frames: int = 33  # frames per simulated episode
    size: int = 64
    fps: float = 10.0
    clip_frames: int = 17  # frames per training clip = frames generated per rollout (1 + k * 4 for CV4x8x8)
    sampler: str = "dpm++2m"
    sample_steps: int = 10
    seed: int = 0
    tokenizer: TokenizerRunConfig = field(default_factory=lambda: _tokenizer_run(
        "cv4x8x8-small", steps=500, batch_size=4, lr=1e-3, warmup_steps=50, weight_decay=0.0, ema_decay=0.99,
        log_every=25, ckpt_every=200))  # fmt: skip
    diffusion: DiffusionRunConfig = field(default_factory=lambda: _diffusion_run(
        "small", steps=1000, batch_size=16, lr=1e-3, warmup_steps=50, weight_decay=0.0, ema_decay=0.99,
        log_every=25, ckpt_every=400))  # fmt: skip

    def __post_init__(self) -> None:
        if self.frames < self.clip_frames or self.clip_frames < 2:
            raise ConfigError(f"demo needs 2 <= clip_frames <= frames, got {self.clip_frames} and {self.frames}.")


def quick_config() -> DemoConfig:
    """Seconds-long settings for the tests: tiny everything."""
    fast = dict(batch_size=2, lr=2e-3, ema_decay=0.9, log_every=2, ckpt_every=4, progress=False)
    return DemoConfig(episodes=4, heldout=2, frames=9, size=32, clip_frames=9, sample_steps=2,
                      tokenizer=_tokenizer_run("cv4x8x8-tiny", steps=4, **fast),
                      diffusion=_diffusion_run("tiny", steps=4, **fast))  # fmt: skip


def run_demo(cfg: DemoConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo into ``out``; return the metrics and output paths."""
    out = Path(out)
    t0 = time.time()
    say = print if progress else (lambda *a, **k: None)
    train_dir, heldout_dir = out / "data" / "train", out / "data" / "heldout"
    data = {"frames": cfg.clip_frames, "size": cfg.size}

    # 1. simulate training and held-out episodes (disjoint seeds)
    say(f"[1/6] simulating {cfg.episodes} + {cfg.heldout} {cfg.world} episodes of {cfg.frames} frames")
    sim = dict(frames=cfg.frames, size=cfg.size, fps=cfg.fps, progress=progress)
    simulate(cfg.world, episodes=cfg.episodes, out=train_dir, seed=cfg.seed, **sim)
    simulate(cfg.world, episodes=cfg.heldout, out=heldout_dir, seed=cfg.seed + 1_000_003, **sim)

    # 2. inspect
    say("[2/6] inspecting the training data")
    stats = inspect(str(train_dir), out_png=out / "data_sheet.png")
    say(format_stats(stats))

    # 3. the video tokenizer
    tok_cfg = C.merge(cfg.tokenizer, {"data": {**data, "shards": str(train_dir)},
                                      "train": {"progress": cfg.tokenizer.train.progress and progress,
                                                "seed": cfg.seed}})  # fmt: skip
    say(f"[3/6] training the {tok_cfg.model.name} video tokenizer ({tok_cfg.train.steps} steps)")
    TOKENIZER.train(tok_cfg, out / "tokenizer")

    # 4. the diffusion world model, on cached latents
    dit_cfg = C.merge(cfg.diffusion, {"data": {**data, "shards": str(train_dir), "tokenizer": str(out / "tokenizer"),
                                               "cache_latents": True},
                                      "train": {"seed": cfg.seed, "progress": cfg.diffusion.train.progress and progress}})  # fmt: skip
    say(f"[4/6] training the diffusion world model ({dit_cfg.train.steps} steps on cached latents)")
    DIFFUSION.train(dit_cfg, out / "world_model")

    # 5. Video2World rollouts on held-out episodes
    say(f"[5/6] generating {cfg.clip_frames - 1} frames from the first frame of {cfg.heldout} held-out episodes")
    metrics, panels = evaluate_rollouts(out / "world_model", heldout_dir, cfg)

    # 6. report
    say("[6/6] writing the report")
    paths = write_report(out, cfg, stats, metrics, panels)
    metrics["seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    summary = {"metrics": metrics, "outputs": {k: str(v) for k, v in paths.items()}}
    m, lo, hi = metrics["model"], metrics["copy_first"], metrics["tokenizer"]
    say(f"\nVideo2World PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f} (copy-first-frame floor {lo['psnr']:.2f} dB; "
        f"tokenizer reconstruction ceiling {hi['psnr']:.2f} dB)")  # fmt: skip
    say("outputs:\n" + "\n".join(f"  {k:<12} {v}" for k, v in summary["outputs"].items()))
    return summary


ROWS = ("model", "tokenizer", "copy_first")  # the generation, its ceiling and its floor


@torch.no_grad()
def evaluate_rollouts(run_dir: Path, heldout: Path, cfg: DemoConfig) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Per-frame PSNR/SSIM of Video2World generations (first frame + caption -> the rest of the clip), of the
    tokenizer's reconstruction of the truth and of copying the first frame; (truth | generation | error) panels."""
    gen = DiffusionGenerator.from_run(run_dir)
    sampling = SamplingConfig(steps=cfg.sample_steps, sampler=cfg.sampler)
    n = cfg.clip_frames
    per_step: dict[str, dict[str, list]] = {k: {"psnr": [], "ssim": []} for k in ROWS}
    panels, captions = [], []
    for shard in list_shards(str(heldout)):
        for clip in iter_shard(shard):
            truth_u8 = clip.frames[:n]  # (n, H, W, 3)
            request = GenerationRequest(prompt=clip.caption, video=truth_u8[:1], frames=n, seed=cfg.seed)
            video = gen.generate(request, sampling)  # (n, H, W, 3) uint8
            truth = to_tensor(truth_u8)[None]  # (1, 3, n, H, W)
            guesses = {"model": to_tensor(video)[None],
                       "tokenizer": gen.tokenizer.decode(gen.tokenizer.encode(truth)).clamp(-1, 1),
                       "copy_first": truth[:, :, :1].expand_as(truth)}  # fmt: skip
            for name, guess in guesses.items():  # frame 0 is given, so score frames 1..n-1
                per_step[name]["psnr"].append(psnr(guess[:, :, 1:], truth[:, :, 1:], reduction="none").numpy())
                per_step[name]["ssim"].append(ssim(guess[:, :, 1:], truth[:, :, 1:], reduction="none").numpy())
            err = np.abs(truth_u8.astype(np.int16) - video.astype(np.int16)).astype(np.uint8)
            panels.append(np.concatenate([truth_u8, video, err], axis=2))  # (n, H, 3W, 3)
            captions.append(clip.caption)
    metrics: dict[str, Any] = {"episodes": len(panels), "generated_frames": n - 1, "captions": captions,
                               "sampler": cfg.sampler, "sample_steps": cfg.sample_steps}  # fmt: skip
    for name, d in per_step.items():
        steps_psnr = np.mean(np.stack(d["psnr"]), axis=0).reshape(-1)  # (n - 1,)
        steps_ssim = np.mean(np.stack(d["ssim"]), axis=0).reshape(-1)
        metrics[name] = {
            "psnr": float(steps_psnr.mean()), "ssim": float(steps_ssim.mean()),
            "psnr_per_step": [round(float(v), 3) for v in steps_psnr],
            "ssim_per_step": [round(float(v), 4) for v in steps_ssim],
        }  # fmt: skip
    return metrics, panels
