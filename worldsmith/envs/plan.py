"""``worldsmith plan``: model-predictive control with a world model, executed in the real simulator.

At every step the planner (the cross-entropy method, as in V-JEPA 2-AC's robot planning) imagines ``samples``
action sequences of ``horizon`` steps from the last real frames, rolls them all out in one batch through the world
model, reads the imagined frames with the state reader and scores them with the task's distance to the goal; it
refits a Gaussian to the ``elites`` best for ``iterations`` rounds, executes the first action of the mean in the
simulator, and plans again from the new real frame (receding horizon; the rest of the plan warm-starts the next
one). The planner moves the gripper (translation in the gripper frame); rotation stays zero and the gripper command
is the task's (open to reach, closed to push). Costs, in pixels of a 64x64 frame: ``reach`` the fingertip's distance
to the target; ``push`` the object's distance to its goal plus half the fingertip's distance to a point behind the
object (on the far side from the goal), which draws the gripper to where a push starts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Callable

import numpy as np
import torch

from worldsmith.envs.world_model import TRACK_RADIUS, track
from worldsmith.errors import ConfigError
from worldsmith.family import RolloutStepper
from worldsmith.io.video import to_tensor
from worldsmith.worlds.arm_control import action_bounds
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import Goal, Task, make_task

PLAN_SEED = 5_000_011  # base seed of the planning episodes (apart from training and policy evaluation)


@dataclass
class CEMConfig:
    samples: int = 32
    horizon: int = 2
    iterations: int = 2
    elites: int = 6
    init_std: float = 0.6  # in units of the action bounds
    min_std: float = 0.1

    def __post_init__(self) -> None:
        if self.samples < 2 or self.horizon < 1 or self.iterations < 1 or not 1 <= self.elites <= self.samples:
            raise ConfigError("CEM needs samples >= 2, horizon >= 1, iterations >= 1 and 1 <= elites <= samples.")


class CEMPlanner:
    """Plans one action at a time for a task with an action-conditioned ``generator`` and a state ``reader``."""

    def __init__(self, generator: RolloutStepper, reader, task: str | Task, cfg: CEMConfig | None = None,
                 sampling: Any = None) -> None:  # fmt: skip
        self.gen, self.reader, self.task = generator, reader, make_task(task)
        self.cfg = cfg or CEMConfig()
        self.sampling = sampling or generator.planning_sampling()  # the family's cheap imagination
        self.high = action_bounds()[1]
        self.grip = {"reach": 0.0, "push": -1.0}.get(self.task.name)
        if self.grip is None:
            raise ConfigError(f"the planner handles the reach and push tasks, not {self.task.name!r}.")
        self.mean = np.zeros((self.cfg.horizon, 3))
        self.size = generator.size

    def reset(self) -> None:
        self.mean = np.zeros((self.cfg.horizon, 3))

    def actions(self, plan: np.ndarray) -> np.ndarray:
        """(..., 3) translations in units of the bounds -> (..., 7) actions."""
        out = np.zeros((*plan.shape[:-1], 7), np.float32)
        out[..., :3] = np.clip(plan, -1, 1) * self.high[:3]
        out[..., 6] = self.grip
        return out

    @torch.no_grad()
    def act(self, frames: np.ndarray, objects_px: np.ndarray, goal: Goal, rng: np.random.Generator,
            seed: int = 0, taken: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """The next action (7,) from the last real frames (k, S, S, 3) uint8 (k = 1 or 2), the actions ``taken``
        between them (k - 1, 7) and the objects' current pixels (N, 2)."""
        c = self.cfg
        video = to_tensor(frames)[None]  # (1, 3, k, S, S)
        past = None if taken is None else torch.from_numpy(np.asarray(taken, np.float32)).reshape(1, -1, 7)
        base = self.gen.start_rollout(video, [""], self.sampling, [seed], past)
        mean, std = self.mean.copy(), np.full_like(self.mean, c.init_std)
        best, best_cost = mean, np.inf
        for _ in range(c.iterations):
            plans = np.clip(mean + std * rng.standard_normal((c.samples, c.horizon, 3)), -1, 1)
            plans[0] = mean  # the current mean is always a candidate
            costs = self.costs(base, plans, objects_px, goal)
            order = np.argsort(costs)
            if costs[order[0]] < best_cost:
                best, best_cost = plans[order[0]], costs[order[0]]
            elite = plans[order[: c.elites]]
            mean = elite.mean(axis=0)
            std = np.maximum(elite.std(axis=0), c.min_std)
        self.mean = np.concatenate([best[1:], best[-1:] * 0.0])  # warm start: the rest of the plan
        return self.actions(best[0])

    def costs(self, base, plans: np.ndarray, objects_px: np.ndarray, goal: Goal) -> np.ndarray:
        """Cost (samples,) of each plan: the task's pixel distances summed over the imagined steps."""
        n = len(plans)
        state = base.repeat(n)
        acts = torch.from_numpy(self.actions(plans))  # (n, H, 7)
        objs = [objects_px.copy() for _ in range(n)]
        total = np.zeros(n)
        g = goal.pixel * self.size / goal.size
        device = next(self.reader.parameters()).device
        for h in range(plans.shape[1]):
            x = self.gen.step_rollout(state, acts[:, h : h + 1])[:, :, 0]  # (n, 3, S, S)
            grip, cands, heat = (t.cpu().numpy().astype(np.float64) for t in self.reader.read(x.to(device)))
            weight = 1.0 if h == plans.shape[1] - 1 else 0.5
            if self.task.name == "reach":
                total += weight * np.linalg.norm(grip - g, axis=-1)
                continue
            for i in range(n):
                objs[i] = track(objs[i], cands[i], heat[i], TRACK_RADIUS * self.size / 64)
            o = np.stack([p[goal.object] for p in objs])  # (n, 2)
            away = (o - g) / np.maximum(np.linalg.norm(o - g, axis=-1, keepdims=True), 1e-6)
            behind = o + away * 3.0 * self.size / 64
            total += weight * (np.linalg.norm(o - g, axis=-1) + 0.5 * np.linalg.norm(grip - behind, axis=-1))
        return total * 64 / self.size


def plan_episodes(generator, reader, task: str | Task, episodes: int, *, cfg: CEMConfig | None = None,
                  base_seed: int = PLAN_SEED, progress: Callable[[str], None] | None = None,
                  videos: list | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the planner in the simulator on ``episodes`` held-out episodes; success rate, steps, seconds per
    decision. ``videos``: a list that receives each episode's real frames (T, S, S, 3)."""
    task = make_task(task)
    planner = CEMPlanner(generator, reader, task, cfg)
    env = WorldEnv("arm", WorldConfig(size=generator.size), task=task.name)
    device = next(reader.parameters()).device
    success, steps, times, dist = [], [], [], []
    for e in range(episodes):
        seed = episode_seed(base_seed, e)
        frame, info = env.reset(seed=seed)
        planner.reset()
        rng = np.random.default_rng(seed)
        history, taken, objs = [frame], [], info["objects_px"].astype(np.float64)
        for t in range(task.max_steps):
            t0 = time.perf_counter()
            action = planner.act(np.stack(history[-2:]), objs, env.goal, rng, seed=seed + t,
                                 taken=np.asarray(taken[-1:], np.float32).reshape(-1, 7))  # fmt: skip
            times.append(time.perf_counter() - t0)
            frame, _, done, trunc, info = env.step(action)
            history.append(frame)
            taken.append(action)
            x = to_tensor(frame[None])[:, 0][None].to(device)  # (1, 3, S, S)
            _, cands, heat = (v.cpu().numpy().astype(np.float64) for v in reader.read(x))
            objs = track(objs, cands[0], heat[0], TRACK_RADIUS * generator.size / 64)
            if done or trunc:
                break
        success.append(bool(info["success"]))
        steps.append(t + 1)
        dist.append(float(info["distance_px"]))
        if videos is not None:
            videos.append(np.stack(history))
        if progress is not None:
            progress(f"episode {e + 1}/{episodes}: {'success' if success[-1] else 'failure'} in {t + 1} steps, "
                     f"{np.mean(times):.2f} s per decision")  # fmt: skip
    env.close()
    return {"task": task.name, "episodes": episodes, "base_seed": base_seed, "success": float(np.mean(success)),
            "success_sem": float(np.std(success, ddof=1) / np.sqrt(episodes)) if episodes > 1 else 0.0,
            "steps": float(np.mean(steps)), "final_distance_px": float(np.mean(dist)),
            "seconds_per_decision": float(np.mean(times)), "planner": asdict(planner.cfg),
            "sampling": asdict(planner.sampling) if is_dataclass(planner.sampling) else None}  # fmt: skip
