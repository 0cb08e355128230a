"""Commands that use a world model as an environment: ``worldsmith eval policies``, ``worldsmith plan``,
``worldsmith train policy`` and ``worldsmith synth`` (registered by worldsmith/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith import config as C
from worldsmith.atomic import atomic_write_text
from worldsmith.cli_options import DeviceOption
from worldsmith.envs.evaluate import evaluate_policies, format_policy_report, run_simulator, scatter_svg
from worldsmith.envs.oracle import SIMULATOR, SimulatorStepper
from worldsmith.envs.plan import CEMConfig, plan_episodes
from worldsmith.envs.policies import DEFAULT_POLICIES, make_policy, train_bc
from worldsmith.envs.synthetic import synthesize
from worldsmith.envs.world_model import BatchedWorldModelEnv, load_reader
from worldsmith.errors import ConfigError
from worldsmith.families import load_generator
from worldsmith.io.encode import encode_mp4
from worldsmith.jobs import sampling_config
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.tasks import make_task

TASK_HELP = "Task on the arm world: reach, push or pick_place."
MODEL_HELP = "An action-conditioned world model: a run directory or a shipped model's name."


def _envs(model: str, task: str, reader: str, overrides: list[str] | None, device: str):
    generator = load_generator(model, device=device)
    sampling = sampling_config(generator, C.parse_overrides(overrides or []))
    return BatchedWorldModelEnv(generator, task, reader=reader, sampling=sampling, device=device)


def policies(
    model: str = typer.Option("arm-action", "--model", "-m", help=MODEL_HELP),
    task: str = typer.Option("reach", "--task", help=TASK_HELP),
    policy: Optional[list[str]] = typer.Option(None, "--policy", "-p", help="A policy spec (repeat the flag); "
                                               "default: seven scripted / noisy / delayed / random policies. "
                                               "Specs: scripted, scripted:noise=S, scripted:delay=K, random, bc:RUN."),
    episodes: int = typer.Option(32, "--episodes", "-n", min=1, help="Held-out episodes per policy."),
    reader: str = typer.Option("arm-reader", "--reader", help="State reader run or shipped name."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings, e.g. --set steps=1."),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Write the report to this JSON file."),
    svg: Optional[Path] = typer.Option(None, "--svg", help="Write the simulator-vs-world-model plot (SVG) here."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Rank policies inside the world model and in the simulator from the same held-out start states: success
    rates side by side, Pearson r, Kendall tau, mean absolute difference, per-episode agreement."""
    specs = list(policy or DEFAULT_POLICIES)
    for spec in specs:
        make_policy(spec, task)  # fail fast on a bad spec or task
    envs = _envs(model, task, reader, overrides, device)
    report = evaluate_policies(envs, specs, episodes, progress=typer.echo)
    report["model"] = model
    if as_json:
        atomic_write_text(as_json, json.dumps(report, indent=2))
    if svg:
        atomic_write_text(svg, scatter_svg(report))
    typer.echo(format_policy_report(report))


def plan(
    model: str = typer.Option("arm-action", "--model", "-m", help=MODEL_HELP + " `simulator` imagines with the "
                              "simulator itself: the planner's ceiling."),
    task: str = typer.Option("reach", "--task", help="reach or push."),
    episodes: int = typer.Option(16, "--episodes", "-n", min=1, help="Held-out episodes run in the simulator."),
    samples: int = typer.Option(32, "--samples", min=2, help="Action sequences imagined per CEM iteration."),
    horizon: int = typer.Option(2, "--horizon", min=1, help="Steps each imagined sequence looks ahead."),
    iterations: int = typer.Option(2, "--iterations", min=1, help="CEM refits per decision."),
    elites: int = typer.Option(6, "--elites", min=1, help="Best sequences the Gaussian is refitted to."),
    reader: str = typer.Option("arm-reader", "--reader", help="State reader run or shipped name."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also run the random and scripted "
                                   "policies on the same episodes."),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Write the report to this JSON file."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Write each planned episode as an mp4 here."),
    compile: bool = typer.Option(False, "--compile", help="Autoregressive models: run the decode step through "
                                 "torch.compile (needs a C++ compiler; 20-30 s more at the first decision, then "
                                 "2.7-2.9 s a decision instead of 3.5 at 32 candidates on 2 cores)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="How the model imagines the candidates, e.g. "
                                                  "--set steps=3 (default: the family's cheap planning sampling)."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Model-predictive control: plan each action with the world model (CEM over imagined rollouts scored by the
    state reader), execute it in the real simulator, replan. Prints the success rate, with random and scripted
    baselines, and the seconds per decision."""
    cfg = CEMConfig(samples=samples, horizon=horizon, iterations=iterations, elites=elites)
    t = make_task(task)
    generator = SimulatorStepper() if model == SIMULATOR else load_generator(model, device=device)
    if compile:
        if not hasattr(generator, "compile"):
            raise ConfigError(f"--compile compiles an autoregressive model's decode step; {model} is a "
                              f"{type(generator).__name__}, which has none to compile: drop --compile.")  # fmt: skip
        generator.compile = True
    sampling = None
    if overrides:
        if model == SIMULATOR:
            raise ConfigError("the simulator imagines exactly and has no sampling settings; drop --set.")
        sampling = sampling_config(generator, C.parse_overrides(overrides), base=generator.planning_sampling())
    frames: list = []
    report = plan_episodes(generator, load_reader(reader, device), t, episodes, cfg=cfg, progress=typer.echo,
                           videos=frames if videos else None, sampling=sampling)  # fmt: skip
    report["model"] = model
    if baselines:
        seeds = [episode_seed(report["base_seed"], e) for e in range(episodes)]
        for spec in ("random", "scripted"):
            report[f"{spec}_success"] = float(run_simulator(t, spec, seeds, generator.size)["success"].mean())
    if videos:
        videos.mkdir(parents=True, exist_ok=True)
        for e, v in enumerate(frames):
            encode_mp4(v, videos / f"{task}_{e:03d}.mp4", fps=generator.fps or WorldConfig().fps)  # the simulator's
    if as_json:
        atomic_write_text(as_json, json.dumps(report, indent=2))
    line = f"{task}: planner {report['success']:.0%} (+-{report['success_sem']:.0%}) of {episodes} episodes"
    if baselines:
        line += f", random {report['random_success']:.0%}, scripted {report['scripted_success']:.0%}"
    typer.echo(line + f"; {report['seconds_per_decision']:.2f} s per decision")


def train_policy(
    task: str = typer.Option("reach", "--task", help=TASK_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for the policy."),
    episodes: int = typer.Option(300, "--episodes", "-n", min=1, help="Scripted simulator episodes to clone."),
    steps: int = typer.Option(3000, "--steps", min=1, help="Optimizer steps."),
    seed: int = typer.Option(0, "--seed"),
) -> None:  # fmt: skip
    """Behaviour cloning: fit an MLP policy (state features -> action) to the task's scripted behaviour in the
    simulator; use it as `--policy bc:OUT` in `worldsmith eval policies`."""
    summary = train_bc(task, out, episodes=episodes, steps=steps, seed=seed)
    typer.echo(f"policy written to {out} ({summary['samples']} state-action pairs, final MSE {summary['final_mse']:.4f})")


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Shard directory to write."),
    model: str = typer.Option("arm-action", "--model", "-m", help=MODEL_HELP),
    task: str = typer.Option("reach", "--task", help=TASK_HELP + " (the start states and goals)"),
    policy: str = typer.Option("scripted:noise=0.3", "--policy", "-p", help="The policy that acts in the model."),
    episodes: int = typer.Option(64, "--episodes", "-n", min=1, help="Rollouts to write."),
    frames: int = typer.Option(17, "--frames", "-t", min=2, help="Frames per rollout (the start frame included)."),
    seed: int = typer.Option(7_000_003, "--seed", help="Base seed of the start states."),
    batch: int = typer.Option(32, "--batch", min=1, help="Rollouts stepped together."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings, e.g. --set steps=1."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Synthetic data: roll a policy out inside the world model from simulator start states and write the
    rollouts as normal clip shards (frames, the actions taken, the reader's estimates), so the same training
    commands consume them."""
    if frames < 2:
        raise ConfigError("a synthetic clip needs at least 2 frames.")
    envs = _envs(model, task, "arm-reader", overrides, device)
    n = synthesize(envs, policy, out, episodes=episodes, frames=frames, base_seed=seed, batch=batch)
    typer.echo(f"{n} synthetic clips written to {out}")

