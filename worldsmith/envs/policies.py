"""Policies for the arm tasks that act the same way in the simulator and inside a world model.

A policy sees a *view* of the state: the simulator's ``ArmWorld`` itself, or a world model's ``EstimatedArm``
(envs/world_model.py), both with ``ctrl`` (commanded gripper pose), ``object_pose(i)``, ``scene.objects`` and
``cfg.fps``; and the episode's ``Goal`` (worlds/tasks.py).

    policy = make_policy("scripted:noise=0.5", task)       # a spec string (see POLICY_HELP)
    policy.reset(view, goal, np.random.default_rng(seed))
    action = policy.act(view)                               # float32 (7,)

Graded quality comes from the task's scripted behaviour with action noise (``noise``: Gaussian, in units of the
action bounds) or a delay (``delay``: every action arrives that many steps late), a uniformly random policy, and a
learned one: ``bc:RUN``, behaviour cloning of the scripted behaviour on simulator episodes (``train_bc``): an MLP
from the state features (gripper pose, target object, goal) to the action.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from worldsmith.atomic import atomic_write_text
from worldsmith.errors import ConfigError
from worldsmith.worlds.arm_control import action_bounds
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import Goal, Task, make_task

POLICY_HELP = ("policy specs: 'scripted' (the task's scripted behaviour), 'scripted:noise=S' (plus Gaussian action "
               "noise, S in units of the action bounds), 'scripted:delay=K' (actions arrive K steps late), "
               "'random', 'bc:RUN' (a behaviour-cloning policy trained with `worldsmith train policy`)")  # fmt: skip
# graded quality in the simulator (reach, 32 held-out episodes): 100, 88, 84, 69, 44, 25 and 16 % success
DEFAULT_POLICIES = ("scripted", "scripted:noise=0.6", "scripted:delay=3", "scripted:delay=6", "scripted:noise=1.2",
                    "scripted:noise=2", "random")  # fmt: skip


class Policy:
    name = "policy"

    def reset(self, view, goal: Goal, rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, view) -> np.ndarray:
        raise NotImplementedError


class ScriptedTaskPolicy(Policy):
    def __init__(self, task: Task, noise: float = 0.0, delay: int = 0, name: str = "scripted") -> None:
        if noise < 0 or delay < 0:
            raise ConfigError(f"policy noise and delay must be >= 0, got noise={noise}, delay={delay}.")
        self.task, self.noise, self.delay, self.name = task, float(noise), int(delay), name
        self.high = action_bounds()[1]

    def reset(self, view, goal: Goal, rng: np.random.Generator) -> None:
        super().reset(view, goal, rng)
        self.inner = self.task.scripted_policy(view, goal, rng)
        self.queue: deque = deque(np.zeros(7, np.float32) for _ in range(self.delay))

    def act(self, view) -> np.ndarray:
        a = self.inner()
        if self.noise:
            a = a + self.rng.normal(0.0, self.noise, 7) * self.high
        self.queue.append(np.clip(a, -self.high, self.high).astype(np.float32))
        return self.queue.popleft()


class RandomPolicy(Policy):
    name = "random"

    def act(self, view) -> np.ndarray:
        low, high = action_bounds()
        return self.rng.uniform(low, high).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# behaviour cloning
# ---------------------------------------------------------------------------------------------------------------
FEATURES = 27


def features(view, goal: Goal, step: int, max_steps: int) -> np.ndarray:
    """(27,) what a cloned policy sees: gripper position, orientation (9), opening command; the target object's
    position and where it must go; their offsets from the gripper; the episode's progress."""
    ctrl = view.ctrl
    obj = view.object_pose(goal.object)[0]
    return np.concatenate([ctrl.pos, ctrl.rot.ravel(), [ctrl.grip], obj, goal.point, goal.point - ctrl.pos,
                           obj - ctrl.pos, [step / max_steps, float(goal.task == "reach")]]).astype(np.float32)  # fmt: skip


@dataclass
class BCConfig:
    task: str = "reach"
    width: int = 256
    depth: int = 3


class BCNet(nn.Module):
    def __init__(self, cfg: BCConfig) -> None:
        super().__init__()
        layers, d = [], FEATURES
        for _ in range(cfg.depth - 1):
            layers += [nn.Linear(d, cfg.width), nn.SiLU()]
            d = cfg.width
        self.net = nn.Sequential(*layers, nn.Linear(d, 7))
        self.register_buffer("mean", torch.zeros(FEATURES))
        self.register_buffer("std", torch.ones(FEATURES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, 27) -> actions in units of the bounds (B, 7) in [-1, 1]."""
        return torch.tanh(self.net((x - self.mean) / self.std))


class BCPolicy(Policy):
    def __init__(self, run: str | Path) -> None:
        run = Path(run)
        if not (run / "policy.json").is_file():
            raise ConfigError(f"{run} is not a policy run (no policy.json); train one with `worldsmith train policy`.")
        self.cfg = BCConfig(**json.loads((run / "policy.json").read_text())["config"])
        self.net = BCNet(self.cfg)
        self.net.load_state_dict(load_file(str(run / "model.safetensors")))
        self.net.eval()
        self.task = make_task(self.cfg.task)
        self.name = f"bc:{run.name}"
        self.high = action_bounds()[1]

    def reset(self, view, goal: Goal, rng: np.random.Generator) -> None:
        super().reset(view, goal, rng)
        self.goal, self.step = goal, 0

    @torch.no_grad()
    def act(self, view) -> np.ndarray:
        x = torch.from_numpy(features(view, self.goal, self.step, self.task.max_steps))[None]
        self.step += 1
        return (self.net(x)[0].numpy() * self.high).astype(np.float32)


def collect_demos(task: Task, seeds, size: int = 64, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Features (M, 27) and actions (M, 7) of the task's scripted behaviour in the simulator (until success)."""
    env = WorldEnv("arm", WorldConfig(size=size), task=task.name)
    xs, ys = [], []
    for seed in seeds:
        _, info = env.reset(seed=int(seed))
        pol = task.scripted_policy(env.world, env.goal, np.random.default_rng(int(seed)))
        for t in range(task.max_steps):
            a = pol()
            xs.append(features(env.world, env.goal, t, task.max_steps))
            ys.append(a)
            _, _, done, trunc, _ = env.step(a)
            if done or trunc:
                break
        if progress is not None:
            progress(1)
    env.close()
    return np.stack(xs), np.stack(ys)


def train_bc(task: str, out: str | Path, *, episodes: int = 200, steps: int = 3000, seed: int = 0,
             first_seed: int = 10_000_000, progress: bool = True) -> dict:  # fmt: skip
    """Clone the task's scripted behaviour from ``episodes`` simulator episodes (seeds from ``first_seed``, apart
    from the evaluation seeds); writes ``out/model.safetensors`` and ``out/policy.json``; returns the summary."""
    t = make_task(task)
    bar = tqdm(total=episodes, desc=f"demos ({task})", unit="ep", disable=not progress)
    x, y = collect_demos(t, range(first_seed, first_seed + episodes), progress=bar.update)
    bar.close()
    torch.manual_seed(seed)
    cfg = BCConfig(task=t.name)
    net = BCNet(cfg)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y / action_bounds()[1]).float()
    net.mean.copy_(xt.mean(0))
    net.std.copy_(xt.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    for _ in tqdm(range(steps), desc="fit", disable=not progress):
        idx = torch.randint(len(xt), (256,), generator=g)
        loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors"))
    summary = {"config": asdict(cfg), "episodes": episodes, "samples": len(x), "steps": steps,
               "final_mse": float(loss.detach()), "first_seed": first_seed}  # fmt: skip
    atomic_write_text(out / "policy.json", json.dumps(summary, indent=2))
    return summary


def make_policy(spec: str, task: str | Task) -> Policy:
    """A policy from its spec string (see POLICY_HELP)."""
    task = make_task(task)
    kind, _, rest = spec.partition(":")
    if kind == "random" and not rest:
        return RandomPolicy()
    if kind == "bc" and rest:
        return BCPolicy(rest)
    if kind == "scripted":
        opts = {}
        for part in filter(None, rest.split(",")):
            key, eq, value = part.partition("=")
            if not eq or key not in ("noise", "delay"):
                raise ConfigError(f"bad policy option {part!r} in {spec!r}; {POLICY_HELP}.")
            try:
                opts[key] = float(value) if key == "noise" else int(value)
            except ValueError as e:
                raise ConfigError(f"bad policy option {part!r} in {spec!r}: {key} needs a number.") from e
        return ScriptedTaskPolicy(task, name=spec, **opts)
    raise ConfigError(f"unknown policy {spec!r}; {POLICY_HELP}.")
