"""``worldsmith demo``: the platform end to end on built-in data, in a few minutes on a 2-core CPU.

1. simulate arm-world episodes (training and held-out) as shards;
2. inspect the data (statistics + contact sheet);
3. train the baseline action-conditioned next-frame model with the shared trainer;
4. roll it out on held-out episodes from their first frames and true actions; score PSNR/SSIM per step against
   the simulator's true continuation and against the "copy the last frame" floor;
5. write an HTML report with ground truth and prediction side by side, the metrics and the training curve.

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

from worldsmith.atomic import atomic_write_text
from worldsmith.baseline import BaselineConfig, NextFrameNet
from worldsmith.config import preset, to_dict
from worldsmith.errors import ConfigError
from worldsmith.train import TrainConfig


@dataclass
class DemoConfig:
    world: str = "arm"
    episodes: int = 32  # training episodes
    heldout: int = 4  # held-out episodes for the rollouts
    frames: int = 40  # frames per simulated episode (a pick-and-place takes ~30)
    size: int = 64
    fps: float = 10.0
    clip_frames: int = 6  # frames per training crop
    rollout_frames: int = 16  # frames predicted after the context on held-out episodes
    seed: int = 0
    workers: int = 0  # dataloader workers (0: in the main process)
    model: BaselineConfig = field(default_factory=lambda: preset("baseline", "tiny"))
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=500, batch_size=4, lr=2e-3, warmup_steps=25, ema_decay=0.995, log_every=10, ckpt_every=100
        )
    )

    def __post_init__(self) -> None:
        if self.clip_frames <= self.model.context or self.frames < self.clip_frames:
            raise ConfigError(
                f"demo needs model.context < clip_frames <= frames, got {self.model.context}, "
                f"{self.clip_frames}, {self.frames}."
            )
        if self.model.context + self.rollout_frames > self.frames:
            raise ConfigError(f"rollout_frames + model.context must be <= frames ({self.frames}).")


def quick_config() -> DemoConfig:
    """Seconds-long settings for the tests: tiny everything."""
    return DemoConfig(
        episodes=4, heldout=2, frames=10, size=32, clip_frames=6, rollout_frames=6,
        model=preset("baseline", "tiny"),
        train=TrainConfig(steps=8, batch_size=2, lr=2e-3, log_every=4, ckpt_every=4, ema_decay=0.9, progress=False),
    )  # fmt: skip


def run_demo(cfg: DemoConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo into ``out``; return the metrics and output paths."""
    from worldsmith.data.dataset import DatasetConfig, make_loader
    from worldsmith.data.inspect import format_stats, inspect
    from worldsmith.train import Trainer
    from worldsmith.worlds.generate import simulate
    from worldsmith.worlds.registry import world_class

    out = Path(out)
    t0 = time.time()
    say = print if progress else (lambda *a, **k: None)

    # 1. simulate training and held-out episodes (disjoint seeds)
    say(f"[1/5] simulating {cfg.episodes} + {cfg.heldout} {cfg.world} episodes of {cfg.frames} frames")
    sim = dict(frames=cfg.frames, size=cfg.size, fps=cfg.fps, progress=progress)
    simulate(cfg.world, episodes=cfg.episodes, out=out / "data" / "train", seed=cfg.seed, **sim)
    simulate(cfg.world, episodes=cfg.heldout, out=out / "data" / "heldout", seed=cfg.seed + 1_000_003, **sim)

    # 2. inspect
    say("[2/5] inspecting the training data")
    stats = inspect(str(out / "data" / "train"), out_png=out / "data_sheet.png")
    say(format_stats(stats))

    # 3. train the baseline world model
    action_dim = world_class(cfg.world).action_dim
    model_cfg = BaselineConfig(**{**to_dict(cfg.model), "action_dim": action_dim})
    say(f"[3/5] training the baseline next-frame model ({_count(NextFrameNet(model_cfg))} parameters)")
    torch.manual_seed(cfg.seed)
    model = NextFrameNet(model_cfg)
    data_cfg = DatasetConfig(
        shards=str(out / "data" / "train"), frames=cfg.clip_frames, size=cfg.size, arrays=["actions"],
        loop=True, seed=cfg.seed,
    )  # fmt: skip
    loader = make_loader(data_cfg, batch_size=cfg.train.batch_size, num_workers=cfg.workers, drop_last=True)
    train_cfg = TrainConfig(**{**to_dict(cfg.train), "progress": cfg.train.progress and progress})
    run_dir = out / "run"
    full = {"demo": {k: v for k, v in to_dict(cfg).items() if k not in ("model", "train")}, "data": to_dict(data_cfg)}
    Trainer(model, train_cfg, run_dir, loader, full_config=full, model_config=model_cfg).fit()

    # 4. roll out on held-out episodes
    say(f"[4/5] rolling out {cfg.rollout_frames} frames on {cfg.heldout} held-out episodes")
    metrics, panels = evaluate_rollouts(run_dir, out / "data" / "heldout", cfg)

    # 5. report
    say("[5/5] writing the report")
    from worldsmith.demo_report import write_report

    paths = write_report(out, cfg, stats, metrics, panels, run_dir)
    metrics["seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    summary = {"metrics": metrics, "outputs": {k: str(v) for k, v in paths.items()}}
    say(
        f"\nrollout PSNR {metrics['model']['psnr']:.2f} dB (copy-last-frame floor {metrics['copy_last']['psnr']:.2f} dB), "
        f"SSIM {metrics['model']['ssim']:.3f} (floor {metrics['copy_last']['ssim']:.3f})"
    )
    say("outputs:\n" + "\n".join(f"  {k:<10} {v}" for k, v in summary["outputs"].items()))
    return summary


def _count(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"


@torch.no_grad()
def evaluate_rollouts(run_dir: Path, heldout: Path, cfg: DemoConfig) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Per-step PSNR/SSIM of model rollouts and of copy-last-frame, plus (truth | prediction | error) panels."""
    from worldsmith.data.manifest import list_shards
    from worldsmith.data.shards import iter_shard
    from worldsmith.eval.metrics import psnr, ssim
    from worldsmith.io.video import to_tensor, to_uint8
    from worldsmith.train import load_pretrained

    model = load_pretrained(NextFrameNet, run_dir).eval()
    k, n = model.cfg.context, cfg.rollout_frames
    per_step = {"model": {"psnr": [], "ssim": []}, "copy_last": {"psnr": [], "ssim": []}}
    panels = []
    for shard in list_shards(str(heldout)):
        for clip in iter_shard(shard):
            video = to_tensor(clip.frames[: k + n])[None]  # (1, 3, k+n, H, W)
            actions = torch.from_numpy(clip.arrays["actions"]).float()[None]  # (1, T-1, A)
            pred = model.rollout(video[:, :, :k], n, actions)  # (1, 3, n, H, W)
            truth = video[:, :, k:]
            copy = video[:, :, k - 1 : k].expand_as(truth)
            for name, guess in (("model", pred), ("copy_last", copy)):
                per_step[name]["psnr"].append(psnr(guess, truth, reduction="none").numpy())
                per_step[name]["ssim"].append(ssim(guess, truth, reduction="none").numpy())
            t_u8, p_u8 = to_uint8(truth[0]), to_uint8(pred[0])  # (n, H, W, 3)
            err = np.abs(t_u8.astype(np.int16) - p_u8.astype(np.int16)).clip(0, 255).astype(np.uint8)
            panels.append(np.concatenate([t_u8, p_u8, err], axis=2))  # (n, H, 3W, 3)
    metrics: dict[str, Any] = {"episodes": len(panels), "context_frames": k, "rollout_frames": n}
    for name, d in per_step.items():
        steps_psnr = np.mean(np.stack(d["psnr"]), axis=0)  # (n,)
        steps_ssim = np.mean(np.stack(d["ssim"]), axis=0)
        metrics[name] = {
            "psnr": float(steps_psnr.mean()), "ssim": float(steps_ssim.mean()),
            "psnr_per_step": [round(float(v), 3) for v in steps_psnr],
            "ssim_per_step": [round(float(v), 4) for v in steps_ssim],
        }  # fmt: skip
    return metrics, panels
