"""World models as environments: batched stepping speed, policy ranking against the simulator, planning.

1. steps per second of ``BatchedWorldModelEnv`` (the shipped ``arm-action`` + ``arm-reader``) at 1 / 16 / 64 / 256
   rollouts stepped together, with 1 and 3 Euler steps per frame (model, decoding and reading included);
2. behaviour-cloning policies for reach and push (``worldsmith train policy``);
3. ``worldsmith eval policies`` on reach and push: graded policies in the simulator and in the world model from the
   same held-out start states (success rates, Kendall tau, Pearson r, mean absolute difference);
4. ``worldsmith plan`` on reach and push: CEM in the world model, executed in the simulator, against random and
   scripted baselines, seconds per decision; and the same planner imagining with the simulator itself
   (``--model simulator``), the most any world model could give it.

Each step is a printed ``worldsmith`` command, skipped when its output exists (run again to resume); the figures
go to the ``envs`` section of benchmarks/RESULTS.md.

    python benchmarks/envs.py --work runs/envs [--episodes 32] [--plan-episodes 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from foundation import run
from results_md import machine, markers, publish

PUSH_POLICIES = ["scripted", "scripted:noise=0.1", "scripted:noise=0.2", "scripted:delay=2", "scripted:noise=0.4",
                 "random"]  # fmt: skip


def step(args: list[str], out: Path, log: dict, name: str, threads: int) -> None:
    if not out.exists():
        run(args, log, name, threads)


def stepping_speed(sizes: list[int], threads: int) -> list[dict]:
    import numpy as np
    import torch

    from worldsmith.diffusion.config import SamplingConfig
    from worldsmith.diffusion.generate import DiffusionGenerator
    from worldsmith.envs.world_model import BatchedWorldModelEnv, load_reader

    torch.set_num_threads(threads)
    gen, reader = DiffusionGenerator.from_run("arm-action"), load_reader("arm-reader", "cpu")
    rows = []
    for steps in (1, 3):
        envs = BatchedWorldModelEnv(gen, "reach", reader=reader, sampling=SamplingConfig(steps=steps, sampler="euler"))
        for n in sizes:
            envs.reset(seeds=range(n))
            actions = np.zeros((n, 7), np.float32)
            envs.step(actions)  # warm-up
            reps = 3 if n >= 64 else 5
            t0 = time.perf_counter()
            for _ in range(reps):
                envs.step(actions)
            dt = (time.perf_counter() - t0) / reps
            rows.append({"rollouts": n, "euler_steps": steps, "seconds_per_step": dt, "rollout_steps_per_s": n / dt})
            print(f"{n:4d} rollouts, {steps} Euler step(s): {dt:.3f} s per step, {n / dt:.1f} rollout-steps/s",
                  flush=True)  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=32, help="held-out episodes per policy")
    p.add_argument("--plan-episodes", type=int, default=16)
    p.add_argument("--sizes", default="1,16,64,256")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    p.add_argument("--no-results", action="store_true")
    a = p.parse_args()
    w = a.work
    w.mkdir(parents=True, exist_ok=True)
    speed_file = w / "speed.json"
    if not speed_file.exists():
        speed_file.write_text(json.dumps(stepping_speed([int(x) for x in a.sizes.split(",")], a.threads)))
    log: dict = {}
    for task in ("reach", "push"):
        step(["train", "policy", "--task", task, "--out", str(w / f"bc-{task}")], w / f"bc-{task}" /
            "policy.json", log, f"behaviour cloning ({task})", a.threads)  # fmt: skip
        specs = [] if task == "reach" else sum((["-p", s] for s in PUSH_POLICIES), [])
        if task == "reach":
            from worldsmith.envs.policies import DEFAULT_POLICIES

            specs = sum((["-p", s] for s in DEFAULT_POLICIES), [])
        step(["eval", "policies", "--task", task, *specs, "-p", f"bc:{w / f'bc-{task}'}", "-n",
             str(a.episodes), "--set", "steps=1", "--json", str(w / f"policies-{task}.json"), "--svg",
             str(w / f"policies-{task}.svg")], w / f"policies-{task}.json", log, f"policy ranking ({task})",
            a.threads)  # fmt: skip
        for model in ("arm-action", "simulator"):  # the simulator imagining for itself: the planner's ceiling
            out = w / f"plan-{task}{'' if model == 'arm-action' else '-simulator'}.json"
            step(["plan", "--model", model, "--task", task, "-n", str(a.plan_episodes), "--json", str(out)], out, log,
                 f"planning ({task}, {model})", a.threads)  # fmt: skip
    plans = {f"{t}{s}": json.loads((w / f"plan-{t}{s}.json").read_text()) for t in ("reach", "push")
             for s in ("", "-simulator")}  # fmt: skip
    results = {"speed": json.loads(speed_file.read_text()), "machine": machine(), "steps": log,
               "policies": {t: json.loads((w / f"policies-{t}.json").read_text()) for t in ("reach", "push")},
               "plan": plans}  # fmt: skip
    publish("envs", render(results, a), results, a.json, not a.no_results)


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("envs")
    lines = [begin, "## World models as environments (`python benchmarks/envs.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads; the shipped `arm-action` "
             "model and `arm-reader`.", "", "**Batched stepping** (`BatchedWorldModelEnv.step`: the model, decoding "
             "and the state reader):", "", "| rollouts | Euler steps | s per step | rollout-steps/s |", "|---|---|---|---|"]  # fmt: skip
    for row in r["speed"]:
        lines.append(f"| {row['rollouts']} | {row['euler_steps']} | {row['seconds_per_step']:.3f} | "
                     f"{row['rollout_steps_per_s']:.1f} |")  # fmt: skip
    for task, rep in r["policies"].items():
        tau = "n/a" if rep["kendall_tau"] is None else f"{rep['kendall_tau']:.2f}"
        pr = "n/a" if rep["pearson_r"] is None else f"{rep['pearson_r']:.2f}"
        lines += ["", f"**Policy ranking, {task}** ({rep['episodes']} held-out episodes per policy, world model "
                  f"sampled with 1 Euler step): Kendall tau **{tau}**, Pearson r {pr}, mean absolute difference "
                  f"**{rep['mean_abs_diff_points']:.1f} points**, per-episode agreement "
                  f"{rep['episode_agreement']:.0%}.", "", "| policy | simulator | world model | episodes agreeing |",
                  "|---|---|---|---|"]  # fmt: skip
        for row in rep["policies"]:
            name = row["policy"] if not row["policy"].startswith("bc:") else "behaviour cloning"
            lines.append(f"| {name} | {row['sim_success']:.0%} | {row['wm_success']:.0%} | "
                         f"{row['episode_agreement']:.0%} |")  # fmt: skip
    lines += ["", "**Planning in the simulator** (CEM in the world model, replanning every step; imagining with "
              "`simulator`: the simulator itself, the planner's ceiling):", "",
              "| task | imagined with | episodes | planner | random | scripted | s per decision | CEM |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, rep in r["plan"].items():
        c, task = rep["planner"], key.split("-")[0]
        lines.append(f"| {task} | {rep.get('model', 'arm-action')} | {rep['episodes']} | "
                     f"{rep['success']:.0%} ± {rep['success_sem']:.0%} | "
                     f"{rep['random_success']:.0%} | {rep['scripted_success']:.0%} | {rep['seconds_per_decision']:.2f} | "
                     f"{c['samples']} samples, horizon {c['horizon']}, {c['iterations']} iterations |")  # fmt: skip
    lines.append(end)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
