"""The World interface shared by the simulated worlds (arm, orbit, drive, bounce).

A world is an environment with a camera: ``reset(seed)`` returns the first frame, ``step(action)`` advances the
physics by one video frame and returns the next frame, ``truth()`` returns the ground truth of the current frame,
and ``caption()`` describes in plain English what happened since the reset, from the true state.
``record_episode`` drives a world with its scripted policy and returns a ``Clip`` in the foundation format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldsmith.data.clip import Clip
from worldsmith.errors import ConfigError
from worldsmith.worlds.render import SceneRenderer, mujoco


@dataclass
class WorldConfig:
    size: int = 64  # rendered frames are (size, size, 3)
    fps: float = 10.0  # video frame rate; physics substeps per frame derive from the model timestep
    views: int | None = None  # number of synchronized cameras; None = the world's default (drive 3, others 1)
    shadows: bool = False  # shadows cost ~30 ms a frame on CPU
    randomize: bool = True  # per-episode domain randomisation (shapes, sizes, colours, textures, light, camera)

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and 8 <= self.size <= 2048):
            raise ConfigError(f"world size must be an integer number of pixels in [8, 2048], got {self.size!r}.")
        if not (self.fps > 0 and self.fps <= 1000):
            raise ConfigError(f"world fps must be in (0, 1000], got {self.fps!r}.")
        if self.views is not None and not (isinstance(self.views, int) and 1 <= self.views <= 16):
            raise ConfigError(f"world views must be an integer in [1, 16] (or None: the default), got {self.views!r}.")


class World:
    """Base class. Subclasses set ``name`` and ``action_dim`` and implement the abstract methods."""

    name: str = ""
    action_dim: int = 0

    def __init__(self, cfg: WorldConfig | None = None) -> None:
        self.cfg = cfg or WorldConfig()

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        """Start a new randomised episode; return the first frame, uint8 (H, W, 3) (main view)."""
        raise NotImplementedError

    def step(self, action: np.ndarray) -> np.ndarray:
        """Apply ``action`` (float32 (action_dim,)) for one video frame; return the next frame (main view)."""
        raise NotImplementedError

    def render_views(self) -> list[np.ndarray]:
        """All camera views of the current state, main view first, each uint8 (H, W, 3)."""
        raise NotImplementedError

    def truth(self) -> dict[str, np.ndarray]:
        """Ground truth of the current frame as named float32 arrays (see ``worldsmith.data.clip`` names)."""
        raise NotImplementedError

    def caption(self) -> str:
        """Plain-English description of what happened since ``reset``, computed from the true state."""
        raise NotImplementedError

    # -- data generation ---------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator):
        """A scripted (noisy) behaviour for this episode: a callable ``act(t) -> action``.

        ``t`` is the index of the current frame (0 after ``reset``); the policy reads the world's true state itself
        and returns float32 (action_dim,) within ``action_bounds()``. Call it after ``reset``.
        """
        raise NotImplementedError

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) float32 (action_dim,) of valid actions; [-1, 1] unless a world says otherwise."""
        one = np.ones(self.action_dim, dtype=np.float32)
        return -one, one

    def close(self) -> None:
        pass

    def episode_meta(self) -> dict[str, Any]:
        return {"world": self.name}

    @property
    def num_views(self) -> int:
        """Synchronized cameras this world renders (``cfg.views``, or the world's default)."""
        return self.cfg.views or 1


class MujocoWorld(World):
    """Shared plumbing of the MuJoCo worlds: one model per episode, its data, one long-lived renderer.

    A subclass builds its randomised model in ``reset`` and calls ``_load(model)``; ``_render(cam)`` renders one
    camera of the current state.
    """

    def __init__(self, cfg: WorldConfig | None = None) -> None:
        super().__init__(cfg)
        self.model = None  # mujoco.MjModel of the current episode
        self.data = None  # mujoco.MjData
        self._renderer: SceneRenderer | None = None

    def _load(self, model) -> None:
        if self._renderer is None:
            self._renderer = SceneRenderer(self.cfg.size, self.cfg.size, shadows=self.cfg.shadows)
        self.model = model
        self.data = mujoco.MjData(model)
        self._renderer.load(model)

    def _render(self, camera: int) -> np.ndarray:
        return self._renderer.rgb(self.data, camera)

    def render_depth(self, camera: int = 0) -> np.ndarray:
        """float32 (H, W) depth along the optical axis (metres) of camera ``camera`` in the current state."""
        return self._renderer.depth(self.data, camera)

    def render_segmentation(self, camera: int = 0) -> np.ndarray:
        """int32 (H, W) geom id seen at each pixel of camera ``camera`` (-1 for background)."""
        return self._renderer.segmentation(self.data, camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def record_episode(
    world: World, seed: int, frames: int, *, key: str | None = None, meta: dict[str, Any] | None = None,
    branch: int = 0,
) -> Clip:  # fmt: skip
    """Run ``world``'s scripted policy for one episode of ``frames`` frames and return a ``Clip``.

    Per-frame truth arrays (``truth()``) are stacked to (T, ...), actions to (T-1, action_dim); extra views go in
    ``Clip.views``. The policy's noise comes from its own stream of ``seed``, so the clip is a function of
    (world config, seed, frames). ``branch`` > 0 draws the policy from another stream: the same scene and first
    frame, other actions (pairs for testing whether a model follows its actions).
    """
    if not (isinstance(frames, int) and frames >= 1):
        raise ConfigError(f"an episode needs at least 1 frame, got frames={frames!r}.")
    main = [world.reset(seed)]
    act = world.policy(np.random.default_rng([seed, 0x5EED] + ([branch] if branch else [])))
    multi = world.num_views > 1
    extra = [world.render_views()[1:]] if multi else []
    truths = [world.truth()]
    actions = []
    for t in range(frames - 1):
        a = np.asarray(act(t), dtype=np.float32)
        main.append(world.step(a))
        actions.append(a)
        if multi:
            extra.append(world.render_views()[1:])
        truths.append(world.truth())
    arrays = {name: np.stack([tr[name] for tr in truths]).astype(np.float32) for name in truths[0]}
    arrays["actions"] = np.asarray(actions, dtype=np.float32).reshape(frames - 1, world.action_dim)
    views = [np.stack([e[v] for e in extra]) for v in range(world.num_views - 1)] if multi else []
    info = {**world.episode_meta(), "seed": int(seed), "branch": int(branch), **(meta or {})}
    return Clip(
        key=key or f"{world.name}-seed{seed}",
        frames=np.stack(main),
        fps=float(world.cfg.fps),
        caption=world.caption(),
        meta=info,
        arrays=arrays,
        views=views,
    )
