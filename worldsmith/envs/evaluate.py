"""``worldsmith eval policies``: rank policies inside a world model and check the verdict against the simulator.

Every policy runs the same episodes (start states and goals from held-out seeds) twice: in the arm simulator
(``WorldEnv(task=...)``, success from the true state) and in the world model (``BatchedWorldModelEnv``: all the
episodes of a policy in one batch, success from the state reader's reading of the generated frames). The report
gives each policy's two success rates, their Pearson r and Kendall tau across policies, the mean absolute difference
(points), and the per-episode agreement of the two verdicts.
"""

from __future__ import annotations

import html
from typing import Any, Callable, Sequence

import numpy as np

from worldsmith.envs.policies import make_policy
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import Task

EVAL_SEED = 4_000_037  # base seed of the policy-evaluation episodes (training data: 0; held-out clips: 1_000_003+)


def eval_seeds(episodes: int, base: int = EVAL_SEED) -> list[int]:
    return [episode_seed(base, i) for i in range(episodes)]


def run_simulator(task: Task, spec: str, seeds: Sequence[int], size: int = 64) -> dict[str, np.ndarray]:
    """Per episode: success (bool), steps taken, final distance (px) of ``spec`` in the simulator."""
    env = WorldEnv("arm", WorldConfig(size=size), task=task.name)
    out = {"success": [], "steps": [], "distance": []}
    for seed in seeds:
        _, info = env.reset(seed=int(seed))
        policy = make_policy(spec, task)
        policy.reset(env.world, env.goal, np.random.default_rng(int(seed)))
        for t in range(task.max_steps):
            _, _, done, trunc, info = env.step(policy.act(env.world))
            if done or trunc:
                break
        out["success"].append(bool(info["success"]))
        out["steps"].append(t + 1)
        out["distance"].append(float(info["distance_px"]))
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


def run_world_model(envs, spec: str, seeds: Sequence[int], starts=None) -> dict[str, np.ndarray]:
    """The same in a ``BatchedWorldModelEnv`` (all episodes in one batch; an episode stops counting once it
    succeeds, its rollout keeps running with the others)."""
    task = envs.task
    _, infos = envs.reset(seeds=None if starts else seeds, starts=starts)
    policies = [make_policy(spec, task) for _ in seeds]
    for p, view, start in zip(policies, envs.views, envs.starts):
        p.reset(view, start.goal, np.random.default_rng(int(start.seed)))
    n = len(seeds)
    done = np.zeros(n, bool)
    success, steps, distance = np.zeros(n, bool), np.full(n, task.max_steps), np.zeros(n)
    for t in range(task.max_steps):
        actions = np.stack([p.act(v) if not d else np.zeros(7, np.float32)
                            for p, v, d in zip(policies, envs.views, done)])  # fmt: skip
        _, _, term, trunc, infos = envs.step(actions)
        for i in np.flatnonzero(~done):
            if term[i] or trunc[i]:
                done[i], success[i], steps[i] = True, bool(term[i]), t + 1
            distance[i] = infos[i]["distance_px"]
        if done.all():
            break
    return {"success": success, "steps": steps, "distance": distance}


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float | None:
    """Kendall's tau-b (ties in either ranking handled), None when a ranking is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if a == 0 and b == 0:
                continue
            if a == 0:
                tx += 1
            elif b == 0:
                ty += 1
            elif a == b:
                conc += 1
            else:
                disc += 1
    denom = np.sqrt((conc + disc + tx) * (conc + disc + ty))
    return float((conc - disc) / denom) if denom else None


def evaluate_policies(envs, policies: Sequence[str], episodes: int, *, base_seed: int = EVAL_SEED,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The report of the module docstring for ``policies`` (spec strings) on ``episodes`` held-out episodes."""
    task = envs.task
    seeds = eval_seeds(episodes, base_seed)
    starts = envs.make_starts(seeds)
    rows = []
    for spec in policies:
        make_policy(spec, task)  # a bad spec fails before any rollout
    for spec in policies:
        sim = run_simulator(task, spec, seeds, envs.size)
        wm = run_world_model(envs, spec, seeds, starts)
        row = {"policy": spec, "sim_success": float(sim["success"].mean()), "wm_success": float(wm["success"].mean()),
               "sim_steps": float(sim["steps"].mean()), "wm_steps": float(wm["steps"].mean()),
               "sim_final_distance_px": float(sim["distance"].mean()),
               "wm_final_distance_px": float(wm["distance"].mean()),
               "episode_agreement": float((sim["success"] == wm["success"]).mean()),
               "sim_success_sem": float(sim["success"].std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else 0.0}  # fmt: skip
        rows.append(row)
        if progress is not None:
            progress(f"{spec}: simulator {row['sim_success']:.0%}, world model {row['wm_success']:.0%}")
    s = np.array([r["sim_success"] for r in rows])
    w = np.array([r["wm_success"] for r in rows])
    return {"task": task.name, "episodes": episodes, "base_seed": base_seed, "policies": rows,
            "pearson_r": pearson(s, w), "kendall_tau": kendall_tau(s, w),
            "mean_abs_diff_points": float(np.abs(s - w).mean() * 100),
            "episode_agreement": float(np.mean([r["episode_agreement"] for r in rows]))}  # fmt: skip


def format_policy_report(r: dict[str, Any]) -> str:
    lines = [f"task {r['task']}, {r['episodes']} held-out episodes per policy",
             f"{'policy':28s} {'simulator':>10s} {'world model':>12s} {'agree':>7s}"]  # fmt: skip
    for row in r["policies"]:
        lines.append(f"{row['policy']:28s} {row['sim_success']:>10.0%} {row['wm_success']:>12.0%} "
                     f"{row['episode_agreement']:>7.0%}")  # fmt: skip
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines.append(f"Pearson r {fmt(r['pearson_r'])}, Kendall tau {fmt(r['kendall_tau'])}, mean |difference| "
                 f"{r['mean_abs_diff_points']:.1f} points")  # fmt: skip
    return "\n".join(lines)


def scatter_svg(r: dict[str, Any], size: int = 360) -> str:
    """A self-contained SVG: simulator success (x) against world-model success (y), one labelled dot per policy."""
    pad, inner = 48, size - 72
    pos = lambda v: pad + v * inner  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 160}" height="{size}" font-family="sans-serif" '
             f'font-size="11">', f'<rect x="{pad}" y="{pad - 24}" width="{inner}" height="{inner}" fill="none" '
             f'stroke="#888"/>',  # fmt: skip
             f'<line x1="{pad}" y1="{pad - 24 + inner}" x2="{pad + inner}" y2="{pad - 24}" stroke="#ccc" '
             f'stroke-dasharray="4"/>',
             f'<text x="{pad + inner / 2}" y="{size - 8}" text-anchor="middle">success in the simulator</text>',
             f'<text x="12" y="{pad - 24 + inner / 2}" transform="rotate(-90 12 {pad - 24 + inner / 2})" '
             f'text-anchor="middle">success in the world model</text>',
             f'<text x="{pad}" y="14">{html.escape(r["task"])}: Kendall tau '
             f'{"n/a" if r["kendall_tau"] is None else round(r["kendall_tau"], 2)}, mean |diff| '
             f'{r["mean_abs_diff_points"]:.1f} pts</text>']  # fmt: skip
    for v in (0, 0.5, 1):
        parts.append(f'<text x="{pos(v)}" y="{pad - 24 + inner + 14}" text-anchor="middle">{v:.0%}</text>')
        parts.append(f'<text x="{pad - 6}" y="{pad - 24 + inner - v * inner + 4}" text-anchor="end">{v:.0%}</text>')
    for row in r["policies"]:
        x, y = pos(row["sim_success"]), pad - 24 + inner - row["wm_success"] * inner
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1f6feb"/>')
        parts.append(f'<text x="{x + 6:.1f}" y="{y - 4:.1f}">{html.escape(row["policy"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)

