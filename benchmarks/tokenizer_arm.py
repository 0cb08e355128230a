"""The tokenizer's quality goal: a CV4x8x8 tokenizer trained on arm-world clips at 64x64 for ~30 CPU minutes,
scored on held-out episodes (PSNR >= 30 dB is the goal).

1. simulate 4,096 (``--episodes``) training and 16 held-out arm-world episodes of 33 frames at 64x64 (disjoint seeds);
2. train ``cv4x8x8-small`` with the settings below on ``--threads`` torch threads (default 1: the wall-clock
   minutes of the run are then its CPU minutes), scoring 8 held-out episodes every ``--eval-every`` steps;
3. score the EMA weights on all 16 held-out episodes (first 17 frames each): PSNR, SSIM, Fréchet distance of
   EfficientNet-lite0 features, and PSNR of the first frame (coded alone) and of the others;
4. score them on 256 further held-out episodes (``--more-heldout``, seed 5000): 16 episodes are too few to
   decide the goal (episodes differ by ~2 dB, so their mean is uncertain by ~0.5 dB), so the verdict uses these;
5. write the ``tokenizer-arm`` section of benchmarks/RESULTS.md.

It resumes: data and a run that is already complete are reused. The training settings are those of
``worldsmith train tokenizer`` (printed in RESULTS.md as a command line):

    python benchmarks/tokenizer_arm.py [--work runs/bench_tokenizer_arm] [--steps 8400] [--threads 1]
                                       [--set model.num_res_blocks=2 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from results_md import machine, markers, publish

SETTINGS = [  # on top of the cv4x8x8-small preset (linear shortcuts on); see the tokenizer-ablation section
    "model.channels=[64,64]", "train.lr=2e-3", "train.warmup_steps=100", "train.betas=[0.9,0.99]",
    "train.precision=bf16", "loss.l1=0", "loss.l2=1", "loss.perceptual=0", "data.cache_mb=2048",
]  # fmt: skip


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/bench_tokenizer_arm"))
    p.add_argument("--steps", type=int, default=8400, help="training steps (8,400 took 31 min on one core here)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    p.add_argument("--episodes", type=int, default=4096, help="training episodes to simulate")
    p.add_argument("--eval-every", type=int, default=1500)
    p.add_argument("--data", type=Path, help="training shards to use instead of simulating them under --work")
    p.add_argument("--heldout", type=Path, help="held-out shards to use instead of simulating them under --work")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"],
                   help="bf16 autocast needs a CPU with native bf16 (AVX512-BF16 / AMX); else use fp32")
    p.add_argument("--more-heldout", type=int, default=256,
                   help="score this many further held-out episodes (seed 5000) for the verdict; 0: use the 16")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


def simulate_data(a: argparse.Namespace) -> tuple[Path, Path]:
    from worldsmith.worlds.generate import simulate

    sim = dict(frames=33, size=64, fps=10.0, progress=False)
    if a.data is None:
        a.data = a.work / "train"
        simulate("arm", episodes=a.episodes, out=a.data, seed=0, **sim)
    if a.heldout is None:
        a.heldout = a.work / "heldout"
        simulate("arm", episodes=16, out=a.heldout, seed=1000, **sim)
    return a.data, a.heldout


def overrides(a: argparse.Namespace, heldout: Path) -> list[str]:
    settings = [s for s in SETTINGS if not s.startswith("train.precision")] + [f"train.precision={a.precision}"]
    return [f"data.eval_shards={heldout}", f"train.eval_every={a.eval_every}", f"train.steps={a.steps}",
            *settings, *a.set]  # fmt: skip


def train(run: Path, train_dir: Path, sets: list[str]) -> float:
    """Train (or resume / reuse) the run; returns the CPU seconds this process spent on it."""
    from worldsmith.tokenizer.cli import FAMILY

    cfg = FAMILY.resolve("cv4x8x8-small", overrides=sets, flags={"data": {"shards": str(train_dir)}})
    cpu = time.process_time()
    FAMILY.train(cfg, run)
    return time.process_time() - cpu


def score(run: Path, heldout: Path, clips: int = 16) -> dict[str, float]:
    import torch

    from worldsmith.eval.metrics import psnr
    from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches
    from worldsmith.tokenizer.model import CausalVideoTokenizer

    model = CausalVideoTokenizer.from_pretrained(run).eval()
    batches = list(shard_batches(str(heldout), frames=17, size=64, max_clips=clips, batch_size=8))
    scores = evaluate_batches(model, batches, features=True, comparison=run / f"heldout{clips}.mp4")
    x = torch.cat([b["video"] for b in batches])
    with torch.no_grad():
        y = model.decode(model.encode(x)).clamp(-1, 1)
    scores["psnr_first_frame"] = float(psnr(y[:, :, :1], x[:, :, :1]))
    scores["psnr_later_frames"] = float(psnr(y[:, :, 1:], x[:, :, 1:]))
    scores["psnr_first8"] = float(psnr(y[:8], x[:8]))  # the episodes the training curve scores
    scores["clips"] = x.shape[0]
    return scores


def history(run: Path) -> tuple[list[dict[str, float]], dict[str, float]]:
    """The logged held-out evaluations, and the last training record (final step and time)."""
    from worldsmith.train.progress import read_logs

    records = [r for r in read_logs(run / "logs.jsonl") if "time" in r]
    return [r for r in records if "eval/psnr" in r], records[-1] if records else {"time": 0.0, "step": 0}


def section(a: argparse.Namespace, sets: list[str], final: dict, hist: list[dict], last: dict, cpu_s: float) -> str:
    from worldsmith.config import load_yaml

    begin, end = markers("tokenizer-arm")
    m = final.get("more")
    verdict = "met" if (m or final)["psnr"] >= 30 else "not met"
    figures = f"{m['psnr']:.2f} dB on {m['clips']} held-out episodes, " if m else ""
    figures += f"{final['psnr']:.2f} dB on the 16 of the command"
    rows = "\n".join(f"| {r['step']:,} | {r['time'] / 60:.1f} | {r['eval/psnr']:.2f} | {r['eval/ssim']:.3f} |"
                     for r in hist)  # fmt: skip
    command = " \\\n    ".join(
        ["worldsmith train tokenizer --preset cv4x8x8-small --data data/arm64 --out runs/tok-arm64"]
        + [f"--set {s}" for s in sets]
    ).replace(str(a.heldout), "data/arm64-eval")
    cpu_note = f"; CPU time of the process {cpu_s / 60:.1f} min" if cpu_s > 60 else ""
    run_cfg = load_yaml(a.work / "run" / "config.yaml")  # the prose below describes the run as it was trained
    tr, model = run_cfg["train"], run_cfg["model"]
    loss = run_cfg.get("loss") or model["loss"]  # runs written before the loss left the model kept it in model.loss
    shortcut = ", linear encoder/decoder shortcuts" if model["shortcut"] else ""
    more = (f"\n{m['clips']} further held-out episodes (seed 5000, same scoring; the verdict's figure, as 16 episodes "
            f"are too few: episodes differ by ~2 dB): PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}.") if m else ""
    return f"""{begin}
## Video tokenizer quality on arm-world clips (`python benchmarks/tokenizer_arm.py`)

Goal: a CV4x8x8 tokenizer trained on arm-world clips at 64x64 within ~30 CPU minutes reaches PSNR >= 30 dB on
held-out episodes. **Status: {verdict}: {figures}** (first 17 frames of each).

{time.strftime('%Y-%m-%d')}, {machine()}, {a.threads} torch thread(s), precision {tr['precision']}, load average
{os.getloadavg()[0]:.1f} at the end. Training: {last['step']:,} steps in {last['time'] / 60:.1f} min of wall time on
{a.threads} thread(s){cpu_note}. {a.episodes:,} training episodes of 33 frames, random 17-frame clips, batch
{tr['batch_size']}, loss weights L1 {loss['l1']:g} / L2 {loss['l2']:g} / perceptual
{loss['perceptual']:g}, lr {tr['lr']:g} ({tr['warmup_steps']} warmup steps, {tr['lr_schedule']} to {tr['min_lr_ratio']:.0%}), EMA weights, channels
{model['channels']}, {model['num_res_blocks']} residual block(s) per level{shortcut}.

Held-out PSNR during training (the first 8 of the 16 held-out episodes, scored every {a.eval_every:,} steps; at the
end of training these 8 score {final['psnr_first8']:.2f} dB: they are harder than the other 8):

| steps | minutes | PSNR (dB) | SSIM |
|---|---|---|---|
{rows}

Final, 16 held-out episodes: PSNR {final['psnr']:.2f} dB (first frame, coded alone: {final['psnr_first_frame']:.2f};
later frames: {final['psnr_later_frames']:.2f}), SSIM {final['ssim']:.3f}, Fréchet distance {final['fd']:.1f}.{more}

Command (data from `worldsmith sim arm --episodes {a.episodes} --frames 33 --size 64 --seed 0 --out data/arm64` and
`--episodes 16 --seed 1000 --out data/arm64-eval`; score with
`worldsmith tokenizer eval runs/tok-arm64 data/arm64-eval --size 64 --frames 17`):

```
{command}
```
{end}"""


def main() -> None:
    a = parse()
    import torch

    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    train_dir, heldout = simulate_data(a)
    sets = overrides(a, heldout)
    cpu_s = train(a.work / "run", train_dir, sets)
    final, (hist, last) = score(a.work / "run", heldout), history(a.work / "run")
    if a.more_heldout:
        from worldsmith.worlds.generate import simulate

        more = a.work / f"heldout{a.more_heldout}"
        simulate("arm", episodes=a.more_heldout, out=more, seed=5000, frames=33, size=64, fps=10.0, progress=False)
        final["more"] = score(a.work / "run", more, clips=a.more_heldout)
    results = {"final": final, "history": hist, "cpu_s": cpu_s}
    publish("tokenizer-arm", section(a, sets, final, hist, last, cpu_s), results, a.json, write=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; RESULTS.md updated")


if __name__ == "__main__":
    main()
