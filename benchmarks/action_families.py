"""Both world-model families post-trained on the arm's actions, scored on the same held-out rollouts.

Issue 14 asks for the action-conditioned arm model in both families, reported side by side, the better one shipped:

1. the diffusion family: ``--diffusion`` (default the shipped ``arm-action``; its model card has its recipe);
2. the autoregressive family: a per-frame discrete image tokenizer (``di8x8-small``, 64,000 FSQ codes, one token
   grid per video frame, so every frame takes its own action) and a GPT over its tokens with the actions in the
   conditioning slot (one action embedding added to the inputs of the frame it leads to), trained on the same 2,048
   arm episodes; each is a ``worldsmith train`` command, skipped when its run is complete;
3. ``worldsmith eval rollouts`` of each on the same held-out pairs (16 frames from one first frame), the GPT at each
   ``--temperatures`` (0: greedy);
4. the ``action-families`` section of benchmarks/RESULTS.md.

Needs WORK/arm_train and WORK/arm_pairs (``python benchmarks/foundation.py --work WORK`` makes them).

    python benchmarks/action_families.py --work runs/foundation [--gpt-steps 4500] [--temperatures 0,0.5,1]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path

from results_md import ROLLOUT_COLUMNS, logged_max, machine, markers, publish, sets, train_minutes
from results_md import run_worldsmith as run
from safetensors import safe_open

from worldsmith.zoo import resolve


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/foundation"))
    p.add_argument("--diffusion", default="arm-action", help="the diffusion action model (a run or shipped name)")
    p.add_argument("--dv", type=Path, default=None, help="the DV tokenizer run (default WORK/dv64k, trained if missing)")
    p.add_argument("--gpt", type=Path, default=None, help="the GPT run (default WORK/gpt-arm, trained if incomplete)")
    p.add_argument("--dv-steps", type=int, default=4000, help="DV tokenizer training steps (~46 min on 2 cores)")
    p.add_argument("--gpt-steps", type=int, default=4500, help="GPT training steps, 16 windows each (~60 min)")
    p.add_argument("--temperatures", default="0,0.5,1", help="GPT sampling temperatures to score (0: greedy)")
    p.add_argument("--episodes", type=int, default=128, help="held-out rollouts per model")
    p.add_argument("--long-temperature", type=float, default=1.0, help="the GPT's temperature on 64-frame rollouts")
    p.add_argument("--long-episodes", type=int, default=64, help="held-out rollouts of 64 frames")
    p.add_argument("--long-data", type=Path, default=None,
                   help="held-out arm pairs of at least 65 frames (default: WORK/arm_pairs)")
    p.add_argument("--reader", default="arm-reader", help="state reader: a run folder or a shipped name")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    return p.parse_args()


def dv_args(w: Path, out: Path, a: argparse.Namespace) -> list[str]:
    """The per-frame discrete tokenizer: arm-tokenizer's recipe with FSQ levels [8, 8, 8, 5, 5, 5]."""
    return ["train", "tokenizer", "--preset", "di8x8-small", "--data", f"{w}/arm_train/*.tar", "--out", str(out),
            *sets("model.channels=[64,64]", "model.fsq_levels=[8,8,8,5,5,5]", "loss.l1=0", "loss.l2=1",
                  "loss.perceptual=0", "data.frames=1", "data.size=64", "train.batch_size=32", "train.lr=2e-3",
                  f"train.steps={a.dv_steps}", "train.precision=bf16", "train.warmup_steps=100",
                  "train.ema_decay=0.998")]  # fmt: skip


def gpt_args(w: Path, dv: Path, out: Path, a: argparse.Namespace) -> list[str]:
    """The GPT: 6 blocks of width 192, a 4-frame window (3 given frames), the factorized head over the FSQ digits,
    actions on, captions off (the actions say what happens)."""
    return ["train", "autoregressive", "--tokenizer", str(dv), "--data", f"{w}/arm_train/*.tar", "--out", str(out),
            "--preset", "tiny",
            *sets("model.dim=192", "model.depth=6", "model.heads=6", "model.kv_heads=3", "model.head=factorized",
                  "model.max_frames=4", "data.actions=true", "data.caption_dropout=1.0", "train.batch_size=16",
                  f"train.steps={a.gpt_steps}", "train.ckpt_every=500")]  # fmt: skip


def parameters(model: str) -> int:
    """Stored parameters of a run's (or shipped model's) weights."""
    with safe_open(str(Path(resolve(model)) / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def main() -> None:
    a = parse()
    w = a.work.resolve()
    reader = str(Path(a.reader).resolve()) if Path(a.reader).is_dir() else a.reader
    dv, gpt = (a.dv or w / "dv64k").resolve(), (a.gpt or w / "gpt-arm").resolve()
    log: dict = {}
    if not (dv / "model.safetensors").exists():
        run(dv_args(w, dv, a), log, "DV tokenizer", a.threads)
    if logged_max(gpt, "step") < a.gpt_steps:
        run(gpt_args(w, dv, gpt, a), log, "GPT", a.threads)
    evals = [("diffusion", a.diffusion, None)] + [("autoregressive", str(gpt), float(t)) for t in a.temperatures.split(",")]
    rows = []
    for family, model, temperature in evals:
        name = Path(model).name + ("" if temperature is None else f"-t{temperature:g}")
        report = w / f"families-{name}.json"
        if not report.exists():
            extra = [] if temperature is None else ["--set", f"temperature={temperature:g}"]
            run(["eval", "rollouts", "--model", model, "--data", str(w / "arm_pairs"), "--episodes", str(a.episodes),
                 "--frames", "16", "--reader", reader, "--json", str(report), *extra], log, f"eval {name}", a.threads)  # fmt: skip
        rows.append({"family": family, "model": model, "temperature": temperature, "parameters": parameters(model),
                     "rollouts": json.loads(report.read_text())})  # fmt: skip
    long = w / f"families-{gpt.name}-t{a.long_temperature:g}-64.json"
    if not long.exists():
        run(["eval", "rollouts", "--model", str(gpt), "--data", str((a.long_data or w / "arm_pairs").resolve()),
             "--episodes", str(a.long_episodes),
             "--frames", "64", "--reader", reader, "--json", str(long), "--set", f"temperature={a.long_temperature:g}"],
            log, "eval GPT 64 frames", a.threads)  # fmt: skip
    results = {"steps": log, "rows": rows, "long": json.loads(long.read_text()), "long_temperature": a.long_temperature,
               "machine": machine(), "gpt_minutes": round(train_minutes(gpt), 1),
               "gpt_command": shown(gpt_args(w, dv, gpt, a), w, dv, gpt),
               "dv_command": shown(dv_args(w, dv, a), w, dv, gpt)}  # fmt: skip
    publish("action-families", render(results), results, a.json, not a.no_results)


SCORES = ["PSNR dB", "SSIM", "FD", "gripper px", "objects px"]  # columns of results_md.ROLLOUT_COLUMNS


def shown(args: list[str], w: Path, dv: Path, gpt: Path) -> str:
    """A command as the README writes it: WORK's clips under data/, the two runs under runs/."""
    text = "worldsmith " + shlex.join(args)
    return text.replace(str(dv), "runs/dv64k").replace(str(gpt), "runs/gpt-arm").replace(str(w), "data")


def render(r: dict) -> str:
    begin, end = markers("action-families")
    first = r["rows"][0]["rollouts"]
    lines = [begin, "## Both families post-trained on the arm's actions (`python benchmarks/action_families.py`)", "",
             f"Machine: {r['machine']}; 2 torch threads. {first['episodes']} held-out arm rollouts ({first['episodes'] // 2} scenes x 2 "
             f"action branches, seeds 2000003.., never trained on), {first['frames']} frames from one first frame; "
             f"mean ± standard error. Discrimination: the share of rollouts closer to their own truth than to the other "
             f"branch's. Each family's ceiling is its tokenizer's reconstruction of the truth.", "",
             "| family | model | parameters | sampling | " + " | ".join(SCORES) + " | discrimination "
             "| actions zeroed PSNR | frame change (truth) | tokenizer ceiling PSNR / gripper px |",
             "|---|---|---|---|" + "---|" * len(SCORES) + "---|---|---|---|"]  # fmt: skip
    for row in r["rows"]:
        m, ro = row["rollouts"]["model"], row["rollouts"]
        sampling = "model default" if row["temperature"] is None else (
            "greedy" if row["temperature"] == 0 else f"temperature {row['temperature']:g}")
        lines.append(f"| {row['family']} | {Path(row['model']).name} | {row['parameters'] / 1e6:.2f}M | {sampling} | "
                     + " | ".join(ROLLOUT_COLUMNS[c](m) for c in SCORES) + " | "
                     f"{100 * ro['action_discrimination']:.1f} % | {ro['floor_no_action_psnr']:.2f} | "
                     f"{m['frame_change']:.2f} ({m['truth_frame_change']:.2f}) | "
                     f"{ro['ceiling_tokenizer_psnr']:.2f} / {ro['tokenizer']['gripper_error_px']:.2f} |")  # fmt: skip
    copy, lg = first["copy_first"], r["long"]
    m = lg["model"]
    q = lg["frames"] // 4
    quarters = [sum(m["psnr_per_step"][i * q : (i + 1) * q]) / q for i in range(4)]
    grip = [sum(m["gripper_error_px_per_step"][i * q : (i + 1) * q]) / q for i in range(4)]
    lines += ["", f"{lg['frames']}-frame rollouts of the GPT at temperature {r['long_temperature']:g} ({lg['episodes']} held-out "
              f"episodes): PSNR by quarter {' / '.join(f'{q:.2f}' for q in quarters)} dB, gripper error by quarter "
              f"{' / '.join(f'{g:.2f}' for g in grip)} px; frame-to-frame change {m['frame_change']:.2f} against the "
              f"truth's {m['truth_frame_change']:.2f} ({m['frame_change'] / m['truth_frame_change']:.2f}x)."]  # fmt: skip
    lines += ["", f"Copy the first frame (floor): {copy['psnr']:.2f} dB, gripper {copy['gripper_error_px']:.2f} px.", "",
              f"The GPT ({r['gpt_minutes']} minutes of training):", "", "```bash", r["dv_command"], r["gpt_command"],
              "```", end]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
