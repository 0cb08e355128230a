"""Both world-model families on the same arm-world data, scored the same way, in one table.

1. simulate arm-world training and held-out episodes (the seeds of benchmarks/diffusion.py's arm section);
2. train a continuous (cv4x8x8) and a discrete (dv4x8x8) tokenizer with equal steps;
3. train the diffusion world model on the CV latents and the autoregressive GPT on the DV tokens;
4. from the first frame and caption of each held-out episode, each family generates the next frames; both are
   scored against the simulator's continuation with one function: PSNR, SSIM (per frame, averaged) and the
   Fréchet distance of EfficientNet-lite0 features over all generated frames. Reference rows: each tokenizer's
   reconstruction of the truth (the ceiling of a model over its latents) and copying the first frame (the floor).

Usage (resumes: the runs under --work are reused when their training is complete):

    python benchmarks/world_models.py [--work runs/bench_world_models] [--steps-tokenizer 800] [--steps-dit 800]
                                      [--steps-gpt 800] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from results_md import machine, markers, publish

QUIET = ["train.progress=false", "train.tensorboard=false"]


def simulate_data(work: Path, a: argparse.Namespace) -> None:
    from worldsmith.worlds.generate import simulate

    sim = dict(frames=a.episode_frames, size=64, fps=10.0, progress=False)
    simulate("arm", episodes=a.episodes, out=work / "train", seed=0, **sim)
    simulate("arm", episodes=a.heldout, out=work / "heldout", seed=1_000_003, **sim)


def train_seconds(run_dir: Path) -> float:
    """Training time the run logged (its last ``time``), so reused runs report theirs too."""
    from worldsmith.train.progress import read_logs

    times = [r["time"] for r in read_logs(run_dir / "logs.jsonl") if "time" in r]
    return float(times[-1]) if times else 0.0


def train_all(work: Path, a: argparse.Namespace) -> dict[str, float]:
    """Both tokenizers and both world models (reused when complete); returns the logged training seconds."""
    from worldsmith.families import FAMILIES

    train = str(work / "train")
    tok_sets = [f"train.steps={a.steps_tokenizer}", "data.frames=17", "data.size=64", "loss.perceptual=0",
                "train.lr=1e-3", "train.warmup_steps=50", f"train.ckpt_every={a.steps_tokenizer}"] + QUIET  # fmt: skip
    seconds = {}
    for kind in ("cv", "dv"):
        # DV: 1,000 codes (FSQ [8, 5, 5, 5]) instead of the preset's 64,000: the GPT's output layer and logits scale
        # with the vocabulary, and at 64,000 codes one CPU training step of the small GPT takes ~17 s
        levels = ["model.fsq_levels=[8,5,5,5]"] if kind == "dv" else []
        family = FAMILIES["tokenizer"]
        cfg = family.resolve(f"{kind}4x8x8-small", overrides=tok_sets + levels, flags={"data": {"shards": train}})
        family.train(cfg, work / f"tokenizer_{kind}")
        seconds[f"{kind}_tokenizer"] = train_seconds(work / f"tokenizer_{kind}")
    dit_sets = ["data.frames=17", "data.size=64", "data.cache_latents=true", "data.cache_crops=4",
                f"train.steps={a.steps_dit}", "train.batch_size=16", "train.lr=1e-3", "train.warmup_steps=50",
                "train.ema_decay=0.995", f"train.ckpt_every={a.steps_dit}"] + QUIET  # fmt: skip
    flags = {"data": {"shards": train, "tokenizer": str(work / "tokenizer_cv")}}
    FAMILIES["diffusion"].train(FAMILIES["diffusion"].resolve("small", overrides=dit_sets, flags=flags), work / "diffusion")
    seconds["diffusion"] = train_seconds(work / "diffusion")
    gpt_sets = [f"train.steps={a.steps_gpt}", "train.batch_size=8", "train.warmup_steps=50", "train.ema_decay=0.995",
                f"train.ckpt_every={a.steps_gpt}", "data.size=64"] + QUIET  # fmt: skip
    flags = {"data": {"shards": train}, "tokenizer": str((work / "tokenizer_dv").resolve())}
    FAMILIES["autoregressive"].train(FAMILIES["autoregressive"].resolve("small", overrides=gpt_sets, flags=flags),
                                     work / "autoregressive")
    seconds["autoregressive"] = train_seconds(work / "autoregressive")
    return seconds


class Scorer:
    """PSNR / SSIM / feature FD of generated frames 1..T-1 against the truth of the held-out clips."""

    def __init__(self, truth: np.ndarray) -> None:
        from worldsmith.eval.features import frame_features
        from worldsmith.io.video import to_tensor

        self.truth = to_tensor(truth)[:, :, 1:]  # (N, 3, T-1, H, W): the first frame is given
        self.feats = frame_features(self.frames(self.truth))

    @staticmethod
    def frames(v: torch.Tensor) -> torch.Tensor:
        return v.transpose(1, 2).reshape(-1, 3, *v.shape[-2:])  # (N*(T-1), 3, H, W)

    def __call__(self, video: np.ndarray) -> dict[str, float]:
        from worldsmith.eval.features import frame_features, frechet_distance
        from worldsmith.eval.metrics import psnr, ssim
        from worldsmith.io.video import to_tensor

        v = to_tensor(video)[:, :, 1:]
        return {"psnr": float(psnr(v, self.truth)), "ssim": float(ssim(v, self.truth)),
                "fd": frechet_distance(frame_features(self.frames(v)), self.feats)}  # fmt: skip


@torch.no_grad()
def rollouts(work: Path, clips: list, frames: int, a: argparse.Namespace) -> dict[str, tuple[np.ndarray, float]]:
    """Each family's generations (N, frames, 64, 64, 3) uint8 from first frame + caption, and seconds per clip."""
    from worldsmith.autoregressive.config import SamplingConfig
    from worldsmith.autoregressive.generate import ARGenerator
    from worldsmith.diffusion.config import SamplingConfig as DiffusionSampling
    from worldsmith.diffusion.generate import DiffusionGenerator
    from worldsmith.family import GenerationRequest
    from worldsmith.io.video import to_tensor, to_uint8

    out = {}
    gen = DiffusionGenerator.from_run(work / "diffusion")
    start = time.perf_counter()
    dpm = DiffusionSampling(steps=10, sampler="dpm++2m")
    videos = [gen.generate(GenerationRequest(c.caption, c.frames[:1], frames, seed=i), dpm) for i, c in enumerate(clips)]
    out["diffusion (DiT small, dpm++2m 10 steps)"] = (np.stack(videos), (time.perf_counter() - start) / len(clips))
    run = ARGenerator.from_run(work / "autoregressive", threads=None)
    sampling = SamplingConfig(temperature=a.temperature, top_k=a.top_k)
    start = time.perf_counter()
    videos = []
    for i, c in enumerate(clips):
        first = to_tensor(c.frames[:1])[None]  # (1, 3, 1, H, W)
        rest = list(run.stream(first, frames - 1, [c.caption], sampling, seed=i))
        videos.append(to_uint8(torch.cat([first, torch.stack(rest, dim=2)], dim=2)[0]))
    label = f"autoregressive (GPT small, temperature {a.temperature:g}, top-k {a.top_k})"
    out[label] = (np.stack(videos), (time.perf_counter() - start) / len(clips))
    return out


def run(a: argparse.Namespace) -> dict[str, Any]:
    from worldsmith.data.manifest import list_shards
    from worldsmith.data.shards import iter_shard
    from worldsmith.io.video import to_tensor, to_uint8
    from worldsmith.tokenizer.model import CausalVideoTokenizer

    torch.set_num_threads(a.threads)
    work = a.work
    simulate_data(work, a)
    seconds = train_all(work, a)
    clips = [c for shard in list_shards(str(work / "heldout")) for c in iter_shard(shard)]
    truth = np.stack([c.frames[: a.rollout] for c in clips])  # (N, T, 64, 64, 3)
    score = Scorer(truth)
    rows = {}
    with torch.no_grad():
        for kind in ("cv", "dv"):
            tok = CausalVideoTokenizer.from_pretrained(work / f"tokenizer_{kind}").eval()
            recon = torch.cat([tok.decode(tok.encode(to_tensor(v)[None])).clamp(-1, 1) for v in truth])
            rows[f"{kind.upper()}4x8x8 tokenizer reconstruction (ceiling)"] = {**score(to_uint8(recon)), "s_per_clip": None}
    rows["copy the first frame (floor)"] = {**score(np.repeat(truth[:, :1], a.rollout, axis=1)), "s_per_clip": None}
    for label, (videos, s) in rollouts(work, clips, a.rollout, a).items():
        rows[label] = {**score(videos), "s_per_clip": s}
        print(label, rows[label], flush=True)
    return {"rows": rows, "train_seconds": seconds, "episodes": a.episodes, "heldout": len(clips),
            "episode_frames": a.episode_frames, "rollout": a.rollout, "steps": {"tokenizer": a.steps_tokenizer,
            "diffusion": a.steps_dit, "autoregressive": a.steps_gpt}, "threads": a.threads,
            "load": os.getloadavg()[0]}  # fmt: skip


def render(r: dict[str, Any]) -> str:
    begin, end = markers("world-models")
    s, t = r["steps"], r["train_seconds"]
    mins = lambda k: f"{t[k] / 60:.1f} min"
    lines = [begin, "## Both world-model families on the arm world (`python benchmarks/world_models.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {machine()}, torch threads {r['threads']}, load average at the end "
             f"{r['load']:.1f} (training times grow with other jobs on the cores).", "",
             f"{r['episodes']} simulated arm-world training episodes of {r['episode_frames']} frames (64x64, 10 fps). "
             f"Tokenizers cv4x8x8-small and dv4x8x8-small with FSQ levels [8, 5, 5, 5] (1,000 codes): {s['tokenizer']} steps each ({mins('cv_tokenizer')}, "
             f"{mins('dv_tokenizer')}). Diffusion preset small: {s['diffusion']} steps, batch 16, cached latents "
             f"({mins('diffusion')}). GPT preset small: {s['autoregressive']} steps, batch 8 ({mins('autoregressive')}). "
             f"On {r['heldout']} held-out episodes each model gets the first frame and the caption and generates "
             f"the next {r['rollout'] - 1} frames; all rows are scored by the same function against the simulator's "
             f"continuation (FD: Fréchet distance of EfficientNet-lite0 features over all generated frames).", "",
             "| rollout | PSNR (dB) | SSIM | FD | s per clip |", "|---|---|---|---|---|"]  # fmt: skip
    for label, m in r["rows"].items():
        sec = "-" if m["s_per_clip"] is None else f"{m['s_per_clip']:.2f}"
        lines.append(f"| {label} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['fd']:.1f} | {sec} |")
    return "\n".join(lines + ["", end])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/bench_world_models"), help="data and runs (reused)")
    p.add_argument("--episodes", type=int, default=64, help="training episodes")
    p.add_argument("--heldout", type=int, default=8, help="held-out episodes")
    p.add_argument("--episode-frames", type=int, default=33, help="frames per simulated episode")
    p.add_argument("--rollout", type=int, default=17, help="frames per rollout, the given first frame included")
    p.add_argument("--steps-tokenizer", type=int, default=800)
    p.add_argument("--steps-dit", type=int, default=800)
    p.add_argument("--steps-gpt", type=int, default=800)
    p.add_argument("--temperature", type=float, default=1.0, help="GPT sampling temperature")
    p.add_argument("--top-k", type=int, default=50, help="GPT top-k")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    a = p.parse_args()
    results = run(a)
    publish("world-models", render(results), results, a.json, not a.no_write)


if __name__ == "__main__":
    main()
