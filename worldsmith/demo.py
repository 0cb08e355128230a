"""``worldsmith demo``: ask a world model "what happens if the robot does X", and check it against the simulator.

1. simulate held-out arm-world scenes from seeds no shipped model was trained on, each played twice by the
   scripted policy with independent noise: the same first frame, two different action sequences (branches);
2. inspect the data (statistics + contact sheet);
3. roll out the shipped action-conditioned world model (``arm-action``, see its model card) from each first frame
   under each branch's actions, one frame per action, and score every rollout against the simulator's truth:
   PSNR / SSIM / Fréchet distance, and the gripper and object positions read by the shipped state reader
   (``arm-reader``), beside the floors (copy the first frame; the same model with its actions zeroed) and the
   ceiling (the tokenizer's reconstruction of the truth); action discrimination: how often a rollout is closer to
   its own branch's truth than to the other branch's;
4. write an HTML report: the two futures of every scene (truth | model, for each branch), metrics, per-step curves.

Nothing is trained or downloaded: the models ship inside the package (worldsmith/zoo). Every step resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.data.inspect import format_stats, inspect
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.demo_report import write_report
from worldsmith.errors import ConfigError
from worldsmith.eval.rollouts import evaluate_rollouts
from worldsmith.eval.state_reader import StateReader
from worldsmith.families import load_generator
from worldsmith.jobs import sampling_config
from worldsmith.worlds.generate import simulate
from worldsmith.zoo import resolve


@dataclass
class DemoConfig:
    model: str = "arm-action"  # a shipped action model's name or an action-conditioned run directory
    reader: str = "arm-reader"  # the state reader that reads gripper / object positions ('' = none)
    scenes: int = 16  # held-out scenes, each played as two branches (other actions from the same first frame)
    frames: int = 16  # frames generated after the given first frame
    size: int = 64
    fps: float = 10.0
    seed: int = 3_000_017  # held-out seeds: training used 0.., the benchmarks' held-out sets 1_000_003 and 2_000_003
    sampling: dict | None = None  # sampling overrides, e.g. {"steps": 10}; none: the model's own defaults

    def __post_init__(self) -> None:
        if self.scenes < 1 or self.frames < 1:
            raise ConfigError(f"demo needs scenes >= 1 and frames >= 1, got {self.scenes} and {self.frames}.")


def quick_config() -> DemoConfig:
    """Seconds-long settings for the tests: two scenes, four frames."""
    return DemoConfig(scenes=2, frames=4)


def run_demo(cfg: DemoConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo into ``out``; return the metrics and output paths."""
    out = Path(out)
    t0 = time.time()
    say = print if progress else (lambda *a, **k: None)
    data = out / "data" / "heldout_pairs"

    # 1. held-out scenes, two branches each
    say(f"[1/4] simulating {cfg.scenes} held-out arm scenes x 2 action sequences, {cfg.frames + 1} frames each")
    simulate("arm", episodes=cfg.scenes, frames=cfg.frames + 1, size=cfg.size, fps=cfg.fps, out=data, seed=cfg.seed,
             branches=2, progress=progress)  # fmt: skip

    # 2. inspect
    say("[2/4] inspecting the held-out data")
    stats = inspect(str(data), out_png=out / "data_sheet.png")
    say(format_stats(stats))

    # 3. rollouts of the shipped action model, scored against the simulator
    say(f"[3/4] rolling out {cfg.model} under each branch's actions and scoring it against the simulator")
    generator = load_generator(resolve(cfg.model))
    if not getattr(getattr(getattr(generator, "model", None), "cfg", None), "action_dim", 0):
        raise ConfigError(f"{cfg.model} is not action-conditioned; the demo needs an action model (e.g. arm-action).")
    sampling = sampling_config(generator, cfg.sampling or {})
    reader = StateReader.from_pretrained(resolve(cfg.reader)) if cfg.reader else None
    clips = [c for shard in list_shards(str(data)) for c in iter_shard(shard)]
    clips.sort(key=lambda c: c.key)  # scene by scene, branch 0 then 1
    videos: dict[str, np.ndarray] = {}
    metrics = evaluate_rollouts(generator, clips, frames=cfg.frames, reader=reader, sampling=sampling,
                                videos_out=videos)  # fmt: skip
    metrics |= {"model_name": cfg.model, "sampling": {"steps": sampling.steps, "sampler": sampling.sampler},
                "captions": [c.caption for c in clips[::2]]}  # fmt: skip

    # 4. report
    say("[4/4] writing the report")
    truth = np.stack([c.frames[: cfg.frames + 1] for c in clips])  # (N, T, H, W, 3)
    paths = write_report(out, cfg, stats, metrics, truth, videos["model"])
    metrics["seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    summary = {"metrics": metrics, "outputs": {k: str(v) for k, v in paths.items()}}
    say(summary_line(metrics))
    say("outputs:\n" + "\n".join(f"  {k:<12} {v}" for k, v in summary["outputs"].items()))
    return summary


def summary_line(m: dict) -> str:
    disc = m.get("action_discrimination")
    gripper = m.get("gripper_error_px")
    line = (f"\naction-conditioned rollouts ({m['episodes']} held-out episodes, {m['frames']} frames): PSNR "
            f"{m['psnr']:.2f} dB vs {m['floor_copy_first_psnr']:.2f} copying the first frame and "
            f"{m['floor_no_action_psnr']:.2f} with the actions zeroed (tokenizer ceiling "
            f"{m['ceiling_tokenizer_psnr']:.2f})")  # fmt: skip
    if gripper is not None:
        line += f"; gripper error {gripper:.2f} px (copy: {m['copy_first']['gripper_error_px']:.2f})"
    if disc is not None:
        line += f"; {100 * disc:.0f}% of rollouts closer to their own future than to the other branch's"
    return line

