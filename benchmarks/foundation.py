"""The pre-trained base world model ("foundation"): one command, from nothing to a Text2World + Video2World model
of all four built-in worlds, on 2 CPU cores.

1. simulate the four worlds at 64x64, 33 frames per episode (arm ``--arm`` episodes, orbit / bounce / drive
   ``--episodes`` each; drive with its front camera only), and held-out arm scenes played twice with two policies
   (``--branches 2``: the same first frame, other actions) for the post-training evaluations;
2. the per-frame image tokenizer: by default the shipped ``arm-tokenizer`` (``ci8x8-small``, first level widened to
   64 channels, L2 loss, trained on every world: one latent frame per video frame, so action models can be
   controlled frame by frame); ``--tokenizer train`` trains it anew with the recipe of its model card;
3. train the base diffusion world model on the tokenizer's latents of every world (the arm action model's
   architecture: patch 1, frame stacking, local mixing, residual targets): windows of ``--window`` latent frames of
   each cached clip, Video2World on 1-2 given frames (and Text2World), captions as text, no actions;
4. score its Video2World rollouts on the held-out arm scenes (``worldsmith eval rollouts``, captions as prompts);
5. write the ``foundation`` section of benchmarks/RESULTS.md with every command, its wall time and the scores, and
   WORK/cards.json, from which ``python benchmarks/zoo.py --work WORK`` publishes the shipped ``world-base`` (with
   the post-training table of ``benchmarks/action_models.py`` when WORK/action_models.json exists).

Every step resumes (run the command again); finished steps are skipped. Each step is a ``worldsmith`` command,
printed before it runs, so the recipe can be replayed by hand.

    python benchmarks/foundation.py [--work runs/foundation] [--steps 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from results_md import machine, markers, publish, rollout_table, train_minutes
from results_md import run_worldsmith as run



FLOORS = [("the same without the caption", "no_instruction"), ("copy the first frame (floor)", "copy_first"),
          ("tokenizer reconstruction (ceiling)", "tokenizer")]  # the rows beside the base in its tables


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/foundation"))
    p.add_argument("--arm", type=int, default=2048, help="arm training episodes (video only for the base)")
    p.add_argument("--episodes", type=int, default=512, help="orbit, bounce and drive training episodes each")
    p.add_argument("--heldout", type=int, default=64, help="held-out arm scenes (each played with 2 policies)")
    p.add_argument("--tokenizer", default="arm-tokenizer",
                   help="the tokenizer: a shipped name or run folder, or 'train' to train it here (WORK/tokenizer)")
    p.add_argument("--tokenizer-steps", type=int, default=6000, help="training steps with --tokenizer train")
    p.add_argument("--steps", type=int, default=2000, help="base model training steps (~0.65-0.9 s each on 2 cores)")
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
    tokenizer = str(w / "tokenizer") if a.tokenizer == "train" else a.tokenizer
    return ["train", "diffusion", "--preset", "small", "--tokenizer", tokenizer, "--data", f"{w}/*_train/*.tar",
            "--out", str(w / "base"), *[x for s in sets for x in ("--set", s)]]  # fmt: skip


def main() -> None:
    a = parse()
    w = a.work.resolve()
    log: dict = {}
    sim = ["--frames", "33", "--size", "64", "--seed", "0", "-j", "2"]
    for world, n in (("arm", a.arm), ("orbit", a.episodes), ("bounce", a.episodes), ("drive", a.episodes)):
        views = ["--views", "1"] if world == "drive" else []
        if not (w / f"{world}_train" / "manifest.parquet").exists():  # simulated by an earlier run
            run(["sim", world, "--episodes", str(n), *sim, *views, "--out", str(w / f"{world}_train")], log,
                f"sim {world}", 1)  # fmt: skip
    if not (w / "arm_pairs" / "manifest.parquet").exists():
        run(["sim", "arm", "--episodes", str(a.heldout), "--branches", "2", "--frames", "65", "--size", "64", "--seed",
             "2000003", "-j", "2", "--out", str(w / "arm_pairs")], log, "sim held-out arm pairs", 1)  # fmt: skip
    if a.tokenizer == "train":
        run(tokenizer_args(w, a), log, "tokenizer", a.threads)
    run(base_args(w, a), log, "base", a.threads)
    report = w / "base_rollouts.json"
    if not report.exists():
        run(["eval", "rollouts", "--model", str(w / "base"), "--data", str(w / "arm_pairs"), "--episodes", "128",
             "--frames", "16", "--reader", "arm-reader", "--json", str(report), "--set", "steps=10"], log, "eval", a.threads)  # fmt: skip
    results = {"steps": log, "rollouts": json.loads(report.read_text()), "machine": machine()}
    publish("foundation", render(results, a), results, a.json, not a.no_results)
    (w / "cards.json").write_text(json.dumps(cards(w, a, results["rollouts"]), indent=2))


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("foundation")
    s, ro = r["steps"], r["rollouts"]
    lines = [begin, "## The base world model (`python benchmarks/foundation.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads per training process. Every "
             f"step, as run (wall time on this machine):", "", "| step | minutes | command |", "|---|---|---|"]  # fmt: skip
    for name, step in s.items():
        lines.append(f"| {name} | {step['seconds'] / 60:.1f} | `{step['command']}` |")
    lines += ["", f"Video2World of the base model from the first frame and caption of {ro['episodes']} held-out arm "
              f"episodes, {ro['frames']} generated frames (mean ± standard error over episodes; the base knows no "
              "actions, so it cannot know where the arm goes: the action models start from it). Named object moved: "
              "of the rollouts whose caption names an object the truth moves, the share where it moves to its true "
              "place and the others stay (eval/instruction.py):", ""]  # fmt: skip
    lines += rollout_table(ro, [("base model", "model"), *FLOORS], ["PSNR dB", "SSIM", "FD", "gripper px",
                                                                    "named object moved"])  # fmt: skip
    if "action_discrimination" in ro:
        lines += ["", f"Caption discrimination (one first frame, two episodes with other captions): "
                  f"{100 * ro['action_discrimination']:.1f}% of {ro['discrimination_pairs']} rollouts closer to their "
                  "own truth than to the other's (50 % is chance)."]  # fmt: skip
    return "\n".join(lines + ["", end])



def cards(w: Path, a: argparse.Namespace, ro: dict) -> dict:
    """The model card of ``world-base`` (benchmarks/zoo.py adds the licence and the parameter count)."""
    cmd = "worldsmith " + shlex.join(base_args(w, a)).replace(str(w / "base"), "runs/world-base").replace(f"{w}/", "data/")
    rows = rollout_table(ro, [("world-base", "model"), *FLOORS], ["PSNR dB", "SSIM", "FD", "gripper px"])
    post = ""
    if (w / "action_models.json").exists():  # benchmarks/action_models.py: post-training from it vs from scratch
        am = json.loads((w / "action_models.json").read_text())
        post = (f"\n\nAs the start of action post-training (`python benchmarks/action_models.py`: "
                f"{am['post_training_steps']} steps of `worldsmith posttrain action` from world-base or from random "
                f"weights, the same 128 held-out rollouts, Euler 3 steps):\n\n| arm episodes | start | PSNR dB | "
                "gripper px | action discrimination |\n|---|---|---|---|---|\n")  # fmt: skip
        post += "\n".join(f"| {r['episodes']} | {'world-base' if r['start'] == 'base' else 'scratch'} | "
                          f"{r['rollouts']['psnr']:.2f} ± {r['rollouts']['psnr_sem']:.2f} | "
                          f"{r['rollouts']['gripper_error_px']:.2f} | {100 * r['rollouts']['action_discrimination']:.1f} % |"
                          for r in am["runs"])  # fmt: skip
    values = {"arm": a.arm, "episodes": a.episodes, "cmd": cmd, "steps": a.steps, "minutes": train_minutes(w / "base"),
              "n": ro["episodes"], "frames": ro["frames"], "rows": "\n".join(rows), "post": post,
              "disc": 100 * ro.get("action_discrimination", float("nan")),
              "pairs": ro.get("discrimination_pairs", 0)}  # fmt: skip
    return {"world-base": {"run": str(w / "base"), "card": CARD.format(**values)}}


CARD = """# world-base

The pre-trained base world model ("foundation") of the four built-in worlds ({{params}} parameters): Text2World and
Video2World over `arm-tokenizer`'s 16x8x8 per-frame latents, from video and captions alone (no actions). A latent
DiT with the architecture of the arm action model (patch 1, width 128, 5 blocks, frame stacking of the last 2 latent
frames, local mixing, residual targets), so that `worldsmith posttrain action|instruction|camera|views --from
world-base` starts from it and steps one frame at a time (next-frame-only: the same weights). Sampling: DPM++ 10
steps; 2 given frames at most (a sliding window: rollouts of any length).

## Data

{arm} arm-world episodes and {episodes} each of the orbit, bounce and drive worlds (the drive world's front camera),
33 frames at 64x64, simulated by worldsmith from seeds 0..; captions as text; the arm clips' actions are not used.

## Reproduce

```bash
worldsmith sim arm --episodes {arm} --frames 33 --size 64 --seed 0 --out data/arm_train
for w in orbit bounce drive; do worldsmith sim $w --episodes {episodes} --frames 33 --size 64 --seed 0 --views 1 --out data/${{w}}_train; done
worldsmith sim arm --episodes 64 --branches 2 --frames 17 --size 64 --seed 2000003 --out data/arm_pairs   # held out
{cmd}
```
{steps} steps, about {minutes:.0f} minutes of training on 2 CPU cores (plus encoding the clips once);
`python benchmarks/foundation.py --work runs/foundation` runs the same steps.

## Metrics

Video2World from the first frame and caption of {n} held-out arm episodes (64 scenes, each played with two
behaviours), {frames} generated frames, mean ± standard error (`worldsmith eval rollouts --model world-base --data
data/arm_pairs --episodes 128 --set steps=10`):

{rows}

Caption discrimination: {disc:.1f} % of {pairs} rollouts are closer to their own truth than to the other behaviour's
(50 % is chance).{post}

## Limits

A base, not an arm simulator: it knows no actions, so where the arm goes is a guess from the caption, and its
16-frame rollouts score below copying the first frame. What it learnt is how the four worlds look and move; the
action models post-trained from it learn where the arm goes. Trained for {steps} steps on 2 CPU cores: more steps and
more video would make a better start.
"""


if __name__ == "__main__":
    main()
