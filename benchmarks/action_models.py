"""Action post-training on the arm world: from the base vs from scratch at several data sizes, and long rollouts.

Needs the outputs of ``benchmarks/foundation.py`` in ``--work`` (``base``, ``arm_train``, ``arm_pairs``) and a state
reader (a run of ``worldsmith eval reader`` or a shipped name; default the shipped ``arm-reader``).

1. for each data size (the first N training episodes, whole shards) and each start (the base model's weights, or
   the same architecture from random weights): ``worldsmith posttrain action`` with the same steps and schedule;
2. ``worldsmith eval rollouts`` of each on the held-out arm pairs (16 frames): PSNR, gripper error, action
   discrimination, beside the no-action and copy-the-first-frame floors;
3. ``--long`` (default: the shipped ``arm-action``) on 64-frame rollouts (per-step PSNR and gripper error, frame
   change);
4. instruction post-training from the base at the largest size (``--no-instruction`` skips it), scored with
   instruction following (eval/instruction.py) beside the same model without its caption and the base;
5. the ``action_models`` section of benchmarks/RESULTS.md.

Each step is a printed ``worldsmith`` command and is skipped when its output exists (run again to resume).

    python benchmarks/action_models.py --work runs/foundation [--sizes 64,256,1024] [--steps 1500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
from foundation import run
from results_md import machine, markers, publish, rollout_table


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/foundation"))
    p.add_argument("--sizes", default="64,256,1024", help="training episodes per run (rounded up to whole shards)")
    p.add_argument("--steps", type=int, default=1500, help="post-training steps of every run")
    p.add_argument("--episodes", type=int, default=64, help="held-out episodes scored per run")
    p.add_argument("--reader", default="arm-reader", help="state reader: a run folder or a shipped name")
    p.add_argument("--long", default="arm-action", help="the model scored on 64-frame rollouts (a run or shipped name)")
    p.add_argument("--long-data", type=Path, default=None,
                   help="held-out arm pairs of at least 65 frames for --long (default: WORK/arm_pairs)")
    p.add_argument("--long-episodes", type=int, default=64, help="held-out episodes of the 64-frame rollouts")
    p.add_argument("--no-instruction", dest="instruction", action="store_false",
                   help="skip the instruction post-training (from the base, at the largest size)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    return p.parse_args()


def subset(train: Path, episodes: int, out: Path) -> tuple[Path, int]:
    """A folder of links to the first whole shards of ``train`` holding >= ``episodes`` clips; (folder, clips)."""
    counts = pq.read_table(train / "manifest.parquet", columns=["shard"]).column("shard").to_pylist()
    shards = sorted(set(counts))
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for shard in shards:
        if total >= episodes:
            break
        link = out / Path(shard).name
        if not link.exists():
            link.symlink_to((train / Path(shard).name).resolve())
        total += counts.count(shard)
    return out, total


def main() -> None:
    a = parse()
    w = a.work.resolve()
    reader = str(Path(a.reader).resolve()) if Path(a.reader).is_dir() else a.reader
    log: dict = {}
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        data, clips = subset(w / "arm_train", n, w / "action_data" / f"arm{n}")
        for start in ("base", "scratch"):
            out = w / f"action-{n}-{start}"
            if not (out / "model.safetensors").exists() or not (out / "train_state").exists():
                init = [] if start == "base" else ["--set", "init_from="]
                run(["posttrain", "action", "--from", str(w / "base"), "--data", f"{data}/*.tar", "--out", str(out),
                     "--set", f"train.steps={a.steps}", *init], log, f"posttrain {n} {start}", a.threads)  # fmt: skip
            report = out / "rollouts16.json"
            if not report.exists():
                run(["eval", "rollouts", "--model", str(out), "--data", str(w / "arm_pairs"), "--episodes",
                     str(a.episodes), "--frames", "16", "--reader", reader, "--json", str(report)],
                    log, f"eval {n} {start}", a.threads)  # fmt: skip
            rows.append({"episodes": clips, "start": start, "rollouts": json.loads(report.read_text())})
    instruction = instruction_run(w, a, reader, log) if a.instruction else None
    long_report = w / f"{Path(a.long).name}-rollouts64.json"
    if not long_report.exists():
        run(["eval", "rollouts", "--model", a.long, "--data", str((a.long_data or w / "arm_pairs").resolve()),
             "--episodes", str(a.long_episodes), "--frames", "64", "--reader", reader, "--json", str(long_report)],
            log, "eval 64 frames", a.threads)  # fmt: skip
    results = {"steps": log, "runs": rows, "long": json.loads(long_report.read_text()), "machine": machine(),
               "post_training_steps": a.steps, "instruction": instruction}  # fmt: skip
    publish("action_models", render(results, a), results, a.json, not a.no_results)


def instruction_run(w: Path, a: argparse.Namespace, reader: str, log: dict) -> dict:
    """Instruction post-training from the base on the largest data size (captions, no actions), scored with the
    base model as a floor beside the same model without its caption."""
    n = max(int(s) for s in a.sizes.split(","))
    data, clips = subset(w / "arm_train", n, w / "action_data" / f"arm{n}")
    out = w / f"instruction-{n}-base"
    if not (out / "model.safetensors").exists() or not (out / "train_state").exists():
        run(["posttrain", "instruction", "--from", str(w / "base"), "--data", f"{data}/*.tar", "--out", str(out),
             "--set", f"train.steps={a.steps}"], log, f"posttrain instruction {n}", a.threads)  # fmt: skip
    report = out / "rollouts16.json"
    if not report.exists():
        run(["eval", "rollouts", "--model", str(out), "--data", str(w / "arm_pairs"), "--episodes", str(a.episodes),
             "--frames", "16", "--reader", reader, "--base", str(w / "base"), "--json", str(report)],
            log, "eval instruction", a.threads)  # fmt: skip
    return {"episodes": clips, "rollouts": json.loads(report.read_text())}


def render_instruction(r: dict, a: argparse.Namespace) -> list[str]:
    ro = r["rollouts"]
    lines = ["", f"Instruction post-training (`worldsmith posttrain instruction`, from the base, {r['episodes']} "
             f"episodes, {a.steps} steps): 16 frames from the first frame and the caption alone (no actions). "
             f"Instruction following (eval/instruction.py): of the {ro['model'].get('instruction_episodes', 0)} "
             "rollouts whose caption names an object the truth moves within the 16 frames, the share where that "
             "object moves to its true place while the others stay:", ""]  # fmt: skip
    lines += rollout_table(ro, [("instruction model", "model"), ("the same without the caption (floor)", "no_instruction"),
                                ("the base model, Video2World with the caption (floor)", "base"),
                                ("copy the first frame (floor)", "copy_first"),
                                ("tokenizer reconstruction (ceiling)", "tokenizer")],
                           ["PSNR dB", "gripper px", "named object px", "other objects px", "named object moved"])  # fmt: skip
    if "action_discrimination" in ro:
        lines += ["", f"Instruction discrimination (the same first frame, two episodes with other captions): "
                  f"{100 * ro['action_discrimination']:.1f}% of {ro['discrimination_pairs']} rollouts are closer to "
                  "their own truth than to the other's."]  # fmt: skip
    return lines


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("action_models")
    lines = [begin, "## Action post-training: from the base vs from scratch (`python benchmarks/action_models.py`)",
             "", f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads. Every run: "
             f"{r['post_training_steps']} steps of `worldsmith posttrain action` (the same schedule), scored on "
             f"{a.episodes} held-out arm episodes (seeds never trained on), 16 frames from one first frame and the "
             f"episode's actions (mean ± standard error over episodes):", "",
             "| episodes | start | PSNR dB | no-action floor | copy floor | gripper px | objects px | discrimination "
             "| named object moved |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in r["runs"]:
        ro = row["rollouts"]
        m, disc = ro["model"], ro.get("action_discrimination")
        share = "-" if disc is None else f"{100 * disc:.0f}% of {ro['discrimination_pairs']}"
        moved = f"{100 * m['instruction_following']:.0f}%" if "instruction_following" in m else "-"
        lines.append(f"| {row['episodes']} | {row['start']} | {m['psnr']:.2f} ± {m['psnr_sem']:.2f} | "
                     f"{ro['no_action']['psnr']:.2f} | {ro['copy_first']['psnr']:.2f} | "
                     f"{m.get('gripper_error_px', float('nan')):.2f} | {m.get('object_error_px', float('nan')):.2f} | "
                     f"{share} | {moved} |")  # fmt: skip
    lo = r["long"]
    lines += ["", f"64-frame rollouts of `{a.long}` ({lo['episodes']} episodes): per-step PSNR "
              "and gripper error (every 8th step), and the mean frame-to-frame change of the generation against "
              "the truth's (a frozen rollout has ~0, an exploding one far more):", "",
              "| step | " + " | ".join(str(i + 1) for i in range(0, lo["frames"], 8)) + " |",
              "|---|" + "---|" * len(range(0, lo["frames"], 8))]  # fmt: skip
    for label, key in (("PSNR dB", "psnr_per_step"), ("gripper px", "gripper_error_px_per_step")):
        values = lo["model"].get(key) or []
        if values:
            lines.append(f"| {label} | " + " | ".join(f"{values[i]:.2f}" for i in range(0, len(values), 8)) + " |")
    copy = lo["copy_first"].get("psnr_per_step") or []
    if copy:
        lines.append("| copy floor PSNR | " + " | ".join(f"{copy[i]:.2f}" for i in range(0, len(copy), 8)) + " |")
    lines.append(f"\nFrame-to-frame change: generation {lo['frame_change']:.2f}, truth {lo['truth_frame_change']:.2f} "
                 "(mean absolute, 0-255).")
    if r.get("instruction"):
        lines += render_instruction(r["instruction"], a)
    return "\n".join(lines + ["", end])


if __name__ == "__main__":
    main()
