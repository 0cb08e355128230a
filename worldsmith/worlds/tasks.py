"""Tasks on the arm world: a goal sampled per episode, reward and success read from the state.

    task = make_task("push")
    goal = task.sample_goal(world, rng)          # from the start state of an ArmWorld (after reset)
    state = truth_state(world)                   # or a world model's estimate (worldsmith.envs)
    task.distance(state, goal), task.at_goal(state, goal)       # pixels; Streak(task) turns these into success
    policy = task.scripted_policy(world, goal, rng)                                  # act = policy()

Tasks are judged in the main camera's image, in pixels of a 64x64 frame (scaled for other sizes): the one state
both the simulator's truth and the state reader (eval/state_reader.py) give, so the simulator and a world model are
held to the same criterion. ``reach``: the fingertip point within ``radius`` px of a point 3 cm above the target
object's top. ``push``: the object's centre within ``radius`` px of where a 6-12 cm push sideways (across the
camera's view, so pixels measure it well) would put it. ``pick_place``: the object at a spot 10-16 cm sideways,
and, where the state says it (the simulator: both finger pads held it above the table), lifted on the way; the
reader cannot see lifting, so in a world model only the placement counts. An episode ends on success or after
``max_steps`` steps; a reach must stay at its target for ``hold`` = 3 consecutive steps (passing through it by
chance is not a reach). Reward: ``-distance / 64`` per step (frame widths), plus 1 on success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.worlds import render
from worldsmith.worlds.arm_model import EE_TO_TIP, WORKSPACE_ANGLE, WORKSPACE_RADIUS
from worldsmith.worlds.arm_policy import ScriptedPolicy, push_end

if TYPE_CHECKING:
    from worldsmith.worlds.arm import ArmWorld

REFERENCE_SIZE = 64  # task radii are pixels of a frame this wide
LIFTED = 0.02  # m above its start height while held by both finger pads: "lifted" (the caption's threshold)


@dataclass
class TaskState:
    """What a task reads from one frame: pixels (u, v) in the main view of a ``size``-pixel frame."""

    gripper_px: np.ndarray  # (2,) the fingertip point
    objects_px: np.ndarray  # (N, 2) object centres
    size: int = REFERENCE_SIZE
    lifted: np.ndarray | None = None  # (N,) bool: held above the table at some step (None: not observable)


@dataclass
class Goal:
    task: str
    object: int  # the object the task is about
    point: np.ndarray  # (3,) world: reach: the fingertip target; push / pick_place: where the object's centre goes
    pixel: np.ndarray  # (2,) the point in the main view at ``size`` pixels
    size: int


class Task:
    name = ""
    max_steps = 30
    radius = 3.0  # px at REFERENCE_SIZE
    hold = 1  # consecutive steps at the goal that make a success (``Streak``)
    behavior = ""  # the scripted behaviour that does it (worlds/arm_policy.py)

    def sample_goal(self, world: ArmWorld, rng: np.random.Generator) -> Goal:
        raise NotImplementedError

    def _goal(self, world: ArmWorld, i: int, point: np.ndarray) -> Goal:
        K, c2w = main_camera(world)
        px = render.project(np.asarray(point, float)[None], K, c2w)[0][0]
        return Goal(self.name, int(i), np.asarray(point, float), px, world.cfg.size)

    def point_px(self, state: TaskState, goal: Goal) -> np.ndarray:
        """The pixel that must reach the goal: the fingertip (reach) or the object."""
        return state.gripper_px if self.name == "reach" else state.objects_px[goal.object]

    def distance(self, state: TaskState, goal: Goal) -> float:
        """Pixels (at REFERENCE_SIZE) between where the task's point is and where it must be."""
        d = np.linalg.norm(self.point_px(state, goal) - goal.pixel * state.size / goal.size)
        return float(d * REFERENCE_SIZE / state.size)

    def at_goal(self, state: TaskState, goal: Goal) -> bool:
        return self.distance(state, goal) <= self.radius

    def reward(self, state: TaskState, goal: Goal, success: bool) -> float:
        return -self.distance(state, goal) / REFERENCE_SIZE + float(success)

    def scripted_policy(self, world, goal: Goal, rng: np.random.Generator) -> ScriptedPolicy:
        """The scripted behaviour aimed at ``goal``; ``world``: the simulator or an estimate of its state."""
        target = goal.point if self.name == "reach" else goal.point[:2]
        return ScriptedPolicy(world, rng, self.behavior, target=goal.object, goal=target)


class ReachTask(Task):
    name, max_steps, radius, behavior, hold = "reach", 30, 3.0, "reach", 3
    height = 0.03  # m: the fingertip target above the object's top

    def sample_goal(self, world: ArmWorld, rng: np.random.Generator) -> Goal:
        """A random object, among those whose target is at least twice the radius away when there are any."""
        goals = []
        for i in range(len(world.scene.objects)):
            p, _ = world.object_pose(i)
            goals.append(self._goal(world, i, np.array([p[0], p[1], p[2] + world.scene.objects[i].half_height + self.height])))
        state = truth_state(world)
        far = [g for g in goals if self.distance(state, g) >= 2 * self.radius] or goals
        return far[int(rng.integers(len(far)))]


class PushTask(Task):
    name, max_steps, radius, behavior = "push", 40, 3.0, "push"

    def sample_goal(self, world: ArmWorld, rng: np.random.Generator) -> Goal:
        objs = world.scene.objects
        flat = [i for i, o in enumerate(objs) if o.shape != "ball"] or list(range(len(objs)))  # balls roll on
        i = flat[int(rng.integers(len(flat)))]
        p, _ = world.object_pose(i)
        u, dist = push_end(p[:2], rng, sideways(world, rng))
        return self._goal(world, i, np.array([*(p[:2] + u * dist), p[2]]))


class PickPlaceTask(Task):
    name, max_steps, radius, behavior = "pick_place", 60, 3.0, "pick_place"

    def sample_goal(self, world: ArmWorld, rng: np.random.Generator) -> Goal:
        objs = world.scene.objects
        i = int(rng.integers(len(objs)))
        p, _ = world.object_pose(i)
        others = [world.object_pose(j)[0][:2] for j in range(len(objs)) if j != i]
        radii = [objs[j].radius for j in range(len(objs)) if j != i]
        xy = None
        for _ in range(200):  # a free spot 10-16 cm sideways (left or right), inside the placement workspace
            u = sideways(world, rng)[int(rng.integers(2))]
            cand = p[:2] + u * rng.uniform(0.10, 0.16)
            r, a = np.hypot(*cand), np.arctan2(cand[1], cand[0])
            clear = all(np.linalg.norm(cand - q) > objs[i].radius + rr + 0.03 for q, rr in zip(others, radii))
            if WORKSPACE_RADIUS[0] <= r <= WORKSPACE_RADIUS[1] and abs(a) <= WORKSPACE_ANGLE + 0.1 and clear:
                xy = cand
                break
        if xy is None:  # crowded: any spot 10 cm sideways
            xy = p[:2] + sideways(world, rng)[int(rng.integers(2))] * 0.1
        return self._goal(world, i, np.array([*xy, p[2]]))

    def at_goal(self, state: TaskState, goal: Goal) -> bool:
        lifted = True if state.lifted is None else bool(state.lifted[goal.object])
        return lifted and super().at_goal(state, goal)


TASKS: dict[str, type[Task]] = {"reach": ReachTask, "push": PushTask, "pick_place": PickPlaceTask}


def goal_rng(seed: int) -> np.random.Generator:
    """The rng an episode's goal is drawn from: a function of the episode seed alone, so the simulator's env and a
    world model's env started from the same seed pursue the same goal."""
    return np.random.default_rng([int(seed), 0x7A5C])


def make_task(name: str | Task) -> Task:
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}.")
    return TASKS[name]()


# ---------------------------------------------------------------------------------------------------------------
# the simulator's state
# ---------------------------------------------------------------------------------------------------------------
def main_camera(world: ArmWorld, t: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics and camera-to-world of the main view, from ``t`` (the world's ``truth()``) when given."""
    t = world.truth() if t is None else t
    K, c2w = t["intrinsics"], t["c2w"]
    return (K[0], c2w[0]) if K.ndim == 3 else (K, c2w)


def sideways(world: ArmWorld, rng: np.random.Generator) -> np.ndarray:
    """Unit table directions (2, 2) along the main camera's right and left, each turned up to 20 degrees."""
    right = main_camera(world)[1][:2, 0]
    right = right / np.linalg.norm(right)
    out = []
    for sign in (1.0, -1.0):
        a = rng.uniform(-0.35, 0.35)
        c, s = np.cos(a), np.sin(a)
        out.append(sign * np.array([c * right[0] - s * right[1], s * right[0] + c * right[1]]))
    return np.stack(out)


def fingertip(ee: np.ndarray) -> np.ndarray:
    """World fingertip point (3,) from the ee pose (8,) (position, quaternion w x y z, opening)."""
    w, x, y, z = ee[3:7] / np.linalg.norm(ee[3:7])
    axis = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w)])  # gripper x in the world
    return ee[:3] + axis * EE_TO_TIP


def truth_state(world: ArmWorld, lifted: np.ndarray | None = None, t: dict | None = None) -> TaskState:
    """The true TaskState of the simulator now (``t``: its ``truth()``, if already read); ``lifted`` from a
    ``LiftTracker``."""
    t = world.truth() if t is None else t
    K, c2w = main_camera(world, t)
    grip = render.project(fingertip(t["ee"].astype(np.float64))[None], K, c2w)[0][0]
    return TaskState(grip, t["pixels"].astype(np.float64), world.cfg.size, lifted)


class Streak:
    """Success of one episode: ``task.hold`` consecutive steps at the goal (call ``update`` once per frame)."""

    def __init__(self, task: Task) -> None:
        self.task, self.count = task, 0

    def update(self, state: TaskState, goal: Goal) -> tuple[bool, dict]:
        """(success, the task's info fields: distance_px, at_goal, success, reward) after this frame."""
        at = self.task.at_goal(state, goal)
        self.count = self.count + 1 if at else 0
        ok = self.count >= self.task.hold
        return ok, {"distance_px": self.task.distance(state, goal), "at_goal": at, "success": ok,
                    "reward": self.task.reward(state, goal, ok)}


class LiftTracker:
    """Which objects were lifted (held by both pads, ``LIFTED`` above their start height) since ``reset``."""

    def __init__(self, world: ArmWorld) -> None:
        self.world = world
        self.start_z = world.truth()["states"][:, 2].copy()
        self.lifted = np.zeros(len(self.start_z), bool)

    def update(self, t: dict | None = None) -> np.ndarray:
        """``t``: the world's ``truth()`` now, if already read."""
        t = self.world.truth() if t is None else t
        self.lifted |= (t["grasped"] > 0) & (t["states"][:, 2] - self.start_z > LIFTED)
        return self.lifted.copy()
