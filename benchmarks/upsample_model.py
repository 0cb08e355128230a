"""The Text2World model of the upsampler benchmark: a tiny text-conditioned diffusion model on the built-in worlds.

Simulates ``--episodes`` clips of each built-in world (9 frames, 32x32, one view, seed 0) plus held-out clips
(seed 1,000,003) that the benchmark scores against, trains a ci8x8-tiny image tokenizer and a ``tiny`` diffusion
model (pure Text2World: ``model.video2world_prob=0``) on all four worlds' clips and captions. Minutes on 2 cores:

    python benchmarks/upsample_model.py --work /tmp/ups-t2w [--episodes 48] [--steps 1500]
    python benchmarks/upsample.py --model /tmp/ups-t2w/diffusion --heldout /tmp/ups-t2w/heldout
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from worldsmith.families import FAMILIES
from worldsmith.worlds.generate import simulate
from worldsmith.worlds.registry import world_names

SIM = {"frames": 9, "size": 32, "fps": 10.0, "views": 1, "workers": 1, "progress": False}
QUIET = {"progress": False, "tensorboard": False, "log_every": 50}


def simulate_worlds(work: Path, episodes: int, heldout: int) -> None:
    """``work/train/{world}`` and ``work/heldout/{world}`` shards of every built-in world."""
    for world in world_names():
        simulate(world, episodes=episodes, out=work / "train" / world, seed=0, **SIM)
        simulate(world, episodes=heldout, out=work / "heldout" / world, seed=1_000_003, **SIM)


def train_models(work: Path, tokenizer_steps: int, steps: int) -> Path:
    """Train the tokenizer and the Text2World diffusion model; returns the diffusion run directory."""
    shards = str(work / "train" / "*" / "*.tar")
    tok = FAMILIES["tokenizer"]
    cfg = tok.resolve("ci8x8-tiny", flags={"data": {"shards": shards, "frames": 9, "size": 32},
                                           "loss": {"perceptual": 0.0},
                                           "train": {**QUIET, "steps": tokenizer_steps, "batch_size": 8,
                                                     "ckpt_every": tokenizer_steps}})  # fmt: skip
    tok.train(cfg, work / "tokenizer")
    dif = FAMILIES["diffusion"]
    cfg = dif.resolve("tiny", flags={
        "data": {"shards": shards, "tokenizer": str(work / "tokenizer"), "frames": 9, "size": 32,
                 "cache_latents": True, "cache_crops": 1},
        "model": {"video2world_prob": 0.0},
        "train": {**QUIET, "steps": steps, "batch_size": 16, "lr": 1e-3, "warmup_steps": 50, "ema_decay": 0.99,
                  "ckpt_every": steps},
    })  # fmt: skip
    dif.train(cfg, work / "diffusion")
    return work / "diffusion"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=48, help="training clips per world")
    p.add_argument("--heldout", type=int, default=16, help="held-out clips per world (the FD reference)")
    p.add_argument("--tokenizer-steps", type=int, default=400)
    p.add_argument("--steps", type=int, default=1500, help="diffusion training steps")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    simulate_worlds(a.work, a.episodes, a.heldout)
    print(f"simulated in {time.perf_counter() - start:.0f} s", flush=True)
    run = train_models(a.work, a.tokenizer_steps, a.steps)
    print(f"trained {run} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
