"""A learned world as an environment: an action-conditioned world model stepped one frame per action.

    env = WorldModelEnv("arm-action", task="reach")            # a run folder or a shipped model's name
    frame, info = env.reset(seed=7)                             # the simulator's first frame of episode 7
    frame, reward, terminated, truncated, info = env.step(action)   # the model's next frame

    envs = BatchedWorldModelEnv("arm-action", task="push")     # N rollouts, one forward pass per step
    frames, infos = envs.reset(seeds=range(256))
    frames, rewards, terminated, truncated, infos = envs.step(actions)   # (N, 7)

A step feeds the action to the model's rollout (``start_rollout`` / ``step_rollout`` of either family's generator:
the diffusion model's last latent frames as context and the action into the new frame, or the GPT's tokens of the
frames in its window and the action on the new frame's slots) and decodes the new frame; the state reader
(eval/state_reader.py) reads where the gripper and the objects are in it, and the task (worlds/tasks.py) turns that
into reward and success: the same criterion the simulator's env applies to its true state. ``info`` carries the
reader's estimates (``gripper_px``, ``objects_px``), ``goal_px``, ``distance_px`` and ``success``; ``env.views``
(``env.view`` for one rollout) hold ``EstimatedArm``s, the state a policy may act on (the commanded gripper pose integrated from the actions taken, the
objects' table positions from their pixels), which has the interface of the simulator's ``ArmWorld`` that the
scripted policies read. Each rollout draws its noise from its own generator seeded by its episode seed, so a rollout
is the same alone or in a batch.

Episodes start from the simulator (``seeds``: the scene, the first frame and the goal that the simulator's env draws
for the same seed) or from a user's image (``options={"image": uint8 (H, W, 3)}``; no task then: the reader's
estimates only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch

from worldsmith.conditioning.tip import body_kwargs, body_of
from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.families import load_generator
from worldsmith.family import RolloutStepper
from worldsmith.eval.state_reader import StateReader
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig
from worldsmith.zoo import resolve
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor
from worldsmith.worlds.arm_control import action_bounds, clamp_workspace, clip_action, rotvec_to_mat
from worldsmith.worlds.tasks import Goal, Streak, Task, TaskState, goal_rng, main_camera, make_task, truth_state

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as e:  # pragma: no cover - depends on the environment
    raise WorldsmithError("worldsmith.envs needs gymnasium; install it with `pip install gymnasium`.") from e

TRACK_RADIUS = 8.0  # px at 64: an object's new reading must be this close to where it was (else it stays)
MIN_HEAT = 0.2  # reader confidence below which an object peak is ignored


@dataclass
class Start:
    """Where an episode starts: the first frame and, from the simulator, what a policy and a task need."""

    seed: int
    frame: np.ndarray  # uint8 (S, S, 3) at the model's size
    goal: Goal | None = None  # at the model's size
    objects: list = field(default_factory=list)  # the scene's ObjectSpecs (shape, size) for policies
    object_pos: np.ndarray | None = None  # (N, 3) world
    object_rot: np.ndarray | None = None  # (N, 3, 3)
    objects_px: np.ndarray | None = None  # (N, 2) at the model's size
    ctrl_pos: np.ndarray | None = None  # (3,) commanded gripper pose
    ctrl_rot: np.ndarray | None = None  # (3, 3)
    K: np.ndarray | None = None  # main camera intrinsics at the model's size
    c2w: np.ndarray | None = None
    fps: float = 10.0
    ee: np.ndarray | None = None  # (8,) measured end-effector pose and opening (the arm clips' ``ee``)


def simulator_start(seed: int, task: Task | None, size: int, world=None) -> Start:
    """The start of episode ``seed`` in the arm simulator (rendered at ``size``), with the goal the simulator's
    task env draws for the same seed."""
    world = world or ArmWorld(WorldConfig(size=size))
    frame = world.reset(int(seed))
    goal = task.sample_goal(world, goal_rng(seed)) if task is not None else None
    return start_from_world(world, frame, goal, seed)


def start_from_world(world, frame: np.ndarray, goal: Goal | None, seed: int = 0) -> Start:
    """A Start from the simulator's current state (e.g. a planner's present)."""
    n = len(world.scene.objects)
    poses = [world.object_pose(i) for i in range(n)]
    t = world.truth()
    K, c2w = main_camera(world, t)
    return Start(seed=int(seed), frame=frame, goal=goal, objects=list(world.scene.objects),
                 object_pos=np.stack([p for p, _ in poses]), object_rot=np.stack([r for _, r in poses]),
                 objects_px=truth_state(world, t=t).objects_px, ctrl_pos=world.ctrl.pos.copy(),
                 ctrl_rot=world.ctrl.rot.copy(), K=K, c2w=c2w, fps=world.cfg.fps, ee=t["ee"].copy())  # fmt: skip


class CommandedPose:
    """The commanded gripper pose, integrated from the actions the way the arm's controller does (without its
    inverse kinematics: the workspace clamp is kept, joint limits are not)."""

    def __init__(self, pos: np.ndarray, rot: np.ndarray, grip: float = 1.0) -> None:
        self.pos, self.rot, self.grip = np.asarray(pos, float).copy(), np.asarray(rot, float).copy(), grip

    def apply(self, action: np.ndarray) -> None:
        a = clip_action(action)
        self.pos = clamp_workspace(self.pos + self.rot @ a[:3])
        self.rot = self.rot @ rotvec_to_mat(a[3:6])
        self.grip = float(np.clip(self.grip + a[6], 0.0, 1.0))


class EstimatedArm:
    """What a policy can know inside a world model, with the interface of ``ArmWorld`` that the scripted policies
    read (``ctrl``, ``object_pose(i)``, ``scene.objects``, ``cfg.fps``): the commanded pose from the actions, and
    each object where its pixel meets the horizontal plane of its start height (objects keep their start
    orientation; a lifted object is read on the table plane, so a carried one is placed by the gripper's pose)."""

    def __init__(self, start: Start, size: int) -> None:
        if start.ctrl_pos is None:
            raise ConfigError("an estimated arm state needs a simulator start (the scene and the gripper pose).")
        self.ctrl = CommandedPose(start.ctrl_pos, start.ctrl_rot)
        self.scene = SimpleNamespace(objects=start.objects)
        self.cfg = SimpleNamespace(fps=start.fps, size=size)
        self.K, self.c2w = start.K, start.c2w
        self.start_pos, self.start_rot = start.object_pos, start.object_rot
        self.pos = start.object_pos.copy()

    def update(self, objects_px: np.ndarray) -> None:
        for i, px in enumerate(objects_px):
            hit = ray_to_plane(px, self.K, self.c2w, float(self.start_pos[i, 2]))
            if hit is not None:
                self.pos[i] = hit

    def object_pose(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pos[i].copy(), self.start_rot[i].copy()


def ray_to_plane(px: np.ndarray, K: np.ndarray, c2w: np.ndarray, z: float) -> np.ndarray | None:
    """The world point (3,) seen at pixel ``px`` that lies at height ``z`` (None if the ray never gets there)."""
    d_cam = np.linalg.solve(K, np.array([px[0], px[1], 1.0]))
    d = c2w[:3, :3] @ d_cam
    o = c2w[:3, 3]
    if abs(d[2]) < 1e-9:
        return None
    t = (z - o[2]) / d[2]
    return o + t * d if t > 0 else None


def track(previous: np.ndarray, candidates: np.ndarray, heat: np.ndarray, radius: float) -> np.ndarray:
    """Objects (N, 2) moved to the reader's confident peaks (K, 2): nearest pairs first, one peak per object,
    within ``radius``; an object without a peak stays where it was (e.g. hidden behind the arm)."""
    out = previous.copy()
    ok = heat >= MIN_HEAT
    cands = candidates[ok]
    if not len(cands) or not len(previous):
        return out
    d = np.linalg.norm(previous[:, None] - cands[None], axis=-1)  # (N, K)
    used_o, used_c = set(), set()
    for flat in np.argsort(d, axis=None):
        o, c = divmod(int(flat), d.shape[1])
        if d[o, c] > radius:
            break
        if o in used_o or c in used_c:
            continue
        out[o] = cands[c]
        used_o.add(o)
        used_c.add(c)
    return out


def load_reader(reader: str | None, device: str | torch.device):
    return None if reader is None else StateReader.from_pretrained(resolve(reader), device=device).eval()


class BatchedWorldModelEnv:
    """``N`` rollouts of one action-conditioned world model, stepped together (one forward pass per step)."""

    def __init__(self, model: str | RolloutStepper = "arm-action", task: str | Task | None = "reach", *,
                 reader: str | Any | None = "arm-reader", max_steps: int | None = None, sampling: Any = None,
                 device: str | torch.device = "cpu") -> None:  # fmt: skip
        if isinstance(model, str):
            model = load_generator(model, device=device)
        self.generator = model
        if not getattr(model.model.cfg, "action_dim", 0) or not hasattr(model, "start_rollout"):
            raise ConfigError("a world-model environment needs an action-conditioned world model (e.g. the shipped "
                              "`arm-action`); post-train one with `worldsmith posttrain action`.")  # fmt: skip
        if model.ct != 1:
            raise ConfigError(f"a world-model environment steps one frame per action, but this model's tokenizer "
                              f"groups {model.ct} frames per latent; post-train it on a per-frame (ct=1) tokenizer.")
        self.size, self.action_dim = model.size, model.model.cfg.action_dim
        self.task = make_task(task) if task is not None else None
        self.reader = load_reader(reader, model.device) if isinstance(reader, str) or reader is None else reader
        if self.task is not None and self.reader is None:
            raise ConfigError("a task in a world model needs a state reader (e.g. reader='arm-reader').")
        self.max_steps = max_steps or (self.task.max_steps if self.task is not None else None)
        self.sampling = sampling
        self.starts: list[Start] = []
        self.state = None
        self.steps = 0
        self.views: list[EstimatedArm | None] = []
        self.objects_px: list[np.ndarray] = []
        self._sim_world = None

    # -- episodes ------------------------------------------------------------------------------------------------
    def make_starts(self, seeds: Sequence[int]) -> list[Start]:
        if self._sim_world is None:
            self._sim_world = ArmWorld(WorldConfig(size=self.size))
        return [simulator_start(int(s), self.task, self.size, self._sim_world) for s in seeds]

    def reset(self, seeds: Sequence[int] | None = None, starts: Sequence[Start] | None = None,
              history: np.ndarray | None = None, history_actions: np.ndarray | None = None,
              ) -> tuple[np.ndarray, list[dict]]:  # fmt: skip
        """Start one rollout per seed (from the simulator) or per ``Start``; ``history``: optional earlier real
        frames (N, k, S, S, 3) that come before each start frame, as extra context, and ``history_actions``
        (N, k, A) the actions taken after each of them (zeros when not given: unknown). Returns the first frames
        (N, S, S, 3) and infos."""
        if starts is None:
            if seeds is None:
                raise ConfigError("reset needs seeds (simulator starts) or starts.")
            starts = self.make_starts(seeds)
        self.starts = list(starts)
        if not self.starts:
            raise ConfigError("reset got no episodes to start.")
        first = np.stack([fit_frames(s.frame[None], self.size, square=True)[0] for s in self.starts])
        video = torch.stack([to_tensor(f[None]) for f in first])  # (N, 3, 1, S, S)
        if history is not None:
            video = torch.cat([torch.stack([to_tensor(h) for h in history]), video], dim=2)
        past = None if history_actions is None else torch.from_numpy(np.asarray(history_actions, np.float32))
        # the robot's measured state at the first frame, as training reads it, for a model that draws the commanded
        # fingertip (conditioning/tip.py)
        bodies = None if history is not None else [
            None if s.ee is None else body_of(*(torch.from_numpy(np.asarray(x)) for x in (s.ee, s.K, s.c2w)))
            for s in self.starts]  # fmt: skip
        self.state = self.generator.start_rollout(video, [""] * len(self.starts), self.sampling,
                                                  [s.seed for s in self.starts], past,
                                                  **body_kwargs(self.generator, bodies))  # fmt: skip
        self.steps = 0
        self.views = [EstimatedArm(s, self.size) if s.ctrl_pos is not None else None for s in self.starts]
        self.streaks = [Streak(self.task) for _ in self.starts] if self.task is not None else []
        self.objects_px = [s.objects_px.copy() if s.objects_px is not None else np.zeros((0, 2)) for s in self.starts]
        self.read(first, initial=True)  # the gripper; objects too from a user's image (the simulator's are true)
        return first, [self.info(i, first[i]) for i in range(len(self.starts))]

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self.state is None:
            raise WorldsmithError("call reset() before step() on a world-model environment.")
        actions = np.asarray(actions, dtype=np.float32)
        n = len(self.starts)
        if actions.shape != (n, self.action_dim) or not np.all(np.isfinite(actions)):
            raise ConfigError(f"step takes finite actions of shape ({n}, {self.action_dim}), got {actions.shape}.")
        clipped = np.stack([clip_action(a) for a in actions]).astype(np.float32) if self.action_dim == 7 else actions
        x = self.generator.step_rollout(self.state, torch.from_numpy(clipped)[:, None])  # (N, 3, 1, S, S)
        frames = ((x[:, :, 0].permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        self.steps += 1
        for view, a in zip(self.views, clipped):
            if view is not None:
                view.ctrl.apply(a)
        self.read(frames)
        infos = [self.info(i, frames[i]) for i in range(n)]
        rewards = np.array([info.get("reward", 0.0) for info in infos], np.float32)
        terminated = np.array([info.get("success", False) for info in infos])
        truncated = np.full(n, self.max_steps is not None and self.steps >= self.max_steps) & ~terminated
        return frames, rewards, terminated, truncated, infos

    # -- reading the frames ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def read(self, frames: np.ndarray, initial: bool = False) -> None:
        if self.reader is None:
            return
        device = next(self.reader.parameters()).device
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        grip, cands, heat = (t.cpu().numpy() for t in self.reader.read(x))
        self.gripper_px = grip.astype(np.float64)
        radius = TRACK_RADIUS * self.size / 64
        for i in range(len(frames)):
            if initial:
                if self.starts[i].objects_px is None:
                    self.objects_px[i] = cands[i][heat[i] >= MIN_HEAT].astype(np.float64)
            else:
                self.objects_px[i] = track(self.objects_px[i], cands[i].astype(np.float64), heat[i], radius)
            if self.views[i] is not None:
                self.views[i].update(self.objects_px[i])

    def info(self, i: int, frame: np.ndarray) -> dict[str, Any]:
        info: dict[str, Any] = {"seed": self.starts[i].seed}
        if self.reader is None:
            return info
        state = TaskState(self.gripper_px[i], self.objects_px[i], self.size)
        info |= {"gripper_px": state.gripper_px.copy(), "objects_px": state.objects_px.copy()}
        goal = self.starts[i].goal
        if self.task is not None and goal is not None:
            info |= {"goal_object": goal.object, "goal_px": goal.pixel.copy()} | self.streaks[i].update(state, goal)[1]
        return info


class WorldModelEnv(gym.Env):
    """One rollout of an action-conditioned world model as a ``gymnasium.Env`` (see the module docstring).
    ``reset(seed=s)`` starts from the simulator's episode ``s``; ``reset(options={"image": frame})`` from an image."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, model: str | Any = "arm-action", task: str | None = "reach", *,
                 reader: str | Any | None = "arm-reader", max_steps: int | None = None, sampling: Any = None,
                 device: str | torch.device = "cpu", render_mode: str | None = "rgb_array") -> None:  # fmt: skip
        self.batch = BatchedWorldModelEnv(model, task, reader=reader, max_steps=max_steps, sampling=sampling,
                                          device=device)  # fmt: skip
        s = self.batch.size
        self.observation_space = spaces.Box(0, 255, shape=(s, s, 3), dtype=np.uint8)
        low, high = action_bounds() if self.batch.action_dim == 7 else (-np.ones(self.batch.action_dim),) * 2
        self.action_space = spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)
        self.render_mode = render_mode
        self._frame: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        image = (options or {}).get("image")
        if image is not None:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ConfigError(f"options['image'] must be a uint8 (H, W, 3) frame, got {image.dtype} {image.shape}.")
            if self.batch.task is not None:
                raise ConfigError("a task needs a simulator start (its scene and goal); make the env with task=None "
                                  "to start from an image.")  # fmt: skip
            frames, infos = self.batch.reset(starts=[Start(int(episode_seed), image)])
        else:
            frames, infos = self.batch.reset(seeds=[episode_seed])
        self._frame = frames[0]
        return self._frame, infos[0]

    @property
    def view(self) -> EstimatedArm | None:
        """What a policy may know of the state (see EstimatedArm); None after a reset from an image."""
        return self.batch.views[0] if self.batch.views else None

    @property
    def goal(self) -> Goal | None:
        return self.batch.starts[0].goal if self.batch.starts else None

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise WorldsmithError("call reset() before step() on a WorldModelEnv.")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ConfigError(f"actions have shape {self.action_space.shape}, got {action.shape}.")
        frames, rewards, terminated, truncated, infos = self.batch.step(action[None])
        self._frame = frames[0]
        return self._frame, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def render(self) -> np.ndarray | None:
        return self._frame
