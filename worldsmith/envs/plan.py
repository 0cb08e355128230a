"""``worldsmith plan``: model-predictive control with a world model, executed in the real simulator.

At every step the planner (the cross-entropy method, as in V-JEPA 2-AC's robot planning) imagines ``samples``
action sequences of ``horizon`` steps from the last real frames, rolls them all out in one batch through the world
model, reads the imagined frames with the state reader and scores them with the task's distance to the goal; it
refits a Gaussian to the ``elites`` best for ``iterations`` rounds, executes the first action of the mean in the
simulator, and plans again from the new real frame (receding horizon; the rest of the plan warm-starts the next
one). The planner moves the gripper (translation in the gripper frame); rotation stays zero and the gripper command
is the task's (open to reach, closed to push). Costs: ``reach`` the fingertip's distance to the target, in pixels of
a 64x64 frame, as the state reader sees it in the imagined frames. ``push`` the object's distance to its goal plus
half the fingertip's distance to where a push starts (low on the table, just behind the object on the far side
from the goal). With the robot's ``Body`` (its commanded gripper pose, which a robot knows from its own joints, and
the main camera's calibration; ``plan_episodes`` passes it) the push cost is in centimetres on the table: the
object's imagined pixel is cast onto its height, and the fingertip is where the imagined actions command it, in 3D,
so a gripper hovering high above the start of a push no longer looks to be there (one pixel is a whole ray).
Without it both are pixels from the reader, as for reach.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Callable

import numpy as np
import torch

from worldsmith.conditioning.tip import body_kwargs, world_body
from worldsmith.envs.world_model import TRACK_RADIUS, CommandedPose, ray_to_plane, track
from worldsmith.errors import ConfigError
from worldsmith.family import RolloutStepper
from worldsmith.io.video import to_tensor
from worldsmith.worlds.arm_control import Z_RANGE, action_bounds
from worldsmith.worlds.arm_model import EE_TO_TIP
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import Goal, Task, main_camera, make_task

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


@dataclass
class Body:
    """What the robot knows of itself at a decision: its commanded gripper pose (proprioception), the main camera's
    calibration at the planner's frame size, and the radius (m) of the object the task moves."""

    pos: np.ndarray  # (3,) commanded ee position, world
    rot: np.ndarray  # (3, 3)
    K: np.ndarray  # (3, 3)
    c2w: np.ndarray  # (4, 4)
    radius: float

    @classmethod
    def of(cls, world, goal: Goal) -> Body:
        K, c2w = main_camera(world)
        return cls(world.ctrl.pos.copy(), world.ctrl.rot.copy(), K, c2w, float(world.scene.objects[goal.object].radius))


PUSH_GAP = 0.035  # m between the object's side and the ee where a push starts (the scripted pusher's)
PUSH_HOVER = 0.08  # m: fingertip height while the gripper travels to the start of a push


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
            seed: int = 0, taken: np.ndarray | None = None, body: Body | None = None,
            state: torch.Tensor | None = None) -> np.ndarray:  # fmt: skip
        """The next action (7,) from the last real frames (k, S, S, 3) uint8 (k = 1 or 2), the actions ``taken``
        between them (k - 1, 7), the objects' current pixels (N, 2) and, for push, the robot's ``body``;
        ``state``: the robot's recorded state at the first of the frames (33,), for a model that draws the
        commanded fingertip (conditioning/tip.py)."""
        c = self.cfg
        video = to_tensor(frames)[None]  # (1, 3, k, S, S)
        past = None if taken is None else torch.from_numpy(np.asarray(taken, np.float32)).reshape(1, -1, 7)
        base = self.gen.start_rollout(video, [""], self.sampling, [seed], past,
                                      **body_kwargs(self.gen, None if state is None else [state]))  # fmt: skip
        mean, std = self.mean.copy(), np.full_like(self.mean, c.init_std)
        best, best_cost = mean, np.inf
        for _ in range(c.iterations):
            plans = np.clip(mean + std * rng.standard_normal((c.samples, c.horizon, 3)), -1, 1)
            plans[0] = mean  # the current mean is always a candidate
            costs = self.costs(base, plans, objects_px, goal, body)
            order = np.argsort(costs)
            if costs[order[0]] < best_cost:
                best, best_cost = plans[order[0]], costs[order[0]]
            elite = plans[order[: c.elites]]
            mean = elite.mean(axis=0)
            std = np.maximum(elite.std(axis=0), c.min_std)
        self.mean = np.concatenate([best[1:], best[-1:] * 0.0])  # warm start: the rest of the plan
        return self.actions(best[0])

    def costs(self, base, plans: np.ndarray, objects_px: np.ndarray, goal: Goal,
              body: Body | None = None) -> np.ndarray:  # fmt: skip
        """Cost (samples,) of each plan: the task's distances summed over the imagined steps."""
        n = len(plans)
        poses = None if body is None else [CommandedPose(body.pos, body.rot, 0.0) for _ in range(n)]
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
            if poses is not None:
                total += weight * self.push_cost_3d(poses, acts[:, h].numpy(), o, goal, body) * self.size / 64
                continue
            away = (o - g) / np.maximum(np.linalg.norm(o - g, axis=-1, keepdims=True), 1e-6)
            behind = o + away * 3.0 * self.size / 64
            total += weight * (np.linalg.norm(o - g, axis=-1) + 0.5 * np.linalg.norm(grip - behind, axis=-1))
        return total * 64 / self.size

    @staticmethod
    def push_cost_3d(poses: list, actions: np.ndarray, object_px: np.ndarray, goal: Goal, body: Body) -> np.ndarray:
        """Push cost (n,) in cm after one imagined step: the object's pixel (at the calibration's frame size) cast
        onto its height, the fingertip where the actions command it (``poses`` are stepped)."""
        tips = []
        for pose, a in zip(poses, actions):
            pose.apply(a)
            tips.append(pose.pos + pose.rot[:, 0] * EE_TO_TIP)  # the fingertips lie along gripper x
        low = Z_RANGE[0] - EE_TO_TIP + 0.004  # fingertip height of a push (the scripted pusher's)
        out = np.empty(len(poses))
        for i, (tip, px) in enumerate(zip(tips, object_px)):
            hit = ray_to_plane(px, body.K, body.c2w, float(goal.point[2]))
            if hit is None:  # read above the horizon: no place on the table
                out[i] = 1e3
                continue
            obj = hit[:2]
            u = goal.point[:2] - obj
            u = u / max(float(np.linalg.norm(u)), 1e-6)
            start, contact = obj - u * (body.radius + PUSH_GAP), obj - u * body.radius
            along = np.clip(np.dot(tip[:2] - start, u) / PUSH_GAP, 0.0, 1.0)
            off = float(np.linalg.norm(tip[:2] - (start + along * (contact - start))))  # from the pushing line
            height = low + (PUSH_HOVER - low) * np.clip((off - 0.01) / 0.03, 0.0, 1.0)  # high away from it
            out[i] = np.linalg.norm(obj - goal.point[:2]) + 0.5 * (off + abs(tip[2] - height))
        return out * 100


def plan_episodes(generator, reader, task: str | Task, episodes: int, *, cfg: CEMConfig | None = None,
                  base_seed: int = PLAN_SEED, progress: Callable[[str], None] | None = None,
                  videos: list | None = None, body: bool = True, sampling: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run the planner in the simulator on ``episodes`` held-out episodes; success rate, steps, seconds per
    decision. ``videos``: a list that receives each episode's real frames (T, S, S, 3); ``body``: give the planner
    the robot's proprioception and camera calibration (push: the cost in 3D); ``sampling``: how the model imagines
    (default: its ``planning_sampling()``)."""
    task = make_task(task)
    planner = CEMPlanner(generator, reader, task, cfg, sampling)
    env = WorldEnv("arm", WorldConfig(size=generator.size), task=task.name)
    if hasattr(generator, "attach"):  # the simulator as the model (envs/oracle.py) imagines in this very env
        generator.attach(env)
    device = next(reader.parameters()).device
    success, steps, times, dist = [], [], [], []
    for e in range(episodes):
        seed = episode_seed(base_seed, e)
        frame, info = env.reset(seed=seed)
        planner.reset()
        rng = np.random.default_rng(seed)
        history, taken, objs = [frame], [], info["objects_px"].astype(np.float64)
        states = [world_body(env.world)]  # the robot's recorded state at each real frame
        for t in range(task.max_steps):
            t0 = time.perf_counter()
            robot = Body.of(env.world, env.goal) if body and task.name == "push" else None
            action = planner.act(np.stack(history[-2:]), objs, env.goal, rng, seed=seed + t,
                                 taken=np.asarray(taken[-1:], np.float32).reshape(-1, 7), body=robot,
                                 state=states[-2:][0])  # fmt: skip
            times.append(time.perf_counter() - t0)
            frame, _, done, trunc, info = env.step(action)
            history.append(frame)
            taken.append(action)
            states.append(world_body(env.world))
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
            "push_cost": "3d" if body else "pixels",
            "sampling": asdict(planner.sampling) if is_dataclass(planner.sampling) else None}  # fmt: skip
