"""A Gymnasium ``Env`` around any World.

Gymnasium is an optional dependency: only this module imports it (nothing else in worldsmith imports this module),
and importing it without gymnasium raises a WorldsmithError saying how to install it.

    env = WorldEnv("bounce", WorldConfig(size=64))       # or WorldEnv(some_world_instance)
    obs, info = env.reset(seed=0)                         # obs: uint8 (H, W, 3); info: the ground truth
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Without a task the reward is 0 and an episode ends only by truncation after ``max_steps`` steps (``None``:
never). With ``task=`` (arm world: ``reach``, ``push``, ``pick_place``; worlds/tasks.py) ``reset`` samples the
episode's goal from its seed, the reward and success come from the true state, an episode terminates on success
and is truncated after the task's ``max_steps``; ``env.goal`` is the tasks.Goal and ``info`` adds
``goal_object``, ``goal_px``, ``gripper_px``, ``objects_px``, ``distance_px``, ``at_goal`` and ``success``.
``info`` holds the per-frame truth arrays (``worldsmith.data.clip`` names) and, with more than one camera, ``info["views"]``: the extra camera images. ``register_envs()`` adds ``worldsmith/Arm-v0``,
``worldsmith/Orbit-v0``, ``worldsmith/Drive-v0`` and ``worldsmith/Bounce-v0`` to Gymnasium's registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldsmith.errors import WorldsmithError
from worldsmith.worlds.base import World, WorldConfig
from worldsmith.worlds.registry import WORLDS, make_world
from worldsmith.worlds.tasks import LiftTracker, Streak, goal_rng, make_task, truth_state

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as e:  # pragma: no cover - depends on the environment
    raise WorldsmithError("worldsmith.worlds.gym_env needs gymnasium; install it with `pip install gymnasium`.") from e


class WorldEnv(gym.Env):
    """``world``: a name from ``WORLDS`` (made with ``cfg`` and ``world_options``) or a World instance."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        world: str | World,
        cfg: WorldConfig | None = None,
        *,
        max_steps: int | None = None,
        render_mode: str | None = "rgb_array",
        task: str | None = None,
        **world_options: Any,
    ) -> None:
        self.world = make_world(world, cfg, **world_options) if isinstance(world, str) else world
        self.task = None
        if task is not None:
            if self.world.name != "arm":
                raise WorldsmithError(f"tasks are defined on the arm world, not on {self.world.name!r}.")
            self.task = make_task(task)
            max_steps = self.task.max_steps if max_steps is None else max_steps
        self.goal = None
        self._lift = None
        size = self.world.cfg.size
        low, high = self.world.action_bounds()
        self.observation_space = spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
        self.action_space = spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)
        self.metadata = {**self.metadata, "render_fps": self.world.cfg.fps}
        self.render_mode = render_mode
        self.max_steps = max_steps
        self._frame: np.ndarray | None = None
        self._steps = 0

    def _info(self) -> dict[str, Any]:
        truth = self.world.truth()
        info: dict[str, Any] = dict(truth)
        if self.world.num_views > 1:
            info["views"] = self.world.render_views()[1:]
        if self.task is not None:
            state = truth_state(self.world, self._lift.update(truth), truth)
            info |= {"goal_object": self.goal.object, "goal_px": self.goal.pixel.copy(), "gripper_px": state.gripper_px,
                     "objects_px": state.objects_px} | self._streak.update(state, self.goal)[1]
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self._frame = self.world.reset(int(episode_seed))
        self._steps = 0
        if self.task is not None:
            self.goal = self.task.sample_goal(self.world, goal_rng(episode_seed))
            self._lift, self._streak = LiftTracker(self.world), Streak(self.task)
        info = self._info()
        info.pop("reward", None)
        return self._frame, info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise WorldsmithError("call reset() before step() on a WorldEnv.")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise WorldsmithError(
                f"{self.world.name} actions have shape {self.action_space.shape}, got {action.shape}."
            )
        self._frame = self.world.step(action)
        self._steps += 1
        info = self._info()
        terminated = bool(info.get("success", False))
        truncated = self.max_steps is not None and self._steps >= self.max_steps and not terminated
        return self._frame, float(info.pop("reward", 0.0)), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self._frame

    def close(self) -> None:
        self.world.close()


def register_envs() -> list[str]:
    """Register ``worldsmith/<World>-v0`` for every world with Gymnasium; returns the ids."""
    ids = []
    for name in WORLDS:
        env_id = f"worldsmith/{name.capitalize()}-v0"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{__name__}:WorldEnv", kwargs={"world": name})
        ids.append(env_id)
    return ids
