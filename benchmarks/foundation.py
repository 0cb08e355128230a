"""The pre-trained base world model ("foundation"): one command, from nothing to a Text2World + Video2World model
of all four built-in worlds, on 2 CPU cores.

1. simulate the four worlds at 64x64, 33 frames per episode (arm ``--arm`` episodes, orbit / bounce / drive
   ``--episodes`` each; drive with its front camera only), and held-out arm scenes played twice with two policies
   (``--branches 2``: the same first frame, other actions) for the post-training evaluations;
2. train the per-frame image tokenizer ``ci8x8-small`` (first level widened to 64 channels, L2 loss) on every world:
   one latent frame per video frame, so action models can be controlled frame by frame;
3. train the base diffusion world model on the tokenizer's latents of every world (the arm action model's
   architecture: patch 1, frame stacking, local mixing, residual targets): windows of ``--window`` latent frames of
   each cached clip, Video2World on 1-2 given frames (and Text2World), captions as text, no actions;
4. score its Video2World rollouts on the held-out arm scenes (``worldsmith eval rollouts``, captions as prompts);
5. write the ``foundation`` section of benchmarks/RESULTS.md with every command, its wall time and the scores.

Every step resumes (run the command again); finished steps are skipped. Each step is a ``worldsmith`` command,
printed before it runs, so the recipe can be replayed by hand.

    python benchmarks/foundation.py [--work runs/foundation] [--steps 9000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_md import machine, markers, publish
from results_md import run_worldsmith as run



def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/foundation"))
    p.add_argument("--arm", type=int, default=2048, help="arm training episodes (video only for the base)")
    p.add_argument("--episodes", type=int, default=512, help="orbit, bounce and drive training episodes each")
    p.add_argument("--heldout", type=int, default=64, help="held-out arm scenes (each played with 2 policies)")
    p.add_argument("--tokenizer-steps", type=int, default=6000)
    p.add_argument("--steps", type=int, default=9000, help="base model training steps (~0.65 s each on 2 cores)")
    p.add_argument("--window", type=int, default=3, help="latent frames per training sample")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training processes")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    return p.parse_args()


def tokenizer_args(w: Path, a: argparse.Namespace) -> list[str]:
    sets = ["model.channels=[64,64]", "loss.l1=0", "loss.l2=1", "loss.perceptual=0", "data.frames=1", "data.size=64",
            "train.batch_size=32", "train.lr=2e-3", f"train.steps={a.tokenizer_steps}", "train.precision=bf16",
            "data.cache_mb=3000", "train.warmup_steps=100", "train.ckpt_every=500",
            f"data.eval_shards={w / 'arm_pairs'}", "train.eval_every=1000", "data.eval_clips=16"]  # fmt: skip
    return ["train", "tokenizer", "--preset", "ci8x8-small", "--data", f"{w}/*_train/*.tar", "--out",
            str(w / "tokenizer"), *[x for s in sets for x in ("--set", s)]]  # fmt: skip


def base_args(w: Path, a: argparse.Namespace) -> list[str]:
    # the architecture the arm action model was chosen with (benchmarks/RESULTS.md): one token per latent pixel,
    # frame stacking, local mixing, residual targets, training noise centred a little higher than EDM's
    sets = ["data.frames=33", "data.size=64", "data.cache_latents=true", "data.cache_crops=1", f"data.window={a.window}",
            "model.max_cond_latents=2", "model.video2world_prob=0.9", "model.caption_dropout=0.2", "model.residual=true",
            "model.dit.patch=1", "model.dit.width=128", "model.dit.depth=5", "model.dit.heads=4",
            "model.dit.adaln_lora_dim=64", "model.dit.anchor_frames=2", "model.dit.local_mixing=true",
            "model.edm.p_mean=0.5", "model.edm.p_std=1.2", "train.batch_size=32", "train.lr=1e-3",
            "train.warmup_steps=100", f"train.steps={a.steps}", "train.ema_decay=0.995", "train.ckpt_every=500",
            "train.log_every=25"]  # fmt: skip
    return ["train", "diffusion", "--preset", "small", "--tokenizer", str(w / "tokenizer"), "--data", f"{w}/*_train/*.tar",
            "--out", str(w / "base"), *[x for s in sets for x in ("--set", s)]]  # fmt: skip


def main() -> None:
    a = parse()
    w = a.work.resolve()
    log: dict = {}
    sim = ["--frames", "33", "--size", "64", "--seed", "0", "-j", "2"]
    for world, n in (("arm", a.arm), ("orbit", a.episodes), ("bounce", a.episodes), ("drive", a.episodes)):
        views = ["--views", "1"] if world == "drive" else []
        run(["sim", world, "--episodes", str(n), *sim, *views, "--out", str(w / f"{world}_train")], log, f"sim {world}", 1)
    run(["sim", "arm", "--episodes", str(a.heldout), "--branches", "2", "--frames", "65", "--size", "64", "--seed",
         "2000003", "-j", "2", "--out", str(w / "arm_pairs")], log, "sim held-out arm pairs", 1)  # fmt: skip
    run(tokenizer_args(w, a), log, "tokenizer", a.threads)
    run(base_args(w, a), log, "base", a.threads)
    report = w / "base_rollouts.json"
    run(["eval", "rollouts", "--model", str(w / "base"), "--data", str(w / "arm_pairs"), "--episodes", "128",
         "--frames", "16", "--reader", "", "--json", str(report), "--set", "steps=10"], log, "eval", a.threads)  # fmt: skip
    results = {"steps": log, "rollouts": json.loads(report.read_text()), "machine": machine()}
    publish("foundation", render(results, a), results, a.json, not a.no_results)


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("foundation")
    s, ro = r["steps"], r["rollouts"]
    lines = [begin, "## The base world model (`python benchmarks/foundation.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads per training process. Every "
             f"step, as run (wall time on this machine):", "", "| step | minutes | command |", "|---|---|---|"]  # fmt: skip
    for name, step in s.items():
        lines.append(f"| {name} | {step['seconds'] / 60:.1f} | `{step['command']}` |")
    lines += ["", f"Video2World of the base model from the first frame and caption of {ro['episodes']} held-out arm "
              f"episodes, {ro['frames']} generated frames (mean ± standard error over episodes):", "",
              "| rollout | PSNR dB | SSIM | FD |", "|---|---|---|---|"]  # fmt: skip
    for label, key in (("base model", "model"), ("copy the first frame (floor)", "copy_first"),
                       ("tokenizer reconstruction (ceiling)", "tokenizer")):  # fmt: skip
        m = ro[key]
        lines.append(f"| {label} | {m['psnr']:.2f} ± {m['psnr_sem']:.2f} | {m['ssim']:.3f} | {m['fd']:.2f} |")
    return "\n".join(lines + ["", end])


if __name__ == "__main__":
    main()
